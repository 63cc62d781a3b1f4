"""Distance estimators from codes, in SQL: pgembed.query_table() makes a query's table with the codec's fitted
parameters, and ORDER BY <estimator>(code, table) ranks rows as numpy's estimate from the same codes does."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

import pgembed
from pgembed.codecs.base import codes_from_sql_text
from tests.helpers import unit_vectors

DIM = 32
ROWS = 400


@pytest.fixture(params=["ip", "l2"])
def docs(db: pgembed.Database, request: pytest.FixtureRequest) -> pgembed.Collection:
    x = unit_vectors(ROWS, DIM, seed=11)
    docs = db.create_collection("docs", DIM, metric=request.param)
    docs.ingest(np.arange(ROWS), x)
    for name, spec in (("pq8", "pq8"), ("sq8", "sq8"), ("bq2", "bq2"), ("rabitq", "rabitq"), ("pbq", "pca16,bq")):
        docs.add_codec(name, spec)
    return docs


def stored_codes(conn: psycopg.Connection, codec: pgembed.Collection, name: str) -> np.ndarray:
    info = codec.codec(name)
    texts = [r[0] for r in conn.execute(f"SELECT embedding_{name}::text FROM docs ORDER BY id").fetchall()]
    return codes_from_sql_text("bytea" if info.sql_type() == "bytea" else "bit", texts, 0)


def estimates(conn: psycopg.Connection, codec: str, estimator: str, query: np.ndarray) -> np.ndarray:
    column = f"embedding_{codec}"
    args = f"{column}, {column}_factors, q.t" if codec == "rabitq" else f"{column}, q.t"
    rows = conn.execute(
        f"SELECT pgembed.{estimator}({args}) FROM docs, "
        "(SELECT pgembed.query_table('docs', %s, %s) AS t) AS q ORDER BY id", [codec, query]).fetchall()
    return np.array([r[0] for r in rows])


def test_estimates_equal_numpys_from_the_same_codes(docs: pgembed.Collection, dsn: str) -> None:
    q = unit_vectors(1, DIM, seed=12)[0]
    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)
        codes = {name: stored_codes(conn, docs, name) for name in ("pq8", "sq8")}
        for name, estimator in (("pq8", "pq_distance"), ("sq8", "sq8_distance")):
            decoded = docs.codec(name).decode(codes[name]).astype(np.float64)
            # ip: the negative inner product with the decoded rows; l2: the distance to them
            expected = -(decoded @ q) if docs.metric == "ip" else np.linalg.norm(decoded - q, axis=1)
            np.testing.assert_allclose(estimates(conn, name, estimator, q), expected, atol=2e-5)
        if docs.metric == "ip":
            bits = np.unpackbits(stored_codes(conn, docs, "bq2"), axis=1)[:, : 2 * DIM].astype(np.float64) * 2 - 1
            expected = -(bits @ np.tile(q.astype(np.float64), 2))
            np.testing.assert_allclose(estimates(conn, "bq2", "bits_distance", q), expected, rtol=1e-5, atol=1e-5)


def test_ranking_by_estimates_finds_the_neighbours(docs: pgembed.Collection, dsn: str) -> None:
    """Top 40 by each estimator hold most of the exact top 10 (the estimators rank, they are not noise)."""
    x = unit_vectors(ROWS, DIM, seed=11)
    queries = unit_vectors(20, DIM, seed=13)
    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)
        for name, estimator, floor in (("pq8", "pq_distance", 0.8), ("sq8", "sq8_distance", 0.95),
                                       ("bq2", "bits_distance", 0.6), ("rabitq", "rabitq_distance", 0.6),
                                       ("pbq", "bits_distance", 0.5)):
            found = []
            for q in queries:
                d = estimates(conn, name, estimator, q)
                exact = set(np.argsort(-(x @ q))[:10].tolist())  # unit vectors: the l2 order too
                found.append(len(exact & set(np.argsort(d, kind="stable")[:40].tolist())) / 10)
            assert np.mean(found) >= floor, (name, np.mean(found))


def test_query_table_refuses_what_it_cannot_make(docs: pgembed.Collection, dsn: str) -> None:
    docs.add_codec("f16", "f16")
    with psycopg.connect(dsn, autocommit=True) as conn:
        q = "[" + ",".join(["0.1"] * DIM) + "]"
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="no distance estimator"):
            conn.execute("SELECT pgembed.query_table('docs', 'f16', %s::vector)", [q])
        with pytest.raises(psycopg.errors.UndefinedObject, match="no active codec named 'nope'"):
            conn.execute("SELECT pgembed.query_table('docs', 'nope', %s::vector)", [q])
        with pytest.raises(psycopg.errors.DatabaseError, match="dimensions"):
            conn.execute("SELECT pgembed.query_table('docs', 'pq8', '[1,2]'::vector)")
