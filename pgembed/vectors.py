"""Validation of vectors handed to pgembed: every public entry point checks its input here first."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pgembed.errors import InvalidVectorsError

_FLOAT32 = np.dtype(np.float32)


def as_matrix(vectors: Any, dim: int | None = None, *, what: str = "vectors") -> np.ndarray:
    """Return `vectors` as a C-contiguous float32 (n, dim) matrix, or raise naming the problem.

    Accepts one vector (1-d) as a matrix of one row. Rejects empty input, non-float dtypes, a wrong
    dimension, and NaN or Inf (also values that overflow float32).
    """
    return _checked(vectors, dim, what)[0]


def _checked(vectors: Any, dim: int | None, what: str) -> tuple[np.ndarray, float]:
    """as_matrix, and the sum of the squares of all its values (what as_queries looks at next)."""
    if vectors is None:
        raise InvalidVectorsError(f"{what} is None")
    if isinstance(vectors, str | bytes):
        raise InvalidVectorsError(f"{what} must be a vector of numbers (a list or numpy array of floats), got "
                                  f"{type(vectors).__name__} {vectors[:40]!r}: embed the text first")
    try:
        arr = np.asarray(vectors)
    except ValueError as err:  # numpy refuses ragged nested lists
        raise InvalidVectorsError(f"{what} must be a numeric array, got ragged data: {err}") from err
    kind = arr.dtype.kind
    if kind == "O":
        raise InvalidVectorsError(f"{what} must be a numeric array, got ragged or object data")
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise InvalidVectorsError(f"{what} must be 2-d (n, dim), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise InvalidVectorsError(f"{what} is empty: no rows")
    if kind != "f":
        raise InvalidVectorsError(f"{what} must be floating point (float16/32/64), got dtype {arr.dtype}")
    if dim is not None and arr.shape[1] != dim:
        raise InvalidVectorsError(f"{what} have dimension {arr.shape[1]}, expected {dim}")
    if arr.shape[1] == 0:
        raise InvalidVectorsError(f"{what} have dimension 0")
    if arr.dtype == _FLOAT32:
        out = np.ascontiguousarray(arr)
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.ascontiguousarray(arr, dtype=np.float32)
    # A finite sum of squares means every value is finite (one BLAS pass, cheaper than isfinite on a search's
    # one query); a sum that is not may still come from finite values whose squares overflow: look closer.
    sum_of_squares = float(np.vdot(out, out))
    if not math.isfinite(sum_of_squares):
        finite = np.isfinite(out).all(axis=1)
        if not finite.all():
            row = int(np.argmin(finite))
            bad = "NaN" if np.isnan(out[row]).any() else "Inf (or a value beyond float32 range)"
            raise InvalidVectorsError(f"{what} row {row} contains {bad}; {int((~finite).sum())} row(s) affected")
    return out, sum_of_squares


def as_queries(queries: Any, dim: int, metric: str, *, what: str = "queries") -> np.ndarray:
    """as_matrix, and under cosine no all-zero row: a zero query has no cosine distance to anything."""
    q, sum_of_squares = _checked(queries, dim, what)
    # Squares of tiny values underflow to 0, so a row whose squares sum to 0 is looked at value by value.
    if metric == "cosine" and (q.shape[0] > 1 or sum_of_squares == 0):
        zero = ~np.any(q != 0, axis=1)
        if zero.any():
            raise InvalidVectorsError(f"{what} row {int(np.argmax(zero))} is all zeros: cosine distance is undefined")
    return q


def as_query(query: Any, dim: int, metric: str, *, what: str = "query") -> np.ndarray:
    """One query vector (1-d, or a matrix of one row) as a C-contiguous float32 vector, checked as as_queries
    checks. A search's query is usually a float32 numpy vector already: it is checked with one BLAS pass and
    returned as it is; anything else takes as_queries' path, which names what is wrong."""
    if type(query) is np.ndarray and query.dtype == _FLOAT32 and query.shape == (dim,) and query.strides == (4,):
        # One sum of squares says both: finite (no NaN or Inf), and not all zeros unless it underflowed to 0.
        sum_of_squares = float(query.dot(query))
        if math.isfinite(sum_of_squares) and sum_of_squares != 0:
            return query
    q = as_queries(query, dim, metric, what=what)
    if q.shape[0] != 1:
        raise InvalidVectorsError(f"search takes one query vector, got {q.shape[0]}: use search_batch")
    return q[0]
