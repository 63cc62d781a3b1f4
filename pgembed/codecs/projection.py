"""Linear maps to fewer dimensions, the first stage of a spec such as `pca128,bq2`.

- `mrl{m}` (Matryoshka): the first m dimensions, renormalised — for models trained to make them count.
- `pca{m}`: the top m principal directions of the data (centred on its mean).
- `leanvec{m}`: LeanVec-OOD, eigenvector-search variant: the projection is the top m eigenvectors of
  beta*Kx + (1-beta)*Kq (second moments of data and of a query sample, each scaled to unit trace), with
  beta picked on the samples to best preserve query-data inner products. For queries that are not
  distributed like the data (short titles against long passages, text against images).

Queries are projected without centring: q . x = q . mu + q . (x - mu), and the first term is the same for
every x, so (P q) . P (x - mu) ranks as the inner product does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from pgembed.codecs.base import (
    SqlCall,
    SqlExpr,
    fitted_vector,
    fitted_vectors,
    matrix_from_json,
    matrix_to_json,
    vector_literal,
)
from pgembed.errors import InvalidVectorsError


class Projection(ABC):
    kind: str
    trainable = True
    uses_queries = False

    def __init__(self, dim: int, out_dim: int) -> None:
        if not 1 <= out_dim <= dim:
            raise InvalidVectorsError(f"{self.kind}{out_dim}: target dimension must be between 1 and {dim}")
        self.dim = dim
        self.out_dim = out_dim

    @property
    def spec(self) -> str:
        return f"{self.kind}{self.out_dim}"

    @property
    @abstractmethod
    def is_fitted(self) -> bool: ...

    @abstractmethod
    def fit(self, x: np.ndarray, queries: np.ndarray | None) -> None: ...

    @abstractmethod
    def apply(self, x: np.ndarray) -> np.ndarray:
        """Data side (what the code column stores)."""

    def apply_query(self, q: np.ndarray) -> np.ndarray:
        return self.apply(q)

    @abstractmethod
    def sql_apply(self, source: SqlExpr) -> SqlCall:
        """The SQL call projecting `source` (the data side)."""

    def sql_apply_query(self, source: SqlExpr) -> SqlCall:
        """The SQL call projecting a query, as apply_query does."""
        return self.sql_apply(source)

    @abstractmethod
    def params(self) -> dict[str, Any]: ...

    @abstractmethod
    def load_params(self, params: dict[str, Any]) -> None: ...


class Matryoshka(Projection):
    kind = "mrl"
    trainable = False

    @property
    def is_fitted(self) -> bool:
        return True

    def fit(self, x: np.ndarray, queries: np.ndarray | None) -> None:
        return None

    def apply(self, x: np.ndarray) -> np.ndarray:
        head = x[:, : self.out_dim].astype(np.float64)
        norm = np.sqrt((head * head).sum(axis=1, keepdims=True))  # in double, as pgvector's l2_normalize
        return np.divide(head, norm, out=np.zeros_like(head), where=norm > 0).astype(np.float32)

    def sql_apply(self, source: SqlExpr) -> SqlCall:
        return SqlCall("pgembed.encode_matryoshka", (source, self.out_dim))

    def params(self) -> dict[str, Any]:
        return {}

    def load_params(self, params: dict[str, Any]) -> None:
        return None


class _Linear(Projection):
    """y = P (x - centre); P has orthonormal rows."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__(dim, out_dim)
        self.rows: np.ndarray | None = None  # (out_dim, dim) float32
        self.centre: np.ndarray | None = None  # (dim,) float32

    @property
    def is_fitted(self) -> bool:
        return self.rows is not None

    def apply(self, x: np.ndarray) -> np.ndarray:
        assert self.rows is not None and self.centre is not None
        return (x - self.centre) @ self.rows.T

    def apply_query(self, q: np.ndarray) -> np.ndarray:
        assert self.rows is not None
        return q @ self.rows.T

    def sql_apply(self, source: SqlExpr) -> SqlCall:
        assert self.rows is not None and self.centre is not None
        return sql_project(source, self.centre, self.rows)

    def sql_apply_query(self, source: SqlExpr) -> SqlCall:
        assert self.rows is not None
        return SqlCall("pgembed.project", (source, fitted_vectors(self.rows)))

    def params(self) -> dict[str, Any]:
        if self.rows is None or self.centre is None:
            return {}
        return {"centre": vector_literal(self.centre), "rows": matrix_to_json(self.rows)}

    def load_params(self, params: dict[str, Any]) -> None:
        if "rows" in params:
            self.rows = matrix_from_json(params["rows"], self.dim)
            self.centre = matrix_from_json([params["centre"]], self.dim)[0]


class PCA(_Linear):
    kind = "pca"

    def fit(self, x: np.ndarray, queries: np.ndarray | None) -> None:
        centre = x.mean(axis=0, dtype=np.float64)
        _, _, vt = np.linalg.svd(x - centre, full_matrices=False)
        self.rows = vt[: self.out_dim].astype(np.float32)
        self.centre = centre.astype(np.float32)


class LeanVecOOD(_Linear):
    kind = "leanvec"
    uses_queries = True
    BETAS = tuple(np.linspace(0.0, 1.0, 11))

    def fit(self, x: np.ndarray, queries: np.ndarray | None) -> None:
        if queries is None or len(queries) < 2:
            raise InvalidVectorsError("leanvec fits on a sample of queries too (at least 2): pass queries")
        x64, q64 = x.astype(np.float64), queries.astype(np.float64)
        kx, kq = x64.T @ x64 / len(x64), q64.T @ q64 / len(q64)
        kx, kq = kx / np.trace(kx), kq / np.trace(kq)
        rng = np.random.default_rng(0)
        xs = x64[rng.choice(len(x64), min(len(x64), 5000), replace=False)]
        target = q64 @ xs.T
        best: tuple[float, np.ndarray] | None = None
        for beta in self.BETAS:
            _, vectors = np.linalg.eigh(beta * kx + (1 - beta) * kq)
            rows = vectors[:, ::-1][:, : self.out_dim].T
            loss = float(np.linalg.norm(target - (q64 @ rows.T) @ (xs @ rows.T).T))
            if best is None or loss < best[0]:
                best = (loss, rows)
        assert best is not None
        self.rows = best[1].astype(np.float32)
        self.centre = np.zeros(self.dim, dtype=np.float32)  # inner products: no centring


def sql_project(source: SqlExpr, centre: np.ndarray, rows: np.ndarray) -> SqlCall:
    """rows @ (source - centre) in SQL: one pgvector inner product a row."""
    return SqlCall("pgembed.project", (source, fitted_vector(centre), fitted_vectors(rows)))


PROJECTIONS: dict[str, type[Projection]] = {cls.kind: cls for cls in (Matryoshka, PCA, LeanVecOOD)}
