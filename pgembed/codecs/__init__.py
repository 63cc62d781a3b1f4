"""Codecs: float vectors to compact codes, in numpy and in SQL. `make_codec(spec, dim)` makes any of them;
see pgembed.codecs.spec for the spec strings."""

from __future__ import annotations

from pgembed.codecs.base import SOURCE, Codec, ExtraColumn, Source, SqlCall, SqlExpr
from pgembed.codecs.binary import ThermometerCodec
from pgembed.codecs.float16 import Float16Codec, Float32Codec
from pgembed.codecs.partition import IVFCodec
from pgembed.codecs.pq import PQCodec
from pgembed.codecs.rabitq import RaBitQCodec
from pgembed.codecs.scalar import Int8Codec, OSQCodec
from pgembed.codecs.spec import CodecSpecError, Pipeline, load_codec, make_codec

BinaryCodec = ThermometerCodec  # one bit a dimension is the thermometer code with one level

__all__ = [
    "BinaryCodec",
    "Codec",
    "CodecSpecError",
    "ExtraColumn",
    "Float16Codec",
    "Float32Codec",
    "IVFCodec",
    "Int8Codec",
    "OSQCodec",
    "PQCodec",
    "Pipeline",
    "RaBitQCodec",
    "SOURCE",
    "Source",
    "SqlCall",
    "SqlExpr",
    "ThermometerCodec",
    "load_codec",
    "make_codec",
]
