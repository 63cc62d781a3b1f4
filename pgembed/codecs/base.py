"""The one interface every codec implements (in the spirit of FAISS: fit / encode / decode).

A codec turns float32 vectors into compact codes, in numpy and, with the same arithmetic, in SQL:
`sql_encode` returns the expression PostgreSQL evaluates to keep a code column in step with its source
vector. Fitted parameters round-trip through `params()` / `from_params()` as JSON for the catalog.
Codecs know nothing of the database beyond the text of their SQL expression.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import numpy as np
from psycopg import sql

from pgembed.errors import InvalidVectorsError
from pgembed.vectors import as_matrix


class Codec(ABC):
    kind: ClassVar[str]
    #: True when the codec learns parameters from data; encode() needs fit() (or from_params) first.
    trainable: ClassVar[bool] = False
    #: Fewest rows fit() accepts.
    min_fit_rows: ClassVar[int] = 1

    def __init__(self, dim: int) -> None:
        if not isinstance(dim, int) or dim < 1:
            raise InvalidVectorsError(f"dimension must be a positive integer, got {dim!r}")
        self.dim = dim

    # -- training -------------------------------------------------------------------------------------
    def fit(self, sample: np.ndarray) -> Self:
        """Learn parameters from a sample of the data (no-op for codecs that learn nothing)."""
        x = as_matrix(sample, self.dim, what="fit sample")
        if x.shape[0] < self.min_fit_rows:
            raise InvalidVectorsError(
                f"{self.kind} needs at least {self.min_fit_rows} rows to fit, got {x.shape[0]}"
            )
        self._fit(x)
        return self

    def _fit(self, x: np.ndarray) -> None:
        """Override to learn from the validated float32 sample; codecs that learn nothing keep this."""
        return None

    @property
    def is_fitted(self) -> bool:
        return True

    # -- codes ----------------------------------------------------------------------------------------
    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """Encode an (n, dim) array; validated here, so subclasses get clean float32."""
        if not self.is_fitted:
            raise InvalidVectorsError(f"{self.kind} codec is not fitted; call fit() first")
        return self._encode(as_matrix(vectors, self.dim))

    @abstractmethod
    def _encode(self, x: np.ndarray) -> np.ndarray: ...

    def check(self, x: np.ndarray) -> None:
        """Raise if validated vectors `x` cannot be encoded (the SQL encoder would fail on them)."""
        return None

    def decode(self, codes: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{self.kind} codes cannot be decoded back to vectors")

    @property
    @abstractmethod
    def code_bytes(self) -> int:
        """Bytes of payload per vector (without PostgreSQL's per-value header)."""

    # -- SQL side -------------------------------------------------------------------------------------
    @abstractmethod
    def sql_type(self) -> str:
        """The PostgreSQL type of the code column, e.g. 'halfvec(384)'."""

    @abstractmethod
    def sql_encode(self, source: sql.Composable) -> sql.Composable:
        """An SQL expression computing the code of `source` (an expression of type vector)."""

    # -- catalog --------------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Fitted parameters as JSON-serialisable data."""
        return {}

    @classmethod
    def from_params(cls, dim: int, params: dict[str, Any]) -> Self:
        return cls(dim)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"


def vector_literal(values: np.ndarray) -> str:
    """A pgvector text literal that parses back to exactly these float32 values (shortest round-trip)."""
    floats = np.asarray(values, dtype=np.float32)
    return "[" + ",".join(np.format_float_positional(v, unique=True, trim="-") for v in floats) + "]"
