"""A query-adaptive relevance cut-off, in the spirit of the Cosine Adapter (Walmart, ../shared/PAPERS.md):
raw distances are not comparable across queries, so a small model of the query's embedding gives the
parameters of a monotonic map from a row's distance to the probability that it is relevant, and one global
threshold applies to that probability.

    relevance(q, d) = sigmoid(b(q) - a(q) * d),   a(q) = softplus(w_a . q + c_a) > 0,   b(q) = w_b . q + c_b

so for any query, relevance falls as distance grows (the map keeps each query's ranking). Fitted here with
numpy by logistic regression (Adam on the mean cross-entropy plus an L2 penalty on w_a, w_b) from labelled
(query, row distance, relevant) pairs; the server evaluates the same formula (pgembed.relevance,
sql/functions/rerank.sql), and tests hold the two to 1e-9.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pgembed.errors import InvalidInputError

# z is clamped here and on the server, so that exp() never overflows: sigmoid(+-60) is 1 or 0 to 1e-26.
Z_LIMIT = 60.0


@dataclass(frozen=True)
class RelevanceModel:
    w_a: np.ndarray  # float64, (dim,)
    c_a: float
    w_b: np.ndarray
    c_b: float

    def predict(self, q: np.ndarray, distances: np.ndarray) -> np.ndarray:
        a = _softplus(float(self.w_a @ q) + self.c_a)
        b = float(self.w_b @ q) + self.c_b
        return _sigmoid(b - a * np.asarray(distances, dtype=np.float64))


def _softplus(x: float) -> float:
    return x if x > 30.0 else float(np.log1p(np.exp(x)))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -Z_LIMIT, Z_LIMIT)))


def fit_relevance(queries: np.ndarray, distances: Sequence[np.ndarray], labels: Sequence[np.ndarray], *,
                  l2: float = 1e-3, steps: int = 3000, learning_rate: float = 0.05) -> RelevanceModel:
    """queries: (n, dim); distances[i], labels[i]: the distances of query i's candidate rows and whether each is
    relevant. Needs both relevant and irrelevant pairs."""
    q = np.asarray(queries, dtype=np.float64)
    if q.ndim != 2 or len(q) != len(distances) or len(q) != len(labels) or len(q) == 0:
        raise InvalidInputError("fit_relevance takes n query vectors and n lists of distances and of labels")
    owner = np.concatenate([np.full(len(d), i) for i, d in enumerate(distances)])
    d = np.concatenate([np.asarray(x, dtype=np.float64) for x in distances])
    y = np.concatenate([np.asarray(x, dtype=np.float64) for x in labels])
    if len(d) != len(y):
        raise InvalidInputError("each query needs one label per distance")
    if not np.isfinite(d).all() or not np.isfinite(q).all():
        raise InvalidInputError("fit_relevance needs finite distances and query vectors")
    if y.min() == y.max():
        raise InvalidInputError("the labelled pairs are all relevant or all irrelevant: nothing to tell apart")
    n, dim = len(d), q.shape[1]
    # Start from one global map, slope spread over the distances seen, so Adam starts on a sensible slope.
    spread = float(np.std(d)) or 1.0
    params = np.zeros(2 * dim + 2)
    params[dim] = np.log(np.expm1(4.0 / spread))
    params[2 * dim + 1] = float(np.log(y.mean() / (1 - y.mean()))) + 4.0 * float(np.mean(d)) / spread
    moment, velocity = np.zeros_like(params), np.zeros_like(params)
    for step in range(1, steps + 1):
        w_a, c_a, w_b, c_b = params[:dim], params[dim], params[dim + 1:2 * dim + 1], params[2 * dim + 1]
        u = q @ w_a + c_a
        a = np.where(u > 30, u, np.log1p(np.exp(np.minimum(u, 30))))
        b = q @ w_b + c_b
        p = _sigmoid(b[owner] - a[owner] * d)
        residual = (p - y) / n
        per_query_a = np.bincount(owner, weights=-residual * d, minlength=len(q)) / (1 + np.exp(-u))
        per_query_b = np.bincount(owner, weights=residual, minlength=len(q))
        grad = np.concatenate([q.T @ per_query_a + 2 * l2 * w_a, [per_query_a.sum()],
                               q.T @ per_query_b + 2 * l2 * w_b, [per_query_b.sum()]])
        moment = 0.9 * moment + 0.1 * grad
        velocity = 0.999 * velocity + 0.001 * grad ** 2
        params -= learning_rate * (moment / (1 - 0.9 ** step)) / (np.sqrt(velocity / (1 - 0.999 ** step)) + 1e-12)
    return RelevanceModel(params[:dim].copy(), float(params[dim]), params[dim + 1:2 * dim + 1].copy(),
                          float(params[2 * dim + 1]))
