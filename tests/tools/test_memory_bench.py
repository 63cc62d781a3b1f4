"""The memory bench's own arithmetic: distances for recall, the best configuration per family, the summary's
ratios. (Its measurements run on a real server: `make bench-memory`.)"""

from __future__ import annotations

import numpy as np

from pgembed.tools.bench.memory import FAMILIES, Config, Measured, best, distances, summarize


def test_distances_follow_the_metric_and_count_a_missing_row_as_infinitely_far() -> None:
    base = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    q = np.array([1.0, 0.0])
    assert distances(base, q, [0, 2, -1], "ip").tolist() == [-1.0, -3.0, np.inf]
    assert np.allclose(distances(base, q, [1, 2], "l2"), [np.sqrt(5), np.sqrt(20)])
    assert np.allclose(distances(base, q, [0, 1, 2], "cosine"), [0.0, 1.0, 1 - 3 / 5])


def _row(family: str, qps: float, recall: float, setting: str = "budget", mode: str = "warm",
         clients: int = 1) -> Measured:
    return Measured(Config(family, {}), setting, mode, clients, qps, None, None, recall, 0.0)


def test_the_best_of_a_family_is_its_fastest_at_the_recall_floor() -> None:
    rows = [_row("pgembed", 500, 0.94), _row("pgembed", 300, 0.96), _row("pgembed", 200, 0.99)]
    pick = best(rows, "pgembed", 0.95)
    assert pick is not None and pick.qps == 300
    assert best(rows, FAMILIES[0], 0.95) is None


def test_the_summary_compares_pgembed_with_pgvectors_best_and_its_float32_hnsw() -> None:
    rows = [_row(FAMILIES[0], 20, 0.97), _row(FAMILIES[1], 40, 0.96), _row(FAMILIES[2], 90, 0.95),
            _row(FAMILIES[2], 150, 0.90), _row("pgembed", 270, 0.955)]
    summary = summarize({"rows_measured": [r.as_dict() for r in rows]}, 0.95, 4)["budget/warm/1"]
    assert summary["pgvector_best"]["qps"] == 90  # the faster bit configuration misses the floor
    assert summary["over_pgvector_best"] == 3.0 and summary["over_f32"] == 13.5
