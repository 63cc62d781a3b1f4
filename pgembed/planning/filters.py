"""Search filters on their way to the server, and what makes two filters the same filter.

A filter is a dict in pgembed's filter language (MongoDB-like; the language and its one compiler are
pgembed.filter_sql, sql/functions/filters.sql) or a SQLAlchemy expression over the table's columns
(`sqlalchemy.text()` for raw SQL, asked for by name; a plain string is refused):

    {"category": "news", "year": {"$gte": 2020}, "$or": [{"lang": "en"}, {"lang": None}]}
    sqlalchemy.and_(Doc.category == "news", Doc.year >= 2020)

Here a dict becomes canonical JSON (keys sorted, numbers by value, Python's dates, decimals, tuples and numpy
scalars as JSON has them), which the server compiles; a SQLAlchemy expression becomes the text of its WHERE
clause, its values bound into it as literals by psycopg. Either way the result has an `identity`: equal
identities select the same rows, and the planner's cache, search_batch's groups and advise() all go by it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from sqlalchemy.dialects.postgresql import psycopg as sa_psycopg
from sqlalchemy.sql import ClauseElement, ColumnElement, TextClause
from sqlalchemy.types import Boolean, NullType

from pgembed.errors import InvalidFilterError

_DIALECT = sa_psycopg.dialect()
_PLACEHOLDER = re.compile(r"%%|%\((?P<name>[^)]*)\)s")


@dataclass(frozen=True)
class Filter:
    """A search filter ready for the server: `json`, a filter in the language (canonical JSON), or
    `clause`, the text of a WHERE clause compiled already; neither for no filter."""

    identity: str
    json: str | None = None
    clause: str | None = None

    def is_empty(self) -> bool:
        return not self.identity

    @property
    def doc(self) -> dict[str, Any] | None:
        """The filter in the language, as Python data (what a partial index's predicate keeps)."""
        return json.loads(self.json) if self.json is not None else None


NO_FILTER = Filter("")


def as_filter(where: Any) -> Filter:
    """`where`: None, a dict in the filter language, a SQLAlchemy expression (or sqlalchemy.text()), or a
    Filter. The dict's values must be what JSON can hold (and Python's dates, decimals, UUIDs, tuples and
    numpy scalars); what the language makes of them is the server's to check."""
    if where is None:
        return NO_FILTER
    if isinstance(where, Filter):
        return where
    if type(where) is dict:  # the common case first (a subclass may read its items otherwise: the full path)
        return _from_dict(where)
    clause = _sqlalchemy_clause(where)
    if clause is not None:
        text = _render_sqlalchemy(clause)
        return Filter("sql:" + text, clause=text)
    if not isinstance(where, Mapping):
        raise InvalidFilterError(
            "a filter must be None, a dict such as {'year': {'$gte': 2020}}, or a SQLAlchemy expression "
            f"(a raw SQL string is not accepted: wrap it in sqlalchemy.text()); got {type(where).__name__}"
        )
    return _from_mapping(where)


# Flat dicts of plain scalars (most searches' filters) seen already, by their items and the items' types (1 and
# True are equal keys but not the same filter): a search in steady state skips canonical_json. Only a dict the
# full path accepted is kept, so a refused one is refused again on every call.
_SCALARS = frozenset({str, int, float, bool, type(None)})
_SEEN: dict[tuple[Any, ...], Filter] = {}
_SEEN_ENTRIES = 512


def _from_dict(where: dict[str, Any]) -> Filter:
    key: list[Any] = []
    for name, value in where.items():
        if value.__class__ not in _SCALARS:
            return _from_mapping(where)
        key += (name, value.__class__, value)
    seen = tuple(key)
    found = _SEEN.get(seen)
    if found is None:
        found = _from_mapping(where)
        if len(_SEEN) >= _SEEN_ENTRIES:
            _SEEN.clear()
        _SEEN[seen] = found
    return found


def _from_mapping(where: Mapping[str, Any]) -> Filter:
    if not where:
        return NO_FILTER
    text = canonical_json(where)
    return Filter("json:" + text, json=text)


def filter_identity(where: Any) -> str:
    """What makes two filters the same: "" for none, else a canonical text (see the module docstring)."""
    return as_filter(where).identity


def same_value(a: Any, b: Any) -> bool:
    """Equal as the filter language compares values: numbers by value (2020 == 2020.0), booleans apart."""
    return canonical_json(a) == canonical_json(b)


# -- dicts: canonical JSON --------------------------------------------------------------------------------
def canonical_json(value: Any) -> str:
    """`value` as JSON with keys sorted, numbers written by value (2020.0 and Decimal('2020.00') as 2020),
    no spaces: equal texts for equal filters. Refuses what JSON cannot hold, naming where it is."""
    return _canonical(value, "")


def _canonical(value: Any, path: str) -> str:
    if isinstance(value, str):  # the common case first
        if "\x00" in value:
            raise InvalidFilterError(f"filter value{_at(path)} contains a NUL character, which PostgreSQL text "
                                     "cannot hold")
        return _string(value)
    if value is None or isinstance(value, bool | np.bool_):
        return "null" if value is None else "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating | Decimal):
        return _number(value, path)
    if isinstance(value, dt.date | dt.time):  # datetime is a date
        return json.dumps(value.isoformat())
    if isinstance(value, uuid.UUID):
        return json.dumps(str(value))
    if isinstance(value, Mapping):
        items = []
        for key in value:
            if not isinstance(key, str):
                raise InvalidFilterError(f"filter keys must be strings (column names or operators), got {key!r}"
                                         f"{_at(path)}")
            if "\x00" in key:
                raise InvalidFilterError(f"filter key {key!r}{_at(path)} contains a NUL character: no column "
                                         "name holds one")
            items.append((key, _canonical(value[key], f"{path}.{key}" if path else key)))
        return "{" + ",".join(f"{_string(k)}:{v}" for k, v in sorted(items)) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_canonical(v, f"{path}[{i}]") for i, v in enumerate(value)) + "]"
    raise InvalidFilterError(f"filter value{_at(path)} is a {type(value).__name__}, which a filter cannot hold "
                             "(use strings, numbers, booleans, null, dates, lists and dicts)")


def _string(text: str) -> str:
    # What json.dumps writes for printable ASCII without a quote or backslash, without its cost (a search's
    # filter is made canonical on every call).
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'
    return json.dumps(text, ensure_ascii=False)


def _number(value: float | np.floating | Decimal, path: str) -> str:
    number = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    if not number.is_finite():
        raise InvalidFilterError(f"filter value{_at(path)} is {value!r}: filters take finite numbers")
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _at(path: str) -> str:
    return f" at {path!r}" if path else ""


# -- SQLAlchemy expressions -----------------------------------------------------------------------------------
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


def _render_sqlalchemy(clause: ClauseElement) -> str:
    """The WHERE clause text of a SQLAlchemy boolean expression: column names unqualified (as dict filters
    leave them), "IN" lists expanded, and each bound value written as psycopg's literal of it."""
    if not isinstance(clause, ColumnElement | TextClause):
        raise InvalidFilterError(
            "a SQLAlchemy filter must be a boolean expression or sqlalchemy.text(), "
            f"got {type(clause).__name__}"
        )
    if isinstance(clause, ColumnElement) and not isinstance(clause.type, Boolean | NullType):
        raise InvalidFilterError(f"a SQLAlchemy filter must be a boolean expression, got one of type {clause.type}")
    compiled = clause.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True, "include_table": False})
    params = dict(compiled.params)
    parts: list[sql.Composable] = []
    at = 0
    for match in _PLACEHOLDER.finditer(compiled.string):
        parts.append(sql.SQL(compiled.string[at : match.start()]))
        name = match.group("name")
        if name is None:
            parts.append(sql.SQL("%"))
        elif name not in params:
            raise InvalidFilterError(f"the SQLAlchemy filter refers to parameter {name!r}, which has no value")
        else:
            parts.append(sql.Literal(params[name]))
        at = match.end()
    parts.append(sql.SQL(compiled.string[at:]))
    # The text is SQLAlchemy's rendering of the caller's own expression objects; values are psycopg literals.
    try:
        return sql.Composed(parts).as_string(None)
    except psycopg.ProgrammingError as err:  # a value psycopg has no SQL literal for (a dict, an object)
        raise InvalidFilterError(f"a value of the SQLAlchemy filter cannot be written as SQL: {err}") from None
