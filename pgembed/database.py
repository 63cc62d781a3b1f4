"""Connections: the embedded server by default, any PostgreSQL with pgvector otherwise, or the
application's own psycopg connection (pgembed then works inside the application's transactions)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from pgembed.collection import Collection
from pgembed.db import catalog, functions, migrate
from pgembed.db.extension import ensure_pgvector
from pgembed.db.kernels import KernelStatus, ensure_kernels, kernel_status
from pgembed.db.session import Session
from pgembed.engine import codecs, collections
from pgembed.engine.context import CollectionContext
from pgembed.errors import CatalogError, SchemaError
from pgembed.records import CollectionInfo
from pgembed.server import EmbeddedServer
from pgembed.vocabulary import Metric, Placement

DSN_ENV_VARS = ("PGEMBED_DSN", "DATABASE_URL")


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

    def open_connection() -> psycopg.Connection:
        # The embedded server is started again when it is down (after a crash, say): its data directory is
        # pgembed's to run. A server you run is yours to restart.
        target = EmbeddedServer(data_dir).ensure_running() if conninfo is None else conninfo
        new = psycopg.connect(target, autocommit=True)
        try:
            ensure_pgvector(new)
        except BaseException:
            new.close()
            raise
        return new

    conn = open_connection()
    try:
        db = Database(conn, owned=True, reopen=open_connection)
        if migrate if migrate is not None else embedded:
            db.migrate()
        return db
    except BaseException:
        conn.close()
        raise


class Database:
    """pgembed on one psycopg connection.

    Hand it your application's connection (`pgembed.Database(conn)`) and every pgembed operation runs in
    your transaction when one is open (as a savepoint), or in its own transaction when none is.
    `pgembed.connect()` makes a Database that owns its connection; close it, or use it as a context manager.
    """

    def __init__(self, conn: psycopg.Connection, *, owned: bool = False,
                 reopen: Callable[[], psycopg.Connection] | None = None) -> None:
        """`reopen` opens a connection in place of a lost one (connect() passes one); without it a lost
        connection raises ConnectionLostError, and the application hands pgembed a new one."""
        if isinstance(conn, psycopg.AsyncConnection):
            raise TypeError("Database takes a psycopg Connection, got an AsyncConnection: pgembed's API is "
                            "synchronous; from asyncio, run its calls in a thread (asyncio.to_thread) on a "
                            "psycopg.Connection")
        if not isinstance(conn, psycopg.Connection):
            raise TypeError(f"Database takes a psycopg Connection, got {type(conn).__name__}: for a DSN, use "
                            "pgembed.connect(dsn)")
        self.session = Session(conn, reopen=reopen)
        self.owned = owned
        if not owned:
            ensure_pgvector(conn)

    @property
    def conn(self) -> psycopg.Connection:
        return self.session.conn

    # -- life cycle -----------------------------------------------------------------------------------
    def close(self) -> None:
        if self.owned:
            self.session.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """A transaction, or a savepoint inside the caller's transaction."""
        with self.session.transaction() as conn:
            yield conn

    @property
    def in_transaction(self) -> bool:
        return self.session.in_transaction

    @property
    def conninfo(self) -> str:
        return self.session.conninfo

    def new_connection(self) -> psycopg.Connection:
        """Another connection to the same database (for monitoring, migrations)."""
        return self.session.new_connection()

    # -- catalog schema -------------------------------------------------------------------------------
    def migrate(self, revision: str = "head") -> None:
        """Upgrade pgembed's catalog (on a connection of its own; a second run is a no-op). When that moved an
        existing catalog, regenerate every collection's code-keeping trigger and query encoder, so that
        collections made by an older pgembed get what the new catalog's SQL functions expect of them."""
        before = catalog.installed_revision(self.session)
        if (revision == "head" and before == migrate.head_revision() and not functions.stale_functions(self.conn)
                and not catalog.may_administer(self.session)):
            return  # current, and a role that may only read: nothing it could write (the kernels' binding)
        migrate.upgrade(self.conninfo, revision, password=self.session.password)
        after = catalog.installed_revision(self.session)
        # Only when the catalog moved: regenerating takes a brief lock on each collection's table.
        if before is not None and after != before and after == migrate.head_revision():
            for info in catalog.list_collections(self.session):
                codecs.reinstall_trigger(CollectionContext(self.session, info))

    def downgrade(self, revision: str) -> None:
        migrate.downgrade(self.conninfo, revision, password=self.session.password)

    # -- kernels --------------------------------------------------------------------------------------
    def kernels(self) -> KernelStatus:
        """Which implementation pgembed's functions run here: the C kernels or the SQL twins, and why."""
        self._require_current()
        return kernel_status(self.conn)

    def use_kernels(self, enabled: bool = True) -> KernelStatus:
        """Bind pgembed's functions to the kernels (installing them where the server has them and the role
        may) or, with False, to the SQL twins. The database keeps the choice across migrate()."""
        self._require_current()
        with self.session.transaction() as conn:
            return ensure_kernels(conn, use=enabled)

    def catalog_revision(self) -> str | None:
        return catalog.installed_revision(self.session)

    def _require_current(self) -> None:
        revision = catalog.installed_revision(self.session)
        head = migrate.head_revision()
        if revision != head:
            state = "not installed" if revision is None else f"at revision {revision}, not {head}"
            raise CatalogError(f"pgembed's catalog is {state} in this database: run `pgembed migrate` "
                               "(or db.migrate())")
        stale = functions.stale_functions(self.conn)
        if stale:
            raise CatalogError(f"pgembed's functions in this database are not this pgembed's ({', '.join(stale)}):"
                               " run `pgembed migrate` (or db.migrate())")

    # -- collections ----------------------------------------------------------------------------------
    def collection(self, table: str, *, vector: str | None = None, key: str | None = None,
                   metric: Metric | str | None = None, name: str | None = None,
                   placement: Placement | str | None = None) -> Collection:
        """The collection named `name` (default: `table`), attaching it to the existing `table` if new.

        `vector` and `key` default to the table's only vector column and its single-column primary key.
        `placement`: where a new collection's codes live (default "table"): "table" (columns beside the vector) or
        "companion"
        (pgembed.codes_<id>, key plus codes, kept by a trigger: candidates come from a narrow heap, and adding
        or re-fitting a codec never rewrites the table's rows).
        """
        self._require_current()
        name = name or table
        info = catalog.find_collection(self.session, name)
        if info is None:
            with self.session.transaction():
                info = collections.attach_table(self.session, name, table, vector=vector, key=key,
                                                metric=metric or Metric.COSINE, placement=placement or Placement.TABLE)
        else:
            collections.check_attachment(info, vector=vector, key=key, placement=placement, metric=metric)
        return Collection(self.session, info)

    def get_collection(self, name: str) -> Collection:
        """The collection named `name`; never attaches a table (SchemaError when there is none)."""
        self._require_current()
        info = catalog.find_collection(self.session, name)
        if info is None:
            raise SchemaError(f"no collection named {name!r} (that this role may read): attach its table first "
                              "(db.collection(table), or pgembed attach TABLE)")
        return Collection(self.session, info)

    def create_collection(self, name: str, dim: int, *, attrs: Mapping[str, str] | None = None,
                          metric: Metric | str = Metric.COSINE, key: str = "id", key_type: str = "bigint",
                          vector: str = "embedding", if_not_exists: bool = False,
                          placement: Placement | str = Placement.TABLE) -> Collection:
        """Create a table `name` (key, vector(dim), attribute columns) and attach it.

        `attrs` maps column names to PostgreSQL types, e.g. {"category": "text", "year": "integer"}.
        `placement`: where its codes live (see collection()).
        """
        self._require_current()
        with self.session.transaction():
            info = collections.create_table(self.session, name, dim, attrs=dict(attrs or {}), metric=metric, key=key,
                                            key_type=key_type, vector=vector, if_not_exists=if_not_exists,
                                            placement=placement)
        return Collection(self.session, info)

    def collections(self) -> list[CollectionInfo]:
        def listed() -> list[CollectionInfo]:
            self._require_current()
            return catalog.list_collections(self.session)

        return self.session.read(listed)

    def execute(self, query: sql.Composable | str, params: Any = None) -> psycopg.Cursor[Any]:
        return self.session.execute(query, params)

    def value(self, query: sql.Composable | str, params: Any = None) -> Any:
        """The first column of the one row a query returns (an aggregate, a setting)."""
        return self.session.value(query, params)


__all__ = ["Database", "connect", "resolve_dsn"]
