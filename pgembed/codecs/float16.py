"""float16: half the bytes, no training, stored as pgvector's halfvec (which pgvector's indexes accept)."""

from __future__ import annotations

import numpy as np

from pgembed.codecs.base import SOURCE, Codec, SqlCall, SqlExpr
from pgembed.errors import InvalidVectorsError


class Float16Codec(Codec):
    kind = "f16"
    storage = "halfvec"
    # |x| >= 65520 rounds to infinity in float16; pgvector refuses such values, and so do we.
    LIMIT = 65520.0

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return x.astype(np.float16)  # round to nearest even, as pgvector's vector -> halfvec cast

    def check(self, x: np.ndarray) -> None:
        if x.max() < self.LIMIT and x.min() > -self.LIMIT:  # two reductions, no temporary: the common case
            return
        overflow = (np.abs(x) >= self.LIMIT).any(axis=1)
        if overflow.any():
            row = int(np.argmax(overflow))
            raise InvalidVectorsError(f"row {row} has a value beyond float16 range (|x| >= 65520)")

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(codes, dtype=np.float16).astype(np.float32)

    @property
    def code_bytes(self) -> int:
        return 2 * self.dim + 8  # halfvec: 2 bytes a dimension + dim/unused header + varlena header

    def sql_type(self) -> str:
        return f"halfvec({self.dim})"

    def sql_encoder(self, source: SqlExpr = SOURCE) -> SqlExpr:
        return SqlCall("pgembed.encode_float16", (source,))


class Float32Codec(Codec):
    """The identity: float32 as pgvector's vector. What a projection stores when nothing follows it."""

    kind = "f32"
    storage = "vector"

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return x

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(codes, dtype=np.float32)

    @property
    def code_bytes(self) -> int:
        return 4 * self.dim + 8

    def sql_type(self) -> str:
        return f"vector({self.dim})"

    def sql_encoder(self, source: SqlExpr = SOURCE) -> SqlExpr:
        return source
