"""Workload-aware layout: from a workload (the filters of past or expected queries), recommend partial HNSW
indexes for hot predicates and a LIST partitioning column, with estimated gains; apply the indexes.

Partitioning is applied to the index, not the table: with `partition=True`, one partial HNSW index per value
of the partitioning column that the workload's queries select on (where it pays), so that a query on one
value searches a graph of that value's rows only, as HQI's workload-aware partitions do. pgembed does not
repartition the user's table: PostgreSQL requires every unique constraint of a partitioned table to include
the partitioning column, so a primary key on the id alone (and the foreign keys that reference it) would not
survive.

The estimate uses the per-query costs measured in docs/benchmarks.md ("Hybrid search"): a query whose
filter a partial index serves costs about one index search (PARTIAL_QUERY_S); without it, the exact plan
costs EXACT_BASE_S plus EXACT_ROW_S per matching row, and an HNSW plan that skips the rows the filter
rejects costs about INDEX_QUERY_S / selectivity^0.5 (the iterative scan's extra visits; a rough fit to the
measured 10% and 35% cases).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pgembed.errors import InvalidInputError, SchemaError
from pgembed.filters import compile_filter
from pgembed.plan import EXACT_MAX_ROWS, json_equal

if TYPE_CHECKING:
    from pgembed.collection import Collection

EXACT_BASE_S = 1.0e-3  # an exact plan's fixed cost: round trip, planning, the filter's index lookup
EXACT_ROW_S = 1.2e-6  # measured: 10,326 rows exact in 13.6 ms
INDEX_QUERY_S = 2.5e-3  # an HNSW-on-codes search with re-rank, unfiltered
PARTIAL_QUERY_S = 1.6e-3  # a search through a partial index that holds exactly the matching rows


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
    ({"filters": {name: filter}, "queries": [{"query": i, "filter": name or null}, ...]}, as the bench
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


def advise(collection: Collection, workload: Any, *, codec: str | None = None, min_share: float = 0.02,
           max_indexes: int = 8, partition: bool = False, max_partitions: int = 64, apply: bool = False,
           progress: bool = False) -> Advice:
    """`workload`: one filter per query (a dict, or None for unfiltered), or a workload document (see
    workload_filters). Recommends a partial HNSW index on `codec` (default: the first code column with an
    HNSW index) for each dict filter used by at least `min_share` of the queries, when it is estimated to
    pay; with `partition`, also one per value of the partitioning column the queries select on (at most
    `max_partitions`, each where it pays; see the module docstring). `apply=True` builds them with CREATE
    INDEX CONCURRENTLY (readers and writers go on)."""
    filters = workload_filters(workload)
    if not filters:
        raise InvalidInputError("advise needs a workload: a list of filters, one per query")
    if not 0 < min_share <= 1:
        raise InvalidInputError(f"min_share must be in (0, 1], got {min_share!r}")
    sources = [s for s in collection.searcher.sources() if s.predicate is None]
    if codec is None:
        if not sources:
            raise SchemaError(f"collection {collection.name!r} has no code column with an HNSW index to copy "
                              "for partial indexes: create_index(<codec>) first")
        codec = sources[0].codec
    elif codec not in {c.name for c in collection.codecs() if c.state == "active"}:
        raise SchemaError(f"collection {collection.name!r} has no active codec {codec!r}")
    columns = collection.searcher.column_types()
    counts: Counter[str] = Counter()
    docs: dict[str, dict[str, Any]] = {}
    for f in filters:
        if f is None:
            continue
        if not isinstance(f, dict):
            continue  # SQLAlchemy filters cannot become index predicates
        compile_filter(f, columns)  # rejects bad filters here, naming the problem
        key = json.dumps(f, sort_keys=True, default=str)
        counts[key] += 1
        docs[key] = f
    n = len(filters)
    total = collection.searcher.total_rows()
    existing = {json.dumps(s.predicate, sort_keys=True, default=str) for s in collection.searcher.sources()
                if s.predicate is not None and s.codec == codec}
    advice: list[IndexAdvice] = []
    for key, count in counts.most_common():
        if count / n < min_share or len(advice) >= max_indexes:
            break
        if key in existing:
            continue
        rows = collection.searcher.estimate_rows(compile_filter(docs[key], columns))
        now = _query_seconds(max(rows, 1.0), total)
        if now <= PARTIAL_QUERY_S:
            continue
        advice.append(IndexAdvice(docs[key], codec, count, count / n, rows, now, PARTIAL_QUERY_S))
    partition_by, reason = _partition_column(filters, n)
    partitions: list[IndexAdvice] = []
    if partition and partition_by is not None:
        taken = [dict(src.predicate) for src in collection.searcher.sources() if src.predicate is not None]
        partitions = _partition_indexes(collection, filters, partition_by, codec,
                                        taken + [a.predicate for a in advice], max_partitions)
    if apply:
        advice = _build(collection, advice, progress)
        partitions = _build(collection, partitions, progress)
    return Advice(n, advice, partition_by, reason, partitions)


def _query_seconds(rows: float, total: float) -> float:
    """A query's estimated cost today, from its filter's rows (see the module docstring's constants)."""
    if rows <= EXACT_MAX_ROWS:
        return EXACT_BASE_S + EXACT_ROW_S * rows
    return INDEX_QUERY_S / (min(1.0, rows / total) if total else 1.0) ** 0.5


def _partition_indexes(collection: Collection, filters: list[Any], column: str, codec: str,
                       taken: list[dict[str, Any]], limit: int) -> list[IndexAdvice]:
    """A partial index per value v of `column` the workload selects on ({column: v} at its filters' top
    level, v a string, number or boolean), when the queries it would serve are estimated to gain: those
    whose filter is exactly {column: v} (the planner searches such an index however few its rows) and
    those with more filter on top whose rows are too many for the exact plan (an iterative scan inside the
    partition, at their selectivity within it). A value some partial index already restricts (`taken`, a
    hot predicate's or one built before) gets none: with two partial indexes matching a filter the planner
    takes the first by name, not the better one."""
    searcher = collection.searcher
    columns = searcher.column_types()
    total = searcher.total_rows()
    by_filter: Counter[str] = Counter()
    docs: dict[str, dict[str, Any]] = {}
    for f in filters:
        value = f.get(column) if isinstance(f, dict) else None
        if isinstance(value, str | int | float) and not any(json_equal(t.get(column), value) for t in taken):
            key = json.dumps(f, sort_keys=True, default=str)
            by_filter[key] += 1
            docs[key] = f
    partition_rows: dict[str, float] = {}
    served: dict[str, tuple[dict[str, Any], int, float, float]] = {}  # (predicate, queries, now, after) sums
    for key, count in by_filter.items():
        doc = docs[key]
        predicate = {column: doc[column]}
        pkey = json.dumps(predicate, sort_keys=True)
        rows = searcher.estimate_rows(compile_filter(doc, columns))
        if doc != predicate and rows <= EXACT_MAX_ROWS:
            continue  # the exact plan answers it before any index would
        if pkey not in partition_rows:
            partition_rows[pkey] = max(searcher.estimate_rows(compile_filter(predicate, columns)), 1.0)
        after = PARTIAL_QUERY_S if doc == predicate else max(
            PARTIAL_QUERY_S, INDEX_QUERY_S / min(1.0, max(rows, 1.0) / partition_rows[pkey]) ** 0.5)
        _, queries, now_s, after_s = served.get(pkey, (predicate, 0, 0.0, 0.0))
        served[pkey] = (predicate, queries + count, now_s + count * _query_seconds(max(rows, 1.0), total),
                        after_s + count * after)
    n = len(filters)
    advice: list[IndexAdvice] = []
    for predicate, queries, now_s, after_s in sorted(served.values(), key=lambda e: -(e[2] - e[3])):
        if now_s <= after_s or len(advice) >= limit:
            continue
        pkey = json.dumps(predicate, sort_keys=True)
        advice.append(IndexAdvice(predicate, codec, queries, queries / n, partition_rows[pkey], now_s / queries,
                                  after_s / queries))
    return advice


def _build(collection: Collection, advice: list[IndexAdvice], progress: bool) -> list[IndexAdvice]:
    online = collection.conn.autocommit and not collection.db.in_transaction
    built = []
    for item in advice:
        index = collection.create_index(item.codec, "hnsw", where=item.predicate, concurrently=online,
                                        progress=progress)
        built.append(IndexAdvice(**{**asdict(item), "applied": index.index_name}))
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
