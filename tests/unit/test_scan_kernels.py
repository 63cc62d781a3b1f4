"""The scan-and-multiply kernels of search_batch (pgembed.engine.batch.scan), against brute force: no server."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pgembed.engine.batch.scan import MARGIN, RunningTopK, _scores, _scoring_queries, _scoring_rows, smallest


@settings(max_examples=80, deadline=None)
@given(queries=st.integers(1, 4), rows=st.sampled_from([1, 7, 40, 700, 2_000, 5_003, 10_950]),
       keep=st.integers(1, 40), levels=st.sampled_from([3, 50, 10_000]), inf_share=st.sampled_from([0.05, 0.999]),
       seed=st.integers(0, 2**32 - 1))
def test_smallest_picks_the_smallest_values(queries: int, rows: int, keep: int, levels: int, inf_share: float,
                                            seed: int) -> None:
    """The chunked selection (rows >= 8 * keep * 32 takes it) returns each row's `keep` smallest values, ties
    (few distinct levels) and inf included, never an index twice, also when fewer than `keep` are finite."""
    rng = np.random.default_rng(seed)
    d = rng.integers(0, levels, size=(queries, rows)).astype(np.float32)
    d[rng.random(d.shape) < inf_share] = np.inf
    pick = smallest(d, keep)
    assert pick.shape == (queries, min(keep, rows))
    for row in range(queries):
        assert len(set(pick[row].tolist())) == pick.shape[1]
        np.testing.assert_array_equal(np.sort(d[row, pick[row]]), np.sort(d[row])[: pick.shape[1]])


@settings(max_examples=80, deadline=None)
@given(metric=st.sampled_from(["cosine", "ip", "l2"]), rows=st.integers(1, 3_000), distinct=st.integers(1, 40),
       zeros=st.integers(0, 30), k=st.integers(1, 12), blocks=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_running_top_k_over_blocks_equals_brute_force(metric: str, rows: int, distinct: int, zeros: int, k: int,
                                                      blocks: int, seed: int) -> None:
    """Blocks of rows with many duplicates (ties) and zero rows, keys in shuffled order: every query's k best
    by (distance, key) come out as brute force ranks them, except the queries finish() reports as unsure,
    which are exactly those whose tie at the k-th distance runs to the end of the kept rows."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((distinct, 6)).astype(np.float32)[rng.integers(0, distinct, rows)]
    x[rng.choice(rows, min(zeros, rows), replace=False)] = 0
    keys = rng.permutation(rows).astype(np.int64) * 3 + 1
    q = rng.standard_normal((4, 6)).astype(np.float32)
    top = RunningTopK(q, k + MARGIN, metric, np.int64)
    q_scored = _scoring_queries(q, metric)
    for part in np.array_split(np.arange(rows), blocks):
        top.add(_scores(q_scored, _scoring_rows(x[part], metric), metric), keys[part], x[part])
    ids = np.full((4, k), None, dtype=object)
    distances = np.full((4, k), np.inf)
    counts = np.zeros(4, dtype=np.int64)
    unsure = top.finish(k, range(4), ids, distances, counts)
    q64, x64 = q.astype(np.float64), x.astype(np.float64)
    for i in range(4):
        if metric == "cosine":
            with np.errstate(divide="ignore", invalid="ignore"):
                d = 1 - x64 @ q64[i] / (np.linalg.norm(x64, axis=1) * np.linalg.norm(q64[i]))
            d = np.where(np.isnan(d), np.inf, d)
        else:
            d = -(x64 @ q64[i]) if metric == "ip" else np.linalg.norm(x64 - q64[i], axis=1)
        order = np.lexsort((keys, np.round(d, 9)))
        kth = np.round(d[order[min(k, rows) - 1]], 9)
        ties = np.sum(np.round(d, 9) <= kth)
        if i in unsure:
            assert ties > k  # reported only when rows tie with the k-th
            continue
        assert counts[i] == min(k, rows)
        assert ids[i, : counts[i]].tolist() == keys[order[: counts[i]]].tolist()
        finite = np.isfinite(d[order[: counts[i]]])
        np.testing.assert_allclose(distances[i, : counts[i]][finite], d[order[: counts[i]]][finite], atol=1e-9)
        assert np.all(np.isnan(distances[i, : counts[i]][~finite]))
