"""The connections a batch works on: the caller's, plus extra ones when asked for and allowed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pgembed.db.session import Session
from pgembed.engine.context import CollectionContext
from pgembed.errors import InvalidInputError
from pgembed.statements import introspection as q


@contextmanager
def worker_contexts(ctx: CollectionContext, workers: int | None) -> Iterator[list[CollectionContext]]:
    """The caller's context, plus workers - 1 on connections of their own (new connections from the same DSN).
    Extra connections only where they see what the caller's does: its connection idle in autocommit (inside
    the application's transaction another connection would not see its uncommitted rows), no SET ROLE in
    force, and no row-level security on the table (its policies may read this session's role or settings,
    which a new connection has not). Otherwise the batch runs on the caller's connection alone."""
    wanted = 1 if workers is None else workers
    if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 1:
        raise InvalidInputError(f"workers must be an integer of at least 1, got {workers!r}")
    extra: list[Session] = []
    try:
        if wanted > 1 and ctx.session.idle_autocommit and ctx.session.value(
                q.SAME_VIEW_ON_NEW_CONNECTIONS, (ctx.info.table.as_string(ctx.session.conn),)):
            extra = [Session(ctx.session.new_connection()) for _ in range(wanted - 1)]
        yield [ctx, *(CollectionContext(session, ctx.info) for session in extra)]
    finally:
        for session in extra:
            session.conn.close()
