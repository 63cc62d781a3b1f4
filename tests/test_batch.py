"""Batched search against a real server: scanned groups are exact, per-query groups equal search(), every
query gets its rows (all of them when fewer than k match), and bad input is refused."""

from __future__ import annotations

import json

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

import pgembed
from pgembed.batch import (
    MARGIN,
    CostModel,
    RunningTopK,
    _scores,
    _scoring_queries,
    _scoring_rows,
    _smallest,
    calibrate,
    search_batch,
)
from pgembed.errors import InvalidInputError
from tests.helpers import unit_vectors

DIM = 16
ROWS = 2000


@pytest.fixture
def docs(db: pgembed.Database) -> pgembed.Collection:
    x = unit_vectors(ROWS, DIM, seed=4)
    docs = db.create_collection("docs", DIM, attrs={"category": "text", "year": "integer"})
    category = ["rare" if i % 400 == 0 else ("news" if i % 3 else "blog") for i in range(ROWS)]
    docs.ingest(np.arange(ROWS), x, {"category": category, "year": [1990 + i % 40 for i in range(ROWS)]})
    docs.add_codec("bq", "bq")
    docs.create_index("bq", "hnsw", m=8, ef_construction=40)
    db.execute("ANALYZE docs")
    return docs


WORKLOAD = [None, {"category": "news"}, {"category": "rare"}, {"year": {"$gte": 2020}},
            {"category": "blog", "year": {"$lt": 1995}}, {"category": "none"}]


def test_scan_equals_exact_single_queries(docs: pgembed.Collection) -> None:
    q = unit_vectors(30, DIM, seed=8)
    where = [WORKLOAD[i % len(WORKLOAD)] for i in range(30)]
    batch = docs.search_batch(q, 10, where=where, plan="scan")
    assert batch.plan_mix() == {"scan": 30} and all(g.exact_fallbacks == 0 for g in batch.groups)
    assert len(batch.groups) == len(WORKLOAD)
    for i in range(30):
        single = docs.search(q[i], 10, where=where[i], plan="exact")
        assert batch.counts[i] == len(single)
        np.testing.assert_allclose(batch.distances[i, : batch.counts[i]], single.distances, atol=1e-6)
        assert batch.ids[i, : batch.counts[i]].tolist() == single.ids.tolist()
    rare = where.index({"category": "rare"})
    assert batch.counts[rare] == 5 and list(batch.ids[rare, 5:]) == [None] * 5  # 5 rows match: all of them
    assert np.all(np.isinf(batch.distances[rare, 5:]))
    none = where.index({"category": "none"})
    assert batch.counts[none] == 0


def test_each_equals_search(docs: pgembed.Collection) -> None:
    q = unit_vectors(12, DIM, seed=9)
    where = [WORKLOAD[i % len(WORKLOAD)] for i in range(12)]
    batch = docs.search_batch(q, 7, where=where, plan="each", oversample=20)
    assert batch.plan_mix() == {"each": 12}
    for i in range(12):
        single = docs.search(q[i], 7, where=where[i], oversample=20)
        assert batch.ids[i, : batch.counts[i]].tolist() == single.ids.tolist()


def test_auto_follows_the_cost_model(docs: pgembed.Collection) -> None:
    q = unit_vectors(40, DIM, seed=10)
    cheap_scan = CostModel(read_row_per_dim=1e-12, score=1e-15, per_query=1.0)
    assert search_batch(docs, q, 5, cost=cheap_scan).plan_mix() == {"scan": 40}
    dear_scan = CostModel(read_row_per_dim=1.0, score=1.0, per_query=1e-9)
    result = search_batch(docs, q, 5, where={"category": "news"}, cost=dear_scan)
    assert result.plan_mix() == {"each": 40} and "scan" in result.groups[0].reason
    assert all(result.counts == 5)
    # A recall target is the per-query planner's business.
    assert search_batch(docs, q[:3], 5, recall=0.9, cost=cheap_scan).plan_mix() == {"each": 3}


def test_sqlalchemy_filters_and_text_keys(db: pgembed.Database, sql_conn: psycopg.Connection) -> None:
    x = unit_vectors(300, DIM, seed=11)
    sql_conn.execute(f"CREATE TABLE notes (slug text PRIMARY KEY, kind text, v vector({DIM}))")
    with sql_conn.cursor() as cur:
        cur.executemany("INSERT INTO notes VALUES (%s, %s, %s)",
                        [(f"n{i}", "a" if i % 2 else "b", "[" + ",".join(map(str, r)) + "]") for i, r in enumerate(x)])
    notes = db.collection("notes")
    q = unit_vectors(4, DIM, seed=12)
    batch = notes.search_batch(q, 3, where=sa.column("kind") == "a", plan="scan")
    for i in range(4):
        single = notes.search(q[i], 3, where={"kind": "a"}, plan="exact")
        assert batch.ids[i].tolist() == single.ids.tolist()
    assert all(int(s[1:]) % 2 == 1 for s in batch.ids.ravel())


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_scan_metrics_match_numpy(db: pgembed.Database, metric: str) -> None:
    rng = np.random.default_rng(13)
    x = rng.standard_normal((500, DIM)).astype(np.float32)
    coll = db.create_collection(f"m_{metric}", DIM, metric=metric)
    coll.ingest(np.arange(500), x)
    q = rng.standard_normal((5, DIM)).astype(np.float32)
    batch = coll.search_batch(q, 4, plan="scan")
    for i in range(5):
        d = -(x @ q[i]) if metric == "ip" else np.linalg.norm(x - q[i], axis=1)
        np.testing.assert_allclose(batch.distances[i], np.sort(d)[:4], rtol=1e-5, atol=1e-5)
        single = coll.search(q[i], 4, plan="exact")
        assert batch.ids[i].tolist() == single.ids.tolist()


def test_bad_input(docs: pgembed.Collection) -> None:
    q = unit_vectors(3, DIM, seed=14)
    with pytest.raises(InvalidInputError, match="3 queries"):
        docs.search_batch(q, 5, where=[None, None])
    with pytest.raises(InvalidInputError, match="dimension"):
        docs.search_batch(q[:, :4], 5)
    with pytest.raises(InvalidInputError, match="NaN"):
        docs.search_batch(np.full((2, DIM), np.nan), 5)
    with pytest.raises(InvalidInputError, match="empty"):
        docs.search_batch(np.empty((0, DIM)), 5)
    with pytest.raises(InvalidInputError, match="plan must be"):
        docs.search_batch(q, 5, plan="fast")
    with pytest.raises(InvalidInputError):
        docs.search_batch(q, 5, where=[None, {"nope": 1}, None])


def test_calibrate_measures_positive_constants(docs: pgembed.Collection) -> None:
    model = calibrate(docs, sample_queries=5, rows=1000)
    assert model.read_row_per_dim > 0 and model.score > 0 and model.per_query > 0


def test_sql_search_batch_equals_the_sql_search(docs: pgembed.Collection, sql_conn: psycopg.Connection) -> None:
    from tests.helpers import vector_text

    q = unit_vectors(4, DIM, seed=15)
    array = "{" + ",".join(f'"{vector_text(v)}"' for v in q) + "}"
    filters = "{" + ",".join('"{\\"category\\": \\"news\\"}"' if i % 2 else "NULL" for i in range(4)) + "}"
    rows = sql_conn.execute(
        "SELECT query_no, id, distance FROM pgembed.search_batch('docs', %s::vector[], 5, %s::jsonb[])",
        (array, filters)).fetchall()
    for i in range(4):
        single = sql_conn.execute("SELECT id FROM pgembed.search('docs', %s::vector, 5, %s::jsonb)",
                                  (vector_text(q[i]), '{"category": "news"}' if i % 2 else None)).fetchall()
        assert [r[1] for r in rows if r[0] == i + 1] == [r[0] for r in single]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="2 filters for 4 queries"):
        sql_conn.execute("SELECT * FROM pgembed.search_batch('docs', %s::vector[], 5, '{NULL,NULL}'::jsonb[])",
                         (array,))


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


def test_scan_with_percent_in_a_filter_value(db: pgembed.Database) -> None:
    """COPY takes no parameters: a '%' in a filter must still match literally (review finding)."""
    x = unit_vectors(200, DIM, seed=16)
    coll = db.create_collection("pct", DIM, attrs={"label": "text"})
    coll.ingest(np.arange(200), x, {"label": ["50% off" if i % 4 == 0 else "full price" for i in range(200)]})
    q = unit_vectors(3, DIM, seed=17)
    batch = coll.search_batch(q, 5, where={"label": "50% off"}, plan="scan")
    assert all(batch.counts == 5) and all(int(i) % 4 == 0 for i in batch.ids.ravel())
    single = coll.search(q[0], 5, where={"label": "50% off"}, plan="exact")
    assert batch.ids[0].tolist() == single.ids.tolist()
    with pytest.raises(InvalidInputError, match="all zeros"):
        coll.search_batch(np.zeros((1, DIM), dtype=np.float32), 5)


def test_explain_prints_the_group_plans(docs: pgembed.Collection, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    q = unit_vectors(4, DIM, seed=18)
    result = docs.search_batch(q, 3, where=[None, {"category": "rare"}, None, {"category": "rare"}], explain=True)
    printed = json.loads(capsys.readouterr().out)
    assert [g["queries"] for g in printed] == [2, 2] == [g.queries for g in result.groups]
    assert {g["kind"] for g in printed} <= {"scan", "each"} and all(g["reason"] for g in printed)


@settings(max_examples=80, deadline=None)
@given(queries=st.integers(1, 4), rows=st.sampled_from([1, 7, 40, 700, 2_000, 5_003, 10_950]),
       keep=st.integers(1, 40), levels=st.sampled_from([3, 50, 10_000]), inf_share=st.sampled_from([0.05, 0.999]),
       seed=st.integers(0, 2**32 - 1))
def test_smallest_picks_the_smallest_values(queries: int, rows: int, keep: int, levels: int, inf_share: float,
                                            seed: int) -> None:
    """The chunked selection (rows >= 8 * keep * 32 takes it) returns each row's `keep` smallest values, ties
    (few distinct levels) and inf included, never an index twice, also when fewer than `keep` are finite."""
    rng = np.random.default_rng(seed)
    d = rng.integers(0, levels, size=(queries, rows)).astype(np.float32)
    d[rng.random(d.shape) < inf_share] = np.inf
    pick = _smallest(d, keep)
    assert pick.shape == (queries, min(keep, rows))
    for row in range(queries):
        assert len(set(pick[row].tolist())) == pick.shape[1]
        np.testing.assert_array_equal(np.sort(d[row, pick[row]]), np.sort(d[row])[: pick.shape[1]])


def test_scan_ranks_zero_rows_written_by_sql_last(docs: pgembed.Collection, sql_conn: psycopg.Connection) -> None:
    """A zero vector has no cosine distance: a scan ranks it after every real row, with distance NaN, as
    search() does, and never in a real row's place."""
    from tests.helpers import vector_text

    sql_conn.execute("INSERT INTO docs (id, category, year, embedding) SELECT 10000 + g, 'rare', 2000, %s::vector "
                     "FROM generate_series(1, 30) g", (vector_text(np.zeros(DIM)),))
    q = unit_vectors(3, DIM, seed=19)
    batch = docs.search_batch(q, 10, where={"category": "rare"}, plan="scan")
    assert all(batch.counts == 10)  # k rows match: the 5 real 'rare' rows first, then zero rows
    assert all(int(i) < 10000 for i in batch.ids[:, :5].ravel())
    assert all(int(i) > 10000 for i in batch.ids[:, 5:].ravel())
    assert np.all(np.isfinite(batch.distances[:, :5])) and np.all(np.isnan(batch.distances[:, 5:]))
    for i in range(3):
        single = docs.search(q[i], 10, where={"category": "rare"}, plan="exact")
        assert batch.ids[i, :5].tolist() == single.ids[:5].tolist() and np.all(np.isnan(single.distances[5:]))


@pytest.mark.parametrize("where", [None, {"category": "news"}, {"category": "rare"}, {"year": {"$gte": 2020}}])
def test_index_groups_in_one_statement_equal_search(docs: pgembed.Collection, where: dict | None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An index-plan group runs as one LATERAL statement per 16 queries; its answers equal search()'s, query by
    query, and a query that finds fewer than k rows through the index ('rare': 5 rows) is answered exactly,
    as search() does."""
    from pgembed.search import Searcher

    q = unit_vectors(20, DIM, seed=20)
    expected = [docs.search(q[i], 8, where=where, plan="index", oversample=3) for i in range(20)]
    statements: list[int] = []
    many = Searcher.search_many

    def counted(self: Searcher, queries: np.ndarray, *args: object) -> list:
        statements.append(len(queries))
        return many(self, queries, *args)

    monkeypatch.setattr(Searcher, "search_many", counted)
    monkeypatch.setattr(Searcher, "search", lambda *a, **kw: pytest.fail("one statement a query"))
    batch = docs.search_batch(q, 8, where=where, plan="index", oversample=3)
    assert batch.plan_mix() == {"each": 20} and statements == [16, 4]
    for i in range(20):
        assert batch.ids[i, : batch.counts[i]].tolist() == expected[i].ids.tolist()
        np.testing.assert_allclose(batch.distances[i, : batch.counts[i]], expected[i].distances)
    if where == {"category": "rare"}:
        assert all(batch.counts == 5) and all(e.plan.fallback for e in expected)


@pytest.mark.parametrize("table", ["q", "pgembed_queries"])
def test_many_statement_keeps_the_query_columns_apart(db: pgembed.Database, table: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A table named like the statement's own relations, with columns named like its columns, still gets
    its rows from the one-statement path (per-query search() is made to fail, so no fallback hides it)."""
    from pgembed.search import Searcher

    x = unit_vectors(300, DIM, seed=21)
    coll = db.create_collection(table, DIM, attrs={"pgembed_no": "integer", "pgembed_q": "text", "distance": "real"})
    coll.ingest(np.arange(300), x, {"pgembed_no": list(range(300)), "distance": [0.0] * 300,
                                    "pgembed_q": ["a" if i % 2 else "b" for i in range(300)]})
    coll.add_codec("bq", "bq")
    coll.create_index("bq", "hnsw", m=8, ef_construction=40)
    q = unit_vectors(5, DIM, seed=22)
    where = {"pgembed_q": "a", "pgembed_no": {"$lt": 200}}
    expected = [coll.search(q[i], 4, where=where, plan="index", oversample=10) for i in range(5)]

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the group fell back to one statement a query")

    monkeypatch.setattr(Searcher, "search", refuse)
    batch = coll.search_batch(q, 4, where=where, plan="index", oversample=10)
    for i in range(5):
        assert batch.ids[i].tolist() == expected[i].ids.tolist()
        assert all(int(key) % 2 == 1 and int(key) < 200 for key in batch.ids[i])


def test_scan_binds_sqlalchemy_parameters_into_copy(docs: pgembed.Collection) -> None:
    """A SQLAlchemy filter's bound values (quotes, '%', a list) reach COPY as literals and select what the
    same filter selects in search()."""
    docs.conn.execute("UPDATE docs SET category = 'it''s 50% off' WHERE id % 7 = 0")
    where = sa.and_(sa.column("category").in_(["it's 50% off", "rare"]), sa.column("year") >= sa.bindparam("y", 2000))
    q = unit_vectors(3, DIM, seed=23)
    batch = docs.search_batch(q, 6, where=where, plan="scan")
    for i in range(3):
        single = docs.search(q[i], 6, where=where, plan="exact")
        assert batch.ids[i].tolist() == single.ids.tolist()
        assert all(int(key) % 7 == 0 or int(key) % 400 == 0 for key in batch.ids[i])


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


@settings(max_examples=80, deadline=None)
@given(metric=st.sampled_from(["cosine", "ip", "l2"]), rows=st.integers(1, 3_000), distinct=st.integers(1, 40),
       zeros=st.integers(0, 30), k=st.integers(1, 12), blocks=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_running_top_k_over_blocks_equals_brute_force(metric: str, rows: int, distinct: int, zeros: int, k: int,
                                                      blocks: int, seed: int) -> None:
    """Blocks of rows with many duplicates (ties) and zero rows, keys in shuffled order: every query's k best
    by (distance, key) come out as brute force ranks them, except the queries finish() reports as unsure,
    which are exactly those whose tie at the k-th distance runs to the end of the kept rows."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((distinct, 6)).astype(np.float32)[rng.integers(0, distinct, rows)]
    x[rng.choice(rows, min(zeros, rows), replace=False)] = 0
    keys = rng.permutation(rows).astype(np.int64) * 3 + 1
    q = rng.standard_normal((4, 6)).astype(np.float32)
    top = RunningTopK(q, k + MARGIN, metric, np.int64)
    q_scored = _scoring_queries(q, metric)
    for part in np.array_split(np.arange(rows), blocks):
        top.add(_scores(q_scored, _scoring_rows(x[part], metric), metric), keys[part], x[part])
    ids = np.full((4, k), None, dtype=object)
    distances = np.full((4, k), np.inf)
    counts = np.zeros(4, dtype=np.int64)
    unsure = top.finish(k, range(4), ids, distances, counts)
    q64, x64 = q.astype(np.float64), x.astype(np.float64)
    for i in range(4):
        if metric == "cosine":
            with np.errstate(divide="ignore", invalid="ignore"):
                d = 1 - x64 @ q64[i] / (np.linalg.norm(x64, axis=1) * np.linalg.norm(q64[i]))
            d = np.where(np.isnan(d), np.inf, d)
        else:
            d = -(x64 @ q64[i]) if metric == "ip" else np.linalg.norm(x64 - q64[i], axis=1)
        order = np.lexsort((keys, np.round(d, 9)))
        kth = np.round(d[order[min(k, rows) - 1]], 9)
        ties = np.sum(np.round(d, 9) <= kth)
        if i in unsure:
            assert ties > k  # reported only when rows tie with the k-th
            continue
        assert counts[i] == min(k, rows)
        assert ids[i, : counts[i]].tolist() == keys[order[: counts[i]]].tolist()
        finite = np.isfinite(d[order[: counts[i]]])
        np.testing.assert_allclose(distances[i, : counts[i]][finite], d[order[: counts[i]]][finite], atol=1e-9)
        assert np.all(np.isnan(distances[i, : counts[i]][~finite]))


def test_scan_breaks_ties_by_key_as_search_does(db: pgembed.Database) -> None:
    """Duplicate vectors tie exactly: a scan returns the same keys, in the same order, as search()'s exact
    plan (distance, then key), also when the tie runs past the rows a scan keeps per query."""
    base = unit_vectors(5, DIM, seed=26)
    x = np.repeat(base, 30, axis=0)  # 5 vectors, 30 copies each
    coll = db.create_collection("dups", DIM)
    keys = np.random.default_rng(27).permutation(len(x))
    coll.ingest(keys, x)
    q = np.vstack([base[:3], unit_vectors(2, DIM, seed=28)])
    for k in (7, 25, 40):
        batch = coll.search_batch(q, k, plan="scan")
        # Every query's k-th row is one of 30 copies whose tie runs past the k + 10 rows a scan keeps
        assert batch.groups[0].exact_fallbacks == len(q)
        for i in range(len(q)):
            exact = coll.search(q[i], k, plan="exact")
            assert batch.ids[i].tolist() == exact.ids.tolist()
            np.testing.assert_allclose(batch.distances[i], exact.distances, atol=1e-6)


def test_identical_queries_are_answered_once(docs: pgembed.Collection, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same vector under the same filter is searched once and its answer copied; under another filter it is
    another query."""
    from pgembed.search import Searcher

    q = unit_vectors(3, DIM, seed=29)
    queries = np.vstack([q[0], q[1], q[0], q[2], q[0], q[1]])
    where = [None, None, None, None, {"category": "news"}, None]
    searched: list[int] = []
    search = Searcher.search

    def counted(self: Searcher, query: np.ndarray, *args: object, **kwargs: object) -> object:
        searched.append(1)
        return search(self, query, *args, **kwargs)

    monkeypatch.setattr(Searcher, "search", counted)
    batch = docs.search_batch(queries, 5, where=where, plan="exact")
    assert len(searched) == 4  # q0, q1, q2 unfiltered; q0 on news
    groups = {json.dumps(g.filter): (g.queries, g.unique) for g in batch.groups}
    assert groups == {"null": (5, 3), '{"category": "news"}': (1, 1)}
    assert batch.plan_mix() == {"each": 6}
    for i in range(6):
        single = search(docs.searcher, queries[i], 5, where=where[i], plan="exact")
        assert batch.ids[i].tolist() == single.ids.tolist() and batch.counts[i] == 5
    scanned = docs.search_batch(queries, 5, where=where, plan="scan")
    assert scanned.ids.tolist() == batch.ids.tolist()


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
