"""pgvector on the server: there, recent enough, and pgvector-python's adapters on the connection."""

from __future__ import annotations

import re

import psycopg
from pgvector.psycopg import register_vector

from pgembed.errors import PgvectorMissingError
from pgembed.statements import introspection as q

MIN_PGVECTOR = (0, 7, 0)  # halfvec, bit, binary_quantize, HNSW on bit
EXTENSION_LOCK = 7_340_512_082  # serialises CREATE EXTENSION across processes


def ensure_pgvector(conn: psycopg.Connection) -> str:
    """Create the vector extension if it is missing and allowed; return its version, or raise saying how to
    get pgvector. Registers pgvector's psycopg adapters on the connection."""
    version = _pgvector_version(conn)
    if version is None:
        if conn.execute(q.PGVECTOR_AVAILABLE).fetchone() is None:
            raise PgvectorMissingError(
                "pgvector is not installed on this PostgreSQL server. Install it (Debian/Ubuntu: "
                "apt install postgresql-<major>-pgvector; or run the pgvector/pgvector Docker image, see "
                "docker/ in pgembed), or connect without a DSN to use pgembed's embedded server."
            )
        try:
            with conn.transaction():
                conn.execute(q.ADVISORY_XACT_LOCK, (EXTENSION_LOCK,))
                conn.execute(q.CREATE_PGVECTOR)
        except psycopg.errors.InsufficientPrivilege as err:
            raise PgvectorMissingError(
                "pgvector is available but not enabled in this database, and this role may not enable it: "
                "ask a superuser to run CREATE EXTENSION vector"
            ) from err
        version = _pgvector_version(conn)
        assert version is not None
    if _version_tuple(version) < MIN_PGVECTOR:
        raise PgvectorMissingError(
            f"pgvector {version} is older than {'.'.join(map(str, MIN_PGVECTOR))}, which pgembed needs "
            "(halfvec, bit and binary_quantize): install a newer pgvector, then ALTER EXTENSION vector UPDATE"
        )
    register_vector(conn)
    return version


def _pgvector_version(conn: psycopg.Connection) -> str | None:
    row = conn.execute(q.PGVECTOR_VERSION).fetchone()
    return row[0] if row else None


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])
