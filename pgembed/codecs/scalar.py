"""Scalar quantizers: each dimension mapped affinely onto integer levels.

- `sq8` (alias `int8`): 8 bits a dimension, the range of each dimension calibrated on its 0.1% and 99.9%
  quantiles (robust to outliers), stored as bytea, one byte a dimension.
- `osq{b}`: a non-uniform allocation in the spirit of SQUASH's OSQ: a budget of b bits a dimension on
  average (b*d bits in all) spread over dimensions by their variance, greedily giving the next bit to the
  dimension whose quantisation error would fall most (reverse water-filling), at most 8 bits a dimension.
  Dimensions left with 0 bits decode to their mean. Stored as bit(b*d).

Both encode level = clip(rint((x - lo) * inv), 0, 2^bits - 1) in float32, the arithmetic the SQL encoders
do with pgvector's elementwise - and *; decode is lo + level * step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pgembed.codecs.base import (
    SOURCE,
    Codec,
    SqlCall,
    SqlExpr,
    fitted_integers,
    fitted_vector,
    matrix_from_json,
    matrix_to_json,
)
from pgembed.errors import InvalidVectorsError

_MIN_RANGE = 1e-6  # a dimension that never varies (real models have some) still gets a usable scale


class _ScalarQuantizer(Codec):
    trainable = True
    min_fit_rows = 2

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.lo: np.ndarray | None = None
        self.inv: np.ndarray | None = None  # levels per unit, float32
        self.step: np.ndarray | None = None  # 1 / inv (0 where a dimension has no bits)
        self.bits: np.ndarray | None = None  # bits per dimension, int

    @property
    def is_fitted(self) -> bool:
        return self.lo is not None

    def _calibrate(self, x: np.ndarray, bits: np.ndarray) -> None:
        lo = np.quantile(x, 0.001, axis=0)
        hi = np.quantile(x, 0.999, axis=0)
        width = np.maximum(hi - lo, _MIN_RANGE)
        top = (2.0 ** bits - 1).astype(np.float64)
        no_bits = bits == 0
        lo = np.where(no_bits, x.mean(axis=0), lo)
        self.lo = lo.astype(np.float32)
        self.inv = np.where(no_bits, 0.0, top / width).astype(np.float32)
        self.step = np.where(no_bits, 0.0, width / np.maximum(top, 1)).astype(np.float32)
        self.bits = bits.astype(np.int64)

    def levels(self, x: np.ndarray) -> np.ndarray:
        assert self.lo is not None and self.inv is not None and self.bits is not None
        scaled = (x - self.lo) * self.inv  # float32, as pgvector computes (v - lo) * inv
        top = (2 ** self.bits - 1).astype(np.float32)
        return np.clip(np.rint(scaled), 0, top).astype(np.int64)

    def decode_levels(self, levels: np.ndarray) -> np.ndarray:
        assert self.lo is not None and self.step is not None
        return self.lo + levels.astype(np.float32) * self.step

    def params(self) -> dict[str, Any]:
        if self.lo is None:
            return {}
        assert self.inv is not None and self.step is not None and self.bits is not None
        lo, inv, step = matrix_to_json(np.stack([self.lo, self.inv, self.step]))
        return {"lo": lo, "inv": inv, "step": step, "bits": self.bits.tolist()}

    def load_params(self, params: dict[str, Any]) -> None:
        if "lo" in params:
            self.lo, self.inv, self.step = matrix_from_json([params["lo"], params["inv"], params["step"]], self.dim)
            self.bits = np.asarray(params["bits"], dtype=np.int64)


class Int8Codec(_ScalarQuantizer):
    kind = "sq8"
    storage = "bytea"

    def _fit(self, x: np.ndarray, queries: np.ndarray | None) -> None:
        self._calibrate(x, np.full(self.dim, 8))

    def _encode(self, x: np.ndarray) -> np.ndarray:
        # levels() in place, in float32, straight to uint8: the same numbers without int64 temporaries.
        assert self.lo is not None and self.inv is not None
        scaled = np.subtract(x, self.lo)
        scaled *= self.inv
        np.rint(scaled, out=scaled)
        np.clip(scaled, 0, 255, out=scaled)
        return scaled.astype(np.uint8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self.decode_levels(np.asarray(codes, dtype=np.uint8))

    @property
    def code_bytes(self) -> int:
        return self.dim + 4  # bytea: one byte a dimension + varlena header (4; 1 when short and inline)

    def sql_type(self) -> str:
        return "bytea"

    def sql_encoder(self, source: SqlExpr = SOURCE) -> SqlExpr:
        p = self.params()
        return SqlCall("pgembed.encode_int8", (source, fitted_vector(p["lo"]), fitted_vector(p["inv"])))

    estimator = "pgembed.sq8_distance"

    def sql_query_table(self, query: SqlExpr, metric: str) -> SqlCall:
        p = self.params()
        return SqlCall("pgembed.sq8_query", (query, fitted_vector(p["lo"]), fitted_vector(p["step"]), metric))


class OSQCodec(_ScalarQuantizer):
    kind = "osq"
    storage = "bit"

    def __init__(self, dim: int, bits_per_dim: float = 4) -> None:
        super().__init__(dim)
        if not 0 < bits_per_dim <= 8:
            raise InvalidVectorsError(f"osq takes 0 < bits per dimension <= 8, got {bits_per_dim}")
        self.budget = int(round(bits_per_dim * dim))
        self.bits_per_dim = bits_per_dim

    @property
    def spec(self) -> str:
        b = self.bits_per_dim
        return f"osq{int(b) if float(b).is_integer() else b}"

    def _fit(self, x: np.ndarray, queries: np.ndarray | None) -> None:
        self._calibrate(x, allocate_bits(x.var(axis=0, dtype=np.float64), self.budget))

    def _encode(self, x: np.ndarray) -> np.ndarray:
        assert self.bits is not None
        levels = self.levels(x)
        return np.packbits(_levels_to_bits(levels, self.bits), axis=1)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        assert self.bits is not None
        bits = np.unpackbits(np.asarray(codes, dtype=np.uint8), axis=1)[:, : self.budget]
        return self.decode_levels(_bits_to_levels(bits, self.bits))

    @property
    def code_bytes(self) -> int:
        return (self.budget + 7) // 8 + 8

    def sql_type(self) -> str:
        return f"bit({self.budget})"

    def sql_encoder(self, source: SqlExpr = SOURCE) -> SqlExpr:
        p = self.params()
        return SqlCall("pgembed.encode_sq_bits", (source, fitted_vector(p["lo"]), fitted_vector(p["inv"]),
                                                   fitted_integers(p["bits"])))


def allocate_bits(variance: np.ndarray, budget: int, max_bits: int = 8) -> np.ndarray:
    """Reverse water-filling: each bit goes to the dimension whose error variance / 4^bits is largest."""
    bits = np.zeros(len(variance), dtype=np.int64)
    error = np.asarray(variance, dtype=np.float64).copy()
    for _ in range(min(budget, max_bits * len(variance))):
        i = int(np.argmax(np.where(bits < max_bits, error, -1.0)))
        bits[i] += 1
        error[i] /= 4.0
    return bits


def _bit_layout(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each output bit: the dimension it belongs to and its shift (most significant bit first)."""
    dims = np.repeat(np.arange(len(bits)), bits)
    ends = np.cumsum(bits)
    shifts = ends[dims] - 1 - np.arange(int(bits.sum()))
    return dims, shifts


def _levels_to_bits(levels: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """(n, d) levels -> (n, sum(bits)) bools, each dimension's level most-significant bit first."""
    dims, shifts = _bit_layout(bits)
    return ((levels[:, dims] >> shifts) & 1).astype(bool)


def _bits_to_levels(bitmatrix: np.ndarray, bits: np.ndarray) -> np.ndarray:
    dims, shifts = _bit_layout(bits)
    levels = np.zeros((bitmatrix.shape[0], len(bits)), dtype=np.int64)
    weighted = bitmatrix[:, : len(dims)].astype(np.int64) << shifts
    np.add.at(levels.T, dims, weighted.T)
    return levels
