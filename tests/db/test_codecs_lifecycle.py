"""Whoever writes a row, its codes are the ones pgembed's numpy encoders compute."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import pgembed
from pgembed.codecs.binary import bits_to_text
from tests.helpers import parse_vector, unit_vectors, vector_text

DIM = 24


@pytest.fixture
def docs(db: pgembed.Database) -> pgembed.Collection:
    collection = db.create_collection("docs", DIM, attrs={"title": "text"})
    collection.add_codec("f16", "float16")
    collection.add_codec("bq", "binary", fit_on=unit_vectors(500, DIM, seed=1) + 0.1)
    return collection


def stored_codes(conn: psycopg.Connection, key: int) -> tuple[np.ndarray | None, str | None]:
    row = conn.execute("SELECT embedding_f16::text, embedding_bq::text FROM docs WHERE id = %s", (key,)).fetchone()
    assert row is not None
    return (parse_vector(row[0]) if row[0] is not None else None), row[1]


def expected_codes(docs: pgembed.Collection, v: np.ndarray) -> tuple[np.ndarray, str]:
    half = docs.codec("f16").encode(v[None]).astype(np.float32)[0]
    return half, bits_to_text(docs.codec("bq").encode(v[None]), DIM)[0]


def assert_in_step(docs: pgembed.Collection, conn: psycopg.Connection, key: int, v: np.ndarray) -> None:
    half, bits = stored_codes(conn, key)
    want_half, want_bits = expected_codes(docs, v)
    assert half is not None and np.array_equal(half.view(np.uint32), want_half.view(np.uint32))
    assert bits == want_bits


def test_insert_and_update_from_plain_sql(docs: pgembed.Collection, sql_conn: psycopg.Connection) -> None:
    v1, v2 = unit_vectors(2, DIM, seed=9)
    sql_conn.execute("INSERT INTO docs (id, embedding, title) VALUES (1, %s, 'a')", (vector_text(v1),))
    assert_in_step(docs, sql_conn, 1, v1)
    sql_conn.execute("UPDATE docs SET embedding = %s WHERE id = 1", (vector_text(v2),))
    assert_in_step(docs, sql_conn, 1, v2)
    sql_conn.execute("UPDATE docs SET title = 'b' WHERE id = 1")  # unrelated column: codes stay right
    assert_in_step(docs, sql_conn, 1, v2)


def test_a_client_cannot_write_wrong_codes(docs: pgembed.Collection, sql_conn: psycopg.Connection) -> None:
    v = unit_vectors(1, DIM, seed=4)[0]
    wrong_bits = "1" * DIM
    sql_conn.execute(
        "INSERT INTO docs (id, embedding, embedding_f16, embedding_bq) VALUES (1, %s, %s, %s::bit(24))",
        (vector_text(v), vector_text(np.zeros(DIM)), wrong_bits),
    )
    assert_in_step(docs, sql_conn, 1, v)
    sql_conn.execute("UPDATE docs SET embedding_bq = %s::bit(24), embedding_f16 = NULL WHERE id = 1", (wrong_bits,))
    assert_in_step(docs, sql_conn, 1, v)


def test_null_vector_has_null_codes(docs: pgembed.Collection, sql_conn: psycopg.Connection) -> None:
    sql_conn.execute("INSERT INTO docs (id, embedding) VALUES (1, NULL)")
    assert stored_codes(sql_conn, 1) == (None, None)
    v = unit_vectors(1, DIM)[0]
    sql_conn.execute("UPDATE docs SET embedding = %s WHERE id = 1", (vector_text(v),))
    assert_in_step(docs, sql_conn, 1, v)
    sql_conn.execute("UPDATE docs SET embedding = NULL WHERE id = 1")
    assert stored_codes(sql_conn, 1) == (None, None)


def test_sql_refuses_a_wrong_dimension_and_encodes_every_finite_vector(docs: pgembed.Collection,
                                                                      sql_conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.DataError, match="different vector dimensions|expected 24 dimensions"):
        sql_conn.execute("INSERT INTO docs (id, embedding) VALUES (1, '[1,2,3]')")
    assert sql_conn.execute("SELECT count(*) FROM docs").fetchone() == (0,)
    huge = np.linspace(-3e38, 3e38, DIM).astype(np.float32)  # past float16's range, and v - mean overflows
    sql_conn.execute("INSERT INTO docs (id, embedding) VALUES (2, %s)", (vector_text(huge),))
    assert_in_step(docs, sql_conn, 2, huge)
    half = stored_codes(sql_conn, 2)[0]
    assert half is not None and half[0] == -65504 and half[-1] == 65504


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(v=arrays(np.float32, DIM, elements=st.floats(-6e4, 6e4, allow_nan=False, width=32)), key=st.integers(1, 10**9))
def test_sql_and_numpy_encoders_agree_bit_for_bit(docs: pgembed.Collection, sql_conn: psycopg.Connection,
                                                  v: np.ndarray, key: int) -> None:
    sql_conn.execute(
        "INSERT INTO docs (id, embedding) VALUES (%s, %s) "
        "ON CONFLICT (id) DO UPDATE SET embedding = excluded.embedding",
        (key, vector_text(v)),
    )
    assert_in_step(docs, sql_conn, key, v)


def test_refit_makes_a_new_version_and_switches_when_complete(docs: pgembed.Collection,
                                                             sql_conn: psycopg.Connection) -> None:
    vectors = unit_vectors(200, DIM, seed=5) + 0.3
    docs.ingest(np.arange(200), vectors)
    index = docs.create_index("bq")
    old_mean = docs.codec("bq").mean.copy()
    old_bits = sql_conn.execute("SELECT embedding_bq::text FROM docs WHERE id = 7").fetchone()

    assert docs.fit(backfill=False) == 0  # new versions exist, empty; readers still see version 1
    states = {(c.name, c.version): c.state for c in docs.codecs()}
    assert states == {("bq", 1): "active", ("bq", 2): "building", ("f16", 1): "active"}
    assert np.array_equal(docs.codec("bq").mean, old_mean)
    assert sql_conn.execute("SELECT embedding_bq::text FROM docs WHERE id = 7").fetchone() == old_bits
    v = unit_vectors(1, DIM, seed=77)[0]  # a write while building: both versions' codes are computed
    sql_conn.execute("INSERT INTO docs (id, embedding) VALUES (1000, %s)", (vector_text(v),))
    assert sql_conn.execute("SELECT embedding_bq IS NOT NULL, embedding_bq_v2 IS NOT NULL FROM docs "
                            "WHERE id = 1000").fetchone() == (True, True)
    with pytest.raises(pgembed.SchemaError, match="still building"):
        docs.fit()

    assert docs.backfill() == 200  # the rows written before the re-fit
    new_codec = docs.codec("bq")
    assert [(c.name, c.version, c.state) for c in docs.codecs()] == [("bq", 2, "active"), ("f16", 1, "active")]
    assert np.allclose(new_codec.mean, vectors.mean(axis=0), atol=1e-6)  # sampled when fit() ran
    columns = {r[0] for r in sql_conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'docs'").fetchall()}
    # The new version's columns took the old one's names: SQL of the application's that names them still works.
    assert "embedding_bq" in columns and "embedding_bq_v2" not in columns
    assert [c.column_name for c in docs.codecs() if c.name == "bq"] == ["embedding_bq"]
    for key, vec in ((0, vectors[0]), (57, vectors[57]), (1000, v)):
        (bits,) = sql_conn.execute("SELECT embedding_bq::text FROM docs WHERE id = %s", (key,)).fetchone()
        assert bits == bits_to_text(new_codec.encode(vec[None]), DIM)[0]
    (rebuilt,) = docs.indexes()  # the index was rebuilt on the new version's codes, now under the codec's name
    assert rebuilt.index_name != index.index_name
    assert sql_conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'docs' AND indexname = %s",
                            (rebuilt.index_name,)).fetchone()[0].count("(embedding_bq ") == 1
    sql_conn.execute("INSERT INTO docs (id, embedding) VALUES (1001, %s)", (vector_text(v),))  # the trigger too
    new_bits = sql_conn.execute("SELECT embedding_bq::text FROM docs WHERE id = 1001").fetchone()
    assert new_bits == (bits_to_text(new_codec.encode(v[None]), DIM)[0],)


def test_an_update_that_only_flips_the_sign_of_a_zero_is_re_encoded(docs: pgembed.Collection,
                                                                    sql_conn: psycopg.Connection) -> None:
    v = unit_vectors(1, DIM, seed=3)[0]
    v[5] = 0.0
    sql_conn.execute("INSERT INTO docs (id, embedding) VALUES (1, %s)", (vector_text(v),))
    v[5] = -0.0  # equal under pgvector's =, different bits in float16
    sql_conn.execute("UPDATE docs SET embedding = %s WHERE id = 1", (vector_text(v),))
    assert_in_step(docs, sql_conn, 1, v)


def test_backfilling_one_codec_does_not_rerun_the_others(db: pgembed.Database) -> None:
    docs = db.create_collection("many", DIM)
    docs.add_codec("t", "bq2", fit_on=unit_vectors(100, DIM))  # its encoder is PL/pgSQL: calls are counted
    docs.ingest(np.arange(300), unit_vectors(300, DIM, seed=8))
    with db.transaction():
        db.execute("SET LOCAL track_functions = 'all'")
        docs.add_codec("h", "f16")  # inside the caller's transaction: backfill runs here too
        calls = db.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions "
                           "WHERE funcname = 'encode_thermometer'").fetchone()[0]
        filled = db.execute("SELECT count(embedding_h) FROM many").fetchone()[0]
    assert (calls, filled) == (0, 300)
