"""Batched search against a real server: scanned groups are exact, per-query groups equal search(), every
query gets its rows (all of them when fewer than k match), and bad input is refused."""

from __future__ import annotations

import json

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa

import pgembed
from pgembed.engine import search as searching
from pgembed.errors import InvalidInputError
from pgembed.planning.costs import CostModel
from pgembed.vocabulary import KernelMode
from tests.helpers import categorised_docs, unit_vectors, vector_text

DIM = 16
ROWS = 2000


@pytest.fixture
def docs(db: pgembed.Database) -> pgembed.Collection:
    return categorised_docs(db, ROWS, DIM)


WORKLOAD = [None, {"category": "news"}, {"category": "rare"}, {"year": {"$gte": 2020}},
            {"category": "blog", "year": {"$lt": 1995}}, {"category": "none"}]


def test_scan_equals_exact_single_queries(docs: pgembed.Collection) -> None:
    q = unit_vectors(30, DIM, seed=8)
    where = [WORKLOAD[i % len(WORKLOAD)] for i in range(30)]
    batch = docs.search_batch(q, 10, where=where, strategy="scan")
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
    batch = docs.search_batch(q, 7, where=where, strategy="each", oversample=20)
    assert batch.plan_mix() == {"each": 12}
    for i in range(12):
        single = docs.search(q[i], 7, where=where[i], oversample=20)
        assert batch.ids[i, : batch.counts[i]].tolist() == single.ids.tolist()


def test_auto_follows_the_cost_model(docs: pgembed.Collection) -> None:
    q = unit_vectors(40, DIM, seed=10)
    cheap_scan = CostModel(read_row_per_dim=1e-12, score=1e-15, per_query=1.0)
    assert docs.search_batch(q, 5, cost=cheap_scan).plan_mix() == {"scan": 40}
    dear_scan = CostModel(read_row_per_dim=1.0, score=1.0, per_query=1e-9)
    result = docs.search_batch(q, 5, where={"category": "news"}, cost=dear_scan)
    assert result.plan_mix() == {"each": 40} and "scan" in result.groups[0].reason
    assert all(result.counts == 5)
    # A recall target is the per-query planner's business.
    assert docs.search_batch(q[:3], 5, recall=0.9, cost=cheap_scan).plan_mix() == {"each": 3}


def test_sqlalchemy_filters_and_text_keys(db: pgembed.Database, sql_conn: psycopg.Connection) -> None:
    x = unit_vectors(300, DIM, seed=11)
    sql_conn.execute(f"CREATE TABLE notes (slug text PRIMARY KEY, kind text, v vector({DIM}))")
    with sql_conn.cursor() as cur:
        cur.executemany("INSERT INTO notes VALUES (%s, %s, %s)",
                        [(f"n{i}", "a" if i % 2 else "b", "[" + ",".join(map(str, r)) + "]") for i, r in enumerate(x)])
    notes = db.collection("notes")
    q = unit_vectors(4, DIM, seed=12)
    batch = notes.search_batch(q, 3, where=sa.column("kind") == "a", strategy="scan")
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
    batch = coll.search_batch(q, 4, strategy="scan")
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
    with pytest.raises(InvalidInputError, match="strategy must be"):
        docs.search_batch(q, 5, strategy="fast")
    with pytest.raises(InvalidInputError, match="k must be"):
        docs.search_batch(q, 0, strategy="scan")  # the planner's range, also where no plan runs
    with pytest.raises(pgembed.InvalidFilterError, match="unknown column 'nope'"):
        docs.search_batch(q, 5, where=[None, {"nope": 1}, None])


def test_calibrate_measures_positive_constants(docs: pgembed.Collection) -> None:
    model = docs.calibrate(sample_queries=5, rows=1000)
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


def test_scan_with_percent_in_a_filter_value(db: pgembed.Database) -> None:
    """COPY takes no parameters: a '%' in a filter must still match literally."""
    x = unit_vectors(200, DIM, seed=16)
    coll = db.create_collection("pct", DIM, attrs={"label": "text"})
    coll.ingest(np.arange(200), x, {"label": ["50% off" if i % 4 == 0 else "full price" for i in range(200)]})
    q = unit_vectors(3, DIM, seed=17)
    batch = coll.search_batch(q, 5, where={"label": "50% off"}, strategy="scan")
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


def test_scan_ranks_zero_rows_written_by_sql_last(docs: pgembed.Collection, sql_conn: psycopg.Connection) -> None:
    """A zero vector has no cosine distance: a scan ranks it after every real row, with distance NaN, as
    search() does, and never in a real row's place."""
    from tests.helpers import vector_text

    sql_conn.execute("INSERT INTO docs (id, category, year, embedding) SELECT 10000 + g, 'rare', 2000, %s::vector "
                     "FROM generate_series(1, 30) g", (vector_text(np.zeros(DIM)),))
    q = unit_vectors(3, DIM, seed=19)
    batch = docs.search_batch(q, 10, where={"category": "rare"}, strategy="scan")
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
    q = unit_vectors(20, DIM, seed=20)
    expected = [docs.search(q[i], 8, where=where, plan="index", oversample=3) for i in range(20)]
    statements: list[int] = []
    many = searching.search_many

    def counted(ctx: object, queries: np.ndarray, *args: object) -> list:
        statements.append(len(queries))
        return many(ctx, queries, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(searching, "search_many", counted)
    monkeypatch.setattr(searching, "search", lambda *a, **kw: pytest.fail("one statement a query"))
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

    monkeypatch.setattr(searching, "search", refuse)
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
    batch = docs.search_batch(q, 6, where=where, strategy="scan")
    for i in range(3):
        single = docs.search(q[i], 6, where=where, plan="exact")
        assert batch.ids[i].tolist() == single.ids.tolist()
        assert all(int(key) % 7 == 0 or int(key) % 400 == 0 for key in batch.ids[i])


def test_scan_breaks_ties_by_key_as_search_does(db: pgembed.Database) -> None:
    """Duplicate vectors tie exactly: a scan returns the same keys, in the same order, as search()'s exact
    plan (distance, then key), also when the tie runs past the rows a scan keeps per query."""
    base = unit_vectors(5, DIM, seed=26)
    x = np.repeat(base, 30, axis=0)  # 5 vectors, 30 copies each
    coll = db.create_collection("dups", DIM)
    keys = np.random.default_rng(27).permutation(len(x))
    coll.ingest(keys, x)
    q = np.vstack([base[:3], unit_vectors(2, DIM, seed=28)])
    on_server = db.kernels().active is KernelMode.KERNELS
    for kernels in ([True, False] if on_server else [False]):
        db.use_kernels(kernels)
        coll = db.collection("dups")  # a fresh handle: its plans are asked for again
        for k in (7, 25, 40):
            batch = coll.search_batch(q, k, strategy="scan")
            # Read out, every query's k-th row is one of 30 copies whose tie runs past the k + 10 rows a scan
            # keeps, and the exact plan answers it again; the kernels' scan on the server keeps every tie.
            assert batch.groups[0].exact_fallbacks == (0 if kernels else len(q))
            for i in range(len(q)):
                exact = coll.search(q[i], k, plan="exact")
                assert batch.ids[i].tolist() == exact.ids.tolist()
                np.testing.assert_allclose(batch.distances[i], exact.distances, atol=1e-6)
    db.use_kernels(on_server)


def test_identical_queries_are_answered_once(docs: pgembed.Collection, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same vector under the same filter is searched once and its answer copied; under another filter it is
    another query."""
    q = unit_vectors(3, DIM, seed=29)
    queries = np.vstack([q[0], q[1], q[0], q[2], q[0], q[1]])
    where = [None, None, None, None, {"category": "news"}, None]
    searched: list[int] = []
    search = searching.search

    def counted(ctx: object, query: np.ndarray, *args: object, **kwargs: object) -> object:
        searched.append(1)
        return search(ctx, query, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(searching, "search", counted)
    batch = docs.search_batch(queries, 5, where=where, plan="exact")
    assert len(searched) == 4  # q0, q1, q2 unfiltered; q0 on news
    groups = {json.dumps(g.filter): (g.queries, g.unique) for g in batch.groups}
    assert groups == {"null": (5, 3), '{"category": "news"}': (1, 1)}
    assert batch.plan_mix() == {"each": 6}
    for i in range(6):
        single = docs.search(queries[i], 5, where=where[i], plan="exact")
        assert batch.ids[i].tolist() == single.ids.tolist() and batch.counts[i] == 5
    scanned = docs.search_batch(queries, 5, where=where, strategy="scan")
    assert scanned.ids.tolist() == batch.ids.tolist()


def test_probed_groups_read_each_querys_nearest_clusters(docs: pgembed.Collection,
                                                        sql_conn: psycopg.Connection) -> None:
    """strategy "probe": every group through pgembed.probe_topk. Probing every cluster is the exact answer;
    fewer is probe_topk's answer, query by query; in "auto" only the groups the planner would search through
    an index are probed."""
    docs.add_codec("ivf", "ivf8")
    q = unit_vectors(24, DIM, seed=40)
    where = [WORKLOAD[i % len(WORKLOAD)] for i in range(24)]
    everything = docs.search_batch(q, 10, where=where, strategy="probe", probes=8, workers=2)
    assert everything.plan_mix() == {"probe": 24}
    for i in range(24):
        single = docs.search(q[i], 10, where=where[i], plan="exact")
        assert everything.ids[i, : everything.counts[i]].tolist() == single.ids.tolist()
        np.testing.assert_allclose(everything.distances[i, : everything.counts[i]], single.distances, atol=1e-6)
    few = docs.search_batch(q, 10, where=where, strategy="probe", probes=2)
    for i in range(24):
        rows = sql_conn.execute("SELECT id::bigint, distance FROM pgembed.probe_topk('docs', 'ivf', ARRAY[%s::vector], "
                                "10, 2, %s::jsonb)", [vector_text(q[i]), json.dumps(where[i]) if where[i] else None]
                                ).fetchall()
        if len(rows) == 10:
            assert few.ids[i, : few.counts[i]].tolist() == [r[0] for r in rows]
        else:  # fewer than k in its clusters: the exact plan's, k rows whenever k match
            exact = docs.search(q[i], 10, where=where[i], plan="exact")
            assert few.ids[i, : few.counts[i]].tolist() == exact.ids.tolist()
    assert few.counts.sum() < everything.counts.sum() or not np.array_equal(few.ids, everything.ids)
    # auto: an index-planned group is probed when the cost model finds it cheaper; an exact plan's never is
    cheap = CostModel(probe_row=1e-12, probe_pair=1e-15)
    auto = docs.search_batch(q, 10, where=where, probes=2, cost=cheap)
    for group in auto.groups:
        planned = docs.explain(10, where=group.filter).kind
        assert (group.kind.value == "probe") == (planned.value == "index"), (group.filter, planned)
    assert "probe" in auto.plan_mix() and all("clusters <" in g.reason for g in auto.groups if g.kind.value == "probe")
    dear = CostModel(probe_row=1.0, probe_pair=1.0)
    assert "probe" not in docs.search_batch(q, 10, where=where, probes=2, cost=dear).plan_mix()


def test_calibrate_measures_the_probes_costs(docs: pgembed.Collection) -> None:
    plain = docs.calibrate(rows=500, sample_queries=10)
    assert plain.probe_row == CostModel().probe_row  # no partitioning: the defaults
    docs.add_codec("ivf", "ivf8")
    measured = docs.calibrate(rows=500, sample_queries=10)
    assert measured.probe_row > 0 and measured.probe_pair > 0
    assert (measured.probe_row, measured.probe_pair) != (CostModel().probe_row, CostModel().probe_pair)


def test_probes_are_refused_where_they_cannot_be_read(docs: pgembed.Collection) -> None:
    q = unit_vectors(3, DIM, seed=41)
    with pytest.raises(pgembed.SchemaError, match="has none"):
        docs.search_batch(q, 5, strategy="probe", probes=2)
    docs.add_codec("ivf", "ivf8")
    with pytest.raises(InvalidInputError, match="give probes="):
        docs.search_batch(q, 5, strategy="probe")
    with pytest.raises(InvalidInputError, match="search_batch's knob"):
        docs.search(q[0], 5, probes=2)
    with pytest.raises(InvalidInputError, match="probes must be an integer"):
        docs.search_batch(q, 5, probes=2.5)
    with pytest.raises(InvalidInputError, match="probes must be 1 to 8"):
        docs.search_batch(q, 5, strategy="probe", probes=9)
    table = sa.table("docs", sa.column("year"))
    with pytest.raises(InvalidInputError, match="not a SQL expression"):
        docs.search_batch(q, 5, where=table.c.year > 2000, strategy="probe", probes=2)
    # in "auto", a SQLAlchemy filter's group keeps the other plans
    assert "probe" not in docs.search_batch(q, 5, where=table.c.year > 2000, probes=2).plan_mix()
    docs.add_codec("ivf2", "ivf4")
    with pytest.raises(pgembed.SchemaError, match="2 \\(ivf, ivf2\\): keep one"):
        docs.search_batch(q, 5, strategy="probe", probes=2)


def test_worker_connections_never_widen_what_the_caller_sees(db: pgembed.Database, dsn: str) -> None:
    """Under SET ROLE and a row-level security policy, search_batch(workers=3) answers from the caller's rows
    only: new connections would log in as the server role and see every tenant's rows."""
    import uuid

    x = unit_vectors(600, DIM, seed=31)
    coll = db.create_collection("shared", DIM, attrs={"tenant": "text"})
    coll.ingest(np.arange(600), x, {"tenant": ["a" if i % 2 else "b" for i in range(600)]})
    coll.add_codec("ivf", "ivf4")
    role = f"pgembed_tenant_{uuid.uuid4().hex[:8]}"
    db.execute(psycopg.sql.SQL("CREATE ROLE {}").format(psycopg.sql.Identifier(role)))
    try:
        db.execute(psycopg.sql.SQL("GRANT USAGE ON SCHEMA pgembed TO {r}; GRANT SELECT ON shared TO {r}").format(
            r=psycopg.sql.Identifier(role)))
        db.execute("ALTER TABLE shared ENABLE ROW LEVEL SECURITY")
        db.execute(psycopg.sql.SQL("CREATE POLICY mine ON shared TO {} USING (tenant = 'a')").format(
            psycopg.sql.Identifier(role)))
        db.execute(psycopg.sql.SQL("SET ROLE {}").format(psycopg.sql.Identifier(role)))
        q = unit_vectors(8, DIM, seed=32)
        for strategy in ("scan", "each", "probe"):
            batch = coll.search_batch(q, 5, strategy=strategy, plan="exact" if strategy == "each" else "auto",
                                      workers=3, probes=4 if strategy == "probe" else None)
            keys = [int(k) for row in batch.ids for k in row if k is not None]
            assert keys and all(k % 2 == 1 for k in keys), strategy  # tenant 'a' rows only
    finally:
        db.execute("RESET ROLE")
        db.execute("ALTER TABLE shared DISABLE ROW LEVEL SECURITY")
        db.execute("DROP POLICY IF EXISTS mine ON shared")
        db.execute(psycopg.sql.SQL("REVOKE ALL ON shared FROM {r}; REVOKE USAGE ON SCHEMA pgembed FROM {r}").format(
            r=psycopg.sql.Identifier(role)))
        db.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(role)))
