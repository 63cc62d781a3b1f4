"""Codec spec strings, composed like FAISS's index_factory: projections first, then one codec.

    f32 | f16 | bq | bq2 | bq3 | bq4 | sq8 | osq<b> | pq<M> | rabitq       a codec
    ivf<n>                                                                  a partitioning: the nearest of n centroids
    mrl<m> | pca<m> | leanvec<m>                                            a projection to m dimensions
    "pca128,bq2"    PCA to 128 dimensions, then 2-bit thermometer codes (256 bits); "pca128+bq2" too
    "mrl256,f16"    the first 256 dimensions, renormalised, as halfvec(256)
    "leanvec128"    LeanVec-OOD to 128 dimensions, stored as vector(128)

Aliases: float16/halfvec = f16, float32/vector = f32, binary/bit = bq, int8 = sq8.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from pgembed.codecs.base import SOURCE, Codec, ExtraColumn, SqlCall, SqlExpr
from pgembed.codecs.binary import ThermometerCodec
from pgembed.codecs.float16 import Float16Codec, Float32Codec
from pgembed.codecs.partition import IVFCodec
from pgembed.codecs.pq import PQCodec
from pgembed.codecs.projection import PROJECTIONS, Projection
from pgembed.codecs.rabitq import RaBitQCodec
from pgembed.codecs.scalar import Int8Codec, OSQCodec
from pgembed.errors import InvalidVectorsError, UnknownCodecError

ALIASES = {"float16": "f16", "halfvec": "f16", "float32": "f32", "vector": "f32", "binary": "bq", "bit": "bq",
           "int8": "sq8", "bq1": "bq"}
CODEC_FAMILIES = ("f32", "f16", "bq", "sq", "osq", "pq", "rabitq", "ivf")
_TOKEN = re.compile(r"^([a-z]+?)(\d+(?:\.\d+)?)?$")


class CodecSpecError(UnknownCodecError):
    """A spec string that does not parse; the message says which part and why."""


def _codec_for(token: str, dim: int, spec: str) -> Codec:
    name = ALIASES.get(token, token)
    match = _TOKEN.match(name)
    if not match:
        raise CodecSpecError(f"cannot parse {token!r} in codec spec {spec!r}")
    family, number = match.group(1), match.group(2)
    try:
        if family == "f" and number in ("16", "32"):
            return Float16Codec(dim) if number == "16" else Float32Codec(dim)
        if family == "bq":
            return ThermometerCodec(dim, int(number) if number else 1)
        if family == "sq" and number == "8":
            return Int8Codec(dim)
        if family == "osq":
            return OSQCodec(dim, float(number) if number else 4)
        if family == "pq":
            return PQCodec(dim, int(number) if number else max(1, dim // 8))
        if family == "rabitq" and number is None:
            return RaBitQCodec(dim)
        if family == "ivf":
            if number is None or "." in number:
                raise InvalidVectorsError(f"{token} needs a whole number of lists, e.g. ivf256")
            return IVFCodec(dim, int(number))
    except ValueError as err:
        raise CodecSpecError(f"in codec spec {spec!r}: {err}") from err
    except InvalidVectorsError as err:
        raise CodecSpecError(f"in codec spec {spec!r}: {err}") from err
    known = "f32, f16, bq, bq2..bq4, sq8, osq<bits>, pq<M>, rabitq, ivf<lists>; projections mrl<m>, pca<m>, leanvec<m>"
    raise CodecSpecError(f"unknown codec {token!r} in spec {spec!r}; known: {known}")


def make_codec(spec: str, dim: int) -> Codec:
    """An unfitted codec from a spec string."""
    if not isinstance(spec, str) or not spec.strip():
        raise CodecSpecError(f"codec spec must be a non-empty string, got {spec!r}")
    tokens = [t.strip().lower() for t in re.split(r"[,+]", spec)]
    if any(not t for t in tokens):
        raise CodecSpecError(f"empty stage in codec spec {spec!r}")
    projections: list[Projection] = []
    width = dim
    for i, token in enumerate(tokens):
        match = _TOKEN.match(token)
        family = match.group(1) if match else None
        if family in PROJECTIONS:
            if match is None or match.group(2) is None or "." in match.group(2):
                raise CodecSpecError(f"{token!r} in codec spec {spec!r} needs a whole target dimension, "
                                     f"e.g. {family}128")
            try:
                projection = PROJECTIONS[family](width, int(match.group(2)))
            except InvalidVectorsError as err:
                raise CodecSpecError(f"in codec spec {spec!r}: {err}") from err
            projections.append(projection)
            width = projection.out_dim
            continue
        if i != len(tokens) - 1:
            raise CodecSpecError(f"in codec spec {spec!r}: the codec {token!r} must come last, after projections")
        codec = _codec_for(token, width, spec)
        if projections and isinstance(codec, IVFCodec):  # its clusters are the queries' too, unprojected
            raise CodecSpecError(f"in codec spec {spec!r}: {token} partitions the vectors themselves, after no "
                                 "projection")
        return Pipeline(dim, projections, codec) if projections else codec
    return Pipeline(dim, projections, Float32Codec(width))


def codec_spec_of(value: Any) -> str:
    """A codec spec from a spec string, or from a recommendation of the codec advisor: an object with a
    `method` attribute, or a mapping with a "method" key (advise-codec --json), whose value is the spec."""
    method = value.get("method") if isinstance(value, Mapping) else getattr(value, "method", value)
    if method is None:
        raise CodecSpecError("a recommendation mapping needs a 'method' (the codec spec)")
    if isinstance(method, str) and method.startswith("pgvector-"):  # how the benchmarks name plain pgvector
        raise CodecSpecError(f"{method!r} is a plain pgvector baseline, not a pgembed codec")
    return method  # type: ignore[no-any-return]


def load_codec(spec: str, dim: int, params: dict[str, Any]) -> Codec:
    """A fitted codec from its spec and the parameters params() stored."""
    codec = make_codec(spec, dim)
    codec.load_params(params)
    return codec


class Pipeline(Codec):
    """Projections, then a codec on the projected vectors."""

    kind = "pipeline"

    def __init__(self, dim: int, projections: list[Projection], codec: Codec) -> None:
        super().__init__(dim)
        self.projections = projections
        self.codec = codec
        self.trainable = codec.trainable or any(p.trainable for p in projections)  # type: ignore[misc]
        self.uses_queries = any(p.uses_queries for p in projections)  # type: ignore[misc]
        self.min_fit_rows = max([codec.min_fit_rows, *(2 for p in projections if p.trainable)])  # type: ignore[misc]
        self.storage = codec.storage  # type: ignore[misc]

    @property
    def spec(self) -> str:
        return ",".join([*(p.spec for p in self.projections), self.codec.spec])

    @property
    def is_fitted(self) -> bool:
        return all(p.is_fitted for p in self.projections) and self.codec.is_fitted

    def _project(self, x: np.ndarray, *, query: bool = False) -> np.ndarray:
        for p in self.projections:
            x = p.apply_query(x) if query else p.apply(x)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _fit(self, x: np.ndarray, queries: np.ndarray | None) -> None:
        for p in self.projections:
            p.fit(x, queries)
            x = np.ascontiguousarray(p.apply(x), dtype=np.float32)
            queries = np.ascontiguousarray(p.apply_query(queries), dtype=np.float32) if queries is not None else None
        if self.codec.trainable:
            self.codec.fit(x, queries if self.codec.uses_queries else None)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return self.codec.encode(self._project(x))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self.codec.decode(codes)

    def similarity(self, queries: np.ndarray, codes: np.ndarray,
                   extras: dict[str, np.ndarray] | None = None) -> np.ndarray:
        q = np.asarray(queries, dtype=np.float32)
        # Codes compared by Hamming distance encode the query too, so it must go the data's way.
        hamming = isinstance(self.codec, ThermometerCodec) or (isinstance(self.codec, RaBitQCodec) and not extras)
        symmetric = hamming
        return self.codec.similarity(self._project(q, query=not symmetric), codes, extras)

    def encode_extra(self, suffix: str, vectors: np.ndarray) -> np.ndarray:
        return self.codec.encode_extra(suffix, self._project(vectors))

    @property
    def code_bytes(self) -> int:
        return self.codec.code_bytes

    def sql_type(self) -> str:
        return self.codec.sql_type()

    def sql_projection(self, source: SqlExpr = SOURCE) -> SqlExpr:
        """The projections alone, in SQL (what the codec after them encodes)."""
        for p in self.projections:
            source = p.sql_apply(source)
        return source

    def sql_encoder(self, source: SqlExpr = SOURCE) -> SqlExpr:
        self._require_fitted()
        return self.codec.sql_encoder(self.sql_projection(source))

    @property
    def estimator(self) -> str | None:  # type: ignore[override]
        return self.codec.estimator

    def sql_query_table(self, query: SqlExpr, metric: str) -> SqlCall | None:
        """The projected query's table: for l2 projected as the data is (P(q - c) against P(x - c): their
        difference is P(q - x)); for ip and cosine as queries are (Pq: <P(x - c), Pq> is <x, q> less a
        constant of the query)."""
        self._require_fitted()
        for p in self.projections:
            query = p.sql_apply(query) if metric == "l2" else p.sql_apply_query(query)
        return self.codec.sql_query_table(query, metric)

    def extra_columns(self) -> list[ExtraColumn]:
        return self.codec.extra_columns()

    def sql_extra_encoder(self, suffix: str, source: SqlExpr = SOURCE) -> SqlExpr:
        return self.codec.sql_extra_encoder(suffix, self.sql_projection(source))

    def params(self) -> dict[str, Any]:
        return {"projections": [p.params() for p in self.projections], "codec": self.codec.params()}

    def load_params(self, params: dict[str, Any]) -> None:
        for p, stored in zip(self.projections, params.get("projections", []), strict=False):
            p.load_params(stored)
        self.codec.load_params(params.get("codec", {}))
