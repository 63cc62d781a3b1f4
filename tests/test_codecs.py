"""Codecs in numpy: shapes, dtypes, exactness of what goes to the catalog, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pgembed.codecs import BinaryCodec, Float16Codec, load_codec, make_codec
from pgembed.codecs.base import vector_literal
from pgembed.errors import InvalidVectorsError, UnknownCodecError

finite_f32 = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32)


@given(arrays(np.float32, st.tuples(st.integers(1, 20), st.integers(1, 40)), elements=finite_f32))
def test_binary_is_sign_of_centred_vector(x: np.ndarray) -> None:
    codec = BinaryCodec(x.shape[1]).fit(x)
    codes = codec.encode(x)
    assert codes.dtype == np.uint8 and codes.shape == (x.shape[0], (x.shape[1] + 7) // 8)
    expected = (x - codec.mean) > 0
    assert np.array_equal(np.unpackbits(codes, axis=1)[:, : x.shape[1]], expected)


@given(arrays(np.float32, st.integers(1, 64), elements=finite_f32))
def test_vector_literal_round_trips_exactly(v: np.ndarray) -> None:
    parsed = np.array(vector_literal(v).strip("[]").split(","), dtype=np.float32)
    assert np.array_equal(parsed.view(np.uint32), v.view(np.uint32))  # bit for bit, -0.0 included


@given(arrays(np.float32, st.tuples(st.integers(2, 10), st.integers(1, 30)), elements=finite_f32))
def test_binary_params_survive_the_catalog(x: np.ndarray) -> None:
    codec = BinaryCodec(x.shape[1]).fit(x)
    again = load_codec("bq", x.shape[1], codec.params())
    assert np.array_equal(again.encode(x), codec.encode(x))


@given(arrays(np.float32, st.tuples(st.integers(1, 10), st.integers(1, 30)),
              elements=st.floats(-60000, 60000, allow_nan=False, width=32)))
def test_float16_round_trip_within_half_precision(x: np.ndarray) -> None:
    codec = Float16Codec(x.shape[1])
    codes = codec.encode(x)
    assert codes.dtype == np.float16 and codes.shape == x.shape
    back = codec.decode(codes)
    # float16 keeps 11 significant bits; below 2^-14 the spacing is fixed at 2^-24.
    assert np.all(np.abs(back - x) <= np.maximum(np.abs(x) * 2.0**-11, 2.0**-25))


def test_float16_rejects_values_that_overflow() -> None:
    x = np.zeros((3, 4), np.float32)
    x[2, 1] = 70000
    with pytest.raises(InvalidVectorsError, match="row 2 .*float16 range"):
        Float16Codec(4).encode(x)


def test_make_codec_by_kind_and_alias() -> None:
    assert isinstance(make_codec("bq", 8), BinaryCodec)
    assert isinstance(make_codec("float16", 8), Float16Codec)
    with pytest.raises(UnknownCodecError, match="unknown codec 'zstd'.*known:"):
        make_codec("zstd", 8)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((0, 4), np.float32), "empty"),
        (np.zeros((2, 5), np.float32), "dimension 5, expected 4"),
        (np.array([[1, 2, 3, 4]], np.int64), "floating point"),
        (np.array([[1, np.nan, 3, 4]], np.float32), "row 0 contains NaN"),
        (np.array([[0, 0, 0, 0], [1, np.inf, 3, 4]], np.float32), "row 1 contains Inf"),
        (np.array([[1e300, 0, 0, 0]], np.float64), "row 0 contains Inf"),
        (np.zeros((2, 2, 4), np.float32), "2-d"),
        ([[1.0, 2.0], [3.0]], "ragged|2-d|numeric"),
    ],
)
def test_bad_vectors_are_named(bad: object, message: str) -> None:
    codec = BinaryCodec(4).fit(np.ones((3, 4), np.float32))
    with pytest.raises(InvalidVectorsError, match=message):
        codec.encode(bad)  # type: ignore[arg-type]


def test_unfitted_binary_codec_refuses_to_encode() -> None:
    with pytest.raises(InvalidVectorsError, match="not fitted"):
        BinaryCodec(4).encode(np.ones((1, 4), np.float32))
