"""Statements of the crash suite (pgembed.tools.reliability.crash): what a monitor connection watches for to
kill the server at the moment asked, and what is checked after the restart."""

from __future__ import annotations

from psycopg import sql

from pgembed.records import CollectionInfo

INVALID_INDEXES = sql.SQL("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
BUILDING_COLUMN = sql.SQL(
    "SELECT column_name FROM pgembed.codecs WHERE collection_id = %s AND state = 'building' ORDER BY id LIMIT 1")
BUILDING_VERSIONS = sql.SQL(
    "SELECT count(*) FROM pgembed.codecs WHERE collection_id = %s AND state = 'building' AND version > 1")
INDEX_BUILDS = sql.SQL(
    "SELECT count(*) FROM pg_stat_progress_create_index WHERE relid IN (%s::regclass, %s::regclass)")


def row_count(info: CollectionInfo) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM {}").format(info.table)


def coded_rows(info: CollectionInfo, column: str) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL").format(info.codes_table, sql.Identifier(column))


def keys_vectors(info: CollectionInfo) -> sql.Composed:
    return sql.SQL("SELECT {}, {}::real[] FROM {}").format(info.key, info.vector, info.table)
