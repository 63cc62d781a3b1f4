"""Alembic environment for pgembed's own catalog.

pgembed keeps its version table in its own schema (pgembed.alembic_version) so that it never collides with
an application's alembic_version. Run programmatically by pgembed.db.migrate, by `alembic -c` on
migrations/alembic.ini, or from an application's env.py (README: "Alembic in your application").
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

SCHEMA = "pgembed"
VERSION_TABLE = "alembic_version"
# Serialises concurrent migrators: a constant only pgembed uses (hash of "pgembed.migrate").
LOCK_KEY = 7_340_512_081


def run_migrations(connection) -> None:  # type: ignore[no-untyped-def]
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
    connection.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    context.configure(
        connection=connection,
        version_table=VERSION_TABLE,
        version_table_schema=SCHEMA,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection: set sqlalchemy.url or pass config.attributes['connection']")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        run_migrations(conn)


main()
