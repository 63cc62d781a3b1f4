"""The planner's rules written out in plain Python, as a reference model for tests (like the filter language's
reference evaluator in test_filters.py): pgembed's one planner is sql/functions/planner.sql; this is the
Python planner pgembed had before it moved there (commit 48ef77f, pgembed/plan.py), kept only to check the SQL
against it. Errors are returned as (kind, message) instead of raised."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

EXACT_MAX_ROWS = 10_000
MIN_EF_SEARCH = 40
MAX_EF_SEARCH = 1000
MIN_SCAN_TUPLES = 20_000
MAX_SCAN_TUPLES = 2**31 - 1
SCAN_SAFETY = 4
MAX_CANDIDATES = 10_000


@dataclass(frozen=True)
class Tuned:
    recall_target: float
    selectivity: float
    ef_search: int
    oversample: float
    queries_per_s: float | None


@dataclass(frozen=True)
class Source:
    codec: str
    column: str
    sql_type: str
    index: str
    dim: int
    tuned: tuple[Tuned, ...] = ()
    predicate: Mapping[str, Any] | None = None
    index_rows: float = 0.0

    def default_oversample(self) -> float:
        storage, width = self.sql_type.split("(")[0], int(self.sql_type.split("(")[1].rstrip(")"))
        if storage == "bit":
            return 10.0 if width <= self.dim else 5.0 if width <= 2 * self.dim else 3.0
        return 4.0 if width < self.dim else 2.0

    def tuned_for(self, recall: float, selectivity: float) -> Tuned | None:
        """A setting serves only where it was measured: an unfiltered search the unfiltered tuning, a filtered
        one the nearest tuned selectivity at or below its own."""
        def serves(t: Tuned) -> bool:
            if selectivity >= 1 - 1e-9:
                return t.selectivity >= 1 - 1e-9
            return t.selectivity < 1 - 1e-9 and t.selectivity <= selectivity + 1e-9

        reaching = [t for t in self.tuned if t.recall_target >= recall - 1e-9 and serves(t)]
        if not reaching:
            return None
        nearest = max(t.selectivity for t in reaching)
        return min((t for t in reaching if t.selectivity == nearest), key=lambda t: (t.oversample, t.ef_search))


@dataclass(frozen=True)
class Request:
    k: int
    filtered: bool
    estimated_rows: float | None
    total_rows: float
    sources: tuple[Source, ...]
    codec: str | None = None
    ef_search: int | None = None
    oversample: float | None = None
    recall: float | None = None
    plan: str = "auto"
    filter_doc: Mapping[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def includes(filter_doc: Mapping[str, Any] | None, predicate: Mapping[str, Any]) -> bool:
    return filter_doc is not None and all(k in filter_doc and json_equal(filter_doc[k], v)
                                          for k, v in predicate.items())


def check(r: Request) -> tuple[str, str] | None:
    if not 1 <= r.k <= MAX_CANDIDATES:
        return ("invalid", "k must be")
    if r.recall is not None and not 0 < r.recall <= 1:
        return ("invalid", "recall must be")
    if r.ef_search is not None and not 1 <= r.ef_search <= MAX_EF_SEARCH:
        return ("invalid", "ef_search must be")
    if r.oversample is not None and not 1 <= r.oversample <= 1000:
        return ("invalid", "oversample must be")
    if r.plan not in ("auto", "exact", "index"):
        return ("invalid", "plan must be")
    return None


def choose_plan(r: Request) -> dict[str, Any] | tuple[str, str]:
    """The plan as pgembed._plan's jsonb has it, or (error kind, the start of its message)."""
    bad = check(r)
    if bad is not None:
        return bad
    sources = [s for s in r.sources if r.codec is None or s.codec == r.codec]
    if r.codec is not None and not sources and r.plan != "exact":
        return ("schema", "codec")
    full = [s for s in sources if s.predicate is None]
    partial = [s for s in sources if s.predicate is not None and r.filtered and includes(r.filter_doc, s.predicate)]
    if r.plan == "exact":
        return {"kind": "exact"}
    if not full and not partial:
        return {"kind": "exact"}
    residual = bool(partial) and r.filter_doc is not None and partial[0].predicate is not None and any(
        key not in partial[0].predicate for key in r.filter_doc)
    small = r.filtered and r.estimated_rows is not None and r.estimated_rows <= EXACT_MAX_ROWS
    if r.plan == "auto" and small and (not partial or residual):
        return {"kind": "exact"}
    estimated = max(r.estimated_rows or 0.0, 1.0)
    if partial:
        candidates_from = partial[:1]
        selectivity = min(1.0, estimated / partial[0].index_rows) if residual and partial[0].index_rows > 0 else 1.0
    else:
        candidates_from = full
        residual = r.filtered
        selectivity = min(1.0, estimated / r.total_rows) if r.filtered and r.total_rows > 0 else 1.0
    tuned: Tuned | None = None
    if r.ef_search is None and r.oversample is None and r.recall is not None:
        reaching = [(s, t) for s in candidates_from if (t := s.tuned_for(r.recall, selectivity)) is not None]
        if not reaching:
            return ("schema", "no tuning") if r.plan == "index" else {"kind": "exact"}
        source, tuned = max(reaching, key=lambda st: (st[1].queries_per_s or 0.0, -st[1].oversample))
    else:
        source = candidates_from[0]
    oversample = r.oversample or (tuned.oversample if tuned else source.default_oversample())
    candidates = min(MAX_CANDIDATES, max(r.k, math.ceil(r.k * oversample)))
    ef_search = min(MAX_EF_SEARCH, max(r.ef_search or (tuned.ef_search if tuned else MIN_EF_SEARCH), candidates))
    iterative = "relaxed_order" if residual or candidates > ef_search else "off"
    scan = None
    if iterative != "off":
        scan = min(MAX_SCAN_TUPLES, max(MIN_SCAN_TUPLES, math.ceil(SCAN_SAFETY * candidates / selectivity)))
    return {"kind": "index", "codec": source.codec, "column": source.column, "index": source.index,
            "candidates": candidates, "ef_search": ef_search, "oversample": float(oversample),
            "iterative_scan": iterative, "max_scan_tuples": scan, "tuned": tuned is not None}
