"""The search_path pgembed's code runs under: the one definition of it.

A caller's search_path may name schemas that other roles can create objects in; anything resolved through it
(pgvector's operators and functions, a type, a function called by name) could then be theirs, run with the
caller's rights. So every function of pgembed's whose body is resolved when it runs is pinned to this path
(`pgembed._pin_search_paths`, after every (re)application of the function files; the generated triggers in their
own DDL), every transaction pgembed opens runs under it (`Session.transaction`), and the statements a search
runs in the caller's session name pgvector's operators and types by their schema (sql/functions/statements.sql).
pg_temp is last: otherwise PostgreSQL searches it first for relations and functions.

A search's own statements run under the caller's path, since its filter names the caller's columns and types.
PostgreSQL searches pg_catalog first unless the path names it; a path that names another schema before it would
resolve the built-in operators of those statements (=, <, a cast) through that schema, so pgembed refuses to
run under one (`shadowing_schema`, checked by pgembed.db.session.Session on every statement).
"""

from __future__ import annotations

import csv

from psycopg import sql


def pinned(vector_schema: str | None) -> str:
    """pg_catalog, pgembed, pgvector's schema (where it is installed), pg_temp last."""
    vector = [sql.Identifier(vector_schema).as_string(None)] if vector_schema else []
    return ", ".join(["pg_catalog", "pgembed", *vector, "pg_temp"])


# For the rest of the transaction (or until restored): the path in force before, and the pinned one set.
PIN = sql.SQL("SELECT current_setting('search_path'), set_config('search_path', %s, true)")
RESTORE = sql.SQL("SELECT set_config('search_path', %s, true)")
# Every function of pgembed's schemas whose body is resolved when it runs (sql/functions/catalog.sql).
PIN_FUNCTIONS = sql.SQL("SELECT pgembed._pin_search_paths(%s)")


def shadowing_schema(path: str) -> str | None:
    """The first schema `path` (search_path as the server reports it) names before pg_catalog, or None."""
    # The server's form: names joined by ", ", quoted as identifiers ("" for a quote), which is CSV's.
    names = [name.strip() for name in next(csv.reader([path], skipinitialspace=True), [])]
    if "pg_catalog" not in names:
        return None
    before = names[:names.index("pg_catalog")]
    return before[0] if before else None
