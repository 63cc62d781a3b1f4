"""Codec encoders in SQL: what a codec's sql_encoder() names (pgembed.codecs.base.SqlCall), spelled out."""

from __future__ import annotations

from psycopg import sql

from pgembed.codecs import Source, SqlCall, SqlExpr


def render(expr: SqlExpr, source: sql.Composable) -> sql.Composable:
    """`expr` with `source` (an expression of type vector) where it says SOURCE, parameters as literals."""
    if isinstance(expr, Source):
        return source
    args = [render(a, source) if isinstance(a, Source | SqlCall) else sql.Literal(a) for a in expr.args]
    return sql.SQL("{}({})").format(sql.Identifier(*expr.function.split(".")), sql.SQL(", ").join(args))
