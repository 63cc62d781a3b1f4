"""Binary codes compared by Hamming distance, indexable with pgvector's HNSW (bit_hamming_ops).

- `bq`: one bit a dimension, the sign of the vector minus a fitted per-dimension mean (pgvectorscale's
  "statistical binary quantization"): centring makes every bit carry information.
- `bq2`..`bq4`: thermometer codes, b bits a dimension: bit j of dimension i is set when x_i exceeds the
  dimension's j/(b+1) quantile. The Hamming distance between two thermometer codes is the L1 distance
  between their quantile levels, so it tracks the real distance, and the same HNSW index serves it.
  Bits are laid out level-major (all dimensions' first bits, then all second bits...), which is what
  concatenating one binary_quantize() per level gives in SQL.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pgembed.codecs.base import (
    SOURCE,
    Codec,
    SqlCall,
    SqlExpr,
    fitted_vector,
    fitted_vectors,
    hamming_similarity,
    matrix_from_json,
    matrix_to_json,
)
from pgembed.errors import InvalidVectorsError


class ThermometerCodec(Codec):
    """b bits per dimension (b = 1 is plain mean-centred binary)."""

    kind = "bq"
    trainable = True
    storage = "bit"
    min_fit_rows = 2

    def __init__(self, dim: int, bits: int = 1) -> None:
        super().__init__(dim)
        if not 1 <= bits <= 4:
            raise InvalidVectorsError(f"binary codes take 1 to 4 bits per dimension, got {bits}")
        self.bits = bits
        self.min_fit_rows = 1 if bits == 1 else bits + 1  # type: ignore[misc]
        self.thresholds: np.ndarray | None = None  # (bits, dim) float32

    @property
    def spec(self) -> str:
        return "bq" if self.bits == 1 else f"bq{self.bits}"

    def _fit(self, x: np.ndarray, queries: np.ndarray | None) -> None:
        if self.bits == 1:
            # float64 accumulation, then float32: SQL sees exactly this float32 mean.
            self.thresholds = x.mean(axis=0, dtype=np.float64).astype(np.float32)[None, :]
        else:
            levels = [(j + 1) / (self.bits + 1) for j in range(self.bits)]
            self.thresholds = np.quantile(x, levels, axis=0).astype(np.float32)

    @property
    def is_fitted(self) -> bool:
        return self.thresholds is not None

    @property
    def mean(self) -> np.ndarray | None:
        return None if self.thresholds is None else self.thresholds[0]

    def _encode(self, x: np.ndarray) -> np.ndarray:
        assert self.thresholds is not None
        # x > t is the sign of x - t (binary_quantize of pgvector's vector_sub), overflowing or not.
        bits = np.concatenate([x > t for t in self.thresholds], axis=1)
        return np.packbits(bits, axis=1)

    def similarity(self, queries: np.ndarray, codes: np.ndarray,
                   extras: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """-(Hamming distance): the query is encoded too, as the HNSW index on the codes compares them."""
        return hamming_similarity(self.encode(queries), np.asarray(codes, dtype=np.uint8))

    @property
    def code_bytes(self) -> int:
        return (self.bits * self.dim + 7) // 8 + 8  # bit(n): bytes + length word + varlena header

    def sql_type(self) -> str:
        return f"bit({self.bits * self.dim})"

    def sql_encoder(self, source: SqlExpr = SOURCE) -> SqlExpr:
        self._require_fitted()
        assert self.thresholds is not None
        if self.bits == 1:
            return SqlCall("pgembed.encode_binary", (source, fitted_vector(self.thresholds[0])))
        return SqlCall("pgembed.encode_thermometer", (source, fitted_vectors(self.thresholds)))

    # The float query against the code's bits (asymmetric): ranks better than Hamming for the same candidates.
    estimator = "pgembed.bits_distance"

    def sql_query_table(self, query: SqlExpr, metric: str) -> SqlCall:
        self._require_fitted()
        return SqlCall("pgembed.bits_lut", (query, self.bits * self.dim, metric))

    def params(self) -> dict[str, Any]:
        if self.thresholds is None:
            return {}
        if self.bits == 1:
            return {"mean": matrix_to_json(self.thresholds)[0]}
        return {"thresholds": matrix_to_json(self.thresholds)}

    def load_params(self, params: dict[str, Any]) -> None:
        if "mean" in params:
            self.thresholds = matrix_from_json([params["mean"]], self.dim)
        elif "thresholds" in params:
            self.thresholds = matrix_from_json(params["thresholds"], self.dim)


def bits_to_text(codes: np.ndarray, nbits: int) -> list[str]:
    """Packed codes as PostgreSQL bit-string text ('0101...'), for comparing with what SQL stored."""
    bits = np.unpackbits(np.asarray(codes, dtype=np.uint8), axis=1)[:, :nbits]
    return ["".join("1" if b else "0" for b in row) for row in bits]
