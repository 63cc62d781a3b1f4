"""Codecs: float vectors to compact codes, in numpy and in SQL. `make_codec` is the single entry point."""

from __future__ import annotations

from pgembed.codecs.base import Codec
from pgembed.codecs.binary import BinaryCodec
from pgembed.codecs.float16 import Float16Codec
from pgembed.errors import UnknownCodecError

CODECS: dict[str, type[Codec]] = {cls.kind: cls for cls in (Float16Codec, BinaryCodec)}
ALIASES = {"f16": "float16", "halfvec": "float16", "bq": "binary", "bit": "binary"}


def codec_class(kind: str) -> type[Codec]:
    name = ALIASES.get(kind, kind)
    try:
        return CODECS[name]
    except KeyError:
        known = ", ".join(sorted([*CODECS, *ALIASES]))
        raise UnknownCodecError(f"unknown codec {kind!r}; known: {known}") from None


def make_codec(kind: str, dim: int) -> Codec:
    return codec_class(kind)(dim)


__all__ = ["ALIASES", "CODECS", "BinaryCodec", "Codec", "Float16Codec", "codec_class", "make_codec"]
