"""pgvector indexes on a collection: on the source vector or a code column, full or partial (over the rows a
filter keeps: a hot predicate's own graph), built with progress, recorded in the catalog; and the GIN index of
its full-text search (sql/functions/text.sql)."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import psycopg

from pgembed.db import catalog
from pgembed.db.introspection import table_columns
from pgembed.engine.context import CollectionContext
from pgembed.engine.filters import compile_filter
from pgembed.errors import InvalidInputError, SchemaError
from pgembed.planning.filters import as_filter
from pgembed.progress import progress_bar
from pgembed.records import IndexInfo, TextSearchInfo
from pgembed.statements import catalog as catalog_statements
from pgembed.statements import ddl
from pgembed.statements import introspection as q
from pgembed.statements import rows as row_statements
from pgembed.vocabulary import IndexMethod, Storage

MAX_IDENTIFIER = 63  # NAMEDATALEN - 1
TEXT_INDEX_METHOD = "gin"  # a text column's index: GIN on its tsvector expression (not a pgvector method)


def list_indexes(ctx: CollectionContext) -> list[IndexInfo]:
    return catalog.list_indexes(ctx.session, ctx.info.id)


def create_index(ctx: CollectionContext, on: str = "vector", method: IndexMethod | str = IndexMethod.HNSW, *,
                 m: int = 16, ef_construction: int = 64, lists: int | None = None,
                 where: Mapping[str, Any] | None = None, concurrently: bool = False,
                 progress: bool = False) -> IndexInfo:
    try:
        method = IndexMethod(method)
    except ValueError:
        raise SchemaError(f"unknown index method {method!r}; use one of "
                          f"{', '.join(m.value for m in IndexMethod)}") from None
    if on in ("vector", ctx.info.vector_column):
        codec_id, column = None, ctx.info.vector_column
    else:
        codec_info = ctx.active_codec(on)
        codec_id, column = codec_info.id, codec_info.column_name
    if concurrently and ctx.session.in_transaction:
        raise SchemaError("concurrently=True cannot run inside a transaction; commit first")
    if method is IndexMethod.HNSW:
        params = {"m": m, "ef_construction": ef_construction}
    else:
        rows = int(ctx.session.value(row_statements.count(ctx.info)))
        default = max(1, rows // 1000 if rows <= 1_000_000 else int(math.sqrt(rows)))
        params = {"lists": default if lists is None else lists}  # pgvector's bounds on lists are its own
    if where is not None and (not isinstance(where, Mapping) or not where):
        raise InvalidInputError("a partial index takes a non-empty filter dict, e.g. where={'category': 'news'}")
    name = build(ctx, codec_id, column, method, params, concurrently=concurrently, progress=progress,
                 predicate=dict(where) if where is not None else None)
    return next(i for i in list_indexes(ctx) if i.index_name == name)


def build(ctx: CollectionContext, codec_id: int | None, column: str, method: IndexMethod, params: dict[str, int], *,
          concurrently: bool, progress: bool, predicate: dict[str, Any] | None = None) -> str:
    """Build one index and record it; returns its name. `predicate`: a partial index's filter."""
    table = ctx.info.codes_table if codec_id is not None else ctx.info.table
    column_info = table_columns(ctx.session, table)[column]
    try:
        opclass = ctx.info.metric.opclass(Storage(column_info.type_name))
    except ValueError:
        raise SchemaError(f"pgvector cannot build a {method.value} index on a column of type "
                          f"{column_info.type_name}") from None
    clause = canonical = None
    if predicate is not None and table != ctx.info.table:
        raise SchemaError(f"collection {ctx.info.name!r} keeps its codes in a companion table, which has none of "
                          "the filter's columns: a partial index on codes needs placement='table'")
    if predicate is not None:
        compiled = as_filter(predicate)
        clause, canonical = compile_filter(ctx, compiled), compiled.json
        predicate = compiled.doc  # as the catalog keeps it, and the planner matches it: canonical JSON
        twin = next((i.index_name for i in list_indexes(ctx) if i.codec_id == codec_id and i.method is method
                     and i.predicate is not None and as_filter(i.predicate).identity == compiled.identity), None)
        if twin is not None:  # the planner would choose between the two by name
            raise SchemaError(f"index {twin!r} already serves that predicate")
    name = index_name(ctx, column, method, canonical, on_codes=codec_id is not None)
    _drop_interrupted(ctx, ctx.info.codes_schema if codec_id is not None else ctx.info.table_schema, name)
    monitor = _monitor_connection(ctx) if progress else None
    try:
        with progress_bar(f"index {name}", None, progress) as bar:

            def report(p: IndexProgress) -> None:
                if bar is not None:
                    bar.update(bar.task_ids[0], description=f"{name}: {p.phase}", completed=p.done,
                               total=p.total or None)

            statement = ddl.create_index(table, name=name, column=column, method=method.value, opclass=opclass,
                                         opclass_schema=ctx.session.require_vector_schema(), with_params=params,
                                         concurrently=concurrently, where=clause)
            with nullcontext() if concurrently else ctx.session.transaction():
                seconds = _run_build(ctx, statement, monitor, report)
                catalog.insert_index(ctx.session, ctx.info.id, codec_id, name, method, opclass, params, seconds,
                                     predicate)
        ctx.forget()
    except psycopg.errors.DuplicateTable as err:
        known = any(i.index_name == name for i in list_indexes(ctx))
        raise SchemaError(f"index {name!r} already exists" + ("" if known else (
            ", and pgembed's catalog does not record it (made by hand, or a concurrent build interrupted just "
            "after it finished): drop it to have pgembed build its own"))) from err
    finally:
        if monitor is not None:
            monitor.close()
    return name


def _drop_interrupted(ctx: CollectionContext, schema: str, name: str) -> None:
    """A CREATE INDEX CONCURRENTLY interrupted (a crash, a cancel) leaves an INVALID index that blocks its name
    and slows every write; the catalog never recorded it. The next build of that index drops it first."""
    valid = ctx.session.row(q.INDEX_VALID, (schema, name))
    if valid is not None and not valid[0] and all(i.index_name != name for i in list_indexes(ctx)):
        ctx.session.execute(ddl.drop_index(schema, name, concurrently=ctx.session.idle_autocommit))


def build_cluster_index(ctx: CollectionContext, codec_id: int, column: str) -> None:
    """A partitioning codec version's B-tree on its clusters (pgembed.statements.ddl.create_cluster_index), built
    concurrently where it can be; an interrupted build's invalid index is dropped and built again."""
    _drop_interrupted(ctx, ctx.info.codes_schema, ddl.cluster_index_name(codec_id))
    concurrently = ctx.session.idle_autocommit
    statement = ddl.create_cluster_index(ctx.info, codec_id, column, concurrently=concurrently)
    with nullcontext() if concurrently else ctx.session.transaction():
        ctx.session.execute(statement)


def drop_index(ctx: CollectionContext, index_name: str) -> None:
    index = next((i for i in list_indexes(ctx) if i.index_name == index_name), None)
    if index is None:
        raise SchemaError(f"collection {ctx.info.name!r} has no index {index_name!r}")
    with ctx.session.transaction():
        ctx.session.execute(ddl.drop_index(index_schema(ctx, index), index_name))
        catalog.delete_index(ctx.session, ctx.info.id, index_name)
    ctx.forget()


# -- full-text search ---------------------------------------------------------------------------------------------
def text_search(ctx: CollectionContext) -> TextSearchInfo | None:
    return catalog.text_search(ctx.session, ctx.info.id)


def add_text_search(ctx: CollectionContext, column: str, config: str = "english", *, stored: bool = False,
                    concurrently: bool = False) -> TextSearchInfo:
    """Full-text search on a text column: a GIN index on to_tsvector(config, column), which the database keeps
    in step whoever writes a row; the table gains no column. `stored`: the tsvector in a generated column of
    the table (<column>_tsv; the table is rewritten under an exclusive lock), which ranks a query's matches
    without computing their tsvectors again. One text column a collection."""
    if not isinstance(column, str) or not isinstance(config, str):
        raise InvalidInputError("add_text_search takes a column name and a text search configuration's name")
    current = text_search(ctx)
    if current is not None:
        raise SchemaError(f"collection {ctx.info.name!r} already searches column {current.column_name!r} as text "
                          "(drop_text_search() first)")
    info = table_columns(ctx.session, ctx.info.table).get(column)
    if info is None:
        raise SchemaError(f"table {ctx.info.table_name!r} has no column {column!r}")
    if info.category != "S":
        raise SchemaError(f"column {column!r} is {info.formatted}: full-text search takes a text column")
    if concurrently and ctx.session.in_transaction:
        raise SchemaError("concurrently=True cannot run inside a transaction; commit first")
    if not isinstance(stored, bool):
        raise InvalidInputError(f"stored must be True or False, got {stored!r}")
    tsvector_column = _tsvector_column(ctx, column) if stored else None
    try:
        qualified = str(ctx.session.value(catalog_statements.TEXT_CONFIG, (config,)))
    except psycopg.errors.UndefinedObject as err:
        raise SchemaError(f"no text search configuration {config!r} (see \\dF in psql)") from err
    name = index_name(ctx, column, TEXT_INDEX_METHOD)
    _drop_interrupted(ctx, ctx.info.table_schema, name)
    expression = str(ctx.session.value(catalog_statements.TEXT_DOCUMENT, (qualified, column, None)))
    document = str(ctx.session.value(catalog_statements.TEXT_DOCUMENT, (qualified, column, tsvector_column)))
    created = TextSearchInfo(column, qualified, name, tsvector_column)
    add_column = (ddl.add_tsvector_column(ctx.info.table, tsvector_column, expression)
                  if tsvector_column is not None else None)
    statement = ddl.create_text_index(ctx.info.table, name=name, document=document, concurrently=concurrently)
    try:
        if concurrently:
            if add_column is not None:
                ctx.session.execute(add_column)
            try:
                ctx.session.execute(statement)
                catalog.insert_text_search(ctx.session, ctx.info.id, created)
            except BaseException:
                if tsvector_column is not None:  # the build failed: the column it was for goes too
                    ctx.session.execute(ddl.drop_column_named(ctx.info.table, tsvector_column))
                raise
        else:
            with ctx.session.transaction():
                if add_column is not None:
                    ctx.session.execute(add_column)
                ctx.session.execute(statement)
                catalog.insert_text_search(ctx.session, ctx.info.id, created)
    except psycopg.errors.DuplicateTable as err:
        raise SchemaError(f"index {name!r} already exists, and pgembed's catalog does not record it: drop it to "
                          "have pgembed build its own") from err
    ctx.forget()
    return created


def _tsvector_column(ctx: CollectionContext, column: str) -> str:
    name = f"{column}_tsv"
    if len(name.encode()) > MAX_IDENTIFIER:
        name = f"pgembed_tsv_{hashlib.sha1(column.encode()).hexdigest()[:8]}"
    if name in table_columns(ctx.session, ctx.info.table):
        raise SchemaError(f"table {ctx.info.table_name!r} has a column {name!r} already, where stored=True would "
                          "keep the tsvector")
    return name


def drop_text_search(ctx: CollectionContext) -> None:
    current = text_search(ctx)
    if current is None:
        raise SchemaError(f"collection {ctx.info.name!r} has no text search")
    with ctx.session.transaction():
        ctx.session.execute(ddl.drop_index(ctx.info.table_schema, current.index_name))
        if current.tsvector_column is not None:
            ctx.session.execute(ddl.drop_column_named(ctx.info.table, current.tsvector_column))
        catalog.delete_text_search(ctx.session, ctx.info.id)
    ctx.forget()


def index_schema(ctx: CollectionContext, index: IndexInfo) -> str:
    """An index on codes lives beside them; one on the vector, in the user's schema."""
    return ctx.info.codes_schema if index.codec_id is not None else ctx.info.table_schema


def index_name(ctx: CollectionContext, column: str, method: IndexMethod | str, predicate: str | None = None, *,
               on_codes: bool = False) -> str:
    """A full index's name says what it is; a partial one adds a digest of its predicate (canonical JSON). An
    index on codes is named after their table: in a companion, codes_<id> (every companion is in schema
    pgembed)."""
    digest = hashlib.sha1(predicate.encode()).hexdigest()[:8] if predicate else None
    suffix = f"_{method}_idx" if digest is None else f"_{method}_{digest}"
    table = ctx.info.codes_table_name if on_codes else ctx.info.table_name
    name = f"{table}_{column}{suffix}"
    if len(name.encode()) > MAX_IDENTIFIER:
        name = f"pgembed_{ctx.info.id}_{hashlib.sha1(column.encode()).hexdigest()[:8]}{suffix}"
    return name


# -- progress -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IndexProgress:
    phase: str
    done: int
    total: int


def _monitor_connection(ctx: CollectionContext) -> psycopg.Connection | None:
    try:
        return ctx.session.new_connection()
    except psycopg.Error:
        return None  # progress is a nicety; the build goes on without it


def _run_build(ctx: CollectionContext, statement: Any, monitor: psycopg.Connection | None,
               on_progress: Callable[[IndexProgress], None]) -> float:
    """Run CREATE INDEX; returns seconds taken. With a `monitor` connection, reports
    pg_stat_progress_create_index while the build runs."""
    stop = threading.Event()
    watcher = None
    if monitor is not None:
        pid = ctx.session.conn.info.backend_pid
        watcher = threading.Thread(target=_watch, args=(monitor, pid, stop, on_progress), daemon=True)
        watcher.start()
    started = time.perf_counter()
    try:
        ctx.session.execute(statement)
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
    return time.perf_counter() - started


def _watch(monitor: psycopg.Connection, pid: int, stop: threading.Event,
           report: Callable[[IndexProgress], None]) -> None:
    while not stop.wait(0.25):
        row = monitor.execute(q.INDEX_BUILD_PROGRESS, (pid,)).fetchone()
        if row is None:
            continue
        phase, blocks_done, blocks_total, tuples_done, tuples_total = row
        if tuples_total:
            report(IndexProgress(phase, int(tuples_done), int(tuples_total)))
        elif blocks_total:
            report(IndexProgress(phase, int(blocks_done), int(blocks_total)))
        else:
            report(IndexProgress(phase, int(tuples_done or 0), 0))
