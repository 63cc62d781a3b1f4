"""Composing SQL text the server built (a compiled filter, a plan's statement) into statements psycopg runs."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from psycopg import sql
from psycopg.adapt import PyFormat

# The query vectors travel in pgvector's binary format: exact, and parsed without a float's text (1,000 384-d
# queries: 0.36 s for a probed batch against 0.63 s as text, measured).
BINARY_PARAMETERS = frozenset({"q", "qs"})


class Pyformat(sql.Composable):
    """SQL text with its '%' signs doubled, for a statement executed with parameters: without it a value
    such as '50%' or '%(q)s' inside a literal would be read by psycopg as a placeholder."""

    def __init__(self, text: str) -> None:
        super().__init__(text)

    def as_bytes(self, context: Any = None) -> bytes:
        return bytes(sql.SQL(self._obj).as_bytes(context)).replace(b"%", b"%%")


def from_pieces(pieces: Sequence[str]) -> sql.Composed:
    """A statement the server built as pieces (sql/functions/statements.sql): SQL text at even offsets,
    parameter names at odd ones, which become psycopg placeholders."""
    return sql.Composed([Pyformat(p) if i % 2 == 0 else placeholder(p) for i, p in enumerate(pieces)])


def placeholder(name: str) -> sql.Placeholder:
    """A named parameter: binary for the query vectors (BINARY_PARAMETERS), psycopg's choice for the rest."""
    return sql.Placeholder(name, PyFormat.BINARY if name in BINARY_PARAMETERS else PyFormat.AUTO)


@lru_cache(maxsize=1024)
def statement_bytes(pieces: tuple[str, ...], encoding: str) -> bytes:
    """from_pieces, rendered once per client encoding (a Python codec name, as psycopg's conn.info.encoding
    gives it): a search runs the same few statements over and over, and composing one anew cost a good part
    of what a small exact query costs the server."""
    return from_pieces(pieces).as_string(None).encode(encoding)


def clause(text: str) -> sql.Composable:
    """A compiled WHERE clause, to compose into a statement executed with parameters."""
    return Pyformat(text)


def literal_clause(text: str) -> sql.SQL:
    """A compiled WHERE clause, to compose into a statement executed without parameters (COPY)."""
    return sql.SQL(text)


def after_key(key: sql.Composable, key_type: str, first: bool) -> sql.Composable:
    """The keys after %(after)s, or every key for the first batch of a pass. Two statements, not one with
    `%(after)s IS NULL OR ...`: a prepared statement's generic plan cannot use the key's index for that, and
    every batch would scan the table from its first key (a backfill quadratic in the table's size)."""
    if first:
        return sql.SQL("TRUE")
    return sql.SQL("{} > %(after)s::{}").format(key, sql.SQL(key_type))
