"""The filter language of hybrid search: a MongoDB-like dict (or a SQLAlchemy expression) -> a WHERE clause.

    {"category": "news", "year": {"$gte": 2020}, "$or": [{"lang": "en"}, {"lang": None}]}

Several keys at one level are ANDed; a bare value means $eq, None means IS NULL. Operators: $eq $ne $lt $lte
$gt $gte $in $nin $between ([lo, hi], inclusive) $exists; logical $and / $or (non-empty lists) and $not.
Semantics are two-valued, as MongoDB's: comparisons with a NULL column value are false, $ne and $nin are true
for NULL column values, $not f is true whenever f is not true; $in [] matches nothing, $nin [] everything.

sql/0003_filters.up.sql implements the same language in PL/pgSQL (pgembed.filter_sql(regclass, jsonb));
both select the same rows and reject the same filters (tests/test_filters.py holds them to it).

Nothing from a filter reaches SQL text unchecked: column names are looked up in the catalogs and then
quoted as identifiers, values become literals (cast, where needed, to the column's type as the server's
format_type() spells it).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from sqlalchemy.dialects.postgresql import psycopg as sa_psycopg
from sqlalchemy.sql import ClauseElement, ColumnElement, TextClause
from sqlalchemy.types import Boolean, NullType

from pgembed.errors import InvalidFilterError, SchemaError

COMPARISONS = {"$eq": "=", "$ne": "<>", "$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">="}
OPERATORS = (*COMPARISONS, "$in", "$nin", "$between", "$exists")
LOGICAL = ("$and", "$or", "$not")
MAX_DEPTH = 32  # nesting of $and / $or / $not; the SQL compiler has the same limit
PARAM_PREFIX = "f_"
_INT8 = (-(2**63), 2**63 - 1)
_TRUE = sql.SQL("true")
_FALSE = sql.SQL("false")


class ColumnType(NamedTuple):
    type: str  # format_type(atttypid, atttypmod) as the server spells it, e.g. "character varying(20)"
    category: str  # pg_type.typcategory: N numeric, S string, B boolean, D date/time, others passed to casts


@dataclass(frozen=True)
class CastCheck:
    """A value the server must cast to a column's type; check_filter() tries it before the search runs."""

    column: str
    operator: str
    text: str
    type: str


@dataclass(frozen=True)
class Filter:
    """A boolean SQL expression over the table's columns (unqualified names), and its parameters.

    `clause` is pyformat text, as psycopg reads a statement executed with parameters (a literal '%' appears
    as '%%'): compose it into your statement and execute with a mapping, `{**filter.params, **yours}`,
    even when that mapping is empty. The parameter names all start with "f_".
    """

    clause: sql.Composable
    params: dict[str, Any] = field(default_factory=dict)
    casts: tuple[CastCheck, ...] = ()

    def is_empty(self) -> bool:
        return self.clause == _TRUE and not self.params


EMPTY = Filter(_TRUE)


class _Pyformat(sql.Composable):
    """A Composable rendered with its '%' signs doubled, for statements executed with parameters.

    Without it a value such as '50%' or '%(q)s' inside a literal would be read by psycopg as a placeholder.
    """

    def as_bytes(self, context: Any = None) -> bytes:
        return bytes(self._obj.as_bytes(context)).replace(b"%", b"%%")


# -- the catalog ------------------------------------------------------------------------------------------
def table_column_types(conn: psycopg.Connection, table: sql.Identifier) -> dict[str, ColumnType]:
    """Column name -> (format_type text, typcategory) of every live user column of `table`."""
    try:
        rows = conn.execute(
            """SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory
               FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
               WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum""",
            (table.as_string(conn),),
        ).fetchall()
    except psycopg.errors.UndefinedTable as err:
        raise SchemaError(f"table {table.as_string(conn)} does not exist") from err
    return {name: ColumnType(type_text, str(category)) for name, type_text, category in rows}


# -- entry points ---------------------------------------------------------------------------------------------
def build_filter(conn: psycopg.Connection, table: sql.Identifier, where: Any) -> Filter:
    """compile_filter against `table`'s columns, then check_filter: every error is raised here, not later."""
    columns = table_column_types(conn, table) if isinstance(where, dict) and where else {}
    result = compile_filter(where, columns)
    check_filter(conn, result)
    return result


def compile_filter(where: Any, columns: Mapping[str, ColumnType]) -> Filter:
    """`where`: None, a dict in the filter language, a SQLAlchemy expression (or sqlalchemy.text()), a Filter.

    `columns` comes from table_column_types(). Values the server casts to a column's type (date/time
    strings, values for columns of other categories) are only checked by check_filter() (build_filter
    calls it); without that check a bad one fails when the statement runs.
    """
    if where is None:
        return EMPTY
    if isinstance(where, Filter):
        return where
    clause = _sqlalchemy_clause(where)
    if clause is not None:
        return _compile_sqlalchemy(clause)
    if not isinstance(where, dict):
        raise InvalidFilterError(
            "a filter must be None, a dict such as {'year': {'$gte': 2020}}, or a SQLAlchemy expression "
            f"(a raw SQL string is not accepted: wrap it in sqlalchemy.text()); got {type(where).__name__}"
        )
    if not where:
        return EMPTY
    casts: list[CastCheck] = []
    composed = _node(where, columns, 0, casts)
    if composed == _TRUE and not casts:  # e.g. {"n": {"$nin": []}}: no filter, as pgembed.filter_sql says
        return EMPTY
    return Filter(_Pyformat(composed), {}, tuple(casts))


def check_filter(conn: psycopg.Connection, result: Filter) -> None:
    """Have the server cast every value that needs its column's type; a failure names the column."""
    for cast in result.casts:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("SELECT {}::{}").format(sql.Literal(cast.text), sql.SQL(cast.type)))
        except psycopg.errors.DataError as err:
            raise InvalidFilterError(
                f"column {cast.column!r} ({cast.type}): {cast.operator} value {cast.text!r} is not a valid "
                f"{cast.type}: {err.diag.message_primary}"
            ) from err


# -- dict filters ---------------------------------------------------------------------------------------------
def _kind(value: Any) -> str:
    """A value's kind in JSON's words, as the SQL compiler reports jsonb values."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _and(parts: list[sql.Composable]) -> sql.Composable:
    if not parts:
        return _TRUE
    if len(parts) == 1:
        return parts[0]
    return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))


def _node(node: Any, columns: Mapping[str, ColumnType], depth: int, casts: list[CastCheck]) -> sql.Composable:
    if depth > MAX_DEPTH:
        raise InvalidFilterError(f"filter nested deeper than {MAX_DEPTH} levels of $and/$or/$not")
    if not isinstance(node, dict):
        raise InvalidFilterError(f"a filter must be an object (dict), got {_kind(node)}")
    parts: list[sql.Composable] = []
    for key, value in node.items():
        if not isinstance(key, str):
            raise InvalidFilterError(f"filter keys must be strings (column names or operators), got {key!r}")
        if key in ("$and", "$or"):
            if not isinstance(value, list | tuple) or not value:
                raise InvalidFilterError(f"{key} needs a non-empty array of filters, got {_kind(value)}")
            subs = []
            for element in value:
                if not isinstance(element, dict):
                    raise InvalidFilterError(f"{key} needs an array of filter objects, got an element {_kind(element)}")
                subs.append(_node(element, columns, depth + 1, casts))
            joiner = " AND " if key == "$and" else " OR "
            parts.append(sql.SQL("({})").format(sql.SQL(joiner).join(subs)))
        elif key == "$not":
            if not isinstance(value, dict):
                raise InvalidFilterError(f"$not needs a filter object, got {_kind(value)}")
            parts.append(sql.SQL("NOT coalesce({}, false)").format(_node(value, columns, depth + 1, casts)))
        elif key.startswith("$"):
            raise InvalidFilterError(
                f"unknown operator {key!r} where a column name or {', '.join(LOGICAL)} is expected"
            )
        else:
            column = columns.get(key)
            if column is None:
                raise InvalidFilterError(f"unknown column {key!r} in filter")
            parts.append(_column(key, column, value, casts))
    return _and(parts)


def _column(name: str, column: ColumnType, spec: Any, casts: list[CastCheck]) -> sql.Composable:
    if not isinstance(spec, dict):
        return _operator(name, column, "$eq", spec, casts)
    if not spec:
        raise InvalidFilterError(f"column {name!r}: empty operator object")
    return _and([_operator(name, column, op, arg, casts) for op, arg in spec.items()])


def _operator(name: str, column: ColumnType, op: Any, arg: Any, casts: list[CastCheck]) -> sql.Composable:
    ident = sql.Identifier(name)
    if op in ("$eq", "$ne") and arg is None:
        return sql.SQL("{} IS NULL" if op == "$eq" else "{} IS NOT NULL").format(ident)
    if op == "$eq":
        return sql.SQL("{} = {}").format(ident, _value(name, column, op, arg, casts))
    if op == "$ne":
        return sql.SQL("({} IS NULL OR {} <> {})").format(ident, ident, _value(name, column, op, arg, casts))
    if op in COMPARISONS:
        return sql.SQL("{} {} {}").format(ident, sql.SQL(COMPARISONS[op]), _value(name, column, op, arg, casts))
    if op in ("$in", "$nin"):
        if not isinstance(arg, list | tuple):
            raise InvalidFilterError(f"column {name!r}: {op} needs an array of values, got {_kind(arg)}")
        with_null = any(item is None for item in arg)
        items = [_value(name, column, op, item, casts) for item in arg if item is not None]
        listed = sql.SQL(", ").join(items)
        if op == "$in":
            if not items:
                return sql.SQL("{} IS NULL").format(ident) if with_null else _FALSE
            if not with_null:
                return sql.SQL("{} IN ({})").format(ident, listed)
            template = "({} IS NULL OR {} IN ({}))"
        else:
            if not items:
                return sql.SQL("{} IS NOT NULL").format(ident) if with_null else _TRUE
            template = "({} IS NOT NULL AND {} NOT IN ({}))" if with_null else "({} IS NULL OR {} NOT IN ({}))"
        return sql.SQL(template).format(ident, ident, listed)
    if op == "$between":
        if not isinstance(arg, list | tuple) or len(arg) != 2:
            raise InvalidFilterError(f"column {name!r}: $between needs an array [low, high], got {_describe(arg)}")
        low, high = (_value(name, column, op, bound, casts) for bound in arg)
        return sql.SQL("{} BETWEEN {} AND {}").format(ident, low, high)
    if op == "$exists":
        if not isinstance(arg, bool):
            raise InvalidFilterError(f"column {name!r}: $exists needs true or false, got {_kind(arg)}")
        return sql.SQL("{} IS NOT NULL" if arg else "{} IS NULL").format(ident)
    raise InvalidFilterError(f"column {name!r}: unknown operator {op!r} (use {', '.join(OPERATORS)})")


def _describe(value: Any) -> str:
    kind = _kind(value)
    return f"an array of {len(value)}" if kind == "array" else kind


def _value(name: str, column: ColumnType, op: str, value: Any, casts: list[CastCheck]) -> sql.Composable:
    """The SQL literal of one value compared with column `name`, after checking it suits the column's type."""
    where = f"column {name!r} ({column.type}): {op}"
    if value is None:
        raise InvalidFilterError(f"{where} needs a non-null value")
    if isinstance(value, str) and "\x00" in value:
        raise InvalidFilterError(f"{where} value contains a NUL character, which PostgreSQL text cannot hold")
    category = column.category
    if category == "N":
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise InvalidFilterError(f"{where} needs a number, got {_kind(value)}")
        if isinstance(value, int):
            text, cast = str(value), "bigint" if _INT8[0] <= value <= _INT8[1] else "numeric"
        else:
            if not math.isfinite(value):
                raise InvalidFilterError(f"{where} needs a finite number, got {value!r}")
            text, cast = (repr(value) if isinstance(value, float) else str(value)), "numeric"
        # Compared as numbers, never cast to the column's type (2.5 must not become 3 for an integer column).
        return sql.SQL("{}::{}").format(sql.Literal(text), sql.SQL(cast))
    if category == "B":
        if not isinstance(value, bool):
            raise InvalidFilterError(f"{where} needs true or false, got {_kind(value)}")
        return sql.Literal(value)
    if category == "S":
        if not isinstance(value, str):
            raise InvalidFilterError(f"{where} needs a string, got {_kind(value)}")
        # Untyped: the column's own type (and collation) decides; a cast to varchar(n) would truncate.
        return sql.Literal(value)
    if category == "D":
        if isinstance(value, dt.date | dt.time):
            text = value.isoformat()
        elif isinstance(value, str):
            text = value
        else:
            raise InvalidFilterError(f"{where} needs a date/time or an ISO 8601 string, got {_kind(value)}")
    else:
        if not isinstance(value, str):
            raise InvalidFilterError(
                f"{where} needs a string (PostgreSQL casts it to {column.type}), got {_kind(value)}"
            )
        text = value
    casts.append(CastCheck(name, op, text, column.type))
    # column.type is format_type() output read from the catalogs, never text from the filter.
    return sql.SQL("{}::{}").format(sql.Literal(text), sql.SQL(column.type))


# -- SQLAlchemy expressions -----------------------------------------------------------------------------------
_DIALECT = sa_psycopg.dialect()
_PLACEHOLDER = re.compile(r"%%|%\((?P<name>[^)]*)\)s")


def _sqlalchemy_clause(where: Any) -> ClauseElement | None:
    """`where` as a SQLAlchemy clause (ORM attributes unwrapped), or None when it is not SQLAlchemy's."""
    if isinstance(where, ClauseElement):
        return where
    clause_element = getattr(where, "__clause_element__", None)
    if callable(clause_element) and not isinstance(where, type):
        element = clause_element()
        if isinstance(element, ClauseElement):
            return element
    return None


def _compile_sqlalchemy(clause: ClauseElement) -> Filter:
    if not isinstance(clause, ColumnElement | TextClause):
        raise InvalidFilterError(
            "a SQLAlchemy filter must be a boolean expression or sqlalchemy.text(), "
            f"got {type(clause).__name__}"
        )
    if isinstance(clause, ColumnElement) and not isinstance(clause.type, Boolean | NullType):
        raise InvalidFilterError(f"a SQLAlchemy filter must be a boolean expression, got one of type {clause.type}")
    # Values stay bound parameters (no literal_binds); "IN" lists are expanded into one parameter each, and
    # column names are left unqualified, as dict filters leave them.
    compiled = clause.compile(
        dialect=_DIALECT, compile_kwargs={"render_postcompile": True, "include_table": False}
    )
    params = dict(compiled.params)
    used: set[str] = set()

    def rename(match: re.Match[str]) -> str:
        name = match.group("name")
        if name is None:
            return match.group(0)
        if name not in params:
            raise InvalidFilterError(f"the SQLAlchemy filter refers to parameter {name!r}, which has no value")
        used.add(name)
        return f"%({PARAM_PREFIX}{name})s"

    text = _PLACEHOLDER.sub(rename, compiled.string)
    # The text is SQLAlchemy's rendering of the caller's own expression objects; values are parameters.
    return Filter(sql.SQL(text), {f"{PARAM_PREFIX}{name}": params[name] for name in used})
