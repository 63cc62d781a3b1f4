"""How codecs live in the user's table: code columns, the trigger that keeps them in step, and indexes.

Each collection gets one trigger function, pgembed.keep_codes_<collection id>(), generated from its codecs'
SQL encoders with their fitted parameters inlined as constants. A BEFORE INSERT OR UPDATE trigger calls it,
so whoever writes a row (pgembed, psql, another application) gets the codes pgembed's numpy encoders
compute, and a client that writes a code column directly has it overwritten.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import psycopg
from psycopg import sql

from pgembed.catalog import MAX_IDENTIFIER, CollectionInfo
from pgembed.codecs import Codec
from pgembed.errors import SchemaError


@dataclass(frozen=True)
class CodeColumn:
    column: str
    codec: Codec


def code_column_name(info: CollectionInfo, codec_name: str, version: int = 1) -> str:
    suffix = f"_{codec_name}" if version == 1 else f"_{codec_name}_v{version}"
    name = info.vector_column + suffix
    if len(name.encode()) > MAX_IDENTIFIER:
        digest = hashlib.sha1(info.vector_column.encode()).hexdigest()[:8]
        name = f"pgembed_{digest}{suffix}"
    return name


def code_columns(main_column: str, codec: Codec) -> list[tuple[str, str]]:
    """(column, SQL type) of every column a codec's codes occupy: the main one, then its extras."""
    columns = [(main_column, codec.sql_type())]
    for extra in codec.extra_columns():
        name = main_column + extra.suffix
        if len(name.encode()) > MAX_IDENTIFIER:
            raise SchemaError(f"column name {name!r} is longer than PostgreSQL allows; pick a shorter codec name")
        columns.append((name, extra.sql_type))
    return columns


def trigger_function(info: CollectionInfo) -> sql.Identifier:
    return sql.Identifier("pgembed", f"keep_codes_{info.id}")


def query_encoder(info: CollectionInfo) -> sql.Identifier:
    return sql.Identifier("pgembed", f"query_code_{info.id}")


def trigger_name(info: CollectionInfo) -> sql.Identifier:
    return sql.Identifier(f"pgembed_keep_codes_{info.id}")


def table_columns(conn: psycopg.Connection, info: CollectionInfo) -> dict[str, tuple[str, int]]:
    """Column name -> (base type name, typmod) of the collection's table."""
    rows = conn.execute(
        """SELECT a.attname, t.typname, a.atttypmod FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
           WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum""",
        (info.table.as_string(conn),),
    ).fetchall()
    return {name: (typname, typmod) for name, typname, typmod in rows}


def add_code_column(conn: psycopg.Connection, info: CollectionInfo, column: str, sql_type: str) -> None:
    if column in table_columns(conn, info):
        raise SchemaError(
            f"table {info.table_schema}.{info.table_name} already has a column {column!r}; "
            "pick another codec name"
        )
    # sql_type comes from a Codec (e.g. "bit(384)"), never from user input.
    conn.execute(
        sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(info.table, sql.Identifier(column), sql.SQL(sql_type))
    )


def drop_code_column(conn: psycopg.Connection, info: CollectionInfo, column: str) -> None:
    conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(info.table, sql.Identifier(column)))


def install_trigger(conn: psycopg.Connection, info: CollectionInfo, codes: Sequence[CodeColumn]) -> None:
    """(Re)generate the collection's trigger for exactly these code columns; none removes it."""
    if not codes:
        drop_trigger(conn, info)
        return
    source = sql.SQL("NEW.{}").format(info.vector)
    targets: list[tuple[str, sql.Composable]] = []
    for c in codes:
        targets.append((c.column, c.codec.sql_encode(source)))
        targets.extend(
            (c.column + e.suffix, c.codec.sql_encode_extra(e.suffix, source)) for e in c.codec.extra_columns()
        )
    assign = sql.SQL(" ").join(sql.SQL("NEW.{} := {};").format(sql.Identifier(col), expr) for col, expr in targets)
    clear = sql.SQL(" ").join(sql.SQL("NEW.{} := NULL;").format(sql.Identifier(col)) for col, _ in targets)
    # An UPDATE that leaves the vector as it was recomputes only the code columns that are missing or that
    # the client changed: a backfill then costs one encoder, not all of them. Values are compared as text,
    # i.e. exactly: pgvector's = holds -0.0 equal to 0.0, but their codes differ in the sign bit.
    repair = sql.SQL(" ").join(
        sql.SQL("IF NEW.{c} IS NULL OR NEW.{c}::text IS DISTINCT FROM OLD.{c}::text THEN NEW.{c} := {e}; END IF;")
        .format(c=sql.Identifier(col), e=expr)
        for col, expr in targets
    )
    body = sql.SQL(
        "BEGIN IF NEW.{v} IS NULL THEN {clear} ELSIF TG_OP = 'INSERT' THEN {assign} "
        "ELSIF NEW.{v}::text IS DISTINCT FROM OLD.{v}::text THEN {assign} ELSE {repair} END IF; RETURN NEW; END"
    ).format(v=info.vector, clear=clear, assign=assign, repair=repair)
    conn.execute(
        sql.SQL("CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS {}").format(
            trigger_function(info), sql.Literal(body.as_string(conn))
        )
    )
    install_query_encoder(conn, info, codes)
    watched = sql.SQL(", ").join(sql.Identifier(c) for c in [info.vector_column, *(col for col, _ in targets)])
    conn.execute(
        sql.SQL(
            "CREATE OR REPLACE TRIGGER {} BEFORE INSERT OR UPDATE OF {} ON {} "
            "FOR EACH ROW EXECUTE FUNCTION {}()"
        ).format(trigger_name(info), watched, info.table, trigger_function(info))
    )


def install_query_encoder(conn: psycopg.Connection, info: CollectionInfo, codes: Sequence[CodeColumn]) -> None:
    """pgembed.query_code_<id>(column, v): the code of a query vector for a code column, as text, with
    the same encoder (and inlined parameters) as the trigger: what pgembed.search() in SQL compares the
    index against."""
    cases = sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN ({})::text").format(sql.Literal(c.column), c.codec.sql_encode(sql.SQL("v")))
        for c in codes
    )
    conn.execute(
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {}(code_column text, v vector) RETURNS text "
            "LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN CASE code_column {} END"
        ).format(query_encoder(info), cases)
    )


def drop_trigger(conn: psycopg.Connection, info: CollectionInfo) -> None:
    conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(trigger_name(info), info.table))
    conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(trigger_function(info)))
    conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}(text, vector)").format(query_encoder(info)))


def backfill(
    conn: psycopg.Connection,
    info: CollectionInfo,
    column: str,
    *,
    batch_rows: int = 20_000,
    commit_batches: bool,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Compute codes for rows whose `column` is still NULL, in batches of keys. Returns rows updated.

    Re-assigning the vector fires the trigger, which fills the row's missing codes. With `commit_batches`,
    each batch commits on its own (readers and writers are held up one batch at a time; an interrupted
    backfill resumes where it stopped).
    """
    statement = sql.SQL(
        "UPDATE {t} SET {v} = {v} WHERE {k} IN "
        "(SELECT {k} FROM {t} WHERE {c} IS NULL AND {v} IS NOT NULL LIMIT %s)"
    ).format(t=info.table, v=info.vector, k=info.key, c=sql.Identifier(column))
    total = 0
    while True:
        with conn.transaction() if commit_batches else nullcontext():
            updated = conn.execute(statement, (batch_rows,)).rowcount
        total += updated
        if on_batch is not None and updated:
            on_batch(updated)
        if updated < batch_rows:
            return total


# -- indexes --------------------------------------------------------------------------------------------
OPS_BY_METRIC = {"cosine": "cosine_ops", "ip": "ip_ops", "l2": "l2_ops"}


def opclass_for(column_type: str, metric: str, method: str) -> str:
    if column_type in ("vector", "halfvec"):
        return f"{column_type}_{OPS_BY_METRIC[metric]}"
    if column_type in ("bit", "varbit"):
        return "bit_hamming_ops"
    raise SchemaError(f"pgvector cannot build a {method} index on a column of type {column_type}")


def index_name(info: CollectionInfo, column: str, method: str, predicate: str | None = None) -> str:
    """A full index's name says what it is; a partial one adds a digest of its predicate (canonical JSON)."""
    suffix = f"_{method}_idx" if predicate is None else f"_{method}_{hashlib.sha1(predicate.encode()).hexdigest()[:8]}"
    name = f"{info.table_name}_{column}{suffix}"
    if len(name.encode()) > MAX_IDENTIFIER:
        name = f"pgembed_{info.id}_{hashlib.sha1(column.encode()).hexdigest()[:8]}{suffix}"
    return name


@dataclass(frozen=True)
class IndexProgress:
    phase: str
    done: int
    total: int


def build_index(
    conn: psycopg.Connection,
    info: CollectionInfo,
    *,
    name: str,
    column: str,
    method: str,
    opclass: str,
    with_params: dict[str, int],
    concurrently: bool,
    where: sql.Composable | None = None,
    monitor: psycopg.Connection | None = None,
    on_progress: Callable[[IndexProgress], None] | None = None,
) -> float:
    """CREATE INDEX ... USING hnsw|ivfflat; returns seconds taken. With a `monitor` connection and
    `on_progress`, reports pg_stat_progress_create_index while the build runs."""
    options = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(k), sql.Literal(int(v))) for k, v in with_params.items()
    )
    statement = sql.SQL(
        "CREATE INDEX {conc} {name} ON {table} USING {method} ({column} {opclass}){with_}{where}"
    ).format(
        conc=sql.SQL("CONCURRENTLY") if concurrently else sql.SQL(""),
        name=sql.Identifier(name),
        table=info.table,
        method=sql.Identifier(method),
        column=sql.Identifier(column),
        opclass=sql.Identifier(opclass),
        with_=sql.SQL(" WITH ({})").format(options) if with_params else sql.SQL(""),
        where=sql.SQL(" WHERE {}").format(where) if where is not None else sql.SQL(""),
    )
    stop = threading.Event()
    watcher = None
    if monitor is not None and on_progress is not None:
        pid = conn.info.backend_pid
        watcher = threading.Thread(target=_watch_index_build, args=(monitor, pid, stop, on_progress), daemon=True)
        watcher.start()
    started = time.perf_counter()
    try:
        # An empty parameter mapping: a predicate's literals come with '%' doubled (see pgembed.filters).
        conn.execute(statement, {} if where is not None else None)
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
    return time.perf_counter() - started


def _watch_index_build(
    monitor: psycopg.Connection, pid: int, stop: threading.Event, report: Callable[[IndexProgress], None]
) -> None:
    query = """SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total
               FROM pg_stat_progress_create_index WHERE pid = %s"""
    while not stop.wait(0.25):
        row = monitor.execute(query, (pid,)).fetchone()
        if row is None:
            continue
        phase, blocks_done, blocks_total, tuples_done, tuples_total = row
        if tuples_total:
            report(IndexProgress(phase, int(tuples_done), int(tuples_total)))
        elif blocks_total:
            report(IndexProgress(phase, int(blocks_done), int(blocks_total)))
        else:
            report(IndexProgress(phase, int(tuples_done or 0), 0))
