"""pgembed's catalog under Alembic: up, down, up again, idempotent, and never in the application's way."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest
from alembic import command
from sqlalchemy import create_engine, pool

import pgembed
from pgembed.db import migrate
from pgembed.errors import CatalogError

CATALOG_TABLES = {"collections", "codecs", "indexes", "tuning"}


def catalog_tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'pgembed'"
    ).fetchall()
    return {r[0] for r in rows} - {"alembic_version"}


def test_upgrade_downgrade_upgrade_and_second_run_is_a_no_op(bare_dsn: str) -> None:
    with psycopg.connect(bare_dsn, autocommit=True) as conn:
        # The application's own Alembic history must survive pgembed's migrations untouched.
        conn.execute("CREATE TABLE public.alembic_version (version_num varchar(32) PRIMARY KEY)")
        conn.execute("INSERT INTO public.alembic_version VALUES ('app_rev_42')")

        assert migrate.current_revision(bare_dsn) is None
        migrate.upgrade(bare_dsn)
        assert migrate.current_revision(bare_dsn) == migrate.head_revision()
        assert catalog_tables(conn) == CATALOG_TABLES
        conn.execute("INSERT INTO pgembed.collections (name, table_schema, table_name, key_column, vector_column,"
                     " dim, metric) VALUES ('keep', 'public', 't', 'id', 'v', 3, 'l2')")

        migrate.upgrade(bare_dsn)  # again: nothing happens, nothing is lost
        assert migrate.current_revision(bare_dsn) == migrate.head_revision()
        assert conn.execute("SELECT count(*) FROM pgembed.collections").fetchone() == (1,)

        migrate.downgrade(bare_dsn, "base")
        assert migrate.current_revision(bare_dsn) is None
        assert catalog_tables(conn) == set()
        assert conn.execute("SELECT to_regprocedure('pgembed.encode_binary(vector, vector)')").fetchone() == (None,)

        migrate.upgrade(bare_dsn)
        assert catalog_tables(conn) == CATALOG_TABLES
        assert conn.execute("SELECT version_num FROM public.alembic_version").fetchall() == [("app_rev_42",)]


def test_connect_to_a_server_does_not_migrate_unless_asked(bare_dsn: str) -> None:
    with pgembed.connect(bare_dsn) as db:  # a DSN: the schema is the user's to schedule
        assert db.catalog_revision() is None
        with pytest.raises(CatalogError, match="pgembed migrate"):
            db.collections()
        db.migrate()
        assert db.catalog_revision() == migrate.head_revision()
        assert db.collections() == []


def test_concurrent_migrations_serialise(bare_dsn: str) -> None:
    """Processes migrating at once (several app servers starting together): all succeed, one applies."""
    code = "import sys; from pgembed.db import migrate; migrate.upgrade(sys.argv[1])"
    procs = [subprocess.Popen([sys.executable, "-c", code, bare_dsn], stderr=subprocess.PIPE) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    assert migrate.current_revision(bare_dsn) == migrate.head_revision()


def test_threads_in_one_process_can_migrate_at_once(bare_dsn: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as executor:
        list(executor.map(lambda _: migrate.upgrade(bare_dsn), range(3)))
    assert migrate.current_revision(bare_dsn) == migrate.head_revision()


def test_application_env_py_can_run_pgembed_migrations(bare_dsn: str) -> None:
    """What the README shows for applications with their own Alembic setup."""
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(bare_dsn),
                           poolclass=pool.NullPool)
    with engine.begin() as connection:
        config = migrate.alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "pgembed@head")
    assert migrate.current_revision(bare_dsn) == migrate.head_revision()
