"""The codec advisor: from a measured frontier, the configuration to use within a memory budget.

Input is what `pgembed bench` measured (pgembed.tools.bench.compression): one row per codec configuration and
knob setting, with bytes per vector, recall@k and queries per second. The advisor never estimates: it picks
among measured rows.

- Budget: bytes per vector of the codes on disk ("64B", "64"), or a total for the collection ("12MB",
  "1.5GiB"; divided by its rows). `count_index=True` counts the HNSW index's bytes too.
- Objective: the best recall@k within the budget (ties: faster, then smaller); with `min_recall`, the
  fastest configuration within the budget that reaches it (when none does, the best recall, said so).
- Eligible rows: pgembed's own configurations that `Collection.search` can run (kind "index"). Plain
  pgvector baselines are never picked (they are not codecs); codes searchable only by a client-side scan
  ("client-scan": sq8, pq) only with `include_client_scan=True`.

A recommendation carries its search knobs as a SearchParams: `collection.search(q, k, params=pick.params)` takes
the measured plan, and `Collection.add_codec(name, pick)` takes its codec spec (pgembed.codecs.spec.codec_spec_of).

A pick is on the Pareto frontier of the eligible rows over (bytes per vector: lower, recall: higher, queries
per second: higher): a row that beat it on all three would be within the same budget and better by the
objective. `pareto_frontier` computes that frontier, and tests check the claim on measured data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pgembed.errors import InvalidInputError
from pgembed.planning.params import SearchParams
from pgembed.vocabulary import PlanKind

UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
PER_VECTOR_UNITS = ("", "b")


@dataclass(frozen=True)
class Budget:
    bytes_per_vector: float
    text: str
    total_bytes: float | None = None  # when given as a total for the collection


def parse_budget(text: str | float | int, rows: int | None = None) -> Budget:
    """'64B' or 64: bytes per vector; '12MB', '1.5GiB': a total for a collection of `rows` vectors."""
    if isinstance(text, bool):
        raise InvalidInputError(f"budget must be a size such as '64B' or '12MB', got {text!r}")
    if isinstance(text, int | float):
        if not text > 0:
            raise InvalidInputError(f"budget must be positive, got {text!r}")
        return Budget(float(text), f"{text}B")
    match = _BUDGET.match(str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in UNITS and unit not in PER_VECTOR_UNITS:
        raise InvalidInputError(f"budget {text!r}: give bytes per vector ('64B') or a total ('12MB', '1GiB')")
    value = float(match.group(1))
    if value <= 0:
        raise InvalidInputError(f"budget {text!r} must be positive")
    if unit in PER_VECTOR_UNITS:
        return Budget(value, str(text))
    if not rows:
        raise InvalidInputError(f"budget {text!r} is a total: the collection's row count is needed to divide it")
    total = value * UNITS[unit]
    return Budget(total / rows, str(text), total)


@dataclass
class Recommendation:
    method: str  # the codec spec: Collection.add_codec(name, recommendation) takes it as is
    knobs: dict[str, Any]
    bytes_per_vector: float
    recall_at_k: float
    qps: float
    k: int
    kind: str
    budget: dict[str, Any]
    reason: str
    # Collection.search(..., params=params) reproduces the measured row. No codec is named: the codec is added
    # under a name of the user's choosing, and the measured collection had no other code index to pick.
    params: SearchParams = field(default_factory=SearchParams)
    total_bytes_per_vector: float | None = None
    frontier: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "params": self.params.to_dict()}


def _recall(row: Mapping[str, Any]) -> float:
    value = row.get("recall_at_k")
    return float(value) if value is not None else -1.0


def _size(row: Mapping[str, Any], count_index: bool) -> float:
    return float(row["total_bytes_per_vector"] if count_index else row["bytes_per_vector"])


def eligible(rows: Sequence[Mapping[str, Any]], *, include_client_scan: bool = False) -> list[Mapping[str, Any]]:
    kinds = {"index", "client-scan"} if include_client_scan else {"index"}
    return [r for r in rows if r.get("kind") in kinds and r.get("recall_at_k") is not None]


def pareto_frontier(rows: Sequence[Mapping[str, Any]], *, count_index: bool = False) -> list[Mapping[str, Any]]:
    """Rows no other row beats on all of bytes (<=), recall (>=) and qps (>=), with one strictly better;
    sorted by bytes."""
    points = [(_size(r, count_index), _recall(r), float(r["qps"])) for r in rows]
    frontier = []
    for i, (b, rec, q) in enumerate(points):
        dominated = any(b2 <= b and r2 >= rec and q2 >= q and (b2, r2, q2) != (b, rec, q)
                        for b2, r2, q2 in points)
        if not dominated:
            frontier.append(rows[i])
    return sorted(frontier, key=lambda r: (_size(r, count_index), -_recall(r)))


def search_params(row: Mapping[str, Any], k: int) -> SearchParams:
    """The knobs that take the measured plan: the index plan with its oversampling and ef_search. A row search()
    cannot reproduce (a client-side scan) leaves every knob to the planner."""
    knobs = row.get("knobs", {})
    if row.get("kind") != "index":
        return SearchParams()
    return SearchParams(plan=PlanKind.INDEX, oversample=knobs.get("oversample", knobs.get("candidates", k) / k),
                        ef_search=knobs.get("ef_search"))


def advise_codec(result: Mapping[str, Any] | Sequence[Mapping[str, Any]], budget: str | float | Budget, *,
                 min_recall: float | None = None, rows_in_collection: int | None = None,
                 include_client_scan: bool = False, count_index: bool = False) -> Recommendation:
    """The configuration to use within `budget`, chosen among the measured rows of a bench `result`."""
    rows = list(result["rows"]) if isinstance(result, Mapping) else list(result)
    dataset = result.get("dataset", {}) if isinstance(result, Mapping) else {}
    k = int(dataset.get("k", 10))
    if not isinstance(budget, Budget):
        budget = parse_budget(budget, rows_in_collection or dataset.get("n_base"))
    if min_recall is not None and not 0 < min_recall <= 1:
        raise InvalidInputError(f"min_recall must be in (0, 1], got {min_recall!r}")
    candidates = eligible(rows, include_client_scan=include_client_scan)
    if not candidates:
        raise InvalidInputError("no measured configuration to choose from: run `pgembed bench` first "
                                "(rows of kind 'index'" + (" or 'client-scan'" if include_client_scan else "")
                                + " with a recall)")
    within = [r for r in candidates if _size(r, count_index) <= budget.bytes_per_vector]
    what = "codes + index" if count_index else "codes"
    if not within:
        smallest = min(candidates, key=lambda r: _size(r, count_index))
        raise InvalidInputError(f"no measured configuration fits {budget.bytes_per_vector:.1f} bytes per vector "
                                f"({what}); the smallest is {smallest['method']} at "
                                f"{_size(smallest, count_index):.1f} B")

    def best_recall(pool: list[Mapping[str, Any]]) -> Mapping[str, Any]:
        return max(pool, key=lambda r: (_recall(r), float(r["qps"]), -_size(r, count_index)))

    if min_recall is not None:
        reaching = [r for r in within if _recall(r) >= min_recall]
        if reaching:
            pick = max(reaching, key=lambda r: (float(r["qps"]), _recall(r), -_size(r, count_index)))
            reason = (f"the fastest of {len(reaching)} measured settings within {budget.bytes_per_vector:.1f} B/vector "
                      f"({what}) that reach recall@{k} >= {min_recall}")
        else:
            pick = best_recall(within)
            reason = (f"no setting within {budget.bytes_per_vector:.1f} B/vector ({what}) reaches recall@{k} >= "
                      f"{min_recall}; this is the best recall within the budget")
    else:
        pick = best_recall(within)
        reason = (f"the best recall@{k} among {len(within)} measured settings within "
                  f"{budget.bytes_per_vector:.1f} B/vector ({what}); ties go to the faster, then the smaller")
    if pick.get("kind") == "client-scan":
        reason += ("; its codes are bytea, which no pgvector index serves: search() cannot use this codec as a "
                   "coarse stage (the figures are a client-side scan of codes held in memory)")
    frontier = pareto_frontier(candidates, count_index=count_index)
    return Recommendation(
        method=str(pick["method"]), knobs=dict(pick.get("knobs", {})),
        bytes_per_vector=float(pick["bytes_per_vector"]), recall_at_k=_recall(pick), qps=float(pick["qps"]), k=k,
        kind=str(pick["kind"]),
        budget={"text": budget.text, "bytes_per_vector": round(budget.bytes_per_vector, 2),
                "total_bytes": budget.total_bytes, "counts": what},
        reason=reason, params=search_params(pick, k),
        total_bytes_per_vector=pick.get("total_bytes_per_vector"),
        frontier=[{"method": r["method"], "knobs": r.get("knobs"), "bytes_per_vector": r["bytes_per_vector"],
                   "recall_at_k": r.get("recall_at_k"), "qps": r["qps"]} for r in frontier])

