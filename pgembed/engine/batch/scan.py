"""Scan and multiply: a group's rows read once and scored against all its queries with matrix products, block
by block, keeping a running top-k of keys and exact distances per query. Exact, in search()'s order (distance,
then key), up to one approximation: a block's candidates are picked by float32 scores, so more than MARGIN rows
within float32 rounding of a query's k-th could crowd a tied row out unseen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pgembed.db.copy import BLOCK_ROWS, read_vectors
from pgembed.engine.context import CollectionContext

SCORE_BUDGET = 20_000_000  # distances held at once per scanned group (80 MB of float32)
MARGIN = 10  # candidates kept past k per query and block, re-scored in float64 (float32 rounding)
CHUNK = 32  # columns per chunk in smallest's first pass
RESCORE_BUDGET = 2_000_000  # candidate vector values re-scored at once (float64 copies: ~28 bytes each)
MAX_SCAN_QUERIES = SCORE_BUDGET // 1_000  # a bigger group is scanned in parts: blocks stay >= 1,000 rows


class RunningTopK:
    """Per query of a group, the `keep` best rows seen so far over blocks of rows: their keys and exact
    (float64) distances. Each block's candidates are chosen by _scores (float32 for cosine), then re-scored
    from their vectors in float64, so nothing but keys and distances is kept."""

    def __init__(self, q: np.ndarray, keep: int, metric: str, key_dtype: Any = object) -> None:
        self.q = q
        self.keep = keep
        self.metric = metric
        self.d = np.full((len(q), 0), np.inf, dtype=np.float64)
        self.keys = np.empty((len(q), 0), dtype=key_dtype)

    def add(self, scores: np.ndarray, keys: np.ndarray, x: np.ndarray) -> None:
        """A block: scores (queries x rows) from _scores for the rows `keys` / `x`."""
        if scores.shape[1] == 0:
            return
        pick = smallest(scores, self.keep)
        exact = np.empty(pick.shape, dtype=np.float64)
        # x[pick] and its float64 copies hold queries x keep x dim values: in slices of RESCORE_BUDGET.
        step = max(1, RESCORE_BUDGET // max(pick.shape[1] * x.shape[1], 1))
        for start in range(0, len(pick), step):
            part = pick[start : start + step]
            exact[start : start + step] = _exact_distances(self.q[start : start + step], x[part], self.metric)
        exact = np.where(np.isfinite(np.take_along_axis(scores, pick, 1)), exact, np.inf)
        self.merge(exact, keys[pick])

    def merge(self, d: np.ndarray, keys: np.ndarray) -> None:
        """Candidates given per query: exact distances d and their keys (queries x c)."""
        cat_d = np.concatenate([self.d, d], axis=1)
        take = min(self.keep, cat_d.shape[1])
        part = np.argpartition(cat_d, take - 1, axis=1)[:, :take]
        self.d = np.take_along_axis(cat_d, part, 1)
        cat_keys = np.concatenate([self.keys, keys.astype(self.keys.dtype, copy=False)], axis=1)
        self.keys = np.take_along_axis(cat_keys, part, 1)

    def finish(self, k: int, members: Sequence[int], ids: np.ndarray, distances: np.ndarray,
               counts: np.ndarray) -> list[int]:
        """The k best per query into the result rows `members` (all the rows seen when fewer than k), in
        search()'s order: distance, then key. A row whose distance is undefined (a zero vector, under
        cosine: inf here) comes last with distance NaN, as search() returns it. Returns the result rows
        that may differ from search(): those whose k-th distance equals the last kept one's (rows tied with
        it may have been left out), and, for text keys, any tie within the first k + 1 (PostgreSQL orders
        text by the column's collation, not as Python does); the caller answers them exactly."""
        unsure = []
        for row, i in enumerate(members):
            d, keys = self.d[row], self.keys[row]
            order = (np.lexsort((keys, d)) if keys.dtype != object
                     else np.array(sorted(range(len(d)), key=lambda j: (d[j], keys[j])), dtype=np.int64))
            chosen = order[:k]
            if len(d) == self.keep and len(d) > k and d[order[k - 1]] == d[order[-1]]:
                unsure.append(i)
            elif keys.dtype == object and len(np.unique(d[order[: k + 1]])) < len(order[: k + 1]):
                unsure.append(i)  # text keys: PostgreSQL breaks the tie by the column's collation
            counts[i] = len(chosen)
            ids[i, : len(chosen)] = keys[chosen]
            distances[i, : len(chosen)] = np.where(np.isinf(d[chosen]), np.nan, d[chosen])
        return unsure


def smallest(d: np.ndarray, keep: int) -> np.ndarray:
    """Column indices of the `keep` smallest values of each row of d (no NaN in it), each once, in no
    order (ties broken arbitrarily).

    argpartition over every element costs ~13 ns each; instead the minimum of each whole chunk of CHUNK
    columns is taken first (~1 ns an element), and only the `keep` chunks with the smallest minima, plus
    the columns past the last whole chunk, are searched: each of a row's keep smallest values lies among
    them, because every value of any other chunk has at least `keep` values at or below it (the chosen
    chunks' minima)."""
    queries, rows = d.shape
    if rows <= keep:
        return np.broadcast_to(np.arange(rows), (queries, rows))
    if rows < 8 * keep * CHUNK:
        return np.argpartition(d, keep - 1, axis=1)[:, :keep]
    whole = rows // CHUNK * CHUNK
    minima = d[:, :whole].reshape(queries, -1, CHUNK).min(axis=2)
    chunks = np.argpartition(minima, keep - 1, axis=1)[:, :keep]
    cols = (chunks[:, :, None] * CHUNK + np.arange(CHUNK)).reshape(queries, -1)
    if whole < rows:
        cols = np.concatenate([cols, np.broadcast_to(np.arange(whole, rows), (queries, rows - whole))], axis=1)
    pick = np.argpartition(np.take_along_axis(d, cols, 1), keep - 1, axis=1)[:, :keep]
    return np.take_along_axis(cols, pick, 1)


def scan_group(ctx: CollectionContext, q: np.ndarray, k: int, clause: str, members: Sequence[int],
               ids: np.ndarray, distances: np.ndarray, counts: np.ndarray) -> list[int]:
    """Exact top-k of every query of a group over the rows its filter keeps, read once for the group.
    Returns the result rows that ties past the kept candidates may have made wrong (RunningTopK.finish)."""
    block_rows = max(1_000, min(BLOCK_ROWS, SCORE_BUDGET // max(len(members), 1)))
    metric = ctx.info.metric
    q32 = _scoring_queries(q, metric)
    top = RunningTopK(q, k + MARGIN, metric)
    for keys, x in read_vectors(ctx.session, ctx.info, clause, ctx.key_type(), block_rows):
        top.add(_scores(q32, _scoring_rows(x, metric), metric), keys, x)
    return top.finish(k, members, ids, distances, counts)


def _scoring_queries(q: np.ndarray, metric: str) -> np.ndarray:
    """Queries as _scores takes them: for cosine, float32, normalised and negated (so that a matrix
    product with normalised rows gives scores where smaller is nearer)."""
    q32 = np.ascontiguousarray(q, dtype=np.float32)
    if metric == "cosine":
        q32 = -q32 / np.maximum(np.linalg.norm(q32, axis=1, keepdims=True), np.finfo(np.float32).tiny)
    return q32


def _scoring_rows(x: np.ndarray, metric: str) -> np.ndarray:
    """Rows as _scores takes them: for cosine, normalised once per block (a row with no cosine distance
    becomes NaN: _scores gives it inf); other metrics use the rows as they are."""
    if metric != "cosine":
        return x
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]  # float32 sums of squares, as pgvector's
        rows = x / norms
        # A zero row, or one whose float32 sum of squares underflows to 0 or overflows: pgvector's cosine
        # distance is NaN for it too (its norms accumulate in float32).
        rows[~(np.isfinite(norms[:, 0]) & (norms[:, 0] > 0))] = np.nan
    return rows


def _scores(q: np.ndarray, x: np.ndarray, metric: str) -> np.ndarray:
    """(queries x rows) scores that order rows as the metric's distances do, smaller nearer; inf where
    undefined. Candidates are chosen by them and then re-scored exactly (RunningTopK).

    Cosine: float32 products of normalised vectors (twice the speed of float64; the rounding, ~1e-7 of
    scores within [-1, 1], is covered by keeping MARGIN candidates more than k per query). Inner
    product and L2, whose float32 error grows with the vectors' magnitudes, are scored in float64."""
    if metric == "cosine":
        undefined = np.isnan(x[:, 0])  # zero rows, NaN all along after normalising
        if not undefined.any():
            return q @ x.T
        d = q @ np.where(undefined[:, None], np.float32(0), x).T
        d[:, undefined] = np.inf
        return d
    q64, x64 = q.astype(np.float64), x.astype(np.float64)
    if metric == "ip":
        return -(q64 @ x64.T)
    return (x64**2).sum(1)[None, :] - 2 * q64 @ x64.T  # the query's own norm does not change the order


def distances_of(q: np.ndarray, x: np.ndarray, metric: str) -> np.ndarray:
    """Scores of raw queries against raw rows (what calibrate() times)."""
    return _scores(_scoring_queries(q, metric), _scoring_rows(x, metric), metric)


def _exact_distances(q: np.ndarray, vectors: np.ndarray, metric: str) -> np.ndarray:
    """float64 distances of each query to its own candidates' vectors (queries x candidates x dim)."""
    q64 = q.astype(np.float64)[:, None, :]
    v64 = vectors.astype(np.float64)
    if metric == "cosine":
        dots = (q64 * v64).sum(-1)
        norms = np.linalg.norm(v64, axis=-1) * np.linalg.norm(q64, axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = 1.0 - dots / norms
    elif metric == "ip":
        d = -(q64 * v64).sum(-1)
    else:
        d = np.linalg.norm(v64 - q64, axis=-1)
    return np.where(np.isnan(d), np.inf, d)
