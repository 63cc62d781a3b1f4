"""float16: half the bytes, no training, stored as pgvector's halfvec (which pgvector's indexes accept)."""

from __future__ import annotations

import numpy as np

from pgembed.codecs.base import SOURCE, Codec, SqlCall, SqlExpr


class Float16Codec(Codec):
    kind = "f16"
    storage = "halfvec"
    # float16's largest finite value: larger magnitudes are stored as it (pgembed.encode_float16 saturates).
    LARGEST = 65504.0

    def _encode(self, x: np.ndarray) -> np.ndarray:
        if x.max() <= self.LARGEST and x.min() >= -self.LARGEST:  # two reductions, no temporary: the common case
            return x.astype(np.float16)  # round to nearest even, as pgvector's vector -> halfvec cast
        return np.clip(x, -self.LARGEST, self.LARGEST).astype(np.float16)

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
