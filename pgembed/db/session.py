"""pgembed on one psycopg connection: transactions that nest into the application's, statements run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.pq import TransactionStatus

from pgembed.errors import CatalogError
from pgembed.statements import introspection
from pgembed.statements import search_path as path

Statement = sql.Composable | str


class Session:
    """A connection as pgembed uses it. Every operation runs inside `transaction()`: its own transaction
    when the connection is idle, a savepoint inside the application's transaction otherwise."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._vector_schema: str | None = None

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        with self.conn.transaction():
            yield self.conn

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
        return self.conn.info.transaction_status != TransactionStatus.IDLE

    @property
    def idle_autocommit(self) -> bool:
        """No transaction of the application's is open, and none opens by itself: pgembed may commit in steps
        and use other connections (which would not see uncommitted rows)."""
        return self.conn.autocommit and not self.in_transaction

    def execute(self, statement: Statement, params: Any = None) -> psycopg.Cursor[Any]:
        return self.conn.execute(statement, params)  # type: ignore[arg-type]

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
