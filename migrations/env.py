"""Alembic environment for pgembed's own catalog.

pgembed keeps its version table in its own schema (pgembed.alembic_version) so that it never collides with
an application's alembic_version. Run programmatically by pgembed.db.migrate, by `alembic -c` on
migrations/alembic.ini, or from an application's env.py (README: "Alembic in your application").
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from pgembed.db.functions import sync_functions
from pgembed.db.kernels import ensure_kernels
from pgembed.statements.catalog import MIGRATION_SETUP

SCHEMA = "pgembed"
VERSION_TABLE = "alembic_version"


def run_migrations(connection) -> None:  # type: ignore[no-untyped-def]
    # The lock, pgvector and the schema, on the migration's own transaction (the driver's psycopg connection).
    for statement in MIGRATION_SETUP:
        connection.connection.driver_connection.execute(statement)
    context.configure(
        connection=connection,
        version_table=VERSION_TABLE,
        version_table_schema=SCHEMA,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        # The function files are the newest revision's: they follow the tables there, then the kernels are
        # installed where the server has them and bound (pgembed.bind_kernels). An older revision asked for
        # keeps whatever functions it had; the pgembed of that revision writes its own.
        migration = context.get_context()
        if set(migration.get_current_heads()) == set(context.script.get_heads()):
            driver = connection.connection.driver_connection
            sync_functions(driver)
            ensure_kernels(driver)


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
