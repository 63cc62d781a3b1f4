"""The cost model of batches and workloads: seconds per unit of work, one set of constants for
search_batch's choice between scanning a group and searching it query by query, and for advise()'s estimate
of what a partial index saves.

Defaults were measured on this project's 2-core machines (docs/benchmarks.md, "Batched search" and "Hybrid
search"); pgembed.engine.batch.calibrate() measures the batch constants on yours.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgembed.vocabulary import PlanKind


@dataclass(frozen=True)
class CostModel:
    # search_batch: scan = rows * dim * (read_row_per_dim + queries * score); each = queries * per_query
    read_row_per_dim: float = 2.0e-9  # reading one row's vector over binary COPY and parsing it, per dimension
    score: float = 1.0e-10  # one multiply-add of the matrix product (numpy float32 on 2 cores)
    per_query: float = 1.5e-3  # one query through search(): round trip, index scan, re-rank
    # search_batch, probed groups (pgembed.probe_topk): rows of the clusters some query probes * probe_row
    # + queries * rows * probes / lists * probe_pair (measured: 1,000 queries, 102,135 rows, ivf320, 16 and 48
    # probes: 0.52 and 0.70 s)
    probe_row: float = 4.0e-6  # a row of a probed cluster read on the server and kept for scoring
    probe_pair: float = 1.8e-8  # one (query, row) pair scored there: dot product, bound, the few exact checks
    # advise(): one query's cost by the plan the planner gives it
    exact_base: float = 1.0e-3  # an exact plan's fixed cost: round trip, planning, the filter's index lookup
    exact_row: float = 1.2e-6  # and per matching row (measured: 10,326 rows exact in 13.6 ms)
    index_query: float = 2.5e-3  # an HNSW-on-codes search with re-rank, unfiltered
    partial_query: float = 1.6e-3  # a search through a partial index that holds exactly the matching rows

    def scan_seconds(self, rows: float, queries: int, dim: int) -> float:
        return rows * dim * (self.read_row_per_dim + queries * self.score)

    def each_seconds(self, queries: int) -> float:
        return queries * self.per_query

    def probe_seconds(self, rows: float, matching: float, queries: int, probes: int, lists: int) -> float:
        """Each query reading its `probes` nearest of `lists` clusters of a table of `rows` rows, `matching` of
        them kept by the filter: the clusters some query probes are read once, every row of them (as if each
        query drew its clusters alike and at random), and each query scores its share of the matching rows."""
        share = min(1.0, probes / max(lists, 1))
        return rows * self.touched(share, queries) * self.probe_row + queries * matching * share * self.probe_pair

    @staticmethod
    def touched(share: float, queries: int) -> float:
        """The share of clusters some of `queries` queries probes, each reading `share` of them at random."""
        return 1.0 - (1.0 - share) ** queries

    def query_seconds(self, kind: PlanKind, rows: float, selectivity: float) -> float:
        """One query: exact on `rows` matching rows, or HNSW skipping the rows its filter rejects (the
        iterative scan's extra visits grow about as 1/sqrt(selectivity): a fit to the measured 10% and 35%)."""
        if kind is PlanKind.EXACT:
            return self.exact_base + self.exact_row * rows
        return self.index_query / max(min(selectivity, 1.0), 1e-12) ** 0.5
