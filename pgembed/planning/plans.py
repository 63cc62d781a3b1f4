"""Plans as the server's planner makes them (pgembed._plan, sql/functions/planner.sql): read, never made here."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from pgembed.vocabulary import IterativeScan, Placement, PlanKind

Pieces = tuple[str, ...]  # a statement: SQL text at even offsets, parameter names at odd ones


@dataclass(frozen=True)
class Plan:
    """How one query is answered: exact distances on the rows that match, or `candidates` rows from the HNSW
    index `index` on code column `column`, re-ranked by exact distance, with pgvector's settings."""

    kind: PlanKind
    reason: str
    k: int
    codec: str | None = None
    column: str | None = None
    index: str | None = None
    candidates: int | None = None
    ef_search: int | None = None
    oversample: float | None = None
    iterative_scan: IterativeScan = IterativeScan.OFF
    max_scan_tuples: int | None = None
    estimated_rows: float | None = None
    total_rows: float | None = None
    tuned: bool = False
    placement: Placement = Placement.TABLE
    refine: str | None = None  # the compact tier's codec
    refine_column: str | None = None
    refine_candidates: int | None = None  # what the tier keeps of the candidates
    rerank: bool = True  # exact distances from the user's rows; False: the last stage's estimates
    fallback: bool = field(default=False, compare=False)  # an index plan that found fewer than k rows

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        known: dict[str, Any] = {f: data[f] for f in cls.__dataclass_fields__ if f in data}
        for name in ("oversample", "estimated_rows", "total_rows"):  # JSON writes 740.0 as 740
            if known.get(name) is not None:
                known[name] = float(known[name])
        known["kind"] = PlanKind(data["kind"])
        known["iterative_scan"] = IterativeScan(data.get("iterative_scan") or "off")
        known["placement"] = Placement(data.get("placement") or "table")
        return cls(**known)

    def exact_fallback(self, found: int) -> Plan:
        """The exact plan that answers a query whose index plan found `found` < k rows."""
        return replace(self, kind=PlanKind.EXACT, fallback=True, codec=None, column=None, index=None,
                       candidates=None, ef_search=None, oversample=None, iterative_scan=IterativeScan.OFF,
                       max_scan_tuples=None, refine=None, refine_column=None, refine_candidates=None, rerank=True,
                       reason=f"{self.reason}; the index plan found {found} < k rows, answered exactly")

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value, "iterative_scan": self.iterative_scan.value,
                "placement": self.placement.value}


@dataclass(frozen=True)
class PreparedSearch:
    """What the server answered for one filter and set of knobs (pgembed._prepare_search): the filter's
    compiled clause, the plan, and the statements that run it."""

    clause: str
    plan: Plan
    run: Pieces
    exact: Pieces
    many: Pieces | None
    codec_id: int | None = None  # the codec version of an index plan's code column, which encodes the query
    # the exact plan for many queries in one read of the rows, when that read is the kernels' (else None)
    server_scan: Pieces | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PreparedSearch:
        return cls(data["clause"], Plan.from_json(data["plan"]), tuple(data["run"]), tuple(data["exact"]),
                   tuple(data["many"]) if data.get("many") else None, data.get("codec_id"),
                   tuple(data["scan"]) if data.get("scan_on_server") and data.get("scan") else None)

    @property
    def filtered(self) -> bool:
        return self.clause != "true"


@dataclass(frozen=True)
class PreparedHybrid:
    """A hybrid search as the server prepared it (pgembed._prepare_hybrid, sql/functions/text.sql): the vector
    search for `depth` rows, and the statement that fuses its keys with the text search's best `depth`."""

    vector: PreparedSearch
    fusion: Pieces
    depth: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PreparedHybrid:
        return cls(PreparedSearch.from_json(data["vector"]), tuple(data["fusion"]), int(data["depth"]))
