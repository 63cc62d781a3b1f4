"""Hybrid search: the call that asks the server's planner (sql/functions/search.sql) for a filter's clause,
its plan and the plan's statements; the statements themselves are the server's (sql/functions/statements.sql),
composed here with psycopg's placeholders (pgembed.statements.compose.from_pieces)."""

from __future__ import annotations

from psycopg import sql

from pgembed.statements.compose import from_pieces, placeholder

PREPARE_SEARCH = sql.SQL(
    "SELECT pgembed._prepare_search(%(collection_id)s, %(filter)s::jsonb, %(clause)s, %(k)s, %(recall)s, "
    "%(codec)s, %(ef_search)s, %(oversample)s, %(plan)s, %(columns)s::text[], %(estimated_rows)s, "
    "%(only_index)s, %(refine)s, %(refine_oversample)s, %(rerank)s)"
)
PREPARE_HYBRID = sql.SQL(  # sql/functions/text.sql
    "SELECT pgembed._prepare_hybrid(%(collection_id)s, %(filter)s::jsonb, %(clause)s, %(k)s, %(recall)s, "
    "%(codec)s, %(ef_search)s, %(oversample)s, %(plan)s, %(columns)s::text[], %(refine)s, %(refine_oversample)s, "
    "%(rerank)s, %(vector_weight)s, %(text_weight)s, %(fusion_depth)s, %(text_match)s)"
)
STAGE_DEPTH = sql.SQL("SELECT pgembed._stage_depth(%s, %s, %s)")  # sql/functions/rerank.sql
MMR_OF_ROWS = sql.SQL("SELECT pgembed._mmr_of_rows(%s, %s, %s, %s, %s)")  # sql/functions/rerank.sql
RELEVANCE = sql.SQL("SELECT pgembed._relevance(%s, %s, %s)")
CHECK_SEARCH_PARAMS = sql.SQL(
    "SELECT pgembed.check_search_params(%(k)s, %(recall)s, %(ef_search)s, %(oversample)s, %(plan)s, "
    "%(refine)s, %(refine_oversample)s, %(rerank)s)"
)
COMPILE_FILTER = sql.SQL("SELECT pgembed.filter_sql(%s::regclass, %s::jsonb)")  # sql/functions/filters.sql


def probe_topk(key_type: str) -> sql.Composed:
    """Each query's k nearest rows among those of its %(probes)s nearest clusters of partitioning codec
    %(codec)s that %(filter)s keeps (sql/functions/search.sql), keys in their own type (`key_type`, the key
    column's format_type, from the catalog)."""
    return sql.SQL("SELECT query_no, id::{}, distance FROM pgembed.probe_topk(%(collection)s, %(codec)s, "
                   "{}::vector[], %(k)s, %(probes)s, %(filter)s::jsonb)").format(sql.SQL(key_type), placeholder("qs"))


def server_scan(pieces: tuple[str, ...], key_type: str) -> sql.Composed:
    """A prepared search's scan (sql/functions/statements.sql: every query's exact top k in one read of the rows),
    keys in their own type, in the scan's order (each query's rows best first, ties by key in its collation)."""
    return sql.SQL("SELECT s.query_no, s.id::{t}, s.distance FROM ({scan}) AS s").format(
        t=sql.SQL(key_type), scan=from_pieces(pieces))
