"""The connections a batch works on: the caller's, plus extra ones when asked for and allowed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pgembed.db.session import Session
from pgembed.engine.context import CollectionContext
from pgembed.errors import InvalidInputError


@contextmanager
def worker_contexts(ctx: CollectionContext, workers: int | None) -> Iterator[list[CollectionContext]]:
    """The caller's context, plus workers - 1 on connections of their own (new connections from the same DSN,
    without this session's state: SET ROLE, search_path, the settings row-level security reads). Extra
    connections only when the caller's connection is idle in autocommit: inside the application's
    transaction another connection would not see its uncommitted rows, so the batch runs on that one alone."""
    wanted = 1 if workers is None else workers
    if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 1:
        raise InvalidInputError(f"workers must be an integer of at least 1, got {workers!r}")
    extra: list[Session] = []
    try:
        if ctx.session.idle_autocommit:
            extra = [Session(ctx.session.new_connection()) for _ in range(wanted - 1)]
        yield [ctx, *(CollectionContext(session, ctx.info) for session in extra)]
    finally:
        for session in extra:
            session.conn.close()
