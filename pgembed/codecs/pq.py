"""Product quantization: the vector cut into M sub-vectors, each replaced by the nearest of 256 centroids
learned by k-means on that sub-space (faiss's k-means). One byte a sub-space, stored as bytea.
Distances are asymmetric: the exact query against the decoded sub-vectors (lookup tables in FAISS terms;
q . decode(code) here, which is the same number).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pgembed.codecs.base import (
    SOURCE,
    Codec,
    Fitted,
    SqlCall,
    SqlExpr,
    fitted_vectors,
    matrix_from_json,
    matrix_to_json,
)
from pgembed.errors import InvalidVectorsError

CENTROIDS = 256


class PQCodec(Codec):
    kind = "pq"
    trainable = True
    storage = "bytea"
    min_fit_rows = CENTROIDS

    def __init__(self, dim: int, m: int = 48, *, iterations: int = 20, seed: int = 1234) -> None:
        super().__init__(dim)
        if m < 1 or dim % m:
            raise InvalidVectorsError(f"pq{m}: the number of sub-spaces must divide the dimension {dim}")
        self.m = m
        self.sub = dim // m
        self.iterations = iterations
        self.seed = seed
        self.codebooks: np.ndarray | None = None  # (m, 256, sub) float32

    @property
    def spec(self) -> str:
        return f"pq{self.m}"

    @property
    def is_fitted(self) -> bool:
        return self.codebooks is not None

    def _fit(self, x: np.ndarray, queries: np.ndarray | None) -> None:
        import faiss  # the k-means FAISS's own PQ trains with; imported here so other codecs need not load it

        books = np.empty((self.m, CENTROIDS, self.sub), dtype=np.float32)
        for j in range(self.m):
            part = np.ascontiguousarray(x[:, j * self.sub : (j + 1) * self.sub])
            # min_points_per_centroid=1: small samples train as they are; FAISS would only print a warning.
            kmeans = faiss.Kmeans(self.sub, CENTROIDS, niter=self.iterations, seed=self.seed + j, verbose=False,
                                  min_points_per_centroid=1)
            kmeans.train(part)
            books[j] = kmeans.centroids
        self.codebooks = books

    def _encode(self, x: np.ndarray) -> np.ndarray:
        assert self.codebooks is not None
        norms = (self.codebooks.astype(np.float64) ** 2).sum(axis=2).astype(np.float32)  # (m, 256)
        codes = np.empty((x.shape[0], self.m), dtype=np.uint8)
        for j, book in enumerate(self.codebooks):
            part = x[:, j * self.sub : (j + 1) * self.sub]
            # argmin |c|^2 - 2 x.c: the nearest centroid, by the formula the SQL encoder evaluates.
            codes[:, j] = np.argmin(norms[j] - 2 * (part @ book.T), axis=1)
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        assert self.codebooks is not None
        codes = np.asarray(codes, dtype=np.uint8)
        return np.concatenate([self.codebooks[j][codes[:, j]] for j in range(self.m)], axis=1)

    @property
    def code_bytes(self) -> int:
        return self.m + 4

    def sql_type(self) -> str:
        return "bytea"

    estimator = "pgembed.pq_distance"

    def sql_codebook(self) -> tuple[Fitted, Fitted]:
        """The codebook as the SQL functions take it: one vector per dimension (its 256 centroids' values),
        one per sub-space (their squared norms)."""
        self._require_fitted()
        assert self.codebooks is not None
        columns = self.codebooks.transpose(0, 2, 1).reshape(-1, CENTROIDS)  # (m * sub, 256)
        norms = (self.codebooks.astype(np.float64) ** 2).sum(axis=2).astype(np.float32)  # (m, 256)
        return fitted_vectors(columns), fitted_vectors(norms)

    def sql_encoder(self, source: SqlExpr = SOURCE) -> SqlExpr:
        columns, norms = self.sql_codebook()
        return SqlCall("pgembed.encode_pq", (source, columns, norms, self.sub))

    def sql_query_table(self, query: SqlExpr, metric: str) -> SqlCall:
        columns, norms = self.sql_codebook()
        return SqlCall("pgembed.pq_lut", (query, columns, norms, self.sub, metric))

    def params(self) -> dict[str, Any]:
        if self.codebooks is None:
            return {}
        return {"codebooks": matrix_to_json(self.codebooks.reshape(-1, self.sub))}

    def load_params(self, params: dict[str, Any]) -> None:
        if "codebooks" in params:
            self.codebooks = matrix_from_json(params["codebooks"], self.sub).reshape(self.m, CENTROIDS, self.sub)
