"""Workload advice against a real server: partial indexes for hot predicates and for the partitions of the
workload's column, estimated, applied online, used by the planner, never built twice."""

from __future__ import annotations

import json

import numpy as np
import pytest

import pgembed
from pgembed.errors import InvalidInputError
from tests.helpers import categorised_docs, unit_vectors

DIM = 16
ROWS = 2000


@pytest.fixture
def docs(db: pgembed.Database) -> pgembed.Collection:
    return categorised_docs(db, ROWS, DIM)


def test_advise_recommends_and_applies_partial_indexes(docs: pgembed.Collection) -> None:
    hot = {"category": "blog"}
    workload = [hot] * 30 + [{"category": "news"}] * 2 + [None] * 18 + [{"year": 2000}]
    advice = docs.advise(workload, min_share=0.1)
    assert [i.predicate for i in advice.indexes] == [hot]  # news: 4% of queries, under min_share
    assert advice.indexes[0].queries == 30 and advice.indexes[0].gain > 0 and advice.indexes[0].applied is None
    assert advice.partition_by == "category"
    assert docs.explain(10, where=hot).kind == "exact"  # nothing built yet
    applied = docs.advise(workload, min_share=0.1, apply=True)
    name = applied.indexes[0].applied
    assert name is not None and docs.explain(10, where=hot).index == name
    assert docs.advise(workload, min_share=0.1).indexes == []  # already there
    document = {"filters": {"b": hot}, "queries": [{"query": 0, "filter": "b"}, {"query": 1, "filter": None}]}
    assert docs.advise(document, min_share=0.5).queries == 2
    with pytest.raises(InvalidInputError, match="does not define"):
        docs.advise({"filters": {}, "queries": [{"query": 0, "filter": "x"}]})
    with pytest.raises(InvalidInputError):
        docs.advise([{"nope": 1}])
    with pytest.raises(InvalidInputError):
        docs.advise([])


def test_advise_partitions_the_index_by_the_workload_column(db: pgembed.Database) -> None:
    """partition=True: one partial index per value of the partitioning column the queries select on, where
    the planner would use it (a whole-filter predicate, or more filter on top over too many rows for the
    exact plan); the planner then searches it for that value's queries."""
    n = 24_000
    x = unit_vectors(n, DIM, seed=24)
    coll = db.create_collection("parts", DIM, attrs={"region": "text", "size": "integer"})
    region = ["north" if i % 2 else ("south" if i % 4 == 0 else "east") for i in range(n)]  # 12k / 6k / 6k
    coll.ingest(np.arange(n), x, {"region": region, "size": [i % 100 for i in range(n)]})
    coll.add_codec("bq", "bq")
    coll.create_index("bq", "hnsw", m=8, ef_construction=40)
    db.execute("ANALYZE parts")
    workload = ([{"region": "north", "size": {"$lt": 90}}] * 20 + [{"region": "south", "size": {"$lt": 50}}] * 20
                + [{"region": "east"}] * 5 + [None] * 5)
    advice = coll.advise(workload, partition=True, min_share=0.5)
    assert advice.partition_by == "region" and advice.indexes == []  # no single filter reaches min_share
    # north's filter keeps ~10.8k rows (too many for the exact plan): its index pays; south's queries keep
    # ~3k rows and go exact anyway; east's whole filter is the predicate.
    assert {json.dumps(p.predicate) for p in advice.partition_indexes} == {'{"region": "north"}', '{"region": "east"}'}
    assert all(p.applied is None and p.gain > 0 for p in advice.partition_indexes)
    applied = coll.advise(workload, partition=True, min_share=0.5, apply=True)
    names = {json.dumps(p.predicate): p.applied for p in applied.partition_indexes}
    assert coll.explain(10, where={"region": "north", "size": {"$lt": 90}}).index == names['{"region": "north"}']
    assert coll.explain(10, where={"region": "east"}).index == names['{"region": "east"}']
    assert coll.advise(workload, partition=True, min_share=0.5).partition_indexes == []  # already there
    q = unit_vectors(2, DIM, seed=25)
    result = coll.search(q[0], 5, where={"region": "north", "size": {"$lt": 90}})
    assert len(result.ids) == 5 and all(int(i) % 2 == 1 and int(i) % 100 < 90 for i in result.ids)


def test_partition_indexes_never_overlap_other_partial_indexes(db: pgembed.Database) -> None:
    """A value that a hot predicate's index already restricts gets no partition index (two partial indexes
    matching one filter would leave the planner to pick by name); NULL and non-scalar values get none."""
    n = 24_000
    coll = db.create_collection("overlap", DIM, attrs={"region": "text", "size": "integer"})
    region = ["north" if i % 2 else "south" for i in range(n)]
    coll.ingest(np.arange(n), unit_vectors(n, DIM, seed=30), {"region": region, "size": [i % 100 for i in range(n)]})
    coll.add_codec("bq", "bq")
    coll.create_index("bq", "hnsw", m=8, ef_construction=40)
    db.execute("ANALYZE overlap")
    workload = ([{"region": "north", "size": {"$lt": 95}}] * 20 + [{"region": "south", "size": {"$lt": 95}}] * 20
                + [{"region": None}] * 5 + [{"region": {"$in": ["north"]}}] * 5)
    alone = coll.advise(workload, partition=True, min_share=0.9)
    assert alone.indexes == [] and {p.predicate["region"] for p in alone.partition_indexes} == {"north", "south"}
    # With north's whole filter hot (its own partial index), north gets no partition index.
    both = coll.advise(workload, partition=True, min_share=0.3, max_indexes=1)
    assert [i.predicate for i in both.indexes] == [{"region": "north", "size": {"$lt": 95}}]
    assert [p.predicate for p in both.partition_indexes] == [{"region": "south"}]
    for p in alone.partition_indexes:  # served queries gain less than the whole drop to one partial search
        assert p.seconds_after > 0.0016 and p.gain > 0
