"""search_batch: a batch of hybrid queries planned together.

Queries are grouped by filter (its identity, pgembed.planning.filters). Each group is answered one of two
ways, chosen by the cost model (pgembed.planning.costs):

- scan: the group's matching rows are read once and all the group's queries scored together: where the kernels
  are bound, on the server (the kernels' exact_topk: engine.search.scan_on_server), else read out (binary COPY,
  vectors parsed by numpy) and scored with matrix products (scan.py); exact, the read shared by the group.
- each: the group's queries go through search()'s plan (exact on few rows, HNSW on codes and re-rank, partial
  indexes). The plan depends on the filter and the knobs, not on the vector, so an index plan runs the
  group's queries together, one statement per EACH_CHUNK (engine.search.search_many).
- probe (with the `probes` knob): the group's queries read their nearest clusters of the collection's
  partitioning codec, all of them in one read of those clusters on the server (engine.search.search_probed):
  exact distances over a share of the rows. In "auto", a group the planner would search through an index, when
  the cost model finds reading its queries' clusters cheaper than the other two ways.

Within a group, identical query vectors are answered once and the answer copied: HQI's sharing of work in
its exact form (sharing candidate lists between merely similar queries was measured not to reach recall 0.95
on real queries: docs/benchmarks.md, "Batched search").
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pgembed.engine import search as searching
from pgembed.engine.batch.scan import MAX_SCAN_QUERIES, scan_group
from pgembed.engine.batch.workers import worker_contexts
from pgembed.engine.context import CollectionContext
from pgembed.errors import InvalidInputError
from pgembed.planning.costs import CostModel
from pgembed.planning.filters import Filter, as_filter
from pgembed.planning.params import SearchParams
from pgembed.planning.plans import PreparedSearch
from pgembed.progress import progress_bar
from pgembed.vectors import as_queries
from pgembed.vocabulary import BatchStrategy, PlanKind

EACH_CHUNK = 16  # per-query work is handed to the workers in chunks of this many queries
PROBE_CHUNK = 4096  # a probed group's queries a statement: each statement reads the probed clusters once
SERVER_HEAP_ENTRIES = 10_000_000  # queries x k a scan on the server holds at most (heaps.c KEY_HEAPS_MAX_ENTRIES)


@dataclass(frozen=True)
class GroupPlan:
    filter: Any  # the group's filter as given (a dict, a SQLAlchemy expression, or None)
    queries: int
    estimated_rows: float
    kind: BatchStrategy  # SCAN, EACH or PROBE
    reason: str
    seconds: float = 0.0  # measured
    unique: int | None = None  # distinct query vectors among them (each answered once)
    exact_fallbacks: int = 0  # scanned queries answered again by the exact plan (ties past the kept rows)

    def describe(self) -> dict[str, Any]:
        where = self.filter if self.filter is None or isinstance(self.filter, dict) else str(self.filter)
        return {"filter": where, "queries": self.queries, "unique_queries": self.unique,
                "estimated_rows": self.estimated_rows, "kind": self.kind.value, "reason": self.reason,
                "seconds": round(self.seconds, 4), "exact_fallbacks": self.exact_fallbacks}


@dataclass
class BatchResult:
    """Per query (row i): up to k keys and exact distances, best first; rows past counts[i] are padding
    (key None, distance inf): a query whose filter matches fewer than k rows gets all of them."""

    ids: np.ndarray  # (n, k) object array
    distances: np.ndarray  # (n, k) float64
    counts: np.ndarray  # (n,) int
    groups: list[GroupPlan] = field(default_factory=list)
    connections: int = 1  # connections that worked on it (the caller's and its workers)

    def plan_mix(self) -> dict[str, int]:
        """Queries answered by each strategy."""
        mix: dict[str, int] = {}
        for g in self.groups:
            mix[g.kind.value] = mix.get(g.kind.value, 0) + g.queries
        return mix


@dataclass
class _Group:
    original: Any
    where: Filter
    members: list[int]  # query rows answered (one per distinct vector)
    size: int  # query rows in the group, copies included
    prepared: PreparedSearch | None = None


Task = tuple[int, BatchStrategy, list[int]]  # (group number, strategy, query rows)


def search_batch(ctx: CollectionContext, queries: Any, k: int, *, where: Any = None, params: SearchParams,
                 strategy: BatchStrategy | str = BatchStrategy.AUTO, cost: CostModel | None = None,
                 workers: int | None = None, progress: bool = False, texts: Sequence[str | None] | None = None,
                 query_texts: Sequence[str | None] | None = None) -> BatchResult:
    """Answer every query of `queries` (n x dim); `where` is one filter for all, or a list of n filters.

    strategy: "auto" (the cost model chooses per group; with params.probes, it may probe a group the planner
    would search through an index), "scan" (every group scanned: exact), "each" (every query through search()'s
    plan, with `params`), or "probe" (every group probed: params.probes clusters a query). Knobs that only a
    per-query plan honours (a recall target, a codec, a forced plan, a later stage) make every group "each", and
    so do texts. texts: each query's text for the full-text list (search()'s `text`); query_texts: each query's
    text for a model stage (search()'s `query_text`, default its text). workers: connections working at once
    (default 1; see worker_contexts)."""
    q = as_queries(queries, ctx.info.dim, ctx.info.metric)
    k = searching.check_k(k)
    try:
        strategy = BatchStrategy(strategy)
    except ValueError:
        raise InvalidInputError(f"strategy must be one of {', '.join(s.value for s in BatchStrategy)}, "
                                f"got {strategy!r}") from None
    n = q.shape[0]
    texts, query_texts = _texts(texts, "texts", n), _texts(query_texts, "query_texts", n)
    if isinstance(where, list | tuple):
        if len(where) != n:
            raise InvalidInputError(f"got {len(where)} filters for {n} queries: give one, or one per query")
        filters = list(where)
    else:
        filters = [where] * n
    cost = cost or CostModel()
    per_query = replace(params, probes=None)  # a batch's knob: search() plans one query without it
    lists = searching.partitioning(ctx).lists if params.probes is not None else None
    groups: dict[str, _Group] = {}
    for i, original in enumerate(filters):
        compiled = as_filter(original)
        group = groups.setdefault(compiled.identity, _Group(original, compiled, [], 0))
        group.members.append(i)
        group.size += 1
    entries = list(groups.values())
    copies = _answer_repeats_once(q, entries, texts, query_texts)

    tasks: list[Task] = []
    plans: list[GroupPlan] = []
    for number, group in enumerate(entries):
        group.prepared = searching.prepare(ctx, group.where, k, per_query)
        plan = group.prepared.plan
        rows = plan.estimated_rows if group.prepared.filtered and plan.estimated_rows is not None \
            else plan.total_rows or 0.0
        kind, reason = _choose(strategy, params, cost, rows, len(group.members), ctx.info.dim,
                               texts is not None or query_texts is not None, plan.kind, group.where, lists,
                               float(plan.total_rows or rows))
        chunk = {BatchStrategy.SCAN: MAX_SCAN_QUERIES, BatchStrategy.PROBE: PROBE_CHUNK}.get(kind, EACH_CHUNK)
        if kind is BatchStrategy.PROBE or (kind is BatchStrategy.SCAN and group.prepared.server_scan is not None):
            chunk = max(1, min(chunk, SERVER_HEAP_ENTRIES // max(k, params.probes or 1)))
        tasks += [(number, kind, group.members[i : i + chunk]) for i in range(0, len(group.members), chunk)]
        plans.append(GroupPlan(group.original, group.size, rows, kind, reason, unique=len(group.members)))
    # The biggest tasks first, so that the workers finish together.
    tasks.sort(key=lambda t: -(len(t[2]) * (20 if t[1] is BatchStrategy.SCAN else 1)))

    ids = np.full((n, k), None, dtype=object)
    distances = np.full((n, k), np.inf, dtype=np.float64)
    counts = np.zeros(n, dtype=np.int64)
    seconds = [0.0] * len(entries)
    fallbacks = [0] * len(entries)
    timing = threading.Lock()

    def put(i: int, keys: np.ndarray, found: np.ndarray) -> None:
        counts[i] = len(keys)
        ids[i, : counts[i]] = keys
        distances[i, : counts[i]] = found

    def run(worker: CollectionContext, task: Task) -> None:
        number, kind, members = task
        group = entries[number]
        assert group.prepared is not None
        started = time.perf_counter()
        if kind is BatchStrategy.SCAN and group.prepared.server_scan is not None:
            for i, (keys, found) in zip(members, searching.scan_on_server(worker, q[members], group.prepared),
                                        strict=True):
                put(i, keys, found)
        elif kind is BatchStrategy.SCAN:
            unsure = scan_group(worker, q[members], k, group.prepared.clause, members, ids, distances, counts)
            with timing:
                fallbacks[number] += len(unsure)
            for i in unsure:  # ties past the kept rows
                exact = searching.run_exact(worker, group.prepared, q[i])
                put(i, exact.ids, exact.distances)
        elif kind is BatchStrategy.PROBE:
            assert params.probes is not None
            for i, (keys, found) in zip(members, searching.search_probed(worker, q[members], k, group.where,
                                                                         params.probes), strict=True):
                if len(keys) < k:  # fewer than k in its clusters: k rows whenever k match, as search() does
                    exact = searching.run_exact(worker, group.prepared, q[i])
                    keys, found = exact.ids, exact.distances
                put(i, keys, found)
        else:
            for i, result in zip(members, _search_each(worker, q, members, group, k, per_query, texts, query_texts),
                                 strict=True):
                put(i, result.ids, result.distances)
        with timing:
            seconds[number] += time.perf_counter() - started

    with progress_bar(f"search_batch {ctx.info.name}", n, progress) as bar, worker_contexts(ctx, workers) as pool:
        if bar is not None and copies:  # answered by their twins
            bar.advance(bar.task_ids[0], len(copies))
        _drain(pool, tasks, run, lambda done: bar.advance(bar.task_ids[0], done) if bar is not None else None)
        connections = len(pool)
    for i, source in copies:
        ids[i], distances[i], counts[i] = ids[source], distances[source], counts[source]
    plans = [replace(p, seconds=seconds[i], exact_fallbacks=fallbacks[i]) for i, p in enumerate(plans)]
    return BatchResult(ids, distances, counts, plans, connections)


def _texts(texts: Sequence[str | None] | None, name: str, n: int) -> list[str | None] | None:
    if texts is None:
        return None
    if isinstance(texts, str) or not all(t is None or isinstance(t, str) for t in texts):
        raise InvalidInputError(f"{name} is a list of one text (or None) a query, not {type(texts).__name__}")
    if len(texts) != n:
        raise InvalidInputError(f"got {len(texts)} {name} for {n} queries: give one a query")
    return list(texts)


def _answer_repeats_once(q: np.ndarray, entries: list[_Group], texts: list[str | None] | None,
                         query_texts: list[str | None] | None) -> list[tuple[int, int]]:
    """Leave one query row per distinct query (its vector, and its texts) in each group; returns (row, the row
    whose answer it takes)."""
    copies: list[tuple[int, int]] = []
    for group in entries:
        first: dict[tuple[bytes, str | None, str | None], int] = {}
        for i in group.members:
            key = (q[i].tobytes(), None if texts is None else texts[i],
                   None if query_texts is None else query_texts[i])
            source = first.setdefault(key, i)
            if source != i:
                copies.append((i, source))
        group.members = sorted(first.values())
    return copies


def _choose(strategy: BatchStrategy, params: SearchParams, cost: CostModel, rows: float, queries: int,
            dim: int, with_texts: bool, planned: PlanKind, where: Filter, lists: int | None, total_rows: float
            ) -> tuple[BatchStrategy, str]:
    if with_texts:
        if strategy in (BatchStrategy.SCAN, BatchStrategy.PROBE):
            raise InvalidInputError(f"a {strategy.value} answers by the vectors alone: texts need strategy "
                                    "\"auto\" or \"each\"")
        return BatchStrategy.EACH, "texts (full-text lists or a model stage's): per query"
    if strategy is BatchStrategy.PROBE:
        if params.probes is None:
            raise InvalidInputError("strategy \"probe\" reads each query's nearest clusters: give probes=")
        return BatchStrategy.PROBE, "asked for"
    scan_s = cost.scan_seconds(rows, queries, dim)
    each_s = cost.each_seconds(queries)
    # Probing answers approximately: only in place of the planner's index plan, itself approximate.
    if (strategy is BatchStrategy.AUTO and params.probes is not None and lists is not None
            and planned is PlanKind.INDEX and where.clause is None and not params.per_query_only):
        probe_s = cost.probe_seconds(total_rows, rows, queries, params.probes, lists)
        if probe_s < min(scan_s, each_s):
            return BatchStrategy.PROBE, (f"~{probe_s:.3f}s to read each query's {params.probes} nearest of {lists} "
                                         f"clusters < ~{min(scan_s, each_s):.3f}s (the index plan's group)")
    if strategy is BatchStrategy.SCAN or (strategy is BatchStrategy.AUTO and not params.per_query_only
                                          and scan_s < each_s):
        return BatchStrategy.SCAN, f"~{rows:.0f} rows read once for {queries} queries: ~{scan_s:.3f}s < ~{each_s:.3f}s"
    if strategy is BatchStrategy.EACH:
        return BatchStrategy.EACH, "asked for"
    if params.per_query_only:
        return BatchStrategy.EACH, "knobs only a per-query search honours (recall, codec, plan, stages): per query"
    return BatchStrategy.EACH, f"~{each_s:.3f}s <= ~{scan_s:.3f}s to scan ~{rows:.0f} rows"


def _search_each(worker: CollectionContext, queries: np.ndarray, members: list[int], group: _Group, k: int,
                 params: SearchParams, texts: list[str | None] | None, query_texts: list[str | None] | None
                 ) -> list[searching.SearchResult]:
    """search() for each query of a group: together in one statement when the plan is an index plan
    (1.16-1.28x the speed of one statement a query in raw SQL, measured), else one by one."""
    prepared = group.prepared
    assert prepared is not None
    q = queries[members]
    if texts is not None or query_texts is not None:
        return [searching.search(worker, queries[i], k, group.where, params,
                                 text=None if texts is None else texts[i],
                                 query_text=None if query_texts is None else query_texts[i]) for i in members]
    if prepared.plan.kind is PlanKind.INDEX and len(q) > 1 and not params.later_stages:
        try:
            return searching.search_many(worker, q, prepared)
        except searching.STALE_PLAN:
            # A codec re-fitted or dropped elsewhere since the plan was made (search() does the same): plan
            # again, once; a second failure is a real error and goes to the caller.
            worker.forget()
            prepared = searching.prepare(worker, group.where, k, params)
            if prepared.plan.kind is PlanKind.INDEX:
                return searching.search_many(worker, q, prepared)
    return [searching.search(worker, v, k, group.where, params) for v in q]


def _drain(pool: list[CollectionContext], tasks: list[Task], run: Any, advance: Any) -> None:
    """Run the tasks on every worker at once, the caller's connection in this thread; the first error is
    re-raised here once all have stopped."""
    pending: queue.SimpleQueue[Task] = queue.SimpleQueue()
    for task in tasks:
        pending.put(task)
    errors: list[BaseException] = []

    def drain(worker: CollectionContext) -> None:
        while not errors:
            try:
                task = pending.get_nowait()
            except queue.Empty:
                return
            try:
                run(worker, task)
            except BaseException as err:  # re-raised in the caller's thread
                errors.append(err)
                return
            advance(len(task[2]))

    threads = [threading.Thread(target=drain, args=(w,), daemon=True) for w in pool[1:]]
    for t in threads:
        t.start()
    drain(pool[0])
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def iter_search_batch(ctx: CollectionContext, batches: Iterator[tuple[Any, Any]], k: int, *,
                      params: SearchParams, **options: Any) -> Iterator[BatchResult]:
    """search_batch over (queries, where) chunks of a workload larger than memory, one result per chunk."""
    for queries, where in batches:
        yield search_batch(ctx, queries, k, where=where, params=params, **options)
