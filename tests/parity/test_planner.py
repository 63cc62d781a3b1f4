"""The server's planner (pgembed._plan, sql/functions/planner.sql) against a reference model of its rules in
plain Python (planner_reference.py): the same plan, knobs and refusals for random requests over a catalog with
several codecs, full and partial HNSW indexes, and tuning rows."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pgembed
from tests.conftest import TEMPLATE, _new_database
from tests.helpers import unit_vectors
from tests.parity import planner_reference as ref

DIM = 16
CODECS = {"bq": "bq", "bq2": "bq2", "f16": "f16", "pca": "pca8"}
PARTIAL = [("bq", {"category": "news"}), ("bq", {"category": "news", "year": 2020}), ("f16", {"year": 2021})]
FILTERS: list[dict[str, Any] | None] = [None, {"category": "news"}, {"category": "news", "year": 2020},
                                        {"category": "news", "year": 2020.0}, {"year": 2021},
                                        {"year": 2021, "category": "blog"}, {"category": "blog"}]


@pytest.fixture(scope="module")
def catalog(server_dsn: str) -> Iterator[tuple[psycopg.Connection, int, tuple[ref.Source, ...]]]:
    for dsn in _new_database(server_dsn, TEMPLATE):
        with pgembed.connect(dsn) as db:
            docs = db.create_collection("docs", DIM, attrs={"category": "text", "year": "integer"})
            docs.ingest(np.arange(400), unit_vectors(400, DIM, seed=5),
                        {"category": ["news" if i % 2 else "blog" for i in range(400)],
                         "year": [2019 + i % 4 for i in range(400)]})
            for name, spec in CODECS.items():
                docs.add_codec(name, spec)
                docs.create_index(name, "hnsw", m=8, ef_construction=16)
            for name, where in PARTIAL:
                docs.create_index(name, "hnsw", m=8, ef_construction=16, where=where)
            db.execute("ANALYZE docs")
            rng = random.Random(3)
            rows = db.execute("SELECT codec_id, index_name, predicate IS NOT NULL FROM pgembed.search_sources(%s)",
                              (docs.info.id,)).fetchall()
            for codec_id, index, partial in rows:
                for _ in range(rng.randint(0, 4)):
                    db.execute(
                        "INSERT INTO pgembed.tuning VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 20) "
                        "ON CONFLICT DO NOTHING",
                        (docs.info.id, codec_id, index if partial and rng.random() < 0.6 else "",
                         rng.choice([0.8, 0.9, 0.95, 0.99]), rng.choice([1.0, 0.3, 0.1, 0.02]), rng.randint(10, 400),
                         rng.choice([1.5, 2.0, 3.0, 8.0, 16.0]), 0.96, rng.choice([None, 100.0, 250.0, 900.0])))
            sources = _sources(db, docs.info.id)
            with psycopg.connect(dsn, autocommit=True) as conn:
                yield conn, docs.info.id, sources


def _sources(db: pgembed.Database, collection_id: int) -> tuple[ref.Source, ...]:
    """What the planner reads, in its order: search_sources, each with its tuning (a partial index's own when
    it has some, else its codec's)."""
    tuning = db.execute("SELECT codec_id, index_name, recall_target, selectivity, ef_search, oversample, queries_per_s "
                        "FROM pgembed.tuning").fetchall()
    out = []
    for codec_id, name, column, sql_type, index, predicate, rows in db.execute(
            "SELECT codec_id, name, column_name, sql_type, index_name, predicate, index_rows "
            "FROM pgembed.search_sources(%s)", (collection_id,)).fetchall():
        own = [ref.Tuned(*t[2:]) for t in tuning if t[0] == codec_id and t[1] == index] if predicate else []
        tuned = own or [ref.Tuned(*t[2:]) for t in tuning if t[0] == codec_id and t[1] == ""]
        out.append(ref.Source(name, column, sql_type, index, DIM, tuple(tuned), predicate, float(rows)))
    return tuple(out)


requests = st.fixed_dictionaries({
    "k": st.sampled_from([1, 5, 10, 37, 200, 10_000, 0, 10_001]),
    "recall": st.sampled_from([None, None, 0.8, 0.9, 0.95, 0.99, 1.0, 1.5]),
    "codec": st.sampled_from([None, None, "bq", "bq2", "f16", "pca", "nope"]),
    "ef_search": st.sampled_from([None, None, None, 10, 40, 100, 1000, 0, 1001]),
    "oversample": st.sampled_from([None, None, None, 1.0, 2.5, 10.0, 400.0, 0.5]),
    "plan": st.sampled_from(["auto", "auto", "exact", "index", "fast"]),
    "filter": st.sampled_from(range(len(FILTERS))),
    "sql_clause": st.booleans(),  # a filter given as SQL text: filtered, but no jsonb to match partial indexes
    "estimated_rows": st.sampled_from([1.0, 50.0, 9_999.0, 10_000.0, 10_001.0, 120_000.0]),
    "total_rows": st.sampled_from([400.0, 50_000.0, 2.0e6, 1.0e12]),
})


@given(request=requests)
@settings(max_examples=300, deadline=None)
def test_the_server_plans_as_the_reference_model(catalog: tuple[psycopg.Connection, int, tuple[ref.Source, ...]],
                                                 request: dict[str, Any]) -> None:
    conn, collection_id, sources = catalog
    doc = FILTERS[request["filter"]]
    filtered = doc is not None or request["sql_clause"]
    filter_doc = doc if not request["sql_clause"] else None
    expected = ref.choose_plan(ref.Request(
        k=request["k"], filtered=filtered, estimated_rows=request["estimated_rows"] if filtered else None,
        total_rows=request["total_rows"], sources=sources, codec=request["codec"], ef_search=request["ef_search"],
        oversample=request["oversample"], recall=request["recall"], plan=request["plan"], filter_doc=filter_doc))
    try:
        with conn.transaction():
            got = conn.execute(
                "SELECT pgembed._plan(%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s)",
                (collection_id, request["k"], request["recall"], request["codec"], request["ef_search"],
                 request["oversample"], request["plan"], json.dumps(filter_doc) if filter_doc else None, filtered,
                 request["estimated_rows"] if filtered else None, request["total_rows"])).fetchone()[0]
    except psycopg.errors.InvalidParameterValue as err:
        assert isinstance(expected, tuple) and expected[0] == "invalid", (request, expected, err)
        assert str(err).startswith(expected[1]), (str(err), expected)
        return
    except psycopg.errors.ObjectNotInPrerequisiteState as err:
        assert isinstance(expected, tuple) and expected[0] == "schema", (request, expected, err)
        assert str(err).startswith(expected[1]), (str(err), expected)
        return
    assert isinstance(expected, dict), (request, expected, got)
    for key, value in expected.items():
        assert got[key] == value, (key, request, expected, got)
