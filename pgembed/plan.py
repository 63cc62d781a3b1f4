"""Planning one hybrid query: exact distances on the rows that match, or coarse candidates from a code
column's pgvector index re-ranked exactly — and with which knobs.

The rules are deliberately few, because pgembed.search() in SQL (sql/0003_search.up.sql) applies the same
ones to the same inputs; tests hold the two to it. They are:

1. `plan="exact"`, or no code column with an HNSW index: exact.
2. A filter whose estimated matching rows are at most EXACT_MAX_ROWS: exact. Computing every matching
   row's distance is then cheaper than an index scan that has to skip the rows the filter rejects, and
   it is exact (PostgreSQL reads the rows through a B-tree on the filter columns when there is one).
   Unless a partial index's predicate is the whole filter: that index holds exactly the matching rows,
   and searching it is cheaper still (rule 3).
3. Otherwise: the index plan on one code column — through a partial HNSW index when the filter includes
   that index's predicate (each of the predicate's top-level entries appears unchanged in the filter),
   else through the column's full index. Knobs are, in order of precedence: the caller's
   `ef_search`/`oversample`; for `recall=r`, what `tune()` measured for the cheapest setting that reached r
   at the nearest selectivity (none measured: exact, which always reaches r); else defaults by codec.
   With a filter, pgvector's iterative scan is on and may visit enough tuples to find the candidates
   among the rows the filter keeps.
4. (At execution.) An index plan that returns fewer than k rows is answered again by the exact plan, so k
   rows come back whenever k rows match.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pgembed.errors import InvalidInputError, SchemaError

EXACT_MAX_ROWS = 10_000  # docs/benchmarks.md, "Hybrid search": at ~10k matching rows exact still beat HNSW plans
MIN_EF_SEARCH = 40  # pgvector's default; below it HNSW's own recall drops fast
MAX_EF_SEARCH = 1000  # pgvector's limit
MIN_SCAN_TUPLES = 20_000  # pgvector's default hnsw.max_scan_tuples
MAX_SCAN_TUPLES = 2**31 - 1  # the largest value pgvector accepts
SCAN_SAFETY = 4  # visit up to 4x the tuples the selectivity says the candidates need
MAX_CANDIDATES = 10_000
PLAN_KINDS = ("auto", "exact", "index")
_SQL_TYPE = re.compile(r"^(\w+)\((\d+)\)$")


@dataclass(frozen=True)
class Tuned:
    """One row of pgembed.tuning: knobs that reached `recall_target` at `selectivity`."""

    recall_target: float
    selectivity: float
    ef_search: int
    oversample: float
    measured_recall: float
    queries_per_s: float | None = None


@dataclass(frozen=True)
class CoarseSource:
    """A code column with an HNSW index: where candidates can come from."""

    codec: str
    column: str
    sql_type: str
    index: str
    dim: int  # the source vector's dimension
    tuned: tuple[Tuned, ...] = ()
    predicate: Mapping[str, Any] | None = None  # a partial index's filter; None for a full index
    index_rows: float = 0.0  # the index's row estimate (pg_class.reltuples)

    @property
    def storage(self) -> str:
        match = _SQL_TYPE.match(self.sql_type)
        return match.group(1) if match else self.sql_type

    @property
    def width(self) -> int:
        match = _SQL_TYPE.match(self.sql_type)
        return int(match.group(2)) if match else self.dim

    def default_oversample(self) -> float:
        """Candidates per result when nothing was tuned: coarser codes need more (docs/benchmarks.md)."""
        if self.storage == "bit":
            bits_per_dim = self.width / self.dim
            return 10.0 if bits_per_dim <= 1 else 5.0 if bits_per_dim <= 2 else 3.0
        return 4.0 if self.width < self.dim else 2.0

    def tuned_for(self, recall: float, selectivity: float) -> Tuned | None:
        """The cheapest tuned setting reaching `recall`, at the tuned selectivity nearest (in log scale)."""
        reaching = [t for t in self.tuned if t.recall_target >= recall - 1e-9]
        if not reaching:
            return None
        nearest = min(abs(math.log(t.selectivity) - math.log(selectivity)) for t in reaching)
        at = [t for t in reaching if abs(math.log(t.selectivity) - math.log(selectivity)) <= nearest + 1e-9]
        return min(at, key=lambda t: (t.oversample, t.ef_search))


@dataclass(frozen=True)
class Plan:
    kind: str  # "exact" | "index"
    reason: str
    k: int
    codec: str | None = None
    column: str | None = None
    index: str | None = None
    candidates: int | None = None
    ef_search: int | None = None
    oversample: float | None = None
    iterative_scan: str = "off"
    max_scan_tuples: int | None = None
    estimated_rows: float | None = None
    total_rows: float | None = None
    tuned: bool = False
    fallback: bool = field(default=False, compare=False)

    def describe(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PlanRequest:
    k: int
    filtered: bool
    estimated_rows: float | None
    total_rows: float
    sources: tuple[CoarseSource, ...]
    codec: str | None = None
    ef_search: int | None = None
    oversample: float | None = None
    recall: float | None = None
    plan: str = "auto"
    filter_doc: Mapping[str, Any] | None = None  # the filter when it is a dict: partial indexes match on it


def json_equal(a: Any, b: Any) -> bool:
    """Equality as jsonb sees it: numbers by value (1 == 1.0), booleans apart from numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def filter_includes(filter_doc: Mapping[str, Any] | None, predicate: Mapping[str, Any]) -> bool:
    """Each of the predicate's top-level entries appears unchanged in the filter (pgembed.filter_includes)."""
    return filter_doc is not None and all(k in filter_doc and json_equal(filter_doc[k], v)
                                          for k, v in predicate.items())


def check_request(k: int, recall: float | None, ef_search: int | None, oversample: float | None,
                  plan: str) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_CANDIDATES:
        raise InvalidInputError(f"k must be an integer between 1 and {MAX_CANDIDATES}, got {k!r}")
    if recall is not None and not (isinstance(recall, int | float) and 0 < recall <= 1):
        raise InvalidInputError(f"recall must be in (0, 1], got {recall!r}")
    if ef_search is not None and not (isinstance(ef_search, int) and 1 <= ef_search <= MAX_EF_SEARCH):
        raise InvalidInputError(f"ef_search must be an integer between 1 and {MAX_EF_SEARCH}, got {ef_search!r}")
    if oversample is not None and not (isinstance(oversample, int | float) and 1 <= oversample <= 1000):
        raise InvalidInputError(f"oversample must be between 1 and 1000, got {oversample!r}")
    if plan not in PLAN_KINDS:
        raise InvalidInputError(f"plan must be one of {', '.join(PLAN_KINDS)}, got {plan!r}")


def choose_plan(r: PlanRequest) -> Plan:
    check_request(r.k, r.recall, r.ef_search, r.oversample, r.plan)
    common: dict[str, Any] = {"k": r.k, "estimated_rows": r.estimated_rows, "total_rows": r.total_rows}
    sources = [s for s in r.sources if r.codec is None or s.codec == r.codec]
    if r.codec is not None and not sources and r.plan != "exact":
        raise SchemaError(f"codec {r.codec!r} has no HNSW index to search: create_index({r.codec!r})")
    full = [s for s in sources if s.predicate is None]
    partial = [s for s in sources if s.predicate is not None and filter_includes(r.filter_doc, s.predicate)]
    if r.plan == "exact":
        return Plan("exact", "asked for", **common)
    if not full and not partial:
        return Plan("exact", "no code column has an HNSW index for this filter", **common)
    # A partial index whose predicate is the whole filter holds exactly the matching rows: searching it
    # beats computing all their distances, however few they are.
    residual = bool(partial) and r.filter_doc is not None and partial[0].predicate is not None and any(
        key not in partial[0].predicate for key in r.filter_doc)
    small = r.filtered and r.estimated_rows is not None and r.estimated_rows <= EXACT_MAX_ROWS
    if r.plan == "auto" and small and (not partial or residual):
        return Plan("exact", f"the filter matches about {r.estimated_rows:.0f} rows (<= {EXACT_MAX_ROWS})", **common)
    estimated = max(r.estimated_rows or 0.0, 1.0)
    if partial:
        # The partial index holds only rows of its predicate: what is left to filter is the rest of the filter.
        candidates_from = partial[:1]
        selectivity = min(1.0, estimated / partial[0].index_rows) if residual and partial[0].index_rows > 0 else 1.0
        where = f"partial index {partial[0].index}"
    else:
        candidates_from = full
        residual = r.filtered
        selectivity = min(1.0, estimated / r.total_rows) if r.filtered and r.total_rows > 0 else 1.0
        where = "HNSW"
    tuned: Tuned | None = None
    if r.ef_search is None and r.oversample is None and r.recall is not None:
        choices = [(s, s.tuned_for(r.recall, selectivity)) for s in candidates_from]
        reaching = [(s, t) for s, t in choices if t is not None]
        if not reaching:
            if r.plan == "index":
                raise SchemaError(f"no tuning reaches recall {r.recall}: run tune(recall={r.recall}) first")
            return Plan("exact", f"no tuned setting reaches recall {r.recall}: the exact plan always does", **common)
        source, tuned = max(reaching, key=lambda st: (st[1].queries_per_s or 0.0, -st[1].oversample))
    else:
        source = candidates_from[0]
    oversample = r.oversample or (tuned.oversample if tuned else source.default_oversample())
    candidates = min(MAX_CANDIDATES, max(r.k, math.ceil(r.k * oversample)))
    ef_search = min(MAX_EF_SEARCH, max(r.ef_search or (tuned.ef_search if tuned else MIN_EF_SEARCH), candidates))
    iterative = "relaxed_order" if residual or candidates > ef_search else "off"
    scan_tuples = None
    if iterative != "off":
        scan_tuples = min(MAX_SCAN_TUPLES, max(MIN_SCAN_TUPLES, math.ceil(SCAN_SAFETY * candidates / selectivity)))
    why = (f"tuned for recall {tuned.recall_target} at selectivity {tuned.selectivity:g}" if tuned
           else "knobs given" if r.ef_search or r.oversample else "default knobs (not tuned)")
    return Plan(
        "index", f"{source.codec} {where}, selectivity ~{selectivity:.3g}; {why}", codec=source.codec,
        column=source.column, index=source.index, candidates=candidates, ef_search=ef_search,
        oversample=float(oversample), iterative_scan=iterative, max_scan_tuples=scan_tuples, tuned=tuned is not None,
        **common,
    )
