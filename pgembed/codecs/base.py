"""The one interface every codec implements (in the spirit of FAISS: fit / encode / decode / search).

A codec turns float32 vectors into compact codes, in numpy and, with the same arithmetic, in SQL:
`sql_encoder` names the call of pgembed's SQL encoder functions (sql/functions/codecs.sql) and the
parameters that keep a code column in step with its source vector; the SQL-text layer
(pgembed.statements.encoders) spells it. Fitted parameters round-trip through `params()` /
`load_params()` as JSON for the catalog.
`similarity` estimates, from codes alone, how close each stored vector is to each query (higher is
closer): what a coarse search ranks by before exact re-ranking. Codecs know nothing of the database
beyond which SQL function encodes them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Self

import numpy as np

from pgembed.errors import InvalidVectorsError, NotDecodableError
from pgembed.vectors import as_matrix

# How a code column is stored, which says how to read it back from PostgreSQL's text output.
STORAGE = ("vector", "halfvec", "bit", "bytea", "integer")


class Source:
    """The vector being encoded, in an encoder call: NEW.<vector column> in a trigger, a query parameter."""

    def __repr__(self) -> str:
        return "SOURCE"


SOURCE = Source()


class FittedType(StrEnum):
    """The PostgreSQL types a fitted parameter takes in an encoder's call."""

    VECTOR = "vector"
    VECTORS = "vector[]"
    INTEGERS = "integer[]"


@dataclass(frozen=True)
class Fitted:
    """A fitted parameter in an encoder's call, as PostgreSQL text of its type. What the data taught the codec
    is readable only by those who may use the data (pgembed.statements.encoders says how)."""

    text: str
    sql_type: FittedType


@dataclass(frozen=True)
class SqlCall:
    """A call of an SQL function: pgembed's encoders by their qualified name ("pgembed.encode_binary"),
    pgvector's by their own ("binary_quantize"). Each argument is SOURCE, another call, a fitted parameter
    (Fitted), or a value the codec's spec says (an integer, a metric's name), written as a literal."""

    function: str
    args: tuple[Any, ...]


SqlExpr = Source | SqlCall


@dataclass(frozen=True)
class ExtraColumn:
    """A second column a codec needs beside its main code column (RaBitQ's correction factors)."""

    suffix: str
    sql_type: str
    storage: str


class Codec(ABC):
    kind: ClassVar[str]
    #: True when the codec learns parameters from data; encode() needs fit() (or load_params) first.
    trainable: ClassVar[bool] = False
    #: True when fit() wants a sample of queries as well (LeanVec-OOD).
    uses_queries: ClassVar[bool] = False
    #: Fewest rows fit() accepts.
    min_fit_rows: ClassVar[int] = 1
    #: How the main code column is stored (one of STORAGE).
    storage: ClassVar[str] = "vector"

    def __init__(self, dim: int) -> None:
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise InvalidVectorsError(f"dimension must be a positive integer, got {dim!r}")
        self.dim = dim

    @property
    def spec(self) -> str:
        """The spec string that makes this codec again (see pgembed.codecs.spec)."""
        return self.kind

    # -- training -------------------------------------------------------------------------------------
    def fit(self, sample: np.ndarray, queries: np.ndarray | None = None) -> Self:
        """Learn parameters from a sample of the data (and of queries, for codecs that use them)."""
        x = as_matrix(sample, self.dim, what="fit sample")
        if x.shape[0] < self.min_fit_rows:
            raise InvalidVectorsError(f"{self.spec} needs at least {self.min_fit_rows} rows to fit, got {x.shape[0]}")
        q = as_matrix(queries, self.dim, what="query sample") if queries is not None else None
        if self.uses_queries and q is None:
            raise InvalidVectorsError(f"{self.spec} fits on a sample of queries too: pass queries=")
        self._fit(x, q)
        return self

    def _fit(self, x: np.ndarray, queries: np.ndarray | None) -> None:
        """Override to learn from the validated float32 sample; codecs that learn nothing keep this."""
        return None

    @property
    def is_fitted(self) -> bool:
        return True

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise InvalidVectorsError(f"{self.spec} codec is not fitted; call fit() first")

    # -- codes ----------------------------------------------------------------------------------------
    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """Codes of an (n, dim) array, one row per vector; validated here, so subclasses get clean float32. No
        finite vector is refused: a code is computed for every one, as the SQL encoders do."""
        self._require_fitted()
        return self._encode(as_matrix(vectors, self.dim))

    @abstractmethod
    def _encode(self, x: np.ndarray) -> np.ndarray: ...

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Approximate vectors back from codes, in the codec's output space."""
        raise NotDecodableError(f"{self.spec} codes cannot be decoded back to vectors")

    def similarity(self, queries: np.ndarray, codes: np.ndarray,
                   extras: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """(n_queries, n_codes) estimated similarity, higher is closer. Default: inner product with the
        decoded vectors (asymmetric: the query stays exact), which ranks like cosine on unit vectors.
        `extras`: the extra columns' values (see extra_columns), for codecs that have them."""
        q = self.query_transform(as_matrix(queries, self.dim, what="queries"))
        return q @ self.decode(codes).T

    def query_transform(self, q: np.ndarray) -> np.ndarray:
        """Map float32 queries into the space `decode` returns (identity unless the codec projects)."""
        return q

    @property
    @abstractmethod
    def code_bytes(self) -> int:
        """Bytes per vector on disk for the code column(s), including pgvector's small headers."""

    # -- SQL side -------------------------------------------------------------------------------------
    @abstractmethod
    def sql_type(self) -> str:
        """The PostgreSQL type of the main code column, e.g. 'halfvec(384)'."""

    @abstractmethod
    def sql_encoder(self, source: SqlExpr = SOURCE) -> SqlExpr:
        """The SQL call computing the code of `source` (an expression of type vector)."""

    # A distance estimator in SQL for this codec's codes, or None: ORDER BY estimator(code, table) ranks rows
    # from their codes alone (RaBitQ's takes (code, factors, table)); the table is the query's, made once.
    estimator: str | None = None

    def sql_query_table(self, query: SqlExpr, metric: str) -> SqlCall | None:
        """The SQL call making a query's table for `estimator` (`metric`: cosine, ip or l2)."""
        return None

    @property
    def lists(self) -> int | None:
        """How many clusters a partitioning codec (its code the index of the nearest centroid) has; None for a
        codec that is not one."""
        return None

    def sql_centroids(self) -> Fitted | None:
        """A partitioning codec's centroids, as the SQL functions that read its clusters take them
        (pgembed.probe_topk); None for a codec that is not one."""
        return None

    def extra_columns(self) -> list[ExtraColumn]:
        return []

    def sql_extra_encoder(self, suffix: str, source: SqlExpr = SOURCE) -> SqlExpr:
        raise KeyError(suffix)

    def encode_extra(self, suffix: str, vectors: np.ndarray) -> np.ndarray:
        raise KeyError(suffix)

    # -- catalog --------------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Fitted parameters as JSON-serialisable data."""
        return {}

    def load_params(self, params: dict[str, Any]) -> None:
        """Restore what params() wrote."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, dim={self.dim})"


def vector_literal(values: np.ndarray) -> str:
    """A pgvector text literal that parses back to exactly these float32 values (shortest round-trip)."""
    floats = np.asarray(values, dtype=np.float32)
    return "[" + ",".join(np.format_float_positional(v, unique=True, trim="-") for v in floats) + "]"


def parse_vector_literal(text: str, dim: int | None = None) -> np.ndarray:
    values = np.array(text.strip("[]").split(","), dtype=np.float32)
    if dim is not None and values.shape != (dim,):
        raise InvalidVectorsError(f"stored parameter has {values.shape[0]} dimensions, expected {dim}")
    return values


def vector_array_literal(rows: np.ndarray) -> str:
    """A PostgreSQL vector[] literal: {"[...]","[...]"}."""
    return "{" + ",".join(f'"{vector_literal(r)}"' for r in np.asarray(rows, dtype=np.float32)) + "}"


def fitted_vector(values: np.ndarray | str) -> Fitted:
    """A fitted vector (its values, or their exact literal as params() keeps it)."""
    return Fitted(values if isinstance(values, str) else vector_literal(values), FittedType.VECTOR)


def fitted_vectors(rows: np.ndarray) -> Fitted:
    return Fitted(vector_array_literal(rows), FittedType.VECTORS)


def fitted_integers(values: list[int]) -> Fitted:
    return Fitted("{" + ",".join(str(int(v)) for v in values) + "}", FittedType.INTEGERS)


def matrix_to_json(rows: np.ndarray) -> list[str]:
    """A float32 matrix as a list of exact vector literals, for the catalog's jsonb."""
    return [vector_literal(r) for r in np.asarray(rows, dtype=np.float32)]


def matrix_from_json(rows: list[str], width: int | None = None) -> np.ndarray:
    return np.stack([parse_vector_literal(r, width) for r in rows])


def codes_from_sql_text(storage: str, texts: list[str | None], width: int) -> np.ndarray:
    """Codes as PostgreSQL prints them (`column::text`) -> the arrays numpy encoders return."""
    if storage in ("vector", "halfvec"):
        return np.stack([parse_vector_literal(t) for t in texts if t is not None])
    if storage == "bit":
        bits = np.array([[c == "1" for c in t] for t in texts if t is not None], dtype=bool)
        return np.packbits(bits, axis=1)
    if storage == "bytea":
        return np.stack([np.frombuffer(bytes.fromhex(t[2:]), dtype=np.uint8) for t in texts if t is not None])
    if storage == "integer":
        return np.array([[int(t)] for t in texts if t is not None], dtype=np.int32).reshape(-1, 1)
    raise ValueError(f"unknown storage {storage!r}")


def hamming_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """-(Hamming distance) between packed bit codes a (n, w) and b (m, w): what pgvector's <~> ranks by."""
    a_bits = np.unpackbits(a, axis=1).astype(np.float32)
    b_bits = np.unpackbits(b, axis=1).astype(np.float32)
    matches = a_bits @ b_bits.T + (1 - a_bits) @ (1 - b_bits).T
    return matches - a_bits.shape[1]
