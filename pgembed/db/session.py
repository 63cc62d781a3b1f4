"""pgembed on one psycopg connection: transactions that nest into the application's, statements run."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.pq import TransactionStatus

from pgembed.errors import CatalogError, ConcurrentUseError, ConnectionLostError, InvalidInputError
from pgembed.statements import introspection
from pgembed.statements import search_path as path
from pgembed.statements.compose import statement_bytes

Statement = sql.Composable | str | bytes
T = TypeVar("T")
# What a new connection must report alike for it to stand in for a lost one (what SET on the lost one changed
# and the server reports; SET ROLE between two roles that are not superusers is not among them: docs/reliability.md).
REPORTED_STATE = ("session_authorization", "is_superuser", "search_path")
_REPORTED_NAMES = tuple(name.encode() for name in REPORTED_STATE)


def _reported(conn: psycopg.Connection) -> tuple[bytes | None, ...]:
    """What the server last reported of REPORTED_STATE (libpq's copy: no round trip; read on every operation)."""
    return tuple(map(conn.pgconn.parameter_status, _REPORTED_NAMES))


class Session:
    """A connection as pgembed uses it. Every operation runs inside `transaction()`: its own transaction
    when the connection is idle, a savepoint inside the application's transaction otherwise."""

    def __init__(self, conn: psycopg.Connection, *, reopen: Callable[[], psycopg.Connection] | None = None) -> None:
        """`reopen`: how to open a connection in place of a lost one (a Database that owns its connection);
        without it, a lost connection stays lost (the application's own: pgembed never replaces it)."""
        self._conn = conn
        self._reopen = reopen
        self._vector_schema: str | None = None
        # The thread whose transaction (through transaction()) is open, and how deeply: a connection's transaction
        # is shared by every thread that uses it, so a second thread's work would silently run inside it.
        self._owner_lock = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        # What the server reported of the session when the transaction() now open began: the application's state,
        # which a new connection must match (a loss inside one may leave pgembed's own settings, a pinned
        # search_path, reported last). None otherwise, or after such a transaction ended with the connection
        # alive: the connection's last report is the application's state then (a read changes none of it).
        self._baseline: tuple[bytes | None, ...] | None = None
        # The client encoding the server last reported, and its Python codec (psycopg's conn.info.encoding, which
        # builds a ConnectionInfo and maps the name anew on each call): a search composes its statement's bytes
        # in it on every call.
        self._encoding: tuple[bytes | None, str] = (None, "utf-8")
        self._safe_path: bytes | None = None  # the search_path last reported and found safe (_check_search_path)

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        self._claim()
        try:
            self._ensure_open()
            with self.conn.transaction():
                yield self.conn
        finally:
            with self._owner_lock:
                self._depth -= 1
                if self._depth == 0:
                    self._owner = None
                    if not self._conn.closed:
                        self._baseline = None

    @property
    def conn(self) -> psycopg.Connection:
        """The connection; one lost before this use, outside a transaction of pgembed's, is replaced first (when
        this session may: see _ensure_open)."""
        if self._conn.closed and self._owner is None:
            self._ensure_open()
        return self._conn

    def close(self) -> None:
        self._conn.close()

    def _claim(self) -> None:
        with self._owner_lock:
            self._check_thread()
            if self._depth == 0:
                self._note_baseline()
            self._owner = threading.get_ident()
            self._depth += 1

    def _note_baseline(self) -> None:
        if not self._conn.closed:  # a lost connection's last report may be from inside an operation
            self._baseline = _reported(self._conn)

    def _check_thread(self) -> None:
        owner = self._owner
        if owner is not None and owner != threading.get_ident():
            raise ConcurrentUseError(
                "this Database's connection is in a transaction another thread opened, and a transaction is "
                "shared by every thread that uses the connection: use one Database (connection) per thread")

    def _ensure_open(self) -> None:
        """A connection lost earlier (server restart, terminated backend) is replaced, when this session may,
        before work starts on it: no statement of a failed call is ever re-sent here."""
        if not self._conn.closed:
            return
        if not self._conn.broken:
            raise ConnectionLostError("this Database is closed")
        if self._reopen is None:
            raise ConnectionLostError(
                "the connection to the server was lost, and it is the application's: pgembed does not open "
                "another in its place. Hand pgembed a new connection (pgembed.Database(conn))")
        lost = self._baseline or _reported(self._conn)
        fresh = self._reopen()
        now = _reported(fresh)
        if now != lost:
            fresh.close()
            changed = ", ".join(name for name, a, b in zip(REPORTED_STATE, now, lost, strict=True) if a != b)
            raise ConnectionLostError(
                f"the connection to the server was lost, and a new one would not be in the same state ({changed} "
                "changed by SET on the lost one): pgembed does not reconnect. Put such settings in the DSN "
                "(options='-c role=...'), then pgembed.connect() again")
        self._conn = fresh
        # The new connection's reports are the state now; one lost inside pgembed's transaction keeps its start.
        self._baseline = now if self._depth > 0 else None

    def read(self, work: Callable[[], T]) -> T:
        """Run a read-only operation; when the connection turns out lost on it (the server restarted) and no
        transaction of the application's was open, run it once more on a new connection. Writes are never
        retried: whether a write on a lost connection committed is unknown, so it raises and the next call
        reconnects."""
        self._check_thread()
        self._ensure_open()
        idle = not self.in_transaction
        try:
            return work()
        except psycopg.OperationalError:
            if not (idle and self._conn.broken and self._reopen is not None):
                raise
        self._ensure_open()
        return work()

    @contextmanager
    def pinned_search_path(self) -> Iterator[None]:
        """Inside a transaction: what runs inside resolves names under pgembed's pinned search_path
        (pgembed.statements.search_path), as statements that create functions or run encoders must; the path
        the session had is put back after (a rollback puts it back anyway). Names the caller gave (a table to
        create or attach) are resolved outside it, under the caller's own path."""
        if not self.in_transaction:
            raise RuntimeError("pinned_search_path() needs a transaction: set_config(..., true) ends with it")
        before = self.value(path.PIN, (self.pinned_path,))
        yield
        self.execute(path.RESTORE, (before,))

    @property
    def vector_schema(self) -> str | None:
        """The schema of pgvector's extension; None before it is created (and then not remembered)."""
        if self._vector_schema is None:
            row = self.row(introspection.PGVECTOR_SCHEMA)
            self._vector_schema = row[0] if row else None
        return self._vector_schema

    def require_vector_schema(self) -> str:
        schema = self.vector_schema
        if schema is None:
            raise CatalogError("pgvector is not installed in this database (CREATE EXTENSION vector)")
        return schema

    @property
    def pinned_path(self) -> str:
        return path.pinned(self.vector_schema)

    @contextmanager
    def isolated(self) -> Iterator[None]:
        """What runs inside may fail and leave the caller's transaction usable: a savepoint when one is open
        (a statement that fails outside one aborts the application's transaction)."""
        if self.idle_autocommit:
            yield
            return
        with self.conn.transaction():
            yield

    @property
    def in_transaction(self) -> bool:
        return self.conn.pgconn.transaction_status != TransactionStatus.IDLE

    @property
    def idle_autocommit(self) -> bool:
        """No transaction of the application's is open, and none opens by itself: pgembed may commit in steps
        and use other connections (which would not see uncommitted rows)."""
        return self.conn.autocommit and not self.in_transaction

    def statement(self, pieces: tuple[str, ...]) -> bytes:
        """A statement the server built as pieces (pgembed.statements.compose), in this connection's encoding."""
        conn = self.conn
        reported = conn.pgconn.parameter_status(b"client_encoding")
        if reported != self._encoding[0]:
            self._encoding = (reported, conn.info.encoding)
        return statement_bytes(pieces, self._encoding[1])

    def execute(self, statement: Statement, params: Any = None) -> psycopg.Cursor[Any]:
        self._check_thread()
        conn = self.conn
        self._check_search_path(conn)
        return conn.execute(statement, params)  # type: ignore[arg-type]

    def _check_search_path(self, conn: psycopg.Connection) -> None:
        """Refuse a session whose search_path names a schema before pg_catalog (pgembed.statements.search_path);
        read from libpq's report (PostgreSQL 18 reports search_path), so no round trip."""
        reported = conn.pgconn.parameter_status(b"search_path")
        if reported is None or reported == self._safe_path:
            return
        text = reported.decode("utf-8", "replace")
        schema = path.shadowing_schema(text)
        if schema is not None:
            raise InvalidInputError(
                f"search_path is {text!r}: it names {schema!r} before pg_catalog, so that schema's operators, "
                "functions and types would take the place of the built-in ones in pgembed's statements. Put "
                "pg_catalog first, or leave it out (PostgreSQL then searches it first)")
        self._safe_path = reported

    def rows(self, statement: Statement, params: Any = None) -> list[tuple[Any, ...]]:
        return self.execute(statement, params).fetchall()

    def row(self, statement: Statement, params: Any = None) -> tuple[Any, ...] | None:
        return self.execute(statement, params).fetchone()

    def value(self, statement: Statement, params: Any = None) -> Any:
        """The first column of the one row a statement returns (an aggregate, a setting)."""
        row = self.row(statement, params)
        if row is None:
            raise CatalogError(f"expected a row from {statement!r}, got none")
        return row[0]

    def read_scoped(self, statement: Statement, params: Any) -> list[tuple[Any, ...]]:
        """Rows of a read-only statement that sets pgvector's settings for itself (a plan's index statement).
        In autocommit with no transaction open they end with the statement; otherwise it runs in a savepoint
        rolled back afterwards, so that they do not outlive it (pipelined: still one round trip)."""
        if self.idle_autocommit:
            return self.rows(statement, params)
        with self.conn.pipeline(), self.conn.transaction(force_rollback=True):
            return self.rows(statement, params)

    @property
    def conninfo(self) -> str:
        return self.conn.info.dsn

    @property
    def password(self) -> str | None:
        return self.conn.info.password or None

    def new_connection(self) -> psycopg.Connection:
        """Another connection to the same database, in autocommit, with pgvector's adapters."""
        conn = psycopg.connect(self.conninfo, password=self.password, autocommit=True)
        register_vector(conn)
        return conn
