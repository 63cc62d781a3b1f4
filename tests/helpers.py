"""Small helpers shared by the tests."""

from __future__ import annotations

import numpy as np
import psycopg
from psycopg import sql

import pgembed


def table_state(conn: psycopg.Connection, table: str, key: str = "id") -> tuple[int, str | None]:
    """(row count, md5 over every row in key order): equal before and after means nothing changed."""
    row = conn.execute(
        sql.SQL("SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t.{})) FROM {} AS t").format(
            sql.Identifier(key), sql.Identifier(table)
        )
    ).fetchone()
    assert row is not None
    return int(row[0]), row[1]


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def vector_text(v: np.ndarray) -> str:
    """A pgvector literal with exactly these float32 values."""
    return "[" + ",".join(np.format_float_positional(x, unique=True, trim="-") for x in v.astype(np.float32)) + "]"


def parse_vector(text: str) -> np.ndarray:
    """A vector or halfvec as PostgreSQL prints it, parsed to float32 (exact for both)."""
    return np.array(text.strip("[]").split(","), dtype=np.float32)


def categorised_docs(db: pgembed.Database, rows: int, dim: int) -> pgembed.Collection:
    """A collection "docs" of unit vectors with a skewed category ('news' 2/3, 'blog', 'rare' every 400th
    row) and a year, bq codes with an HNSW index, analysed."""
    x = unit_vectors(rows, dim, seed=4)
    docs = db.create_collection("docs", dim, attrs={"category": "text", "year": "integer"})
    category = ["rare" if i % 400 == 0 else ("news" if i % 3 else "blog") for i in range(rows)]
    docs.ingest(np.arange(rows), x, {"category": category, "year": [1990 + i % 40 for i in range(rows)]})
    docs.add_codec("bq", "bq")
    docs.create_index("bq", "hnsw", m=8, ef_construction=40)
    db.execute("ANALYZE docs")
    return docs
