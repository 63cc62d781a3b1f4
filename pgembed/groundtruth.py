"""Exact nearest neighbours by brute force, with a defined order on ties (smaller id first), and recall
against them: the one definition pgembed's tune() and every benchmark measure by."""

from __future__ import annotations

import numpy as np

from pgembed.errors import InvalidInputError

# Score blocks of at most this many floats (128 MB), so a large base never needs an (nq, n) matrix at once.
_BLOCK_FLOATS = 32_000_000


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (float32); zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.float32(1e-30))


def scores(base: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """Similarity of each query to each base row, higher = closer, in float32 as the vectors are stored."""
    base = np.asarray(base, dtype=np.float32)
    queries = np.asarray(queries, dtype=np.float32)
    if metric == "ip":
        return queries @ base.T
    if metric == "cosine":
        return unit_rows(queries) @ unit_rows(base).T
    if metric == "l2":
        # -||q - b||^2 up to the per-query constant ||q||^2, which does not change the order.
        return 2 * (queries @ base.T) - np.einsum("ij,ij->i", base, base)[None, :]
    raise InvalidInputError(f"unknown metric {metric!r}")


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int, metric: str = "ip") -> tuple[np.ndarray, np.ndarray]:
    """Ids (int32) and scores (float32) of the k best base rows per query, best first, ties by smaller id."""
    n = len(base)
    if not 0 < k <= n:
        raise InvalidInputError(f"k must be in 1..{n} (the base size), got {k}")
    ids = np.empty((len(queries), k), dtype=np.int32)
    best = np.empty((len(queries), k), dtype=np.float32)
    step = max(1, _BLOCK_FLOATS // max(n, 1))
    for start in range(0, len(queries), step):
        s = scores(base, queries[start:start + step], metric)
        part = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (len(s), 1))
        kth = np.take_along_axis(s, part, axis=1).min(axis=1)
        for r in range(len(s)):
            # Every row scoring at least the k-th best: argpartition picks arbitrarily among ties at the boundary.
            cand = np.flatnonzero(s[r] >= kth[r])
            order = cand[np.lexsort((cand, -s[r, cand]))][:k]
            ids[start + r] = order
            best[start + r] = s[r, order]
    return ids, best


def recall_at_k(found: list[np.ndarray], truth: list[np.ndarray], k: int, tie: float = 1e-6) -> float:
    """Mean recall@k on distances (smaller is nearer), counting ties: a found row is a hit when its exact
    distance is at most the k-th true distance plus `tie` (exact duplicates and summation order blur equal
    distances). A query with fewer than k true rows is judged on those; a short answer counts its missing
    rows as misses."""
    hits, wanted = _hits(found, truth, k, tie)
    total = int(wanted.sum())
    return int(hits.sum()) / total if total else 1.0


def recall_lower_bound(found: list[np.ndarray], truth: list[np.ndarray], k: int, *, z: float = 1.645,
                       tie: float = 1e-6) -> float:
    """A one-sided lower confidence bound (z = 1.645: 95%) of the mean per-query recall@k: what a target is
    held to, so that queries like these, not only these, reach it. Queries with no true rows are left out."""
    hits, wanted = _hits(found, truth, k, tie)
    per_query = hits[wanted > 0] / wanted[wanted > 0]
    if len(per_query) < 2:
        return float(per_query.mean()) if len(per_query) else 1.0
    return float(per_query.mean() - z * per_query.std(ddof=1) / np.sqrt(len(per_query)))


def _hits(found: list[np.ndarray], truth: list[np.ndarray], k: int, tie: float) -> tuple[np.ndarray, np.ndarray]:
    """Per query: the rows found among the true top-k (ties counted, see recall_at_k), and how many were wanted."""
    hits, wanted = np.zeros(len(truth), dtype=np.int64), np.zeros(len(truth), dtype=np.int64)
    for i, (got, true) in enumerate(zip(found, truth, strict=True)):
        want = min(k, len(true))
        if want == 0:
            continue
        kth = float(np.sort(true)[want - 1])
        hits[i] = int(np.sum(np.asarray(got)[:want] <= kth + tie))
        wanted[i] = want
    return hits, wanted
