"""Codecs in numpy: shapes, dtypes, exactness of what goes to the catalog, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pgembed.codecs import BinaryCodec, CodecSpecError, Float16Codec, load_codec, make_codec
from pgembed.codecs.base import vector_literal
from pgembed.errors import InvalidVectorsError, UnknownCodecError
from pgembed.vectors import as_queries, as_query

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


def test_float16_saturates_past_its_range_instead_of_refusing() -> None:
    x = np.zeros((3, 4), np.float32)
    x[2, 1], x[1, 3], x[0, 0] = 70000, -3e38, 65519  # 65519 rounds to 65504, the largest float16
    codes = Float16Codec(4).encode(x)
    assert codes[2, 1] == 65504 and codes[1, 3] == -65504 and codes[0, 0] == 65504
    assert np.isfinite(codes).all()


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


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.array([1, np.nan, 3, 4], np.float32), "row 0 contains NaN"),
        (np.array([1, np.inf, 3, 4], np.float32), "row 0 contains Inf"),
        (np.zeros(4, np.float32), "all zeros"),
        (np.full(4, 1e-30, np.float32), None),  # its squares underflow to 0, yet it is not zero: accepted
        (np.zeros(5, np.float32), "dimension 5, expected 4"),
        (np.ones((2, 4), np.float32), "one query vector, got 2"),
        (np.ones(4, np.float16), None),
        (np.ones(8, np.float32)[::2], None),  # not contiguous: copied
        ([1.0, 2.0, 3.0, 4.0], None),
        (np.array([1, -2, 3, 4], np.float32), None),  # the fast path's own input
    ],
)
def test_a_query_is_checked_on_every_path(bad: object, message: str | None) -> None:
    # as_query's fast path (a float32 vector, one BLAS pass) and as_queries' agree on what they accept.
    if message is None:
        q = as_query(bad, 4, "cosine")
        assert q.shape == (4,) and q.dtype == np.float32 and q.flags.c_contiguous
        np.testing.assert_array_equal(q, np.asarray(bad, dtype=np.float32).reshape(4))
        np.testing.assert_array_equal(q, as_queries(bad, 4, "cosine")[0])
        return
    with pytest.raises(InvalidVectorsError, match=message):
        as_query(bad, 4, "cosine")


def test_unfitted_binary_codec_refuses_to_encode() -> None:
    with pytest.raises(InvalidVectorsError, match="not fitted"):
        BinaryCodec(4).encode(np.ones((1, 4), np.float32))


ALL_SPECS = ["f16", "bq", "bq2", "bq4", "sq8", "osq3", "pq8", "mrl16", "pca16", "pca16,bq2", "leanvec16,sq8",
             "rabitq", "mrl24+f16"]


def _sample(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)) * np.linspace(0.3, 1.5, dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_every_codec_shapes_params_and_similarity(spec: str) -> None:
    x, q = _sample(600), _sample(7, seed=1)
    codec = make_codec(spec, 32).fit(x, q)
    codes = codec.encode(x[:50])
    assert codes.shape[0] == 50 and codes.dtype in (np.uint8, np.float16, np.float32)
    again = load_codec(codec.spec, 32, codec.params())  # what the catalog stores is all it takes
    assert np.array_equal(again.encode(x[:50]), codes)
    extras = {e.suffix: codec.encode_extra(e.suffix, x[:50]) for e in codec.extra_columns()}
    sim = codec.similarity(q, codes, extras or None)
    assert sim.shape == (7, 50) and np.isfinite(sim).all()
    # A vector's own code ranks it near the top among the others for its own query.
    self_sim = codec.similarity(x[:50], codes, extras or None)
    assert np.mean(np.argsort(-self_sim, axis=1)[:, :5] == np.arange(50)[:, None]) * 5 > 0.6


@given(arrays(np.float32, (40, 16), elements=st.floats(-2, 2, allow_nan=False, width=32)))
@settings(max_examples=30, deadline=None)
def test_int8_round_trip_within_half_a_step(x: np.ndarray) -> None:
    codec = make_codec("sq8", 16).fit(x)
    back = codec.decode(codec.encode(x))
    inside = (x >= codec.lo) & (x <= codec.lo + 255 * codec.step)
    tolerance = codec.step / 2 + 1e-6 * (1 + np.abs(x))  # half a step, plus float32 rounding
    assert np.all(np.abs(back - x)[inside] <= tolerance[inside])


def test_osq_spends_its_budget_where_the_variance_is() -> None:
    x = _sample(500) * np.linspace(0.1, 3.0, 32).astype(np.float32)
    codec = make_codec("osq2", 32).fit(x)
    assert codec.bits.sum() == 64 and codec.bits.max() <= 8
    assert codec.bits[-8:].sum() > codec.bits[:8].sum()  # high-variance dimensions get more bits
    assert np.mean((codec.decode(codec.encode(x)) - x) ** 2) < np.mean((x - x.mean(0)) ** 2)


def test_rabitq_estimate_is_unbiased_and_bounded() -> None:
    x, q = _sample(2000, dim=64, seed=3), _sample(20, dim=64, seed=4)
    codec = make_codec("rabitq", 64).fit(x)
    factors = codec.encode_extra("_factors", x)
    error = codec.estimate(q, codec.encode(x), factors) - q @ x.T
    assert abs(error.mean()) < 0.1 * error.std()  # unbiased: the mean error is small against its spread
    assert np.mean(np.abs(error) <= codec.error_bound(q, factors)) > 0.99


def test_fitting_is_deterministic_across_processes() -> None:
    import json
    import subprocess
    import sys

    code = ("import json, numpy as np; from pgembed.codecs import make_codec; "
            "from tests.unit.test_codecs import _sample; "
            "print(json.dumps({s: make_codec(s, 32).fit(_sample(600), _sample(7, seed=1)).params() "
            "for s in ['pq8', 'rabitq', 'pca16,bq2', 'osq3']}))")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    assert json.loads(runs[0]) == json.loads(runs[1])


def test_fit_errors() -> None:
    with pytest.raises(InvalidVectorsError, match="at least 256 rows"):
        make_codec("pq8", 32).fit(_sample(100))
    with pytest.raises(InvalidVectorsError, match="sample of queries"):
        make_codec("leanvec8", 32).fit(_sample(100))
    with pytest.raises(InvalidVectorsError, match="dimension 16, expected 32"):
        make_codec("sq8", 32).fit(_sample(100, dim=16))


def test_ivf_partitioning_is_the_nearest_centroid() -> None:
    x = _sample(1000)
    codec = make_codec("ivf16", 32).fit(x)
    codes = codec.encode(x)
    assert codes.shape == (1000, 1) and codes.dtype == np.int32 and codes.min() >= 0 and codes.max() < 16
    assert codec.centroids is not None
    nearest = np.argmin(((x[:, None, :].astype(np.float64) - codec.centroids[None]) ** 2).sum(2), axis=1)
    assert np.array_equal(codes[:, 0], nearest)
    assert len(np.unique(codes)) == 16  # k-means leaves no list empty on this sample
    again = load_codec("ivf16", 32, codec.params())
    assert np.array_equal(again.encode(x), codes)
    np.testing.assert_array_equal(codec.decode(codes[:3]), codec.centroids[codes[:3, 0]])
    assert codec.code_bytes == 4 and codec.sql_type() == "integer"
    with pytest.raises(InvalidVectorsError, match="at least 16 rows"):
        make_codec("ivf16", 32).fit(x[:10])
    with pytest.raises(InvalidVectorsError, match="hold 16 centroids"):
        load_codec("ivf8", 32, codec.params())
    for bad, message in [("ivf", "whole number of lists"), ("ivf0", "1 to 1,000,000"), ("ivf1.5", "whole number")]:
        with pytest.raises(CodecSpecError, match=message):
            make_codec(bad, 32)
