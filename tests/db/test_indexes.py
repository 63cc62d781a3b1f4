"""pgvector indexes on code columns and on the source vector, recorded in the catalog."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

import pgembed
from pgembed.errors import SchemaError
from tests.helpers import unit_vectors

DIM = 32


@pytest.fixture
def docs(db: pgembed.Database) -> pgembed.Collection:
    collection = db.create_collection("docs", DIM)
    collection.add_codec("f16", "float16")
    collection.add_codec("bq", "binary", fit_on=unit_vectors(200, DIM))
    collection.ingest(np.arange(2000), unit_vectors(2000, DIM, seed=5))
    return collection


def index_definitions(conn: psycopg.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'docs'").fetchall())


@pytest.mark.parametrize(("on", "method", "expect"), [
    ("bq", "hnsw", "USING hnsw (embedding_bq bit_hamming_ops) WITH (m='16', ef_construction='64')"),
    ("f16", "hnsw", "USING hnsw (embedding_f16 halfvec_cosine_ops)"),
    ("vector", "hnsw", "USING hnsw (embedding vector_cosine_ops)"),
    ("vector", "ivfflat", "USING ivfflat (embedding vector_cosine_ops) WITH (lists='2')"),
    ("bq", "ivfflat", "USING ivfflat (embedding_bq bit_hamming_ops)"),
])
def test_index_on_codes_or_vector(docs: pgembed.Collection, sql_conn: psycopg.Connection, on: str, method: str,
                                  expect: str) -> None:
    index = docs.create_index(on, method)
    assert index.method == method and index.build_seconds is not None and index.build_seconds >= 0
    assert expect in index_definitions(sql_conn)[index.index_name]
    assert [i.index_name for i in docs.indexes()] == [index.index_name]


def test_hnsw_parameters_progress_and_concurrently(docs: pgembed.Collection, sql_conn: psycopg.Connection) -> None:
    index = docs.create_index("bq", m=8, ef_construction=32, progress=True, concurrently=True)
    assert "WITH (m='8', ef_construction='32')" in index_definitions(sql_conn)[index.index_name]
    assert index.params == {"m": 8, "ef_construction": 32}
    with pytest.raises(SchemaError, match="already exists"):
        docs.create_index("bq")
    docs.drop_index(index.index_name)
    assert docs.indexes() == [] and index.index_name not in index_definitions(sql_conn)


def test_the_index_serves_queries(docs: pgembed.Collection, sql_conn: psycopg.Connection) -> None:
    docs.create_index("bq")
    sql_conn.execute("SET enable_seqscan = off")
    plan = "\n".join(r[0] for r in sql_conn.execute(
        "EXPLAIN SELECT id FROM docs ORDER BY embedding_bq <~> (SELECT embedding_bq FROM docs WHERE id = 1) LIMIT 5"
    ).fetchall())
    assert "docs_embedding_bq_hnsw_idx" in plan


def test_index_errors(docs: pgembed.Collection) -> None:
    with pytest.raises(SchemaError, match="unknown index method"):
        docs.create_index("bq", "btree")
    with pytest.raises(SchemaError, match="no active codec 'pq'"):
        docs.create_index("pq")
    with pytest.raises(SchemaError, match="no index"):
        docs.drop_index("nope")
