"""Workload-aware layout: from a workload (the filters of past or expected queries), recommend partial HNSW
indexes for hot predicates and a LIST partitioning column, with estimated gains; apply the indexes.

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
from pgembed.plan import EXACT_MAX_ROWS

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

    def describe(self) -> dict[str, Any]:
        return {"queries": self.queries,
                "indexes": [{**asdict(i), "estimated_gain_s": round(i.gain, 4)} for i in self.indexes],
                "partition_by": self.partition_by, "partition_reason": self.partition_reason}


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
           max_indexes: int = 8, apply: bool = False, progress: bool = False) -> Advice:
    """`workload`: one filter per query (a dict, or None for unfiltered), or a workload document (see
    workload_filters). Recommends a partial HNSW index on `codec` (default: the first code column with an
    HNSW index) for each dict filter used by at least `min_share` of the queries, when it is estimated to
    pay; `apply=True` builds them with CREATE INDEX CONCURRENTLY (readers and writers go on)."""
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
        selectivity = min(1.0, max(rows, 1.0) / total) if total else 1.0
        now = EXACT_BASE_S + EXACT_ROW_S * rows if rows <= EXACT_MAX_ROWS else INDEX_QUERY_S / selectivity**0.5
        if now <= PARTIAL_QUERY_S:
            continue
        advice.append(IndexAdvice(docs[key], codec, count, count / n, rows, now, PARTIAL_QUERY_S))
    if apply:
        applied = []
        online = collection.conn.autocommit and not collection.db.in_transaction
        for item in advice:
            index = collection.create_index(codec, "hnsw", where=item.predicate, concurrently=online,
                                            progress=progress)
            applied.append(IndexAdvice(**{**asdict(item), "applied": index.index_name}))
        advice = applied
    partition_by, reason = _partition_column(filters, n)
    return Advice(n, advice, partition_by, reason)


def _partition_column(filters: list[Any], n: int) -> tuple[str | None, str]:
    """The column most often compared for equality at the top level of the workload's filters: LIST
    partitions on it would let PostgreSQL prune to one partition for those queries (HQI's workload-aware
    partitioning). Recommended only; pgembed does not repartition a table for you (yet)."""
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
