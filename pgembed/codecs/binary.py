"""Binary: one bit a dimension, the sign of the vector minus a fitted per-dimension mean.

Centring first (pgvectorscale's "statistical binary quantization") makes every bit carry information even
when a dimension's values are mostly positive. Stored as bit(d); pgvector indexes it with HNSW on Hamming.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
from psycopg import sql

from pgembed.codecs.base import Codec, vector_literal
from pgembed.errors import InvalidVectorsError


class BinaryCodec(Codec):
    kind = "binary"
    trainable = True

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.mean: np.ndarray | None = None

    def _fit(self, x: np.ndarray) -> None:
        # float64 accumulation, then float32: the value SQL sees is exactly this float32 mean.
        self.mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)

    @property
    def is_fitted(self) -> bool:
        return self.mean is not None

    def _encode(self, x: np.ndarray) -> np.ndarray:
        assert self.mean is not None
        # float32 subtraction and "> 0", exactly as pgvector's vector_sub and binary_quantize.
        return np.packbits((x - self.mean) > 0, axis=1)

    @property
    def code_bytes(self) -> int:
        return (self.dim + 7) // 8

    def sql_type(self) -> str:
        return f"bit({self.dim})"

    def sql_encode(self, source: sql.Composable) -> sql.Composable:
        if self.mean is None:
            raise InvalidVectorsError("binary codec is not fitted; call fit() first")
        return sql.SQL("pgembed.encode_binary({}, {}::vector)").format(
            source, sql.Literal(vector_literal(self.mean))
        )

    def params(self) -> dict[str, Any]:
        return {"mean": vector_literal(self.mean)} if self.mean is not None else {}

    @classmethod
    def from_params(cls, dim: int, params: dict[str, Any]) -> Self:
        codec = cls(dim)
        if "mean" in params:
            mean = np.array(params["mean"].strip("[]").split(","), dtype=np.float32)
            if mean.shape != (dim,):
                raise InvalidVectorsError(f"stored binary mean has {mean.shape[0]} dimensions, expected {dim}")
            codec.mean = mean
        return codec


def bits_to_text(codes: np.ndarray, dim: int) -> list[str]:
    """Packed codes as PostgreSQL bit-string text ('0101...'), for comparing with what SQL stored."""
    bits = np.unpackbits(np.asarray(codes, dtype=np.uint8), axis=1)[:, :dim]
    return ["".join("1" if b else "0" for b in row) for row in bits]
