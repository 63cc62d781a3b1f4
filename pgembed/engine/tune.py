"""Recall targets instead of knobs: measure, on the collection's own vectors, the cheapest search knobs that
reach a recall target, and keep them in the catalog (pgembed.tuning) for search(recall=...).

For each code column with an HNSW index and each selectivity, a sample of the table's vectors (or of real
queries, when the caller has some: they tune better, real queries being often unlike the rows) is searched
exactly (the ground truth, a row's own vector left out of its answers) and then through the index with more
and more candidates per result; the first over-fetch factor whose recall@k reaches the target is kept.
Filtered selectivities use a synthetic filter on a hash of the key, which keeps a uniform random fraction of
the rows: what pgvector's iterative scan sees with a filter uncorrelated with the vectors. Each partial index
is tuned apart, under its own predicate, the only filter it serves.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pgembed.db import catalog
from pgembed.engine import search as searching
from pgembed.engine.codecs import require_every_row
from pgembed.engine.context import CollectionContext
from pgembed.engine.filters import server_refusals
from pgembed.engine.rows import sample_rows, table_rows
from pgembed.errors import InvalidInputError, SchemaError
from pgembed.groundtruth import recall_at_k, recall_lower_bound
from pgembed.planning.filters import NO_FILTER, Filter, as_filter
from pgembed.planning.params import SearchParams
from pgembed.progress import progress_bar
from pgembed.records import CoarseSource, Tuned
from pgembed.statements import rows as row_statements
from pgembed.statements.search import CHECK_SEARCH_PARAMS
from pgembed.vectors import as_matrix
from pgembed.vocabulary import PlanKind

OVERSAMPLE_LADDER = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 50.0)


@dataclass(frozen=True)
class TuneResult:
    codec: str
    selectivity: float
    tuned: Tuned | None  # None: no setting on the ladder reached the target
    best_recall: float
    index: str | None = None  # a partial index tuned under its own predicate
    recall_lower_bound: float | None = None  # of the setting kept (or the best tried): what met the target

    @property
    def params(self) -> SearchParams | None:
        """The knobs measured to reach the target, as search() takes them."""
        if self.tuned is None:
            return None
        return SearchParams(codec=self.codec, ef_search=self.tuned.ef_search, oversample=self.tuned.oversample)

    def describe(self) -> dict[str, Any]:
        return {"codec": self.codec, "index": self.index, "selectivity": self.selectivity,
                "best_recall": self.best_recall, "recall_lower_bound": self.recall_lower_bound,
                "tuned": None if self.tuned is None else self.tuned.__dict__,
                "params": None if self.params is None else self.params.to_dict()}


def synthetic_filter(ctx: CollectionContext, selectivity: float) -> Filter:
    """A filter keeping about `selectivity` of the rows, uniformly at random (by a hash of the key)."""
    clause = row_statements.synthetic_filter(ctx.info, selectivity)
    return NO_FILTER if clause is None else Filter(f"synthetic:{selectivity!r}", clause=clause)


def tune(ctx: CollectionContext, recall: float = 0.95, *, k: int = 10, sample: int = 200,
         selectivities: Sequence[float] = (1.0, 0.1, 0.02), codecs: Sequence[str] | None = None,
         queries: np.ndarray | None = None, progress: bool = False) -> list[TuneResult]:
    k = searching.check_k(k)
    SearchParams(recall=recall)  # its type; its range is the planner's:
    with server_refusals(ctx, NO_FILTER):
        ctx.session.execute(CHECK_SEARCH_PARAMS, {"k": k, "recall": recall, "ef_search": None, "oversample": None,
                                                  "plan": PlanKind.AUTO.value, "refine": None,
                                                  "refine_oversample": None, "rerank": True})
    if not selectivities or any(isinstance(s, bool) or not 0 < s <= 1 for s in selectivities):
        raise InvalidInputError(f"selectivities must be in (0, 1], got {list(selectivities)!r}")
    require_every_row(ctx, "tune", "the knobs it stores serve every reader, so they are measured on every row")
    ctx.forget()
    if codecs is not None:
        for name in codecs:
            ctx.active_codec(name)  # an unknown or still-building codec is named as such
    wanted = [s for s in ctx.sources() if codecs is None or s.codec in codecs]
    full = [s for s in wanted if s.predicate is None]
    partial = [s for s in wanted if s.predicate is not None]
    if not full and not partial:
        raise SchemaError(f"collection {ctx.info.name!r} has no code column with an HNSW index to tune")
    if queries is None:
        keys, queries = sample_rows(ctx, sample, seed=7)
    else:
        queries = as_matrix(queries, ctx.info.dim, what="queries")
        keys = [None] * len(queries)
    if len(queries) == 0:
        raise SchemaError(f"collection {ctx.info.name!r} has no vectors to tune on")
    total = table_rows(ctx)
    # A table row's own vector is its nearest neighbour, a hit no real query gets for free: fetch one more
    # than k, then leave it out.
    own = 1 if keys[0] is not None else 0
    results: list[TuneResult] = []
    steps = (len(selectivities) * (1 + len(full)) if full else 0) + 2 * len(partial)
    with progress_bar(f"tune {ctx.info.name} for recall {recall}", steps, progress) as bar:
        def step() -> None:
            if bar is not None:
                bar.advance(bar.task_ids[0])

        for selectivity in selectivities if full else ():
            where = synthetic_filter(ctx, selectivity)
            truth = _truth(ctx, where, queries, keys, k, own)
            step()
            for source in full:
                rows = selectivity * total if selectivity < 1 else None
                result = _tune_source(ctx, source, where, rows, selectivity, queries, keys, truth, k, recall, own)
                _keep(ctx, source, result, recall, len(queries))
                results.append(result)
                step()
        for source in partial:
            where = as_filter(source.predicate)
            truth = _truth(ctx, where, queries, keys, k, own)
            step()
            result = _tune_source(ctx, source, where, source.index_rows, 1.0, queries, keys, truth, k, recall, own)
            _keep(ctx, source, result, recall, len(queries))
            results.append(result)
            step()
    ctx.forget()
    return results


def _keep(ctx: CollectionContext, source: CoarseSource, result: TuneResult, target: float, sample: int) -> None:
    """A setting that met the target is stored; one that did not removes what an earlier tune() stored for the
    same target and selectivity, which no longer holds (search then takes the exact plan there)."""
    index_name = source.index if source.predicate is not None else ""
    if result.tuned is not None:
        catalog.save_tuning(ctx.session, ctx.info.id, source.codec_id, result.tuned, sample, index_name=index_name)
    else:
        catalog.forget_tuning(ctx.session, ctx.info.id, source.codec_id, index_name, target, result.selectivity)


def _truth(ctx: CollectionContext, where: Filter, queries: np.ndarray, keys: Sequence[object], k: int,
           own: int) -> list[np.ndarray]:
    """Exact top-k distances per query under `where` (the query's own row left out)."""
    prepared = searching.prepare(ctx, where, k + own, SearchParams(plan=PlanKind.EXACT))
    return [_without(searching.run_exact(ctx, prepared, q), key, k) for q, key in zip(queries, keys, strict=True)]


def _without(result: searching.SearchResult, key: object, k: int) -> np.ndarray:
    """The distances of a k+1 result with the row `key` (the query's own) left out, at most k of them."""
    if key is None:
        return result.distances[:k]
    keep = [i for i, found in enumerate(result.ids.tolist()) if found != key]
    return result.distances[keep][:k]


def _tune_source(ctx: CollectionContext, source: CoarseSource, where: Filter, estimated_rows: float | None,
                 selectivity: float, queries: np.ndarray, keys: Sequence[object], truth: list[np.ndarray], k: int,
                 target: float, own: int) -> TuneResult:
    best, best_bound = 0.0, 0.0
    partial = source.predicate is not None
    for oversample in OVERSAMPLE_LADDER:
        knobs = SearchParams(codec=source.codec, oversample=oversample, plan=PlanKind.INDEX)
        prepared = searching.prepare(ctx, where, k + own, knobs, estimated_rows=estimated_rows,
                                     only_index=source.index)
        plan = prepared.plan
        assert plan.candidates is not None and plan.ef_search is not None
        if plan.candidates > plan.ef_search and oversample > OVERSAMPLE_LADDER[0]:
            break  # past pgvector's largest ef_search
        started = time.perf_counter()
        found = [_without(searching.run_plan(ctx, prepared, q), key, k) for q, key in zip(queries, keys, strict=True)]
        seconds = time.perf_counter() - started
        measured = recall_at_k(found, truth, k)
        bound = recall_lower_bound(found, truth, k)
        if measured >= best:
            best, best_bound = measured, bound
        if bound >= target:  # the mean alone would promise the target to half the queries like these
            tuned = Tuned(recall_target=target, selectivity=selectivity, ef_search=plan.ef_search,
                          oversample=oversample, measured_recall=measured, queries_per_s=len(queries) / seconds)
            return TuneResult(source.codec, selectivity, tuned, measured, source.index if partial else None, bound)
    return TuneResult(source.codec, selectivity, None, best, source.index if partial else None, best_bound)
