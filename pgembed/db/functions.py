"""The SQL files of pgembed's catalog (shipped as the package pgembed.sql): versioned migrations' tables and
data changes (sql/migrations/), and the functions (sql/functions/), which are re-appliable.

Every function file is CREATE OR REPLACE only, so a function's history is its git log. After the versioned
migrations, every `migrate()` re-applies the files whose text differs from what pgembed.function_files recorded
(`sync_functions`, called by migrations/env.py), in FUNCTION_FILES' order (a file may use the functions of the
files before it), the functions generated from pgembed's vocabulary (pgembed.statements.vocabulary) among them:
a threshold of the planner changes in sql/functions/planner.sql alone. A database whose recorded files differ
from this pgembed's is not current (`stale_functions`), as one at an older revision is not. A migration is still
needed to drop a function or change its signature, which CREATE OR REPLACE cannot.

Bodies are checked when called, not when created (check_function_bodies = off, as pg_dump does); SQL-standard
bodies (RETURN ...) are bound at creation and so may use only pgvector and the files before theirs.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources

import psycopg
from psycopg import sql

from pgembed.db.session import Session
from pgembed.statements import catalog as q
from pgembed.statements import search_path
from pgembed.statements.vocabulary import GENERATED

FUNCTION_FILES = ("vocabulary", "codecs", "estimators", "kernels", "filters", "catalog", "planner", "statements",
                  "text", "rerank", "search")


def read_sql_file(name: str) -> str:
    """A file of sql/, e.g. "migrations/0001_catalog.up.sql" or "functions/filters.sql"."""
    return resources.files("pgembed.sql").joinpath(name).read_text(encoding="utf-8")


@functools.cache
def function_text(name: str) -> str:
    """One entry of FUNCTION_FILES as the SQL sent: a generated one, or sql/functions/<name>.sql."""
    if name in GENERATED:
        return GENERATED[name]().as_string(None)
    return read_sql_file(f"functions/{name}.sql")


@functools.cache
def function_sha256(name: str) -> str:
    return hashlib.sha256(function_text(name).encode("utf-8")).hexdigest()


def apply_functions(conn: psycopg.Connection, names: tuple[str, ...] = FUNCTION_FILES) -> None:
    """(Re)create the functions of these files, in FUNCTION_FILES' order, in the current transaction, then pin
    the search_path of every function of pgembed's that resolves names when it runs. The files are applied
    under that path too, so what SQL-standard bodies bind at creation is pgvector's and pgembed's own."""
    unknown = set(names) - set(FUNCTION_FILES)
    if unknown:
        raise ValueError(f"no function file(s) {sorted(unknown)}; known: {FUNCTION_FILES}")
    session = Session(conn)
    checking = conn.execute(q.SHOW_CHECK_FUNCTION_BODIES).fetchone()
    conn.execute(q.set_check_function_bodies("off"))
    with session.pinned_search_path():
        for name in FUNCTION_FILES:
            if name in names:
                # A file holds many statements and '%' signs, which psycopg sends as they are without parameters.
                conn.execute(sql.SQL(function_text(name)))  # type: ignore[arg-type]
        conn.execute(search_path.PIN_FUNCTIONS, (session.pinned_path,))
    conn.execute(q.set_check_function_bodies(checking[0] if checking else "on"))


def stale_functions(conn: psycopg.Connection) -> list[str]:
    """The function files whose text in this database is not this pgembed's (all of them before 0005)."""
    if not conn.execute(q.FUNCTION_FILES_PRESENT).fetchone()[0]:  # type: ignore[index]
        return list(FUNCTION_FILES)
    recorded: dict[str, str] = dict(conn.execute(q.FUNCTION_FILE_SUMS).fetchall())
    return [name for name in FUNCTION_FILES if recorded.get(name) != function_sha256(name)]


def sync_functions(conn: psycopg.Connection) -> list[str]:
    """Re-apply the files that changed and record them; returns their names. A catalog older than 0005 (no
    record to keep) is left alone: its revision says it is not current."""
    if not conn.execute(q.FUNCTION_FILES_PRESENT).fetchone()[0]:  # type: ignore[index]
        return []
    changed = stale_functions(conn)
    if changed:
        apply_functions(conn, tuple(changed))
        for name in changed:
            conn.execute(q.RECORD_FUNCTION_FILE, (name, function_sha256(name)))
    return changed


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
    """For a migration whose data change needs a function file as it is now, before the sync that follows."""
    apply_functions(_migration_connection(), names)
