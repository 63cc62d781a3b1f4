"""Small helpers shared by the tests."""

from __future__ import annotations

import numpy as np
import psycopg
from psycopg import sql


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
