"""Every codec's SQL encoder, run by the database on rows written with plain SQL, against its numpy encoder.

Codecs without projections must agree exactly (bits and bytes identical; float outputs within 1e-6
relative). Projections (PCA, LeanVec, RaBitQ's rotation) sum 8..384 products in pgvector's order, not
numpy's, so their float outputs agree within 1e-5 of the vector's norm, and the quantisation after them is
checked exactly on the values SQL projected.
"""

from __future__ import annotations

import itertools

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from psycopg import sql

import pgembed
from pgembed.codecs import SOURCE, Codec, IVFCodec, PQCodec, RaBitQCodec, SqlExpr, make_codec
from pgembed.codecs.base import codes_from_sql_text
from pgembed.codecs.spec import Pipeline
from pgembed.statements.encoders import render
from tests.helpers import parse_vector, vector_text


def vector_array_text(literals: list[str]) -> str:
    return "{" + ",".join(f'"{x}"' for x in literals) + "}"

DIM = 32


def embedding_like(n: int, seed: int) -> np.ndarray:
    """Unit vectors with uneven per-dimension scales and a shared offset, as real embeddings have."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM)) * np.linspace(0.2, 2.0, DIM) + np.linspace(-0.5, 0.5, DIM)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def stored(conn: psycopg.Connection, column: str, n: int) -> list[str | None]:
    rows = conn.execute(sql.SQL("SELECT {}::text FROM docs ORDER BY id").format(sql.Identifier(column))).fetchall()
    assert len(rows) == n
    return [r[0] for r in rows]


def add_and_write(db: pgembed.Database, sql_conn: psycopg.Connection, spec: str, rows: np.ndarray,
                  queries: np.ndarray | None = None) -> Codec:
    docs = db.create_collection("docs", DIM)
    docs.add_codec("c", spec, fit_on=embedding_like(600, seed=1), fit_queries=queries)
    with sql_conn.cursor() as cur:  # another client: plain INSERTs, codes left to the database
        cur.executemany("INSERT INTO docs (id, embedding) VALUES (%s, %s)",
                        [(i, vector_text(v)) for i, v in enumerate(rows)])
    return docs.codec("c")


def assert_same_codes(codec: Codec, sql_texts: list[str | None], numpy_codes: np.ndarray, storage: str) -> None:
    from_sql = codes_from_sql_text(storage, sql_texts, numpy_codes.shape[1])
    if storage in ("vector", "halfvec"):
        scale = np.abs(numpy_codes).max(axis=1, keepdims=True) + 1e-30
        assert np.all(np.abs(from_sql - numpy_codes.astype(np.float32)) <= 1e-6 * scale)
    else:
        assert np.array_equal(from_sql, numpy_codes)


_TABLE_NUMBERS = itertools.count()
EXACT_SPECS = ["f16", "bq", "bq2", "bq3", "bq4", "sq8", "osq2", "osq3.5", "mrl16", "mrl16,bq2", "mrl20,sq8"]


@pytest.mark.parametrize("spec", EXACT_SPECS)
def test_sql_encoder_equals_numpy(db: pgembed.Database, sql_conn: psycopg.Connection, spec: str) -> None:
    rows = embedding_like(300, seed=2)
    codec = add_and_write(db, sql_conn, spec, rows)
    assert_same_codes(codec, stored(sql_conn, "embedding_c", len(rows)), codec.encode(rows), codec.storage)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_exact_codecs_agree_on_arbitrary_vectors(db: pgembed.Database, sql_conn: psycopg.Connection,
                                                 data: st.DataObject) -> None:
    spec = data.draw(st.sampled_from(["bq", "bq3", "sq8", "osq3", "mrl16,f16"]))
    values = data.draw(arrays(np.float32, (4, DIM), elements=st.floats(-3, 3, allow_nan=False, width=32)))
    name = f"t_{next(_TABLE_NUMBERS)}"  # hypothesis may replay an example: a fresh table each time
    collection = db.create_collection(name, DIM)
    collection.add_codec("c", spec, fit_on=embedding_like(300, seed=3))
    codec = collection.codec("c")
    with sql_conn.cursor() as cur:
        cur.executemany(sql.SQL("INSERT INTO {} (id, embedding) VALUES (%s, %s)").format(sql.Identifier(name)),
                        [(i, vector_text(v)) for i, v in enumerate(values)])
    texts = [r[0] for r in sql_conn.execute(sql.SQL("SELECT embedding_c::text FROM {} ORDER BY id").format(
        sql.Identifier(name))).fetchall()]
    assert_same_codes(codec, texts, codec.encode(values), codec.storage)


def sql_values(conn: psycopg.Connection, expression: SqlExpr, rows: np.ndarray) -> np.ndarray:
    """Evaluate an encoder call over a vector parameter for each row; parse the vector result."""
    statement = sql.SQL("SELECT ({})::text").format(render(expression, sql.SQL("%s::vector")))
    return np.stack([parse_vector(conn.execute(statement, (vector_text(v),)).fetchone()[0]) for v in rows])




@pytest.mark.parametrize("spec", ["pca8", "pca8,bq2", "pca12,sq8", "pca8,osq3", "pca8,f16"])
def test_projection_pipelines(db: pgembed.Database, sql_conn: psycopg.Connection, spec: str) -> None:
    rows = embedding_like(200, seed=4)
    codec = add_and_write(db, sql_conn, spec, rows)
    assert isinstance(codec, Pipeline)
    projected_sql = sql_values(sql_conn, codec.sql_projection(), rows)
    projected_np = codec._project(rows)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    assert np.all(np.abs(projected_sql - projected_np) <= 1e-5 * norms)
    # The quantiser after the projection is exact on what SQL projected:
    assert_same_codes(codec, stored(sql_conn, "embedding_c", len(rows)), codec.codec.encode(projected_sql),
                      codec.storage)


def test_leanvec_fits_on_queries_too(db: pgembed.Database, sql_conn: psycopg.Connection) -> None:
    rows = embedding_like(100, seed=5)
    queries = embedding_like(80, seed=6)[:, ::-1].copy()  # distributed unlike the data
    with pytest.raises(pgembed.InvalidVectorsError, match="sample of queries"):
        db.create_collection("other", DIM).add_codec("c", "leanvec8", fit_on=rows)
    codec = add_and_write(db, sql_conn, "leanvec8", rows, queries=queries)
    from_sql = codes_from_sql_text("vector", stored(sql_conn, "embedding_c", len(rows)), 8)
    assert np.all(np.abs(from_sql - codec.encode(rows)) <= 1e-5)


def test_ivf_clusters_agree_up_to_float_ties(db: pgembed.Database, sql_conn: psycopg.Connection) -> None:
    """Rows written by another client get their cluster from the database: numpy's nearest centroid, except
    where two centroids are equally near within float32 rounding (pgvector's distance decides there)."""
    rows = embedding_like(300, seed=8)
    codec = add_and_write(db, sql_conn, "ivf16", rows)
    assert isinstance(codec, IVFCodec) and codec.centroids is not None
    from_sql = codes_from_sql_text("integer", stored(sql_conn, "embedding_c", len(rows)), 1)[:, 0]
    from_np = codec.encode(rows)[:, 0]
    squared = ((rows[:, None, :].astype(np.float64) - codec.centroids[None]) ** 2).sum(2)
    for i in np.nonzero(from_sql != from_np)[0]:
        assert abs(squared[i, from_sql[i]] - squared[i, from_np[i]]) <= 1e-5 * squared[i, from_np[i]], i
    assert np.mean(from_sql == from_np) > 0.99
    # An UPDATE of the vector moves the row to its new cluster.
    far = codec.centroids[(from_sql[0] + 1) % 16]
    sql_conn.execute("UPDATE docs SET embedding = %s WHERE id = 0", (vector_text(far),))
    assert sql_conn.execute("SELECT embedding_c FROM docs WHERE id = 0").fetchone() == ((from_sql[0] + 1) % 16,)


def test_pq_codes_agree_up_to_float_ties(db: pgembed.Database, sql_conn: psycopg.Connection) -> None:
    rows = embedding_like(200, seed=7)
    codec = add_and_write(db, sql_conn, "pq8", rows)
    assert isinstance(codec, PQCodec) and codec.codebooks is not None
    from_sql = codes_from_sql_text("bytea", stored(sql_conn, "embedding_c", len(rows)), 8)
    from_np = codec.encode(rows)
    for i, j in zip(*np.nonzero(from_sql != from_np), strict=True):
        part = rows[i, j * codec.sub : (j + 1) * codec.sub].astype(np.float64)
        d_sql = np.sum((part - codec.codebooks[j, from_sql[i, j]]) ** 2)
        d_np = np.sum((part - codec.codebooks[j, from_np[i, j]]) ** 2)
        assert abs(d_sql - d_np) <= 1e-6 * max(d_np, 1e-12), (i, j)
    assert np.mean(from_sql == from_np) > 0.99
    # The SQL decoder gives the numpy decoder's vectors (re-ranking with pgembed.decode_pq is exact).
    decoded = np.stack([parse_vector(t) for (t,) in sql_conn.execute(
        sql.SQL("SELECT pgembed.decode_pq(embedding_c, {})::text FROM docs ORDER BY id").format(
            sql.Literal(vector_array_text(codec.params()["codebooks"])))).fetchall()])
    assert np.array_equal(decoded, codec.decode(from_sql))


def test_int8_and_osq_decoders_in_sql(db: pgembed.Database, sql_conn: psycopg.Connection) -> None:
    rows = embedding_like(50, seed=8)
    codec = add_and_write(db, sql_conn, "sq8", rows)
    p = codec.params()
    decoded = np.stack([parse_vector(t) for (t,) in sql_conn.execute(
        "SELECT pgembed.decode_int8(embedding_c, %s, %s)::text FROM docs ORDER BY id", (p["lo"], p["step"])
    ).fetchall()])
    assert np.array_equal(decoded, codec.decode(codec.encode(rows)))
    osq = make_codec("osq3", DIM).fit(embedding_like(400, seed=9))
    q = osq.params()
    for v in rows[:10]:
        (text,) = sql_conn.execute(
            "SELECT pgembed.decode_sq_bits(pgembed.encode_sq_bits(%s, %s, %s, %s), %s, %s, %s)::text",
            (vector_text(v), q["lo"], q["inv"], q["bits"], q["lo"], q["step"], q["bits"])).fetchone()
        assert np.array_equal(parse_vector(text), osq.decode(osq.encode(v[None]))[0])


def test_rabitq_bits_and_factors(db: pgembed.Database, sql_conn: psycopg.Connection) -> None:
    rows = embedding_like(150, seed=10)
    codec = add_and_write(db, sql_conn, "rabitq", rows)
    assert isinstance(codec, RaBitQCodec)
    rotated_sql = sql_values(sql_conn, codec._sql_rotated(SOURCE), rows)
    assert np.all(np.abs(rotated_sql - codec._rotated(rows)) <= 1e-5)
    assert_same_codes(codec, stored(sql_conn, "embedding_c", len(rows)), np.packbits(rotated_sql > 0, axis=1), "bit")
    factors_sql = codes_from_sql_text("vector", stored(sql_conn, "embedding_c_factors", len(rows)), 2)
    assert np.allclose(factors_sql, codec.encode_extra("_factors", rows), rtol=1e-5, atol=0)


def test_bad_specs_and_inputs_change_nothing(db: pgembed.Database, sql_conn: psycopg.Connection) -> None:
    docs = db.create_collection("docs", DIM)
    docs.ingest(np.arange(5), embedding_like(5, seed=11))
    before = sql_conn.execute("SELECT count(*), md5(string_agg(docs::text, '' ORDER BY id)) FROM docs").fetchone()
    bad = [("pq7", "divide"), ("pca,bq", "whole target dimension"), ("bq9", "1 to 4 bits"), ("osq9", "bits per"),
           ("zstd", "unknown codec"), ("bq,pca8", "must come last"), ("pca40", "between 1 and 32"), ("", "non-empty")]
    for spec, message in bad:
        with pytest.raises(pgembed.UnknownCodecError, match=message):
            docs.add_codec("c", spec)
    with pytest.raises(pgembed.InvalidVectorsError, match="at least 256 rows"):
        docs.add_codec("c", "pq8")  # five rows cannot train 256 centroids
    with pytest.raises(pgembed.InvalidVectorsError, match="NaN"):
        docs.add_codec("c", "sq8", fit_on=np.full((10, DIM), np.nan, np.float32))
    assert docs.codecs() == []
    after = sql_conn.execute("SELECT count(*), md5(string_agg(docs::text, '' ORDER BY id)) FROM docs").fetchone()
    assert before == after
