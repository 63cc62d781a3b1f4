"""Hybrid search: the k rows nearest to a query among those a filter keeps.

The server plans (pgembed._prepare_search: the filter compiled, its rows estimated, the plan and its
statements; sql/functions/) and pgembed caches that answer per filter and knobs, so a search in steady state
is one round trip: the plan's statement with the query (and its code, encoded here by the codec's numpy
encoder exactly as the rows were) as binary parameters. An index plan that finds fewer than k rows is
answered again by the exact plan, so k rows come back whenever k rows match.

With text, the search is hybrid: the vector search's best rows and the text search's are fused by reciprocal
rank on the server (pgembed._fusion_statement, sql/functions/text.sql), the same statement pgembed.search()
runs in SQL. With diversity, maximal marginal relevance chooses the k rows among the stages' best
(pgembed.mmr, sql/functions/rerank.sql), as pgembed.search(..., diversity => ...) does.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import psycopg
from pgvector import HalfVector

from pgembed.codecs import Codec, make_codec
from pgembed.db import catalog
from pgembed.engine.context import CollectionContext, StaleCatalog
from pgembed.engine.filters import server_refusals
from pgembed.errors import InvalidInputError, SchemaError
from pgembed.planning.filters import Filter, as_filter
from pgembed.planning.params import SearchParams
from pgembed.planning.plans import Pieces, Plan, PreparedHybrid, PreparedSearch
from pgembed.records import RelevanceModelInfo
from pgembed.reranking import RerankQuery, score
from pgembed.statements.search import (
    MMR_OF_ROWS,
    PREPARE_HYBRID,
    PREPARE_SEARCH,
    RELEVANCE,
    STAGE_DEPTH,
    probe_topk,
    server_scan,
)
from pgembed.vectors import as_query
from pgembed.vocabulary import CodecState, PlanKind, Storage

# A codec re-fitted or dropped elsewhere since the catalog was read: the plan names a column that is gone, or a
# codec version that is no longer active (pgembed._codec_in_force in its statement, or this process's catalog).
STALE_PLAN = (psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedObject, StaleCatalog)


@dataclass(frozen=True)
class SearchResult:
    """The k nearest rows found: keys and exact distances (the collection's metric: cosine distance,
    negative inner product, or L2), best first; `rows` holds the asked-for columns of each."""

    ids: np.ndarray
    distances: np.ndarray
    plan: Plan
    rows: list[dict[str, Any]] | None = None
    # The last scoring stage's scores: a model stage's, else a hybrid search's fused scores (`plan` is then
    # the vector list's); each row's rank in the vector list and the text list (0: not in it).
    scores: np.ndarray | None = None
    vector_ranks: np.ndarray | None = None
    text_ranks: np.ndarray | None = None
    # The stages after the candidates (model, diversity): each one's rows in and kept, milliseconds, and why a
    # model stage was skipped (its time budget), if it was.
    stages: tuple[dict[str, Any], ...] = ()
    # With min_relevance: each row's relevance (the relevance model's), and how many rows it cut.
    relevance: np.ndarray | None = None
    below_relevance: int = 0

    def __len__(self) -> int:
        return len(self.ids)


K_MAX = 2**31 - 1  # PostgreSQL's integer


def check_k(k: Any) -> int:
    if type(k) is int and k <= K_MAX:  # the common case, without the isinstance checks (bool is not int here)
        return k
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise InvalidInputError(f"k must be an integer, got {k!r}")
    if k > K_MAX:  # the SQL functions take k as integer; its lower bound is theirs (check_search_params)
        raise InvalidInputError(f"k must be at most {K_MAX}, got {k}")
    return int(k)


def check_columns(columns: Sequence[str] | None) -> tuple[str, ...]:
    if columns is None:
        return ()
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise InvalidInputError("columns takes a list of column names, not one string")
    return tuple(columns)


def prepare(ctx: CollectionContext, where: Filter, k: int, params: SearchParams, columns: tuple[str, ...] = (), *,
            estimated_rows: float | None = None, only_index: str | None = None) -> PreparedSearch:
    """The server's plan and statements for this filter and these knobs, cached (CollectionContext)."""
    def ask() -> PreparedSearch:
        with server_refusals(ctx, where):
            data = ctx.session.value(PREPARE_SEARCH, {
                **_plan_arguments(ctx, where, k, params, columns), "estimated_rows": estimated_rows,
                "only_index": only_index,
            })
        return PreparedSearch.from_json(data)

    key = ("prepared", where.identity, k, params, columns, estimated_rows, only_index)
    return ctx.cached(key, ask)


def _plan_arguments(ctx: CollectionContext, where: Filter, k: int, params: SearchParams, columns: tuple[str, ...]
                    ) -> dict[str, Any]:
    """The arguments _prepare_search and _prepare_hybrid share: the collection, the filter, k and the plan's knobs."""
    return {"collection_id": ctx.info.id, "filter": where.json, "clause": where.clause, "k": k,
            "recall": params.recall, "codec": params.codec, "ef_search": params.ef_search,
            "oversample": params.oversample, "plan": params.plan.value, "columns": list(columns),
            "refine": params.refine, "refine_oversample": params.refine_oversample, "rerank": params.rerank}


def explain(ctx: CollectionContext, k: int, where: Any, params: SearchParams) -> Plan:
    """The plan search() would take, without running it."""
    return prepare(ctx, as_filter(where), check_k(k), params).plan


def search(ctx: CollectionContext, query: Any, k: int, where: Any, params: SearchParams,
           columns: Sequence[str] | None = None, text: str | None = None, query_text: str | None = None
           ) -> SearchResult:
    q = as_query(query, ctx.info.dim, ctx.info.metric)
    f, k, wanted = as_filter(where), check_k(k), check_columns(columns)
    if params.probes is not None:
        raise InvalidInputError("probes is search_batch's knob (a batch's queries read their nearest clusters "
                                "together); search() plans one query: leave it out")
    if params.min_relevance is not None:
        return cut_off(ctx, q, text, query_text, k, f, params, wanted)
    if params.model is not None or params.diversity is not None:
        return staged(ctx, q, text, text if query_text is None else query_text, k, f, params, wanted)
    if text is not None:
        return hybrid(ctx, q, text, k, f, params, wanted)
    prepared = prepare(ctx, f, k, params, wanted)
    try:
        return run(ctx, prepared, q, wanted)
    except STALE_PLAN:
        if prepared.plan.kind is not PlanKind.INDEX:
            raise
        ctx.forget()
        return run(ctx, prepare(ctx, f, k, params, wanted), q, wanted)


@dataclass(frozen=True)
class Partitioning:
    """The collection's partitioning codec (ivf<n>), which probes read: its name and number of clusters."""

    codec: str
    lists: int


def partitioning(ctx: CollectionContext) -> Partitioning:
    """The collection's one partitioning codec, or SchemaError."""
    def find() -> Partitioning:
        found = []
        for info in ctx.codecs():
            lists = make_codec(info.kind, ctx.info.dim).lists if info.state is CodecState.ACTIVE else None
            if lists is not None:
                found.append(Partitioning(info.name, lists))
        if len(found) != 1:
            raise SchemaError(f"probes read the clusters of a partitioning codec: collection {ctx.info.name!r} has "
                              + ("none (add_codec('ivf', 'ivf320'), say)" if not found else
                                 f"{len(found)} ({', '.join(p.codec for p in found)}): keep one"))
        return found[0]

    return ctx.cached(("partitioning",), find)


def search_probed(ctx: CollectionContext, queries: np.ndarray, k: int, where: Filter, probes: int
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each query's k nearest keys and exact distances among the rows of its `probes` nearest clusters that
    `where` (a filter of the language) keeps: pgembed.probe_topk, one read of those clusters for all queries."""
    if where.clause is not None:
        raise InvalidInputError("probes take a filter of the filter language (a dict), not a SQL expression")
    codec = partitioning(ctx).codec
    with server_refusals(ctx, where):
        rows = ctx.session.rows(probe_topk(ctx.key_type()), {
            "collection": ctx.info.name, "codec": codec, "qs": list(queries), "k": k, "probes": probes,
            "filter": where.json})
    return _by_query(rows, len(queries))


def _by_query(rows: list[tuple[Any, ...]], n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(query number from 1, key, distance) rows, each query's in order, as (keys, distances) per query."""
    found: list[tuple[list[Any], list[float]]] = [([], []) for _ in range(n)]
    for number, key, distance in rows:
        found[number - 1][0].append(key)
        found[number - 1][1].append(distance)
    return [(np.array(keys), np.array(distances, dtype=np.float64)) for keys, distances in found]


def scan_on_server(ctx: CollectionContext, queries: np.ndarray, prepared: PreparedSearch
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each query's exact top k over the rows of a prepared filter, in the kernels' one read of them on the
    server (prepared.server_scan): the exact plan's answers, query by query, without shipping the rows."""
    assert prepared.server_scan is not None
    return _by_query(ctx.session.rows(server_scan(prepared.server_scan, ctx.key_type()), {"qs": list(queries)}),
                     len(queries))


def run(ctx: CollectionContext, prepared: PreparedSearch, q: np.ndarray, columns: tuple[str, ...] = ()
        ) -> SearchResult:
    """One query through a prepared plan, with the exact fallback."""
    plan = prepared.plan
    if plan.kind is PlanKind.INDEX:
        result = _fetch(ctx, plan, prepared.run, q, columns, codec_id=prepared.codec_id)
        if len(result) >= plan.k:
            return result
        plan = plan.exact_fallback(len(result))
    return _fetch(ctx, plan, prepared.exact, q, columns)


def run_plan(ctx: CollectionContext, prepared: PreparedSearch, q: np.ndarray) -> SearchResult:
    """One query through a prepared plan as it is, without the exact fallback (what tune() measures)."""
    return _fetch(ctx, prepared.plan, prepared.run, q, (), codec_id=prepared.codec_id)


def run_exact(ctx: CollectionContext, prepared: PreparedSearch, q: np.ndarray) -> SearchResult:
    """One query through the exact plan of a prepared filter (whatever plan it chose)."""
    plan = prepared.plan if prepared.plan.kind is PlanKind.EXACT else prepared.plan.exact_fallback(0)
    return _fetch(ctx, plan, prepared.exact, q, ())


def search_many(ctx: CollectionContext, queries: np.ndarray, prepared: PreparedSearch) -> list[SearchResult]:
    """Queries that share a filter and an index plan, answered in one statement (each query's candidates and
    re-rank in a LATERAL subquery); a query that finds fewer than k rows there is answered again exactly,
    on its own, as search() does."""
    plan = prepared.plan
    if plan.kind is not PlanKind.INDEX or plan.column is None or prepared.many is None:
        raise InvalidInputError("search_many takes an index plan")
    codec = ctx.codec_of(prepared.codec_id)
    params = {"qs": list(queries), "qcodes": [query_code(codec, v) for v in queries]}
    found: list[list[tuple[Any, float]]] = [[] for _ in range(len(queries))]
    for number, key, distance in ctx.session.read_scoped(ctx.session.statement(prepared.many), params):
        found[number - 1].append((key, distance))
    results = []
    for i, got in enumerate(found):
        if len(got) >= plan.k:
            results.append(SearchResult(np.array([key for key, _ in got]),
                                        np.array([d for _, d in got], dtype=np.float64), plan))
        else:
            results.append(_fetch(ctx, plan.exact_fallback(len(got)), prepared.exact, queries[i], ()))
    return results


def _fetch(ctx: CollectionContext, plan: Plan, pieces: Pieces, q: np.ndarray, columns: tuple[str, ...], *,
           codec_id: int | None = None) -> SearchResult:
    """`codec_id`: an index plan's codec version (PreparedSearch.codec_id), which encodes the query."""
    params: dict[str, Any] = {"q": q}
    if plan.kind is PlanKind.INDEX:
        params["qcode"] = query_code(ctx.codec_of(codec_id), q)
        rows = ctx.session.read_scoped(ctx.session.statement(pieces), params)
    else:
        rows = ctx.session.rows(ctx.session.statement(pieces), params)
    ids = np.array([r[0] for r in rows]) if rows else np.empty(0, dtype=np.int64)
    distances = np.array([r[1] for r in rows], dtype=np.float64)
    extra = [dict(zip(columns, r[2:], strict=True)) for r in rows] if columns else None
    return SearchResult(ids, distances, plan, extra)


def prepare_hybrid(ctx: CollectionContext, where: Filter, k: int, params: SearchParams, columns: tuple[str, ...] = ()
                   ) -> PreparedHybrid:
    """The server's vector search and fusion statement for a hybrid search, cached as prepare()'s are."""
    def ask() -> PreparedHybrid:
        with server_refusals(ctx, where):
            data = ctx.session.value(PREPARE_HYBRID, {
                **_plan_arguments(ctx, where, k, params, columns),
                "vector_weight": params.fusion[0], "text_weight": params.fusion[1],
                "fusion_depth": params.fusion_depth, "text_match": params.text_match.value,
            })
        return PreparedHybrid.from_json(data)

    return ctx.cached(("hybrid", where.identity, k, params, columns), ask)


def hybrid(ctx: CollectionContext, q: np.ndarray, text: str, k: int, where: Filter, params: SearchParams,
           columns: tuple[str, ...]) -> SearchResult:
    """The vector list (run(): k rows whenever k match), then the text list and the fusion in one statement."""
    if not isinstance(text, str):
        raise InvalidInputError(f"text must be a string, got {type(text).__name__}")
    prepared = prepare_hybrid(ctx, where, k, params, columns)
    try:
        vector_list = run(ctx, prepared.vector, q)
    except STALE_PLAN:
        if prepared.vector.plan.kind is not PlanKind.INDEX:
            raise
        ctx.forget()
        prepared = prepare_hybrid(ctx, where, k, params, columns)
        vector_list = run(ctx, prepared.vector, q)
    rows = ctx.session.rows(ctx.session.statement(prepared.fusion),
                            {"q": q, "vkeys": vector_list.ids.tolist(), "text": text})
    ids = np.array([r[0] for r in rows]) if rows else np.empty(0, dtype=np.int64)
    return SearchResult(ids, np.array([r[1] for r in rows], dtype=np.float64), vector_list.plan,
                        [dict(zip(columns, r[5:], strict=True)) for r in rows] if columns else None,
                        scores=np.array([r[2] for r in rows], dtype=np.float64),
                        vector_ranks=np.array([r[3] or 0 for r in rows], dtype=np.int64),
                        text_ranks=np.array([r[4] or 0 for r in rows], dtype=np.int64))


def staged(ctx: CollectionContext, q: np.ndarray, text: str | None, query_text: str | None, k: int, where: Filter,
           params: SearchParams, columns: tuple[str, ...]) -> SearchResult:
    """The stages after the candidates: the search without them fetches the first one's depth of rows (with
    the columns the later stages read), the model stage keeps the best by its scores, diversity chooses k by
    MMR (pgembed._mmr_of_rows: the server reads their vectors). Each stage is timed in result.stages."""
    model, diversity = params.model, params.diversity
    keep = _stage_depth(ctx, where, params.diversity_depth, k, "diversity_depth") if diversity is not None else k
    depth = _stage_depth(ctx, where, model.depth, keep, "the model stage's depth") if model is not None else keep
    read = model.columns if model is not None else ()
    wanted = (*columns, *(c for c in dict.fromkeys(read) if c not in columns))
    started = time.perf_counter()
    found = search(ctx, q, depth, where, replace(params, model=None, diversity=None, diversity_depth=None), wanted,
                   text)
    rows = found.rows or [{} for _ in range(len(found))]
    stages: list[dict[str, Any]] = [{"stage": "candidates", "n": depth, "kept": len(found),
                                     "ms": (time.perf_counter() - started) * 1000}]
    order, scores = np.arange(len(found)), found.scores
    if model is not None:
        key = ctx.info.key_column
        scored = score(model, RerankQuery(query_text, q),
                       [{key: i, **{c: row[c] for c in model.columns}} for i, row in zip(found.ids.tolist(), rows,
                                                                                          strict=True)],
                       time.perf_counter)
        if scored.scores is not None:
            order, scores = np.argsort(-scored.scores, kind="stable")[:keep], scored.scores
        order = order[:keep]
        stages.append({"stage": "model", "n": len(found), "kept": len(order), "ms": scored.seconds * 1000,
                       "skipped": scored.skipped})
    if diversity is not None:
        started, offered = time.perf_counter(), len(order)
        with server_refusals(ctx, where):  # the server reads the candidates' vectors by key
            chosen = ctx.session.value(MMR_OF_ROWS, (ctx.info.id, q, found.ids[order].tolist(), k, diversity)) \
                if len(order) else []
        order = order[[p - 1 for p in chosen or []]]
        stages.append({"stage": "diversity", "n": offered, "kept": len(order),
                       "ms": (time.perf_counter() - started) * 1000})

    return _rows_of(found, order, columns, scores=scores, stages=tuple(stages))


def cut_off(ctx: CollectionContext, q: np.ndarray, text: str | None, query_text: str | None, k: int,
            where: Filter, params: SearchParams, columns: tuple[str, ...]) -> SearchResult:
    """The search without the cut-off, then only its rows whose relevance is at least min_relevance."""
    threshold = params.min_relevance
    assert threshold is not None
    if not 0 <= threshold <= 1:
        raise InvalidInputError(f"min_relevance must be between 0 and 1, got {threshold!r}")
    model = next((m for m in relevance_models(ctx) if m.state == "active"), None)
    if model is None:
        raise SchemaError(f"collection {ctx.info.name!r} has no relevance model: fit one first (fit_relevance)")
    found = search(ctx, q, k, where, replace(params, min_relevance=None), columns, text, query_text)
    relevance = np.asarray(ctx.session.value(RELEVANCE, (model.id, q, found.distances.tolist())) or [],
                           dtype=np.float64)
    keep = np.flatnonzero(relevance >= threshold)
    return _rows_of(found, keep, columns, scores=found.scores, stages=found.stages, relevance=relevance[keep],
                    below_relevance=len(found) - len(keep))


def _rows_of(found: SearchResult, order: np.ndarray, columns: tuple[str, ...], *, scores: np.ndarray | None,
             stages: tuple[dict[str, Any], ...], relevance: np.ndarray | None = None,
             below_relevance: int = 0) -> SearchResult:
    """`found`'s rows at positions `order`, in that order, each with `columns` only (a stage may have fetched
    more); `scores` holds one per row of `found`, `relevance` one per row kept."""
    rows = found.rows or [{} for _ in range(len(found))]

    def take(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values[order]

    return SearchResult(found.ids[order], found.distances[order], found.plan,
                        [{c: rows[i][c] for c in columns} for i in order] if columns else None, take(scores),
                        take(found.vector_ranks), take(found.text_ranks), stages, relevance, below_relevance)


def relevance_models(ctx: CollectionContext) -> list[RelevanceModelInfo]:
    return ctx.cached(("relevance_models",), lambda: catalog.list_relevance_models(ctx.session, ctx.info.id))


def _stage_depth(ctx: CollectionContext, where: Filter, depth: int | None, k: int, knob: str) -> int:
    """A stage's depth as the server rules it (pgembed._stage_depth: at least k; default stage_depth(k))."""
    with server_refusals(ctx, where):
        return ctx.cached(("stage_depth", depth, k, knob),
                          lambda: int(ctx.session.value(STAGE_DEPTH, (depth, k, knob))))


def query_code(codec: Codec, query: np.ndarray) -> Any:
    """The query's code as a parameter (a bit string, pgvector's HalfVector, or a float32 array for vector),
    encoded exactly as the rows were, so that the index compares like with like (pgembed.search() in SQL
    computes the same code with the codec's SQL encoder)."""
    code = codec.encode(query[None, :])
    storage = Storage(codec.storage)
    if storage is Storage.BIT:
        nbits = int(codec.sql_type().split("(")[1].rstrip(")"))
        # A bit string ('0101...'): psycopg's client-side literal for pgvector's Bit is '...'::bit, which
        # PostgreSQL reads as bit(1).
        return (np.unpackbits(code[0])[:nbits] + ord("0")).astype(np.uint8).tobytes().decode()
    if storage is Storage.HALFVEC:
        return HalfVector(np.asarray(code[0], dtype=np.float32))
    return np.asarray(code[0], dtype=np.float32)
