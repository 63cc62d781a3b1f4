"""The multi-query scan (pgembed.scan_topk) and SQL search_batch() in both modes: the kernel's one pass over
the rows and the twins' statement per query give the same rows, distances and order as pgembed.search()."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import psycopg
import pytest

import pgembed
from pgembed import KernelMode
from tests.helpers import unit_vectors

DIM = 24


def rows_of(conn: psycopg.Connection, query: str, params: list[Any]) -> list[tuple[int, str, float | str]]:
    """The rows, a NaN distance (a zero vector's cosine) spelled "NaN" so that equal answers compare equal."""
    return [(n, key, "NaN" if distance != distance else distance)
            for n, key, distance in conn.execute(query, params).fetchall()]


def in_both_modes(db: pgembed.Database, conn: psycopg.Connection, query: str, params: list[Any]) -> list[tuple]:
    """The query's rows with the kernels bound and with the twins bound, asserted equal."""
    assert db.kernels().active is KernelMode.KERNELS
    kernels = rows_of(conn, query, params)
    db.use_kernels(False)
    try:
        assert db.kernels().active is KernelMode.TWINS
        twins = rows_of(conn, query, params)
    finally:
        db.use_kernels(True)
    assert kernels == twins
    return kernels


def one_at_a_time(conn: psycopg.Connection, queries: np.ndarray, k: int, filters: list[str | None],
                  plan: str = "auto") -> list[tuple]:
    out = []
    for i, q in enumerate(queries):
        found = conn.execute("SELECT id, distance FROM pgembed.search('docs', %s, %s, %s::jsonb, plan => %s)",
                             [q, k, filters[i], plan]).fetchall()
        out += [(i + 1, key, "NaN" if distance != distance else distance) for key, distance in found]
    return out


@pytest.mark.parametrize(("metric", "key_type"), [("cosine", "bigint"), ("l2", "text"), ("ip", "integer")])
def test_scan_topk_is_the_exact_plan_in_both_modes(db: pgembed.Database, conn: psycopg.Connection, metric: str,
                                                   key_type: str) -> None:
    x = unit_vectors(600, DIM, seed=3)
    x[100:110] = x[7]  # ties: equal distances are ordered by key
    docs = db.create_collection("docs", DIM, attrs={"part": "integer"}, metric=metric, key_type=key_type)
    keys = [str(i) if key_type == "text" else i for i in range(600)]
    docs.ingest(keys, x, {"part": [i % 4 for i in range(600)]})
    conn.execute("INSERT INTO docs (id, embedding, part) VALUES ('600', NULL, 1)")  # no vector: never found
    if metric == "cosine":  # a zero vector has no cosine distance: pgvector gives NaN, ranked last
        conn.execute("INSERT INTO docs (id, embedding, part) VALUES ('601', %s, 1)", [np.zeros(DIM, np.float32)])
    queries = list(unit_vectors(9, DIM, seed=4)) + [x[7]]
    scanned = in_both_modes(db, conn, "SELECT * FROM pgembed.scan_topk('docs', %s, 12)", [queries])
    assert scanned == one_at_a_time(conn, np.array(queries), 12, [None] * 10, plan="exact")
    assert len(scanned) == 10 * 12
    filtered = in_both_modes(db, conn, "SELECT * FROM pgembed.scan_topk('docs', %s, 700, '{\"part\": 1}')",
                             [queries[:2]])
    assert filtered == one_at_a_time(conn, np.array(queries[:2]), 700, ['{"part": 1}'] * 2, plan="exact")
    assert len(filtered) == 2 * (150 + (2 if metric == "cosine" else 1) - 1)  # every match with a vector


def test_scan_topk_reads_a_list_of_keys(db: pgembed.Database, conn: psycopg.Connection) -> None:
    x = unit_vectors(300, DIM, seed=5)
    docs = db.create_collection("docs", DIM, attrs={"part": "integer"})
    docs.ingest(np.arange(300), x, {"part": [i % 2 for i in range(300)]})
    wanted = [str(i) for i in range(0, 300, 3)]
    found = in_both_modes(db, conn, "SELECT * FROM pgembed.scan_topk('docs', %s, 5, '{\"part\": 0}', %s)",
                          [list(x[:3]), wanted])
    assert {key for _, key, _ in found} <= {str(i) for i in range(0, 300, 6)}
    assert [n for n, _, _ in found] == [1] * 5 + [2] * 5 + [3] * 5
    assert found[0][1] == "0" and found[0][2] == pytest.approx(0, abs=1e-6)


def test_search_batch_in_sql_equals_search_one_query_at_a_time(db: pgembed.Database,
                                                               conn: psycopg.Connection) -> None:
    x = unit_vectors(3000, DIM, seed=6)
    docs = db.create_collection("docs", DIM, attrs={"section": "text"})
    docs.ingest(np.arange(3000), x, {"section": [str(i % 7) for i in range(3000)]})
    docs.add_codec("bq2", "bq2")
    docs.create_index("bq2")
    db.execute("ANALYZE docs")
    queries = unit_vectors(30, DIM, seed=7)
    filters = [None if i % 3 == 0 else json.dumps({"section": str(i % 7)}) for i in range(30)]
    filters[5] = '{"section": "none"}'  # matches nothing
    batch = in_both_modes(db, conn, "SELECT * FROM pgembed.search_batch('docs', %s, 10, %s::jsonb[])",
                          [list(queries), filters])
    assert batch == one_at_a_time(conn, queries, 10, filters)
    assert {n for n, _, _ in batch} == set(range(1, 31)) - {6}


@pytest.mark.parametrize(("call", "message"), [
    ("pgembed.scan_topk('docs', ARRAY[]::vector[])", "queries is empty"),
    ("pgembed.scan_topk('docs', ARRAY['[1,2]'::vector])", "dimensions"),
    ("pgembed.scan_topk('docs', ARRAY[%s::vector], 0)", "k must be"),
    ("pgembed.search_batch('docs', ARRAY[%s::vector, %s::vector], 3, ARRAY[NULL, NULL, NULL]::jsonb[])",
     "3 filters for 2 queries"),
    ("pgembed_kernels.exact_topk(1, NULL::vector, ARRAY[%s::vector], 3, 'hamming')", "unknown metric"),
])
def test_bad_scans_raise(db: pgembed.Database, conn: psycopg.Connection, call: str, message: str) -> None:
    db.create_collection("docs", DIM).ingest(np.arange(5), unit_vectors(5, DIM, seed=1))
    q = unit_vectors(1, DIM, seed=2)[0]
    with pytest.raises(psycopg.errors.DatabaseError, match=message):
        conn.execute(f"SELECT {call}", [q] * call.count("%s"))
    assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize(("metric", "scale"), [("cosine", 1e-24), ("ip", 1e20), ("l2", 1e-21), ("cosine", 1e19)])
def test_scan_is_exact_for_tiny_and_huge_vectors(db: pgembed.Database, conn: psycopg.Connection, metric: str,
                                                 scale: float) -> None:
    """Where float32 squares underflow or sums overflow, pgvector's distances are not the true ones (a cosine of
    vectors of 1e-24s is 0, 2 or NaN): the scan then dismisses nothing by its bound, and answers as the exact
    plan does."""
    x = unit_vectors(200, DIM, seed=8) * np.float32(scale)
    x[::7] /= np.float32(scale)  # ordinary rows among them
    db.create_collection("docs", DIM, metric=metric)
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO docs (id, embedding) VALUES (%s, %s)", [(i, v) for i, v in enumerate(x)])
    queries = [unit_vectors(1, DIM, seed=9)[0] * np.float32(scale), unit_vectors(1, DIM, seed=10)[0]]
    scanned = in_both_modes(db, conn, "SELECT * FROM pgembed.scan_topk('docs', %s, 15)", [queries])
    assert scanned == one_at_a_time(conn, np.array(queries), 15, [None, None], plan="exact")


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_tiny_components_of_ordinary_vectors_leave_the_bound_in_force(db: pgembed.Database, conn: psycopg.Connection,
                                                                      metric: str) -> None:
    """Regression: sentence-transformer output has components of 1e-34 (pydocs-minilm's held-out queries), and
    the scan took any such query for one whose bound might fail, so it checked every row exactly (search_batch
    at half speed). Their products underflow by at most 2^-149 each; the bound now allows for that."""
    x = unit_vectors(3000, DIM, seed=12)
    x[:, 5] = np.float32(1e-34)
    db.create_collection("docs", DIM, metric=metric)
    db.collection("docs").ingest(np.arange(3000), x)
    queries = list(unit_vectors(3, DIM, seed=13))
    for q in queries:
        q[3] = np.float32(-3e-36)
    counts: list[str] = []

    def keep(diagnostic: psycopg.errors.Diagnostic) -> None:
        if "exact_topk" in (diagnostic.message_primary or ""):
            counts.append(diagnostic.message_primary or "")

    conn.add_notice_handler(keep)
    conn.execute("SET client_min_messages = debug1")
    scanned = rows_of(conn, "SELECT * FROM pgembed.scan_topk('docs', %s, 10)", [queries])
    conn.execute("RESET client_min_messages")
    conn.remove_notice_handler(keep)
    assert scanned == one_at_a_time(conn, np.array(queries), 10, [None] * 3, plan="exact")
    scored, checked = (int(w) for w in counts[0].split() if w.isdigit())
    assert scored == 9000 and checked < scored / 5, counts


@pytest.mark.parametrize(("key_type", "keys"), [("char(6)", ["ab", "cd", "e"]), ("inet", ["10.0.0.1", "10.0.0.2",
                                                                                    "10.0.0.3"]),
                                                 ("boolean", ["true", "false"])])
def test_scan_spells_keys_as_key_text(db: pgembed.Database, conn: psycopg.Connection, key_type: str,
                                      keys: list[str]) -> None:
    """Keys come back as `key::text` in both modes: char(n) without its padding, inet as its cast writes it."""
    x = unit_vectors(len(keys), DIM, seed=12)
    conn.execute(f"CREATE TABLE kt (k {key_type} PRIMARY KEY, embedding vector({DIM}))")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO kt VALUES (%s, %s)", list(zip(keys, x, strict=True)))
    db.collection("kt")
    found = in_both_modes(db, conn, "SELECT * FROM pgembed.scan_topk('kt', %s, 5)", [[x[0]]])
    expected = {r[0] for r in conn.execute("SELECT k::text FROM kt").fetchall()}
    assert {key for _, key, _ in found} == expected
