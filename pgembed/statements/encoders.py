"""Codec encoders in SQL: what a codec's sql_encoder() names (pgembed.codecs.base.SqlCall), spelled out.

A fitted parameter (pgembed.codecs.base.Fitted) is spelled one of two ways. A statement sent carries it as a
literal. A generated function (a collection's trigger, query encoder, query tables) names it instead by its
codec version and digest, pgembed._fitted_vector(<version>, <digest>) and its siblings (sql/functions/codecs.sql),
and its value is a row of pgembed.fitted_parameters (migration 0010): PostgreSQL shows every function's body to
every role that can connect, the table's rows only to those who may use the collection's table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from psycopg import sql

from pgembed.codecs import Source, SqlCall, SqlExpr
from pgembed.codecs.base import Fitted, FittedType


def reader(sql_type: FittedType) -> str:
    """The reader of a parameter of this type (pgembed._fitted_vectors, ...: sql/functions/codecs.sql)."""
    return f"_fitted_{sql_type.name.lower()}"


def stored_column(sql_type: FittedType) -> str:
    """The column of pgembed.fitted_parameters that keeps a parameter of this type (as_vectors, ...)."""
    return f"as_{sql_type.name.lower()}"


def render(expr: SqlExpr, source: sql.Composable, *, stored_for: int | None = None) -> sql.Composable:
    """`expr` with `source` (an expression of type vector) where it says SOURCE, other values as literals; with
    `stored_for` (a codec version's id), fitted parameters as their readers' calls, for a function's body."""
    if isinstance(expr, Source):
        return source
    return sql.SQL("{}({})").format(sql.Identifier(*expr.function.split(".")),
                                    sql.SQL(", ").join(_argument(a, source, stored_for) for a in expr.args))


def render_fitted(parameter: Fitted, stored_for: int | None) -> sql.Composable:
    """A fitted parameter as a literal, or (with `stored_for`, a codec version's id) as its reader's call."""
    if stored_for is None:
        return sql.Literal(parameter.text)
    return sql.SQL("{}({}, {})").format(sql.Identifier("pgembed", reader(parameter.sql_type)), sql.Literal(stored_for),
                                        sql.Literal(digest(parameter)))


def _argument(arg: object, source: sql.Composable, stored_for: int | None) -> sql.Composable:
    if isinstance(arg, Source | SqlCall):
        return render(arg, source, stored_for=stored_for)
    if isinstance(arg, Fitted):
        return render_fitted(arg, stored_for)
    return sql.Literal(arg)


def fitted_parameters(expr: SqlExpr) -> Iterator[Fitted]:
    """The fitted parameters `expr` names, depth first."""
    if isinstance(expr, SqlCall):
        for arg in expr.args:
            if isinstance(arg, Fitted):
                yield arg
            elif isinstance(arg, SqlCall):
                yield from fitted_parameters(arg)


def digest(parameter: Fitted) -> str:
    return hashlib.sha256(f"{parameter.sql_type}:{parameter.text}".encode()).hexdigest()[:32]

