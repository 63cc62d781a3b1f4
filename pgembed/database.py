"""Connections: the embedded server by default, any PostgreSQL with pgvector otherwise, or the
application's own psycopg connection (pgembed then works inside the application's transactions)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.pq import TransactionStatus

from pgembed import catalog, migrate
from pgembed.errors import CatalogError, PgvectorMissingError
from pgembed.server import EmbeddedServer

if TYPE_CHECKING:
    from pgembed.collection import Collection

MIN_PGVECTOR = (0, 7, 0)  # halfvec, bit, binary_quantize, HNSW on bit
DSN_ENV_VARS = ("PGEMBED_DSN", "DATABASE_URL")
_EXTENSION_LOCK = 7_340_512_082  # serialises CREATE EXTENSION across processes


def resolve_dsn(dsn: str | None = None) -> str | None:
    """The DSN given, else $PGEMBED_DSN, else $DATABASE_URL; None means "use the embedded server".

    SQLAlchemy-style URLs (postgresql+psycopg://...) are accepted and reduced to libpq's form.
    """
    for candidate in (dsn, *(os.environ.get(name) for name in DSN_ENV_VARS)):
        if candidate:
            return re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", candidate)
    return None


def connect(
    dsn: str | None = None, *, migrate: bool | None = None, data_dir: str | Path | None = None
) -> Database:
    """Open a pgembed database.

    With no DSN (argument, $PGEMBED_DSN or $DATABASE_URL), starts or reuses the embedded PostgreSQL in
    `data_dir` ($PGEMBED_DATA_DIR, else the user data directory). `migrate`: bring pgembed's catalog up to
    date first; the default is True for the embedded server and False for servers you run, where schema
    changes are yours to schedule (`pgembed migrate`).
    """
    conninfo = resolve_dsn(dsn)
    embedded = conninfo is None
    if conninfo is None:
        conninfo = EmbeddedServer(data_dir).ensure_running()
    conn = psycopg.connect(conninfo, autocommit=True)
    try:
        ensure_pgvector(conn)
        db = Database(conn, _owned=True)
        if migrate if migrate is not None else embedded:
            db.migrate()
        return db
    except BaseException:
        conn.close()
        raise


def ensure_pgvector(conn: psycopg.Connection) -> str:
    """Create the vector extension if it is missing and allowed; return its version, or raise saying how
    to get pgvector."""
    version = _pgvector_version(conn)
    if version is None:
        available = conn.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
        if available is None:
            raise PgvectorMissingError(
                "pgvector is not installed on this PostgreSQL server. Install it (Debian/Ubuntu: "
                "apt install postgresql-<major>-pgvector; or run the pgvector/pgvector Docker image, see "
                "docker/ in pgembed), or connect without a DSN to use pgembed's embedded server."
            )
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_EXTENSION_LOCK,))
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
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
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    return row[0] if row else None


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


class Database:
    """pgembed on one psycopg connection.

    Hand it your application's connection (`pgembed.Database(conn)`) and every pgembed operation runs in
    your transaction when one is open (as a savepoint), or in its own transaction when none is.
    `pgembed.connect()` makes a Database that owns its connection; close it, or use it as a context manager.
    """

    def __init__(self, conn: psycopg.Connection, *, _owned: bool = False) -> None:
        self.conn = conn
        self._owned = _owned
        if not _owned:
            ensure_pgvector(conn)

    # -- life cycle -----------------------------------------------------------------------------------
    def close(self) -> None:
        if self._owned:
            self.conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """A transaction, or a savepoint inside the caller's transaction."""
        with self.conn.transaction():
            yield self.conn

    @property
    def in_transaction(self) -> bool:
        return self.conn.info.transaction_status != TransactionStatus.IDLE

    @property
    def conninfo(self) -> str:
        return self.conn.info.dsn

    def new_connection(self) -> psycopg.Connection:
        """Another connection to the same database (for monitoring, migrations)."""
        conn = psycopg.connect(self.conninfo, password=self.conn.info.password or None, autocommit=True)
        register_vector(conn)
        return conn

    # -- catalog schema -------------------------------------------------------------------------------
    def migrate(self, revision: str = "head") -> None:
        """Upgrade pgembed's catalog (on a connection of its own; a second run is a no-op). When that moved
        an existing catalog, regenerate every collection's code-keeping trigger and query encoder, so that
        collections made by an older pgembed get what the new catalog's SQL functions expect of them."""
        before = catalog.installed_revision(self.conn)
        migrate.upgrade(self.conninfo, revision, password=self.conn.info.password or None)
        after = catalog.installed_revision(self.conn)
        # Only when the catalog moved: regenerating takes a brief lock on each collection's table.
        if before is not None and after != before and after == migrate.head_revision():
            from pgembed.collection import Collection

            for info in catalog.list_collections(self.conn):
                Collection(self, info).reinstall_trigger()

    def downgrade(self, revision: str) -> None:
        migrate.downgrade(self.conninfo, revision, password=self.conn.info.password or None)

    def catalog_revision(self) -> str | None:
        return catalog.installed_revision(self.conn)

    # -- collections ----------------------------------------------------------------------------------
    def collection(
        self,
        table: str,
        *,
        vector: str | None = None,
        key: str | None = None,
        metric: str = "cosine",
        name: str | None = None,
    ) -> Collection:
        """The collection named `name` (default: `table`), attaching it to the existing `table` if new.

        `vector` and `key` default to the table's only vector column and its single-column primary key.
        """
        from pgembed.collection import Collection

        catalog.require_current(self.conn)
        name = name or table
        info = catalog.find_collection(self.conn, name)
        if info is None:
            with self.transaction():
                info = catalog.attach_table(self.conn, name, table, vector=vector, key=key, metric=metric)
        else:
            catalog.check_attachment(info, vector=vector, key=key)
        return Collection(self, info)

    def create_collection(
        self,
        name: str,
        dim: int,
        *,
        attrs: Mapping[str, str] | None = None,
        metric: str = "cosine",
        key: str = "id",
        key_type: str = "bigint",
        vector: str = "embedding",
        if_not_exists: bool = False,
    ) -> Collection:
        """Create a table `name` (key, vector(dim), attribute columns) and attach it.

        `attrs` maps column names to PostgreSQL types, e.g. {"category": "text", "year": "integer"}.
        """
        from pgembed.collection import Collection

        catalog.require_current(self.conn)
        with self.transaction():
            info = catalog.create_table_collection(
                self.conn, name, dim, attrs=dict(attrs or {}), metric=metric, key=key, key_type=key_type,
                vector=vector, if_not_exists=if_not_exists,
            )
        return Collection(self, info)

    def collections(self) -> list[catalog.CollectionInfo]:
        catalog.require_current(self.conn)
        return catalog.list_collections(self.conn)

    def execute(self, query: sql.SQL | sql.Composed | str, params: Any = None) -> psycopg.Cursor:
        return self.conn.execute(query, params)

    def value(self, query: sql.SQL | sql.Composed | str, params: Any = None) -> Any:
        """The first column of the one row a query returns (an aggregate, a setting)."""
        row = self.conn.execute(query, params).fetchone()
        if row is None:
            raise CatalogError(f"expected a row from {query!r}, got none")
        return row[0]


__all__ = ["Database", "connect", "ensure_pgvector", "resolve_dsn", "CatalogError"]
