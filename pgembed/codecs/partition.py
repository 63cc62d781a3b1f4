"""IVF partitioning: a vector's cluster, the index of its nearest centroid (k-means, FAISS's), kept in an integer
column as any code is. It says which rows are read together (the batch layout's clusters), not how similar they
are: its similarity is the centroid's, decode() gives the centroid.

The server picks the centroid by pgvector's l2_distance, ties to the least index (pgembed.encode_ivf); numpy by
float64 distances. They differ only for a vector within float32 rounding of two centroids' boundary.
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

# A cluster a centroid, at most: beyond that a cluster holds too few rows to be read as one.
MAX_LISTS = 1_000_000


class IVFCodec(Codec):
    kind = "ivf"
    trainable = True
    storage = "integer"

    def __init__(self, dim: int, lists: int, *, iterations: int = 20, seed: int = 1234) -> None:
        super().__init__(dim)
        if not 1 <= lists <= MAX_LISTS:
            raise InvalidVectorsError(f"ivf{lists}: the number of lists must be 1 to {MAX_LISTS:,}")
        self._lists = lists
        self.min_fit_rows = lists  # type: ignore[misc]
        self.iterations = iterations
        self.seed = seed
        self.centroids: np.ndarray | None = None  # (lists, dim) float32

    @property
    def lists(self) -> int:
        return self._lists

    @property
    def spec(self) -> str:
        return f"ivf{self.lists}"

    @property
    def is_fitted(self) -> bool:
        return self.centroids is not None

    def _fit(self, x: np.ndarray, queries: np.ndarray | None) -> None:
        import faiss  # imported here so that codecs without k-means need not load it

        # min_points_per_centroid=1: small samples train as they are; FAISS would only print a warning.
        kmeans = faiss.Kmeans(self.dim, self.lists, niter=self.iterations, seed=self.seed, verbose=False,
                              min_points_per_centroid=1)
        kmeans.train(np.ascontiguousarray(x))
        self.centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        assert self.centroids is not None
        c = self.centroids.astype(np.float64)
        out = np.empty((x.shape[0], 1), dtype=np.int32)
        for start in range(0, x.shape[0], 4096):  # a block's distances to every centroid, not all rows' at once
            block = x[start : start + 4096].astype(np.float64)
            squared = (block**2).sum(axis=1)[:, None] - 2 * block @ c.T + (c**2).sum(axis=1)[None, :]
            out[start : start + 4096, 0] = np.argmin(squared, axis=1)
        return out

    def decode(self, codes: np.ndarray) -> np.ndarray:
        assert self.centroids is not None
        return self.centroids[np.asarray(codes, dtype=np.int64).reshape(-1)]

    @property
    def code_bytes(self) -> int:
        return 4

    def sql_type(self) -> str:
        return "integer"

    def sql_centroids(self) -> Fitted:
        self._require_fitted()
        assert self.centroids is not None
        return fitted_vectors(self.centroids)

    def sql_encoder(self, source: SqlExpr = SOURCE) -> SqlExpr:
        return SqlCall("pgembed.encode_ivf", (source, self.sql_centroids()))

    def params(self) -> dict[str, Any]:
        return {} if self.centroids is None else {"centroids": matrix_to_json(self.centroids)}

    def load_params(self, params: dict[str, Any]) -> None:
        if "centroids" in params:
            centroids = matrix_from_json(params["centroids"], self.dim)
            if centroids.shape[0] != self.lists:
                raise InvalidVectorsError(f"{self.spec}: the stored parameters hold {centroids.shape[0]} centroids")
            self.centroids = centroids
