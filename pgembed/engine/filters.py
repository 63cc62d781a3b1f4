"""Filters compiled by the server's one compiler of the filter language (pgembed.filter_sql), and the
server's refusals of filters and knobs turned into pgembed's errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from pgembed.db.session import Session
from pgembed.engine.context import CollectionContext
from pgembed.errors import CollectionNotFoundError, InvalidFilterError, InvalidInputError, SchemaError
from pgembed.planning.filters import Filter
from pgembed.statements.search import COMPILE_FILTER


def compile_filter(ctx: CollectionContext, where: Filter) -> str:
    """The WHERE clause of a filter on the collection's table ("true" for none), cached by its identity."""
    return ctx.cached(("clause", where.identity), lambda: compile_on(ctx.session, ctx.info.table, where))


def compile_on(session: Session, table: sql.Identifier, where: Filter) -> str:
    """The WHERE clause of a filter on any table, compiled by the server now."""
    if where.clause is not None:
        return where.clause
    if where.json is None:
        return "true"
    try:
        with session.isolated():
            return str(session.value(COMPILE_FILTER, (table.as_string(session.conn), where.json)))
    except psycopg.errors.InvalidParameterValue as err:
        raise InvalidFilterError(err.diag.message_primary or str(err)) from None
    except psycopg.errors.UndefinedTable as err:
        raise SchemaError(f"table {table.as_string(session.conn)} does not exist") from err


@contextmanager
def server_refusals(ctx: CollectionContext, where: Filter) -> Iterator[None]:
    """Errors the server's planner raises, as pgembed's: a bad filter (InvalidFilterError), a knob out of its
    range or an unknown column (InvalidInputError), a codec or tuning the plan needs and lacks (SchemaError), a
    collection dropped elsewhere (CollectionNotFoundError).
    The planner reports all bad input as SQLSTATE 22023; the filter alone is compiled again to tell which.
    What runs inside is isolated (Session.isolated): a refusal leaves the caller's transaction usable."""
    try:
        with ctx.session.isolated():
            yield
    except psycopg.errors.InvalidParameterValue as err:
        message = err.diag.message_primary or str(err)
        if where.json is not None:
            compile_filter(ctx, where)  # raises InvalidFilterError when the filter is what the server refused
        raise InvalidInputError(message) from None
    except psycopg.errors.ObjectNotInPrerequisiteState as err:
        raise SchemaError(err.diag.message_primary or str(err)) from None
    except psycopg.errors.UndefinedObject as err:  # the collection was dropped elsewhere
        raise CollectionNotFoundError(err.diag.message_primary or str(err)) from None
