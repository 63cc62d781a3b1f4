"""SQL functions generated from pgembed's vocabulary (pgembed.vocabulary), so that the server's statements
and Python read one definition: applied with the function files (pgembed.db.functions)."""

from __future__ import annotations

from psycopg import sql

from pgembed.vocabulary import Metric


def distance_operator_function() -> sql.Composed:
    """pgembed.distance_operator(metric): pgvector's operator for a collection's metric."""
    cases = sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(sql.Literal(m.value), sql.Literal(m.operator)) for m in Metric)
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION pgembed.distance_operator(metric text) RETURNS text "
        "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE RETURN CASE metric {} END"
    ).format(cases)


GENERATED = {"vocabulary": distance_operator_function}
