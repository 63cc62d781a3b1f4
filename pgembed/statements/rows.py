"""Statements over a collection's rows: counting, sampling, backfilling codes, and bulk reads and writes
through binary COPY."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from pgembed.records import CollectionInfo
from pgembed.statements.compose import after_key, literal_clause

TABLE_ROWS = sql.SQL("SELECT pgembed.table_rows(%s::regclass)")  # sql/functions/catalog.sql
HASH_BUCKETS = 4096  # the resolution of a synthetic filter's selectivity


# With row_security off, a statement that row-level security would filter raises instead (SQLSTATE 42501).
ROW_SECURITY_OFF = sql.SQL("SELECT set_config('row_security', 'off', true)")
LOCK_TIMEOUT = sql.SQL("SELECT set_config('lock_timeout', %s, true)")  # for the rest of the transaction


def probe(info: CollectionInfo) -> sql.Composed:
    """Reads no row, but is planned as a read of the whole table (what row_security = off checks)."""
    return sql.SQL("SELECT FROM {} LIMIT 0").format(info.table)


def count(info: CollectionInfo) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM {}").format(info.table)


def count_vectors(info: CollectionInfo) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL").format(info.table, info.vector)


def count_missing_codes(info: CollectionInfo, column: str) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL AND {} IS NOT NULL").format(
        info.table, sql.Identifier(column), info.vector)


def sample(info: CollectionInfo, n: int, seed: int, table_rows: float) -> sql.Composed:
    """Keys and vectors of up to `n` rows: a Bernoulli sample of about 1.5n rows (all rows when the table has
    fewer than 2n), of which n are kept in an order that depends on the seed, not on where rows lie."""
    sampling = sql.SQL("TABLESAMPLE BERNOULLI ({}) REPEATABLE ({})").format(
        sql.Literal(min(100.0, 150.0 * n / table_rows)), sql.Literal(seed)) if table_rows > 2 * n else sql.SQL("")
    return sql.SQL(
        "SELECT {k}, {v} FROM {t} {s} WHERE {v} IS NOT NULL ORDER BY hashtext(ctid::text || {seed}) LIMIT {n}"
    ).format(k=info.key, v=info.vector, t=info.table, s=sampling, n=sql.Literal(n), seed=sql.Literal(str(seed)))


def backfill_batch(info: CollectionInfo, column: str, key_type: str, *, first: bool) -> sql.Composed:
    """Re-assign the vector of up to %(rows)s rows with keys after %(after)s (`first`: from the first), taken in
    key order, whose `column` is still NULL: the trigger fills their codes. A row another transaction has
    locked is skipped, not waited for (the next pass takes it): a backfill never deadlocks with writers, and a
    writer waits at most for one batch. Returns the rows done and the last key locked (NULL: none was)."""
    after = after_key(info.key, key_type, first)
    return sql.SQL(
        "WITH pgembed_batch AS (SELECT {k} FROM {t} WHERE {c} IS NULL AND {v} IS NOT NULL AND {after} "
        "ORDER BY {k} LIMIT %(rows)s FOR UPDATE SKIP LOCKED), "
        "pgembed_done AS (UPDATE {t} AS pgembed_row SET {v} = pgembed_row.{v} FROM pgembed_batch "
        "WHERE pgembed_row.{k} = pgembed_batch.{k} RETURNING 1) "
        "SELECT (SELECT count(*) FROM pgembed_done), (SELECT {k} FROM pgembed_batch ORDER BY {k} DESC LIMIT 1)"
    ).format(t=info.table, v=info.vector, k=info.key, c=sql.Identifier(column), after=after)


def copy_in(info: CollectionInfo, columns: Sequence[str]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        info.table, sql.SQL(", ").join(map(sql.Identifier, columns)))


# -- ingest where row-level security applies: PostgreSQL refuses COPY FROM into such a table, so rows are
# copied into a temporary table of the same columns and inserted from it, through the table's policies.
RLS_ACTIVE = sql.SQL("SELECT row_security_active(%s::regclass)")
STAGE = sql.Identifier("pg_temp", "pgembed_ingest_stage")


def create_stage(info: CollectionInfo, columns: Sequence[str]) -> sql.Composed:
    """The staging table: the columns' types (typmods included) from the table itself, no rows."""
    return sql.SQL("CREATE TEMP TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(
        STAGE, sql.SQL(", ").join(map(sql.Identifier, columns)), info.table)


def copy_into_stage(columns: Sequence[str]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        STAGE, sql.SQL(", ").join(map(sql.Identifier, columns)))


def insert_staged(info: CollectionInfo, columns: Sequence[str]) -> sql.Composed:
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(info.table, names, names, STAGE)


DROP_STAGE = sql.SQL("DROP TABLE {}").format(STAGE)


def select_vectors(info: CollectionInfo, clause: str, limit: int | None = None) -> sql.Composed:
    """(key, vector) of the rows a compiled filter keeps; executed without parameters."""
    return sql.SQL("SELECT {k}, {v} FROM {t} WHERE ({w}) AND {v} IS NOT NULL{limit}").format(
        k=info.key, v=info.vector, t=info.table, w=literal_clause(clause),
        limit=sql.SQL(" LIMIT {}").format(sql.Literal(limit)) if limit is not None else sql.SQL(""))


def copy_out(select: sql.Composable) -> sql.Composed:
    return sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(select)


def synthetic_filter(info: CollectionInfo, selectivity: float) -> str | None:
    """A WHERE clause keeping about `selectivity` of the rows, uniformly at random (by a hash of the key),
    as SQL text; None for all of them. What tune() measures filtered search under: pgvector's iterative
    scan sees such a filter as it sees one uncorrelated with the vectors."""
    if selectivity >= 1:
        return None
    limit = max(1, round(selectivity * HASH_BUCKETS))
    return sql.SQL("(hashtext({}::text) & {}) < {}").format(
        info.key, sql.Literal(HASH_BUCKETS - 1), sql.Literal(limit)).as_string(None)
