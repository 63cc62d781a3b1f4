"""The SQL files of pgembed's catalog (shipped as the package pgembed.sql): versioned migrations' tables and
data changes (sql/migrations/), and the functions (sql/functions/), which are re-appliable.

Every function file is CREATE OR REPLACE only, so a function's history is its git log. A migration that
changes functions re-applies their files (`apply_functions`), in FUNCTION_FILES' order (a file may use the
functions of the files before it), with the functions generated from pgembed's vocabulary
(pgembed.statements.vocabulary). Bodies are checked when called, not when created
(check_function_bodies = off, as pg_dump does), so that a file applied by an early migration on a fresh
install may use tables later migrations add; SQL-standard bodies (RETURN ...) are bound at creation and so
may use only pgvector and the files before theirs.
"""

from __future__ import annotations

from importlib import resources

import psycopg
from psycopg import sql

from pgembed.statements import catalog as q
from pgembed.statements.vocabulary import GENERATED

FUNCTION_FILES = ("vocabulary", "codecs", "filters", "catalog", "planner", "statements", "search")


def read_sql_file(name: str) -> str:
    """A file of sql/, e.g. "migrations/0001_catalog.up.sql" or "functions/filters.sql"."""
    return resources.files("pgembed.sql").joinpath(name).read_text(encoding="utf-8")


def function_text(name: str) -> sql.SQL | sql.Composed:
    """One entry of FUNCTION_FILES: a generated one, or sql/functions/<name>.sql."""
    if name in GENERATED:
        return GENERATED[name]()
    return sql.SQL(read_sql_file(f"functions/{name}.sql"))  # type: ignore[arg-type]


def apply_functions(conn: psycopg.Connection, names: tuple[str, ...] = FUNCTION_FILES) -> None:
    """(Re)create the functions of these files, in FUNCTION_FILES' order, in the current transaction."""
    unknown = set(names) - set(FUNCTION_FILES)
    if unknown:
        raise ValueError(f"no function file(s) {sorted(unknown)}; known: {FUNCTION_FILES}")
    checking = conn.execute(q.SHOW_CHECK_FUNCTION_BODIES).fetchone()
    conn.execute(q.set_check_function_bodies("off"))
    for name in FUNCTION_FILES:
        if name in names:
            # A file holds many statements and '%' signs, which psycopg sends as they are without parameters.
            conn.execute(function_text(name))
    conn.execute(q.set_check_function_bodies(checking[0] if checking else "on"))


# -- inside an Alembic migration (migrations/versions/) ----------------------------------------------------------
def _migration_connection() -> psycopg.Connection:
    from alembic import op

    raw = op.get_bind().connection.driver_connection
    assert isinstance(raw, psycopg.Connection)  # Alembic runs pgembed's migrations on psycopg
    return raw


def run_migration_file(name: str) -> None:
    """sql/migrations/<name>, inside the current migration's transaction."""
    _migration_connection().execute(sql.SQL(read_sql_file(f"migrations/{name}")))  # type: ignore[arg-type]


def apply_functions_in_migration(names: tuple[str, ...] = FUNCTION_FILES) -> None:
    apply_functions(_migration_connection(), names)
