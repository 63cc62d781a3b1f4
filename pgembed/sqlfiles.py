"""The SQL files in sql/ (shipped as the package pgembed.sql), read and run by the migrations."""

from __future__ import annotations

from importlib import resources


def read_sql_file(name: str) -> str:
    return resources.files("pgembed.sql").joinpath(name).read_text(encoding="utf-8")


def run_sql_file(name: str) -> None:
    """Run one SQL file inside the current Alembic migration's transaction."""
    from alembic import op

    # The raw psycopg connection: a file holds many statements and '%' signs, which psycopg runs as they
    # are only when no parameters are passed at all.
    raw = op.get_bind().connection.driver_connection
    assert raw is not None  # Alembic runs migrations on a live connection
    raw.execute(read_sql_file(name))
