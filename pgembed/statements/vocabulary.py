"""SQL functions generated from pgembed's vocabulary (pgembed.vocabulary), so that the server's statements
and Python read one definition: applied with the function files (pgembed.db.functions)."""

from __future__ import annotations

from psycopg import sql

from pgembed.vocabulary import Metric, PlanKind


def distance_operator_function() -> sql.Composed:
    """pgembed.distance_operator(metric): pgvector's operator for a collection's metric."""
    cases = sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(sql.Literal(m.value), sql.Literal(m.operator)) for m in Metric)
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION pgembed.distance_operator(metric text) RETURNS text "
        "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE RETURN CASE metric {} END"
    ).format(cases)


def plan_kinds_function() -> sql.Composed:
    """pgembed.plan_kinds(): the plans a search may ask for (the planner checks `plan` against them)."""
    kinds = sql.SQL(", ").join(sql.Literal(p.value) for p in PlanKind)
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION pgembed.plan_kinds() RETURNS text[] "
        "LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN ARRAY[{}]::text[]"
    ).format(kinds)


def vocabulary_functions() -> sql.Composed:
    return sql.SQL(";\n").join([distance_operator_function(), plan_kinds_function()])


GENERATED = {"vocabulary": vocabulary_functions}
