"""Statements of the reliability suites (pgembed.tools.reliability): the plain SQL an application's writers and
readers send to a collection's table, and the reads that check it afterwards."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from pgembed.records import CollectionInfo
from pgembed.vocabulary import Placement

DEADLOCKS = sql.SQL("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
SQL_SEARCH = sql.SQL("SELECT count(*) FROM pgembed.search(%s, %s, %s, %s::jsonb)")


def insert_row(info: CollectionInfo, attrs: Sequence[str]) -> sql.Composed:
    """One row (key, vector, attributes) by plain INSERT: its codes are the database's to write."""
    columns = [info.key_column, info.vector_column, *attrs]
    return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        info.table, sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)))


def update_vector(info: CollectionInfo, attr: str) -> sql.Composed:
    return sql.SQL("UPDATE {} SET {} = %s, {} = %s WHERE {} = %s").format(
        info.table, info.vector, sql.Identifier(attr), info.key)


def delete_row(info: CollectionInfo) -> sql.Composed:
    return sql.SQL("DELETE FROM {} WHERE {} = %s").format(info.table, info.key)


def rows_with(info: CollectionInfo, attrs: Sequence[str]) -> sql.Composed:
    """Every row's key, vector (as float4[]) and attributes, in key order."""
    return sql.SQL("SELECT {}, {}::real[], {} FROM {} ORDER BY {}").format(
        info.key, info.vector, sql.SQL(", ").join(map(sql.Identifier, attrs)), info.table, info.key)


def codes_with_vectors(info: CollectionInfo, columns: Sequence[str]) -> sql.Composed:
    """Every row's key, vector and code columns as text, wherever the codes are kept (a companion's joined by
    key: a row it lacks shows NULL codes)."""
    source: sql.Composable = info.table
    if info.placement is Placement.COMPANION:
        source = sql.SQL("{} AS t LEFT JOIN {} AS c USING ({})").format(info.table, info.codes_table, info.key)
    return sql.SQL("SELECT {}, {}::real[], {} FROM {} ORDER BY {}").format(
        info.key, info.vector, sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns),
        source, info.key)
