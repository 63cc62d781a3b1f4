"""Recall targets instead of knobs: measure, on the collection's own vectors, the cheapest search knobs
that reach a recall target, and keep them in the catalog (pgembed.tuning) for search(recall=...).

For each code column with an HNSW index and each selectivity, a sample of the table's vectors (or of real
queries, when the caller has some: they tune better, real queries being often unlike the rows) is searched
exactly — the ground truth, a row's own vector left out of its answers — and then through the index with
more and more candidates per result; the first over-fetch factor whose recall@k reaches the target is
kept. Filtered selectivities use a synthetic filter on a hash of the key, which keeps a uniform random
fraction of the rows: what pgvector's iterative scan sees with a filter uncorrelated with the vectors.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from psycopg import sql

from pgembed import catalog
from pgembed.errors import InvalidInputError, SchemaError
from pgembed.filters import EMPTY, Filter, compile_filter
from pgembed.plan import CoarseSource, Plan, PlanRequest, Tuned, choose_plan
from pgembed.progress import progress_bar
from pgembed.vectors import as_matrix

if TYPE_CHECKING:
    from pgembed.collection import Collection
    from pgembed.search import Searcher, SearchResult

OVERSAMPLE_LADDER = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 50.0)
HASH_BUCKETS = 4096


@dataclass(frozen=True)
class TuneResult:
    codec: str
    selectivity: float
    tuned: Tuned | None  # None: no setting on the ladder reached the target
    best_recall: float
    index: str | None = None  # a partial index tuned under its own predicate


def synthetic_filter(collection: Collection, selectivity: float) -> Filter:
    """A filter keeping about `selectivity` of the rows, uniformly at random (by a hash of the key)."""
    if selectivity >= 1:
        return EMPTY
    limit = max(1, round(selectivity * HASH_BUCKETS))
    clause = sql.SQL("(hashtext({}::text) & {}) < {}").format(
        collection.info.key, sql.Literal(HASH_BUCKETS - 1), sql.Literal(limit)
    )
    return Filter(clause, {})


def recall_at_k(found: list[np.ndarray], truth: list[np.ndarray], k: int) -> float:
    """Mean recall@k on distances, counting ties: a found row is a hit when its exact distance is at most
    the k-th true distance (plus 1e-6: exact duplicates and summation order blur equal distances)."""
    hits = total = 0
    for got, true in zip(found, truth, strict=True):
        want = min(k, len(true))
        if want == 0:
            continue
        kth = float(np.sort(true)[want - 1])
        hits += int(np.sum(np.asarray(got)[:want] <= kth + 1e-6))
        total += want
    return hits / total if total else 1.0


def tune(
    collection: Collection,
    searcher: Searcher,
    recall: float = 0.95,
    *,
    k: int = 10,
    sample: int = 200,
    selectivities: Sequence[float] = (1.0, 0.1, 0.02),
    codecs: Sequence[str] | None = None,
    queries: np.ndarray | None = None,
    progress: bool = False,
) -> list[TuneResult]:
    if not 0 < recall <= 1:
        raise InvalidInputError(f"recall must be in (0, 1], got {recall!r}")
    if any(not 0 < s <= 1 for s in selectivities) or not selectivities:
        raise InvalidInputError(f"selectivities must be in (0, 1], got {list(selectivities)!r}")
    searcher.forget()
    # Full indexes under the synthetic filters; each partial index under its own predicate, the only
    # filter it serves (queries correlated with a predicate behave unlike uniform filters).
    wanted = [s for s in searcher.sources() if codecs is None or s.codec in codecs]
    sources = [s for s in wanted if s.predicate is None]
    partial = [s for s in wanted if s.predicate is not None]
    if not sources and not partial:
        raise SchemaError(f"collection {collection.name!r} has no code column with an HNSW index to tune")
    if queries is None:
        keys, queries = collection.sample_rows(sample, seed=7)
    else:
        keys = [None] * len(queries)
        queries = as_matrix(queries, collection.dim, what="queries")
    if len(queries) == 0:
        raise SchemaError(f"collection {collection.name!r} has no vectors to tune on")
    total = searcher.total_rows()
    # A table row's own vector is its nearest neighbour, a hit no real query gets for free: fetch one more
    # than k, then leave it out.
    own = 1 if keys[0] is not None else 0
    codec_ids = {c.name: c.id for c in collection.codecs() if c.state == "active"}
    results: list[TuneResult] = []
    steps = (len(selectivities) * (1 + len(sources)) if sources else 0) + 2 * len(partial)
    with progress_bar(f"tune {collection.name} for recall {recall}", steps, progress) as bar:
        for selectivity in selectivities if sources else ():
            where = synthetic_filter(collection, selectivity)
            truth = _truth(searcher, where, queries, keys, k, own)
            if bar is not None:
                bar.advance(bar.task_ids[0])
            for source in sources:
                result = _tune_source(searcher, source, where, selectivity, total, queries, keys, truth, k, recall,
                                      own)
                if result.tuned is not None:
                    catalog.save_tuning(collection.conn, collection.info.id, codec_ids[source.codec],
                                        result.tuned, len(queries))
                results.append(result)
                if bar is not None:
                    bar.advance(bar.task_ids[0])
        columns = searcher.column_types()
        for source in partial:
            assert source.predicate is not None
            where = compile_filter(dict(source.predicate), columns)
            truth = _truth(searcher, where, queries, keys, k, own)
            if bar is not None:
                bar.advance(bar.task_ids[0])
            result = _tune_source(searcher, source, where, 1.0, total, queries, keys, truth, k, recall, own,
                                  filter_doc=dict(source.predicate))
            if result.tuned is not None:
                catalog.save_tuning(collection.conn, collection.info.id, codec_ids[source.codec], result.tuned,
                                    len(queries), index_name=source.index)
            results.append(result)
            if bar is not None:
                bar.advance(bar.task_ids[0])
    searcher.forget()
    return results


def _truth(searcher: Searcher, where: Filter, queries: np.ndarray, keys: Sequence[object], k: int,
           own: int) -> list[np.ndarray]:
    """Exact top-k distances per query under `where` (the query's own row left out)."""
    statement = searcher.exact_statement(where, [], k + own)
    exact = Plan("exact", "ground truth", k=k + own)
    return [_without(searcher._fetch(exact, statement, q, where, []), key, k)
            for q, key in zip(queries, keys, strict=True)]


def _without(result: SearchResult, key: object, k: int) -> np.ndarray:
    """The distances of a k+1 result with the row `key` (the query's own) left out, at most k of them."""
    if key is None:
        return result.distances[:k]
    keep = [i for i, found in enumerate(result.ids.tolist()) if found != key]
    return result.distances[keep][:k]


def _tune_source(searcher: Searcher, source: CoarseSource, where: Filter, selectivity: float, total: float,
                 queries: np.ndarray, keys: Sequence[object], truth: list[np.ndarray], k: int,
                 target: float, own: int, filter_doc: dict[str, Any] | None = None) -> TuneResult:
    best = 0.0
    for oversample in OVERSAMPLE_LADDER:
        if math.ceil(k * oversample) > 1000 and oversample > OVERSAMPLE_LADDER[0]:
            break
        partial = filter_doc is not None  # a partial index, searched under its own predicate
        plan = choose_plan(PlanRequest(
            k=k + own, filtered=selectivity < 1 or partial,
            estimated_rows=source.index_rows if partial else selectivity * total, total_rows=total,
            sources=(source,), oversample=oversample, plan="index", filter_doc=filter_doc,
        ))
        statement = searcher.index_statement(plan, where, [])
        started = time.perf_counter()
        found = [_without(searcher._fetch(plan, statement, q, where, []), key, k)
                 for q, key in zip(queries, keys, strict=True)]
        seconds = time.perf_counter() - started
        measured = recall_at_k(found, truth, k)
        best = max(best, measured)
        if measured >= target:
            assert plan.ef_search is not None
            tuned = Tuned(recall_target=target, selectivity=selectivity, ef_search=plan.ef_search,
                          oversample=oversample, measured_recall=measured, queries_per_s=len(queries) / seconds)
            return TuneResult(source.codec, selectivity, tuned, measured, source.index if partial else None)
    return TuneResult(source.codec, selectivity, None, best, source.index if partial else None)
