"""Upgrade and downgrade pgembed's catalog with Alembic, on a connection of its own."""

from __future__ import annotations

import threading
from importlib import resources

import psycopg
from alembic import command
from alembic import util as alembic_util
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from pgembed.errors import CatalogError

SCHEMA = "pgembed"
VERSION_TABLE = "alembic_version"
# Alembic keeps its running context in module globals: one migration at a time per process. Across
# processes, env.py serialises on an advisory lock.
_ALEMBIC_LOCK = threading.Lock()


def alembic_config() -> Config:
    """An Alembic config pointing at pgembed's migrations (for `alembic` users and for migrate())."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("pgembed.migrations")))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _engine(conninfo: str, password: str | None):  # type: ignore[no-untyped-def]
    def connect() -> psycopg.Connection:
        return psycopg.connect(conninfo, password=password) if password else psycopg.connect(conninfo)

    return create_engine("postgresql+psycopg://", creator=connect, poolclass=pool.NullPool)


def upgrade(conninfo: str, revision: str = "head", *, password: str | None = None) -> None:
    """Bring the catalog to `revision` (default: the newest). A second run is a no-op."""
    _run(conninfo, password, lambda config: command.upgrade(config, revision))


def downgrade(conninfo: str, revision: str, *, password: str | None = None) -> None:
    """Take the catalog back to `revision` ('base' removes it, leaving user tables and code columns)."""
    _run(conninfo, password, lambda config: command.downgrade(config, revision))


def current_revision(conninfo: str, *, password: str | None = None) -> str | None:
    engine = _engine(conninfo, password)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE, "version_table_schema": SCHEMA}
            )
            return ctx.get_current_revision()
    finally:
        engine.dispose()


def _run(conninfo: str, password: str | None, action) -> None:  # type: ignore[no-untyped-def]
    engine = _engine(conninfo, password)
    try:
        with _ALEMBIC_LOCK, engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            action(config)
    except alembic_util.CommandError as err:  # an unknown revision, above all
        raise CatalogError(f"pgembed's migrations: {err}") from err
    finally:
        engine.dispose()
