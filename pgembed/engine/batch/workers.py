"""The connections a batch works on: the caller's, plus extra ones when asked for, each seeing what the caller's
sees of the table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from pgembed.db.session import Session
from pgembed.engine.context import CollectionContext
from pgembed.errors import InvalidInputError
from pgembed.statements import introspection as q


@contextmanager
def worker_contexts(ctx: CollectionContext, workers: int | None) -> Iterator[list[CollectionContext]]:
    """The caller's context, plus workers - 1 on connections of their own (new connections from the same DSN).

    A worker carries the caller's view: the role in force (SET ROLE), the settings the session changed (SET),
    and the custom settings the table's row-level security policies read (current_setting('app.tenant')).
    Where row-level security applies, each worker's visible rows are then compared with the caller's (count and
    a digest of their keys): a policy that reads something else a worker cannot carry refuses the batch rather
    than answer from other rows. A login other than the DSN's (SET SESSION AUTHORIZATION) is refused too.
    Inside the application's transaction the batch runs on its connection alone (another connection would not
    see its uncommitted rows)."""
    wanted = 1 if workers is None else workers
    if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 1:
        raise InvalidInputError(f"workers must be an integer of at least 1, got {workers!r}")
    extra: list[Session] = []
    try:
        if wanted > 1 and ctx.session.idle_autocommit:
            view = _SessionView.of(ctx)
            for _ in range(wanted - 1):
                extra.append(Session(ctx.session.new_connection()))
                view.carry_to(ctx, extra[-1])
        yield [ctx, *(CollectionContext(session, ctx.info) for session in extra)]
    finally:
        for session in extra:
            session.conn.close()


@dataclass(frozen=True)
class _SessionView:
    """What decides which rows a session sees of a collection's table: its role and login, the settings to
    carry, and, where row-level security applies, what it sees (to compare a worker's with)."""

    role: str
    login: str
    settings: list[tuple[str, str]]
    visible: tuple[int, int] | None

    @classmethod
    def of(cls, ctx: CollectionContext) -> _SessionView:
        row = ctx.session.row(q.SESSION_VIEW, (ctx.info.table.as_string(ctx.session.conn),))
        assert row is not None
        role, login, rls, policy_settings = row
        settings = [(str(n), str(v)) for n, v in ctx.session.rows(q.SESSION_SETTINGS)]
        named = {n for n, _ in settings}
        settings += [(name, value) for name, value in policy_settings if name not in named]
        return cls(role, login, settings, _visible(ctx.session, ctx) if rls else None)

    def carry_to(self, ctx: CollectionContext, worker: Session) -> None:
        def refuse(why: str) -> InvalidInputError:
            return InvalidInputError(f"search_batch(workers > 1) on {ctx.info.qualified_name}: {why}; "
                                     "use workers=1, which runs on this connection")

        row = worker.row(q.SESSION_ROLES)
        assert row is not None
        current, login = row
        if login != self.login:
            raise refuse(f"a new connection logs in as {login!r}, this session as {self.login!r}")
        if current != self.role:
            try:
                worker.execute(q.set_role(self.role))
            except psycopg.Error as err:
                raise refuse(f"a new connection cannot SET ROLE {self.role!r} ({err.diag.message_primary})") from err
        for name, value in self.settings:
            try:
                worker.execute(q.SET_SESSION_SETTING, (name, value))
            except psycopg.Error as err:
                raise refuse(f"a new connection cannot set {name} as this session has it "
                             f"({err.diag.message_primary})") from err
        if self.visible is not None and _visible(worker, ctx) != self.visible:
            raise refuse("a new connection, with this session's role and settings, sees other rows of it under "
                         "its row-level security policies (they read something a connection cannot be given)")


def _visible(session: Session, ctx: CollectionContext) -> tuple[int, int]:
    row = session.row(q.visible_rows(ctx.info.table, ctx.info.key))
    assert row is not None
    return int(row[0]), int(row[1])
