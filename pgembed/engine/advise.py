"""Workload-aware layout: from a workload (the filters of past or expected queries), recommend partial HNSW
indexes for hot predicates and a LIST partitioning column, with estimated gains; apply the indexes.

Partitioning is applied to the index, not the table: with `partition=True`, one partial HNSW index per value
of the partitioning column that the workload's queries select on (where it pays), so that a query on one value
searches a graph of that value's rows only, as HQI's workload-aware partitions do. pgembed does not
repartition the user's table: PostgreSQL requires every unique constraint of a partitioned table to include
the partitioning column, so a primary key on the id alone (and the foreign keys that reference it) would not
survive.

Estimates come from the server's planner (which plan each filter gets today, on how many rows) and the cost
model (pgembed.planning.costs): a query through a partial index that holds exactly its rows costs
`partial_query`; otherwise what its plan costs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from pgembed.engine import indexes
from pgembed.engine import search as searching
from pgembed.engine.context import CollectionContext
from pgembed.errors import InvalidInputError, SchemaError
from pgembed.planning.costs import CostModel
from pgembed.planning.filters import Filter, as_filter, same_value
from pgembed.planning.params import SearchParams
from pgembed.planning.plans import PreparedSearch
from pgembed.vocabulary import IndexMethod, Placement, PlanKind


@dataclass(frozen=True)
class IndexAdvice:
    predicate: dict[str, Any]
    codec: str
    queries: int  # workload queries it serves
    share: float
    estimated_rows: float
    seconds_now: float  # estimated, per query
    seconds_after: float
    applied: str | None = None  # the index name, once applied

    @property
    def gain(self) -> float:
        """Estimated seconds saved over the whole workload."""
        return self.queries * (self.seconds_now - self.seconds_after)


@dataclass(frozen=True)
class Advice:
    queries: int
    indexes: list[IndexAdvice] = field(default_factory=list)
    partition_by: str | None = None  # the column whose equality predicates split the workload best
    partition_reason: str = ""
    partition_indexes: list[IndexAdvice] = field(default_factory=list)  # one per value, with partition=True

    def describe(self) -> dict[str, Any]:
        def listed(items: list[IndexAdvice]) -> list[dict[str, Any]]:
            return [{**asdict(i), "estimated_gain_s": round(i.gain, 4)} for i in items]

        return {"queries": self.queries, "indexes": listed(self.indexes), "partition_by": self.partition_by,
                "partition_reason": self.partition_reason, "partition_indexes": listed(self.partition_indexes)}


def workload_filters(workload: Any) -> list[Any]:
    """One filter per query, from a list of filters or from a workload document
    ({"filters": {name: filter}, "queries": [{"query": i, "filter": name or null}, ...]}, as the workload bench
    writes and reads them)."""
    if isinstance(workload, dict) and "queries" in workload:
        named = workload.get("filters", {})
        try:
            return [named[q["filter"]] if q.get("filter") is not None else None for q in workload["queries"]]
        except (KeyError, TypeError) as err:
            raise InvalidInputError(f"workload names a filter it does not define: {err}") from err
    if isinstance(workload, list | tuple):
        return list(workload)
    raise InvalidInputError("a workload is a list of filters (one per query) or a workload document")


class _Estimator:
    """Per filter (by identity), what the planner does with it today and what that costs."""

    def __init__(self, ctx: CollectionContext, cost: CostModel) -> None:
        self.ctx, self.cost = ctx, cost

    def prepared(self, where: Filter) -> PreparedSearch:
        return searching.prepare(self.ctx, where, 10, SearchParams())

    def rows(self, where: Filter) -> float:
        plan = self.prepared(where).plan
        return max(plan.estimated_rows if plan.estimated_rows is not None else plan.total_rows or 0.0, 1.0)

    def seconds_now(self, where: Filter) -> float:
        plan = self.prepared(where).plan
        total = plan.total_rows or 1.0
        return self.cost.query_seconds(plan.kind, self.rows(where), self.rows(where) / total)


def advise(ctx: CollectionContext, workload: Any, *, codec: str | None = None, min_share: float = 0.02,
           max_indexes: int = 8, partition: bool = False, max_partitions: int = 64, apply: bool = False,
           progress: bool = False, cost: CostModel | None = None) -> Advice:
    """`workload`: one filter per query (a dict, or None for unfiltered), or a workload document (see
    workload_filters). Recommends a partial HNSW index on `codec` (default: the first code column with an HNSW
    index) for each dict filter used by at least `min_share` of the queries, when it is estimated to pay;
    with `partition`, also one per value of the partitioning column the queries select on (at most
    `max_partitions`, each where it pays; see the module docstring). `apply=True` builds them with CREATE
    INDEX CONCURRENTLY where it can (readers and writers go on)."""
    filters = workload_filters(workload)
    if not filters:
        raise InvalidInputError("advise needs a workload: a list of filters, one per query")
    if not 0 < min_share <= 1:
        raise InvalidInputError(f"min_share must be in (0, 1], got {min_share!r}")
    if ctx.info.placement is Placement.COMPANION:
        raise SchemaError(f"collection {ctx.info.name!r} keeps its codes in a companion table, which has none of "
                          "the filters' columns: advise's partial indexes need placement='table'")
    full = [s for s in ctx.sources() if s.predicate is None]
    if codec is None:
        if not full:
            raise SchemaError(f"collection {ctx.info.name!r} has no code column with an HNSW index to copy "
                              "for partial indexes: create_index(<codec>) first")
        codec = full[0].codec
    else:
        ctx.active_codec(codec)
    estimate = _Estimator(ctx, cost or CostModel())
    counts: Counter[str] = Counter()
    docs: dict[str, Filter] = {}
    for f in filters:
        if not isinstance(f, dict) or not f:
            continue  # no filter, or a SQLAlchemy one: nothing a partial index's predicate can hold
        compiled = as_filter(f)
        estimate.prepared(compiled)  # a bad filter is refused here, naming the problem
        counts[compiled.identity] += 1
        docs[compiled.identity] = compiled
    n = len(filters)
    existing = {as_filter(s.predicate).identity for s in ctx.sources() if s.predicate is not None and s.codec == codec}
    advice: list[IndexAdvice] = []
    for identity, count in counts.most_common():
        if count / n < min_share or len(advice) >= max_indexes:
            break
        if identity in existing:
            continue
        now = estimate.seconds_now(docs[identity])
        if now <= estimate.cost.partial_query:
            continue
        doc = docs[identity].doc
        assert doc is not None
        advice.append(IndexAdvice(doc, codec, count, count / n, estimate.rows(docs[identity]), now,
                                  estimate.cost.partial_query))
    partition_by, reason = _partition_column(filters, n)
    partitions: list[IndexAdvice] = []
    if partition and partition_by is not None:
        taken = [dict(s.predicate) for s in ctx.sources() if s.predicate is not None]
        partitions = _partition_indexes(estimate, filters, partition_by, codec,
                                        taken + [a.predicate for a in advice], max_partitions)
    if apply:
        advice = _build(ctx, advice, progress)
        partitions = _build(ctx, partitions, progress)
    return Advice(n, advice, partition_by, reason, partitions)


def _partition_indexes(estimate: _Estimator, filters: list[Any], column: str, codec: str,
                       taken: list[dict[str, Any]], limit: int) -> list[IndexAdvice]:
    """A partial index per value v of `column` the workload selects on ({column: v} at its filters' top level,
    v a string, number or boolean), when the queries it would serve are estimated to gain: those whose filter
    is exactly {column: v} (the planner searches such an index however few its rows) and those with more
    filter on top that the exact plan does not answer today (an iterative scan inside the partition, at their
    selectivity within it). A value some partial index already restricts (`taken`) gets none: with two
    partial indexes matching a filter the planner takes the first by name, not the better one."""
    cost = estimate.cost
    by_filter: Counter[str] = Counter()
    docs: dict[str, Filter] = {}
    for f in filters:
        value = f.get(column) if isinstance(f, dict) else None
        if isinstance(value, str | int | float) and not any(column in t and same_value(t[column], value)
                                                            for t in taken):
            compiled = as_filter(f)
            by_filter[compiled.identity] += 1
            docs[compiled.identity] = compiled
    served: dict[str, tuple[dict[str, Any], int, float, float, float]] = {}  # predicate, queries, now, after, rows
    for identity, count in by_filter.items():
        doc = docs[identity].doc
        assert doc is not None
        predicate = {column: doc[column]}
        whole = doc == predicate
        if not whole and estimate.prepared(docs[identity]).plan.kind is PlanKind.EXACT:
            continue  # the exact plan answers it before any index would
        partition = as_filter(predicate)
        partition_rows = estimate.rows(partition)
        after = cost.partial_query if whole else max(
            cost.partial_query, cost.query_seconds(PlanKind.INDEX, 0, estimate.rows(docs[identity]) / partition_rows))
        _, queries, now_s, after_s, _ = served.get(partition.identity, (predicate, 0, 0.0, 0.0, 0.0))
        served[partition.identity] = (predicate, queries + count, now_s + count * estimate.seconds_now(docs[identity]),
                                      after_s + count * after, partition_rows)
    n = len(filters)
    advice: list[IndexAdvice] = []
    for predicate, queries, now_s, after_s, rows in sorted(served.values(), key=lambda e: -(e[2] - e[3])):
        if now_s <= after_s or len(advice) >= limit:
            continue
        advice.append(IndexAdvice(predicate, codec, queries, queries / n, rows, now_s / queries, after_s / queries))
    return advice


def _build(ctx: CollectionContext, advice: list[IndexAdvice], progress: bool) -> list[IndexAdvice]:
    online = ctx.session.idle_autocommit
    built = []
    for item in advice:
        index = indexes.create_index(ctx, item.codec, IndexMethod.HNSW, where=item.predicate, concurrently=online,
                                     progress=progress)
        built.append(replace(item, applied=index.index_name))
    return built


def _partition_column(filters: list[Any], n: int) -> tuple[str | None, str]:
    """The column most often compared for equality at the top level of the workload's filters: LIST
    partitions on it would let PostgreSQL prune to one partition for those queries (HQI's workload-aware
    partitioning). pgembed applies it to the index (advise(partition=True)), not to the table."""
    equality: Counter[str] = Counter()
    for f in filters:
        if isinstance(f, dict):
            for column, value in f.items():
                if not column.startswith("$") and not isinstance(value, dict | list):
                    equality[column] += 1
    if not equality:
        return None, "no equality predicates in the workload"
    column, count = equality.most_common(1)[0]
    return column, (f"{count} of {n} queries ({count / n:.0%}) compare {column!r} for equality: "
                    f"PARTITION BY LIST ({column}) would prune them to one partition")
