"""Statements the benchmarks send (pgembed.tools.bench): plain pgvector as its README shows it (the baselines
pgembed is measured against), the sizes, settings and facts about the server they record, and the scratch
tables SQL encoders are timed and weighed on.

Filters reach these statements as text: the server's compilation of a filter (pgembed.filter_sql), or the
benchmark operator's own WHERE clause given on the command line, which is theirs to write and is inserted as
SQL on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum

from psycopg import sql

from pgembed.codecs import SqlExpr
from pgembed.records import CollectionInfo
from pgembed.statements.compose import clause as parameterised_clause
from pgembed.statements.compose import literal_clause
from pgembed.statements.encoders import render
from pgembed.vocabulary import Storage

# -- the server -------------------------------------------------------------------------------------------
SERVER_VERSIONS = sql.SQL("SELECT current_setting('server_version'), "
                          "(SELECT extversion FROM pg_extension WHERE extname = 'vector')")
SERVER_SETTINGS = sql.SQL("SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)")
# A load measured after CHECKPOINT does not pay for the dirty buffers of the one before it.
CHECKPOINT = sql.SQL("CHECKPOINT")
REGCLASS = sql.SQL("SELECT to_regclass(%s)")
RELATION_SIZE = sql.SQL("SELECT pg_relation_size(to_regclass(%s))")
SIZED_ROWS = 1000  # rows whose stored values a bytes-per-vector figure averages
EVERY_ROW = "true"  # the compiled clause of no filter, as pgembed.engine.filters writes it


def vacuum_analyze(table: sql.Composable) -> sql.Composed:
    return sql.SQL("VACUUM ANALYZE {}").format(table)


def analyze(table: sql.Composable) -> sql.Composed:
    return sql.SQL("ANALYZE {}").format(table)


def drop_table_if_exists(name: str) -> sql.Composed:
    """A table found by the search path (a leftover of an interrupted benchmark)."""
    return sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name))


def _mean_bytes(table: sql.Composable, expressions: Sequence[sql.Composable], rows: int) -> sql.Composed:
    """Mean bytes on disk of the expressions' values (summed) over `rows` rows of `table`: pg_column_size of a
    stored value counts its compression and short varlena header, which is what a memory budget is about."""
    sizes = sql.SQL(" + ").join(sql.SQL("pg_column_size({})").format(e) for e in expressions)
    return sql.SQL("SELECT avg({}) FROM (SELECT * FROM {} LIMIT {}) AS t").format(sizes, table, sql.Literal(rows))


def column_bytes(table: sql.Composable, columns: Sequence[str], rows: int = SIZED_ROWS) -> sql.Composed:
    return _mean_bytes(table, [sql.Identifier(c) for c in columns], rows)


# -- pgvector's settings --------------------------------------------------------------------------------------
def set_hnsw(ef_search: int | None = None, iterative_scan: str | None = None) -> list[sql.Composed]:
    """SET for the session: plain pgvector has no other way to give an index scan its knobs."""
    statements = []
    if ef_search is not None:
        statements.append(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(ef_search)))
    if iterative_scan is not None:
        # str(): a str enum's value, never the member's name
        statements.append(sql.SQL("SET hnsw.iterative_scan = {}").format(sql.Literal(str(iterative_scan))))
    return statements


RESET_HNSW = (sql.SQL("RESET hnsw.ef_search"), sql.SQL("RESET hnsw.iterative_scan"))


# -- plain pgvector -------------------------------------------------------------------------------------------
class Baseline(StrEnum):
    """Plain pgvector configurations, by the names the benchmarks report them under."""

    HNSW_F32 = "pgvector-hnsw-f32"  # HNSW on the vector column
    HNSW_F16 = "pgvector-hnsw-f16"  # HNSW on vector::halfvec(d)
    BIT_RERANK = "pgvector-bit-rerank"  # HNSW on binary_quantize(vector)::bit(d), re-ranked by hand
    BTREE_EXACT = "pgvector-btree-exact"  # no HNSW: the filter's B-trees (or a scan), then a sort


_STORAGE = {Baseline.HNSW_F32: Storage.VECTOR, Baseline.HNSW_F16: Storage.HALFVEC, Baseline.BIT_RERANK: Storage.BIT}


def baseline_value(info: CollectionInfo, method: Baseline) -> sql.Composable:
    """What a baseline's HNSW index holds for each row (the exact plan reads the vector itself)."""
    d = sql.Literal(info.dim)
    if method is Baseline.HNSW_F16:
        return sql.SQL("{}::halfvec({})").format(info.vector, d)
    if method is Baseline.BIT_RERANK:
        return sql.SQL("binary_quantize({})::bit({})").format(info.vector, d)
    return info.vector


def baseline_value_bytes(info: CollectionInfo, method: Baseline, rows: int = SIZED_ROWS) -> sql.Composed:
    return _mean_bytes(info.table, [baseline_value(info, method)], rows)


def create_baseline_index(info: CollectionInfo, method: Baseline, name: str, *, m: int,
                          ef_construction: int) -> sql.Composed:
    if method not in _STORAGE:
        raise ValueError(f"{method.value} has no HNSW index")
    return sql.SQL("CREATE INDEX {} ON {} USING hnsw (({}) {}) WITH (m = {}, ef_construction = {})").format(
        sql.Identifier(name), info.table, baseline_value(info, method),
        sql.Identifier(info.metric.opclass(_STORAGE[method])), sql.Literal(m), sql.Literal(ef_construction))


def drop_index(info: CollectionInfo, name: str) -> sql.Composed:
    return sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(info.table_schema, name))


def create_btree(info: CollectionInfo, column: str, name: str | None = None) -> sql.Composed:
    return sql.SQL("CREATE INDEX {}ON {} ({})").format(
        sql.SQL("{} ").format(sql.Identifier(name)) if name is not None else sql.SQL(""), info.table,
        sql.Identifier(column))


def baseline_query(info: CollectionInfo, method: Baseline, k: int, where: str | None = None, *,
                   candidates: int = 0, tag: str = "", binary: bool = False) -> sql.Composed:
    """The k nearest keys to %(q)s among the rows `where` keeps (None: all), as a pgvector user writes it;
    the bit baseline re-ranks its `candidates` nearest codes by exact distance. `tag` goes into a trailing
    comment: a prepared statement keeps its cached plan across SET changes, so each setting needs its own
    text."""
    op = sql.SQL(info.metric.operator)
    filtered = sql.SQL("WHERE ({}) ").format(parameterised_clause(where)) if where is not None else sql.SQL("")
    if method is Baseline.HNSW_F16:
        body = "SELECT {key} FROM {t} {w}ORDER BY {v}::halfvec({d}) {op} %(q)s::vector::halfvec({d}) LIMIT {k}"
    elif method is Baseline.BIT_RERANK:
        body = ("SELECT {key} FROM (SELECT {key}, {v} FROM {t} {w}ORDER BY binary_quantize({v})::bit({d}) <~> "
                "binary_quantize(%(q)s::vector) LIMIT {c}) AS candidates ORDER BY {v} {op} %(q)s::vector LIMIT {k}")
    elif method is Baseline.BTREE_EXACT:  # "+ 0": no HNSW index matches the ORDER BY
        body = "SELECT {key} FROM {t} {w}ORDER BY ({v} {op} %(q)s::vector) + 0 LIMIT {k}"
    else:
        body = "SELECT {key} FROM {t} {w}ORDER BY {v} {op} %(q)s::vector LIMIT {k}"
    if binary:  # the query in pgvector's binary format, as pgembed's own statements send it
        body = body.replace("%(q)s", "%(q)b")
    statement = sql.SQL(body).format(key=info.key, t=info.table, w=filtered, v=info.vector, op=op,
                                     d=sql.Literal(info.dim), k=sql.Literal(k), c=sql.Literal(candidates))
    # Only word characters and a few signs reach the comment: nothing in a tag can close it.
    return statement + sql.SQL(" /* {} */").format(sql.SQL(re.sub(r"[^\w=,.-]", "_", tag)))


def explain_json(statement: sql.Composable) -> sql.Composed:
    return sql.SQL("EXPLAIN (FORMAT JSON) {}").format(statement)


def matching_keys(info: CollectionInfo, where: str) -> sql.Composed:
    """Keys of the rows a WHERE clause keeps: the database's answer to which rows a filter matches, for exact
    ground truth. Executed without parameters."""
    return sql.SQL("SELECT {} FROM {} WHERE ({})").format(info.key, info.table, literal_clause(where))


def rerank_keys(info: CollectionInfo) -> sql.Composed:
    """The %(k)s keys among %(ids)s nearest to %(q)s by exact distance: the re-rank a client-side scan of codes
    sends."""
    return sql.SQL("SELECT {key} FROM {t} WHERE {key} = ANY(%(ids)s) ORDER BY {v} {op} %(q)s, {key} "
                   "LIMIT %(k)s").format(key=info.key, t=info.table, v=info.vector,
                                         op=sql.SQL(info.metric.operator))


# -- SQL encoders, timed and weighed on a temporary table of sample vectors -----------------------------------
SAMPLE_VECTOR = sql.Identifier("v")


def _temp(name: str) -> sql.Identifier:
    return sql.Identifier("pg_temp", name)


def drop_temp_table(name: str) -> sql.Composed:
    return sql.SQL("DROP TABLE IF EXISTS {}").format(_temp(name))


def create_sample_table(name: str, dim: int) -> sql.Composed:
    return sql.SQL("CREATE TEMP TABLE {} (id int, {} vector({}))").format(_temp(name), SAMPLE_VECTOR,
                                                                         sql.Literal(dim))


def copy_sample_in(name: str) -> sql.Composed:
    return sql.SQL("COPY {} (id, {}) FROM STDIN").format(_temp(name), SAMPLE_VECTOR)


def count_sample(name: str) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM {}").format(_temp(name))


def encoded_bytes(sample: str, encoders: Sequence[SqlExpr], rows: int) -> sql.Composed:
    """The mean bytes of the encoders' output (summed) over `rows` sample vectors, computed and not stored:
    the statement timed as the SQL encoders' rate."""
    sizes = sql.SQL(" + ").join(sql.SQL("pg_column_size({})").format(render(e, SAMPLE_VECTOR)) for e in encoders)
    return sql.SQL("SELECT avg({}) FROM (SELECT {} FROM {} LIMIT {}) AS s").format(
        sizes, SAMPLE_VECTOR, _temp(sample), sql.Literal(rows))


def _code_column(i: int) -> str:
    return f"code_{i}"


def create_stored_codes(name: str, sample: str, encoders: Sequence[SqlExpr], rows: int) -> sql.Composed:
    """A temporary table, dropped at commit, of the encoders' output for `rows` sample vectors: their bytes as
    stored (stored_code_bytes), short varlena headers included."""
    columns = sql.SQL(", ").join(sql.SQL("{} AS {}").format(render(e, SAMPLE_VECTOR), sql.Identifier(_code_column(i)))
                                 for i, e in enumerate(encoders))
    return sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM (SELECT {} FROM {} LIMIT {}) AS s").format(
        _temp(name), columns, SAMPLE_VECTOR, _temp(sample), sql.Literal(rows))


def stored_code_bytes(name: str, encoders: int, rows: int = SIZED_ROWS) -> sql.Composed:
    return column_bytes(_temp(name), [_code_column(i) for i in range(encoders)], rows)


# -- the kernels against their twins (pgembed.tools.bench.kernels) --------------------------------------------
ONE_BACKEND = sql.SQL("SET max_parallel_workers_per_gather = 0")  # a figure per backend, not per machine
BACKEND_MEMORY = sql.SQL("SELECT sum(total_bytes)::bigint, pg_backend_pid() FROM pg_backend_memory_contexts")


def truncate(table: sql.Composable) -> sql.Composed:
    return sql.SQL("TRUNCATE {}").format(table)


def count_encoded(table: sql.Composable, key: str, expressions: Sequence[SqlExpr], vector: str) -> sql.Composed:
    """Every expression computed for the rows whose key is below %s: count() is strict, so each is evaluated."""
    counts = sql.SQL(" + ").join(sql.SQL("count({})").format(render(e, sql.Identifier(vector))) for e in expressions)
    return sql.SQL("SELECT {} FROM {} WHERE {} < %s").format(counts, table, sql.Identifier(key))


def count_pq_encoded_unfolded(table: sql.Composable, key: str, vector: str, sub: int) -> sql.Composed:
    """pgembed.encode_pq for the rows whose key is below %s, its codebook (%s columns, %s norms) read from a
    subquery instead of written into the statement: no longer constants, so every row reads the float codebook
    (the kernel prepares a codebook only when it is a constant)."""
    return sql.SQL("SELECT count(pgembed.encode_pq({}, p.c, p.n, {})) FROM {}, "
                   "(SELECT %s::vector[] AS c, %s::vector[] AS n OFFSET 0) AS p WHERE {} < %s").format(
        sql.Identifier(vector), sql.Literal(sub), table, sql.Identifier(key))


def count_estimated(table: sql.Composable, key: str, estimator: str, arguments: Sequence[str],
                    times: int = 1) -> sql.Composed:
    """estimator(columns..., %s table) for the rows whose key is below %s, each row `times` times."""
    args = sql.SQL(", ").join([*(sql.Identifier(a) for a in arguments), sql.SQL("%s::float8[]")])
    return sql.SQL("SELECT count({}({})) FROM {} CROSS JOIN generate_series(1, {}) WHERE {} < %s").format(
        sql.Identifier(*estimator.split(".")), args, table, sql.Literal(times), sql.Identifier(key))


def count_distances(table: sql.Composable, key: str, column: str, operator: str, cast: str) -> sql.Composed:
    """pgvector's own distance (`operator`) from %s for the rows whose key is below %s: the same run's scale."""
    return sql.SQL("SELECT count({} {} %s::{}) FROM {} WHERE {} < %s").format(
        sql.Identifier(column), sql.SQL(operator), sql.SQL(cast), table, sql.Identifier(key))


QUERY_TABLE = sql.SQL("SELECT pgembed.query_table(%s, %s, %s)")
ESTIMATE_TOPK = sql.SQL("SELECT count(*) FROM pgembed.estimate_topk(%s, %s, %s::vector[], %s, %s::jsonb)")
ESTIMATE_RERANK = sql.SQL("SELECT query_no, id, distance FROM pgembed.estimate_topk(%s, %s, %s::vector[], %s, "
                          "candidates => %s)")
SCAN_TOPK = sql.SQL("SELECT query_no, id, distance FROM pgembed.scan_topk(%s, %s::vector[], %s)")
PROBE_TOPK = sql.SQL("SELECT query_no, id, distance FROM pgembed.probe_topk(%s, %s, %b::vector[], %s, %s)")
SEARCH_ONE = sql.SQL("SELECT id, distance FROM pgembed.search(%s, %s, %s, %s::jsonb)")
SEARCH_BATCH = sql.SQL("SELECT query_no, id, distance FROM pgembed.search_batch(%s, %s, %s, %s::jsonb[])")
SEARCH_PLAN_KIND = sql.SQL("SELECT pgembed.search_plan(%s, %s, %s, %s::jsonb) ->> 'kind'")




# -- the memory bench (pgembed/tools/bench/memory.py) -----------------------------------------------------------
WAL_POSITION = sql.SQL("SELECT pg_current_wal_lsn()")
WAL_SINCE = sql.SQL("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)")
CLEAR_STATS_SNAPSHOT = sql.SQL("SELECT pg_stat_clear_snapshot()")
BLOCKS_READ = sql.SQL("SELECT blks_read FROM pg_stat_database WHERE datname = current_database()")
BUILD_MEMORY = sql.SQL("SET maintenance_work_mem = '1GB'")
LOAD_FACTS_PRESENT = sql.SQL("SELECT to_regclass('memory_bench_load') IS NOT NULL")
LOAD_FACTS = sql.SQL("SELECT facts FROM memory_bench_load")
CREATE_LOAD_FACTS = sql.SQL("CREATE TABLE IF NOT EXISTS memory_bench_load (one boolean PRIMARY KEY, facts jsonb)")
SAVE_LOAD_FACTS = sql.SQL(
    "INSERT INTO memory_bench_load VALUES (true, %s) ON CONFLICT (one) DO UPDATE SET facts = EXCLUDED.facts")


def set_system(name: str, value: str) -> sql.Composed:
    """ALTER SYSTEM for a setting the bench's own server restarts with."""
    return sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))


def copy_table(source: str, target: str, key: str) -> list[sql.Composed]:
    return [sql.SQL("CREATE TABLE {} AS TABLE {}").format(sql.Identifier(target), sql.Identifier(source)),
            sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(sql.Identifier(target), sql.Identifier(key))]
