"""What PostgreSQL's system catalogs say about a user's table. Every identifier a user hands pgembed (table,
column, type) is resolved here before any DDL uses it, and then only through psycopg.sql.Identifier."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from pgembed.db.session import Session
from pgembed.errors import SchemaError
from pgembed.statements import introspection as q


@dataclass(frozen=True)
class Column:
    name: str
    type_name: str  # pg_type.typname, e.g. "int8", "text", "vector"
    typmod: int  # a vector's declared dimension; -1 when none
    formatted: str  # format_type(), e.g. "character varying(20)"
    category: str  # pg_type.typcategory
    is_vector: bool  # pgvector's `vector`


@dataclass(frozen=True)
class Table:
    oid: int
    schema: str
    name: str


def table_columns(session: Session, table: sql.Identifier) -> dict[str, Column]:
    """Every live user column of `table`, in order."""
    try:
        rows = session.rows(q.TABLE_COLUMNS, (table.as_string(session.conn),))
    except psycopg.errors.UndefinedTable as err:
        raise SchemaError(f"table {table.as_string(session.conn)} does not exist") from err
    return {name: Column(name, typname, typmod, formatted, str(category), bool(is_vector))
            for name, typname, typmod, formatted, category, is_vector in rows}


def resolve_table(session: Session, table: str) -> Table:
    """An existing ordinary or partitioned table; `table` is parsed as SQL would parse it."""
    try:
        row = session.row(q.RESOLVE_TABLE, (table,))
    except (psycopg.errors.DataError, psycopg.errors.SyntaxError) as err:  # empty, or too many dots
        raise SchemaError(f"invalid table name {table!r}: {err}") from err
    if row is None:
        raise SchemaError(f"table {table!r} does not exist")
    oid, schema, name, relkind = row
    if relkind not in ("r", "p"):
        raise SchemaError(f"{table!r} is not a table (relkind {relkind!r})")
    return Table(oid, schema, name)


def unique_columns(session: Session, table: Table) -> tuple[str | None, set[str]]:
    """(the primary key column if single-column, every column with a non-partial single-column unique index)."""
    rows = session.rows(q.UNIQUE_COLUMNS, (table.oid,))
    primary = next((name for name, is_primary in rows if is_primary), None)
    return primary, {name for name, _ in rows}


def resolve_type(session: Session, type_name: str) -> str:
    """The canonical spelling of a PostgreSQL type (format_type quotes what needs quoting), or SchemaError.

    Column types cannot be Identifiers (they carry modifiers such as varchar(20)); resolving them through the
    server first is what keeps a hostile string from ever reaching DDL."""
    try:
        row = session.row(q.RESOLVE_TYPE, {"t": type_name})
    except (psycopg.errors.SyntaxError, psycopg.errors.DataError) as err:
        raise SchemaError(f"unknown column type {type_name!r}: {err.diag.message_primary}") from err
    if row is None or row[0] is None:
        raise SchemaError(f"unknown column type {type_name!r}")
    return str(row[0])


def index_sizes(session: Session, table: sql.Identifier) -> dict[str, int]:
    return {name: int(size) for name, size in session.rows(q.INDEX_SIZES, (table.as_string(session.conn),))}


def table_size(session: Session, table: sql.Identifier) -> int:
    return int(session.value(q.TABLE_SIZE, (table.as_string(session.conn),)))
