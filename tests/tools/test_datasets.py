"""pgembed.tools.datasets: file formats and their errors, synthetic data, the man-page corpus, the shipped dataset."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import pgembed
from pgembed.cli import main as dataset_main
from pgembed.errors import InvalidInputError
from pgembed.groundtruth import exact_topk
from pgembed.tools.datasets import manpages
from pgembed.tools.datasets.files import (
    load_dataset,
    load_dataset_dir,
    read_ids,
    read_vectors,
    write_bvecs,
    write_fvecs,
    write_ivecs,
)
from pgembed.tools.datasets.folder import write_dataset_dir
from pgembed.tools.datasets.synthetic import clustered

SHIPPED = Path(pgembed.__file__).parent / "tools" / "data" / "manpages-5k"
TMP_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def gz_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt") as f:
        return f.read().splitlines()


def brute_force(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by inner product with numpy alone: a stable sort keeps ties in id order."""
    s = queries.astype(np.float32) @ base.astype(np.float32).T
    ids = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return ids, np.take_along_axis(s, ids, axis=1)


# -- file formats: round trips ---------------------------------------------------------------------------
shapes = st.tuples(st.integers(1, 12), st.integers(1, 9))


@TMP_SETTINGS
@given(arrays(np.float32, shapes, elements=st.floats(-1e6, 1e6, width=32)))
def test_fvecs_round_trip(tmp_path: Path, x: np.ndarray) -> None:
    write_fvecs(tmp_path / "x.fvecs", x)
    assert (tmp_path / "x.fvecs").stat().st_size == x.shape[0] * (4 + 4 * x.shape[1])
    got = read_vectors(tmp_path / "x.fvecs")
    assert got.dtype == np.float32 and np.array_equal(got, x)


@TMP_SETTINGS
@given(arrays(np.int32, shapes, elements=st.integers(-(2**31), 2**31 - 1)))
def test_ivecs_round_trip(tmp_path: Path, x: np.ndarray) -> None:
    write_ivecs(tmp_path / "x.ivecs", x)
    assert np.array_equal(read_ids(tmp_path / "x.ivecs"), x)


@TMP_SETTINGS
@given(arrays(np.uint8, shapes))
def test_bvecs_round_trip(tmp_path: Path, x: np.ndarray) -> None:
    write_bvecs(tmp_path / "x.bvecs", x)
    got = read_vectors(tmp_path / "x.bvecs")
    assert got.dtype == np.float32 and np.array_equal(got, x.astype(np.float32))


def test_npy_float16_and_float64_become_float32(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x16 = rng.standard_normal((50, 8)).astype(np.float16)
    np.save(tmp_path / "b.npy", x16)
    np.save(tmp_path / "q.npy", rng.standard_normal((5, 8)))  # float64
    np.save(tmp_path / "gt.npy", np.tile(np.arange(3, dtype=np.int64), (5, 1)))
    ds = load_dataset(tmp_path / "b.npy", tmp_path / "q.npy", tmp_path / "gt.npy", metric="l2")
    assert ds.base.dtype == np.float32 and ds.queries.dtype == np.float32
    assert np.array_equal(ds.base, x16.astype(np.float32))
    assert ds.gt is not None and ds.gt.shape == (5, 3) and ds.metric == "l2" and ds.dim == 8


def test_metric_inferred_from_norms_and_noted(tmp_path: Path) -> None:
    unit = clustered(200, 16, queries=5, intrinsic_dim=4, seed=1)
    np.save(tmp_path / "b.npy", unit.base)
    np.save(tmp_path / "q.npy", unit.queries)
    ds = load_dataset(tmp_path / "b.npy", tmp_path / "q.npy")
    assert ds.metric == "ip" and "inferred" in ds.source["notes"][0]
    np.save(tmp_path / "b.npy", unit.base * 3)
    assert load_dataset(tmp_path / "b.npy", tmp_path / "q.npy").metric == "l2"


def _ann_file(path: Path, distance: str | None, *, with_test: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    train, test = rng.standard_normal((300, 12)).astype(np.float32), rng.standard_normal((7, 12)).astype(np.float32)
    ids, sc = brute_force(train, test, 10)
    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=train)
        if with_test:
            f.create_dataset("test", data=test)
        f.create_dataset("neighbors", data=ids.astype(np.int32))
        f.create_dataset("distances", data=-sc)
        if distance is not None:
            f.attrs["distance"] = distance
    return train, ids


@pytest.mark.parametrize(("distance", "metric"), [("angular", "cosine"), ("euclidean", "l2"), ("dot", "ip")])
def test_hdf5_ann_benchmarks_file(tmp_path: Path, distance: str, metric: str) -> None:
    train, ids = _ann_file(tmp_path / "glove-12-angular.hdf5", distance)
    ds = load_dataset(tmp_path / "glove-12-angular.hdf5")
    assert ds.metric == metric and ds.name == "glove-12-angular"
    assert np.array_equal(ds.base, train) and ds.queries.shape == (7, 12)
    assert ds.gt is not None and np.array_equal(ds.gt, ids)
    assert ds.source["distance"] == distance and ds.source["has_distances"]


def test_hdf5_errors(tmp_path: Path) -> None:
    _ann_file(tmp_path / "a.hdf5", "hamming")
    with pytest.raises(InvalidInputError, match=r"a\.hdf5: distance 'hamming' is not supported"):
        load_dataset(tmp_path / "a.hdf5")
    _ann_file(tmp_path / "b.hdf5", "euclidean", with_test=False)
    with pytest.raises(InvalidInputError, match=r"b\.hdf5: no dataset 'test'"):
        load_dataset(tmp_path / "b.hdf5")
    _ann_file(tmp_path / "c.hdf5", "euclidean")
    with pytest.raises(InvalidInputError, match=r"distance is 'euclidean' \(l2\), but metric='ip'"):
        load_dataset(tmp_path / "c.hdf5", metric="ip")
    with pytest.raises(InvalidInputError, match="do not pass queries or gt"):
        load_dataset(tmp_path / "c.hdf5", tmp_path / "c.hdf5")
    (tmp_path / "d.hdf5").write_bytes(b"not hdf5 at all")
    with pytest.raises(InvalidInputError, match=r"d\.hdf5 is not a readable HDF5 file"):
        load_dataset(tmp_path / "d.hdf5")


# -- file formats: every refusal names the file and the problem ------------------------------------------
def _npy(path: Path, x: np.ndarray) -> Path:
    np.save(path, x)
    return path


def test_unknown_extension(tmp_path: Path) -> None:
    (tmp_path / "base.csv").write_text("1,2\n")
    with pytest.raises(InvalidInputError, match=r"base\.csv: unknown extension '\.csv' for base"):
        load_dataset(tmp_path / "base.csv", tmp_path / "base.csv")
    with pytest.raises(InvalidInputError, match=r"\.ivecs holds integer ids"):
        write_ivecs(tmp_path / "x.ivecs", np.ones((2, 2), dtype=np.int32))
        read_vectors(tmp_path / "x.ivecs")
    with pytest.raises(InvalidInputError, match=r"unknown extension '\.fvecs' for ground truth"):
        write_fvecs(tmp_path / "x.fvecs", np.ones((2, 2), dtype=np.float32))
        read_ids(tmp_path / "x.fvecs")


def test_ragged_and_truncated_vecs(tmp_path: Path) -> None:
    rows = [np.array([3], "<i4").tobytes() + np.ones(3, "<f4").tobytes(),
            np.array([2], "<i4").tobytes() + np.ones(2, "<f4").tobytes()]
    (tmp_path / "ragged.fvecs").write_bytes(b"".join(rows))
    with pytest.raises(InvalidInputError, match=r"ragged\.fvecs: ragged rows: row 1 .* declares dimension 2, row 0 3"):
        read_vectors(tmp_path / "ragged.fvecs")
    # Same size as two rows of dimension 3, but the second row declares 4 (and its size is made up elsewhere).
    odd = [rows[0], np.array([4], "<i4").tobytes() + np.ones(3, "<f4").tobytes()]
    (tmp_path / "odd.fvecs").write_bytes(b"".join(odd))
    with pytest.raises(InvalidInputError, match=r"odd\.fvecs: ragged rows: row 1 declares dimension 4, row 0 3"):
        read_vectors(tmp_path / "odd.fvecs")
    (tmp_path / "cut.fvecs").write_bytes(rows[0] + rows[0][:-2])
    with pytest.raises(InvalidInputError, match=r"cut\.fvecs: truncated"):
        read_vectors(tmp_path / "cut.fvecs")
    (tmp_path / "neg.fvecs").write_bytes(np.array([-5], "<i4").tobytes())
    with pytest.raises(InvalidInputError, match=r"neg\.fvecs: row 0 declares dimension -5"):
        read_vectors(tmp_path / "neg.fvecs")


def test_nan_inf_and_empty(tmp_path: Path) -> None:
    x = np.ones((4, 3), dtype=np.float32)
    x[2, 1] = np.nan
    with pytest.raises(InvalidInputError, match=r"base in .*nan\.npy row 2 contains NaN"):
        read_vectors(_npy(tmp_path / "nan.npy", x), role="base")
    x[2, 1] = np.inf
    write_fvecs(tmp_path / "inf.fvecs", x)
    with pytest.raises(InvalidInputError, match=r"inf\.fvecs row 2 contains Inf"):
        read_vectors(tmp_path / "inf.fvecs")
    with pytest.raises(InvalidInputError, match=r"empty\.npy: queries is empty"):
        read_vectors(_npy(tmp_path / "empty.npy", np.zeros((0, 3), np.float32)), role="queries")
    (tmp_path / "empty.fvecs").write_bytes(b"")
    with pytest.raises(InvalidInputError, match=r"empty\.fvecs is empty"):
        read_vectors(tmp_path / "empty.fvecs")
    with pytest.raises(InvalidInputError, match=r"flat\.npy: vectors must be a 2-d"):
        read_vectors(_npy(tmp_path / "flat.npy", np.ones(3, np.float32)))
    with pytest.raises(InvalidInputError, match=r"ints\.npy: vectors must be float16/32/64, got int64"):
        read_vectors(_npy(tmp_path / "ints.npy", np.ones((2, 3), np.int64)))
    with pytest.raises(InvalidInputError, match=r"gt\.npy: ground truth must hold integer ids, got float32"):
        read_ids(_npy(tmp_path / "gt.npy", np.ones((2, 3), np.float32)))
    np.save(tmp_path / "obj.npy", np.array([[1], "a"], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidInputError, match=r"obj\.npy is not a plain numeric \.npy"):
        read_vectors(tmp_path / "obj.npy")
    with pytest.raises(InvalidInputError, match=r"base file .*missing\.npy does not exist"):
        load_dataset(tmp_path / "missing.npy", tmp_path / "q.npy")


def test_dataset_level_errors(tmp_path: Path) -> None:
    base = _npy(tmp_path / "b.npy", np.ones((10, 4), np.float32))
    q3 = _npy(tmp_path / "q3.npy", np.ones((2, 3), np.float32))
    q4 = _npy(tmp_path / "q4.npy", np.ones((2, 4), np.float32))
    with pytest.raises(InvalidInputError, match=r"dimensions disagree: base .*b\.npy has 4, queries .*q3\.npy has 3"):
        load_dataset(base, q3)
    with pytest.raises(InvalidInputError, match="needs a queries file"):
        load_dataset(base)
    with pytest.raises(InvalidInputError, match="ground truth has 3 rows but there are 2 queries"):
        load_dataset(base, q4, _npy(tmp_path / "g.npy", np.zeros((3, 5), np.int32)))
    with pytest.raises(InvalidInputError, match=r"ground truth ids span 0\.\.10, outside the base's 0\.\.9"):
        load_dataset(base, q4, _npy(tmp_path / "g.npy", np.array([[0, 10], [1, 2]], np.int32)))
    with pytest.raises(InvalidInputError, match="metric must be one of ip, cosine, l2"):
        load_dataset(base, q4, metric="hamming")
    (tmp_path / "attrs.csv").write_text("id\n")
    with pytest.raises(InvalidInputError, match=r"attrs\.csv: attributes must be a \.parquet file"):
        load_dataset(base, q4, attrs=tmp_path / "attrs.csv")


# -- ground truth and folders ---------------------------------------------------------------------------
def test_exact_topk_breaks_ties_by_smaller_id() -> None:
    base = np.array([[0, 1], [1, 0], [0, 1], [1, 0], [0.6, 0.8]], dtype=np.float32)
    ids, scores = exact_topk(base, np.array([[1, 0]], np.float32), 3)
    assert ids.tolist() == [[1, 3, 4]] and np.allclose(scores, [[1, 1, 0.6]])
    ids, _ = exact_topk(base, np.array([[1, 0]], np.float32), 5)
    assert ids.tolist() == [[1, 3, 4, 0, 2]]
    l2, _ = exact_topk(base * np.array([[1], [2], [1], [1], [1]], np.float32), np.array([[1, 0]], np.float32), 2, "l2")
    assert l2.tolist() == [[3, 4]]


def test_folder_round_trip_and_refusal(tmp_path: Path) -> None:
    ds = clustered(1000, 24, queries=30, intrinsic_dim=6, seed=5)
    out = write_dataset_dir(ds, tmp_path / "syn", attrs={"cluster": np.zeros(1000, np.int32)},
                            texts=[f"t{i}" for i in range(1030)], meta={"synthetic": True})
    back = load_dataset_dir(out)
    assert back.base.shape == (1000, 24) and back.queries.shape == (30, 24) and back.metric == "ip"
    assert back.source["base_dtype"] == "float16" and back.source["texts"] == "texts.txt.gz"
    assert back.gt is not None and back.gt.dtype == np.int64
    assert np.array_equal(back.gt, brute_force(np.load(out / "base.f16.npy"), back.queries, 100)[0])
    assert pq.read_table(out / "attrs.parquet").column_names == ["id", "cluster"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["synthetic"] and meta["n_base"] == 1000 and "gt_ip.npy" in meta["files"]
    assert gz_lines(out / "texts.txt.gz")[1029] == "t1029"
    with pytest.raises(InvalidInputError, match="exists and is not empty"):
        write_dataset_dir(ds, out)
    with pytest.raises(InvalidInputError, match="3 lines for 1000 base rows"):
        write_dataset_dir(ds, tmp_path / "other", texts=["a", "b", "c"])
    assert not (tmp_path / "other").exists()  # nothing half-written
    with pytest.raises(InvalidInputError, match="is a dataset folder"):
        load_dataset(out, out / "queries.npy")


# -- synthetic ------------------------------------------------------------------------------------------
def _pca_share(x: np.ndarray, k: int) -> float:
    eig = np.linalg.eigvalsh(np.cov(x, rowvar=False))[::-1]
    return float(eig[:k].sum() / eig.sum())


def test_synthetic_intrinsic_dimension_is_controllable() -> None:
    low = clustered(4000, 128, queries=10, intrinsic_dim=12, noise=0.01, seed=2)
    high = clustered(4000, 128, queries=10, intrinsic_dim=48, noise=0.01, seed=2)
    assert _pca_share(low.base, 12) > 0.995  # ~all variance in intrinsic_dim directions ...
    assert _pca_share(high.base, 12) < 0.6  # ... and not in fewer when the subspace is larger
    assert _pca_share(high.base, 48) > 0.995
    noisy = clustered(4000, 128, queries=10, intrinsic_dim=12, noise=0.5, seed=2)
    assert _pca_share(noisy.base, 12) < 0.9  # the noise knob spreads variance over all directions


def test_synthetic_gt_exact_and_labelled() -> None:
    ds = clustered(3000, 64, queries=50, intrinsic_dim=16, clusters=20, seed=4)
    assert ds.base.dtype == np.float32 and np.allclose(np.linalg.norm(ds.base, axis=1), 1, atol=1e-5)
    ids, scores = brute_force(ds.base, ds.queries, 100)
    assert ds.gt is not None and ds.gt.shape == (50, 100)
    assert np.array_equal(ds.gt, ids)
    assert (scores[:, 0] < 1 - 1e-6).all()  # queries are fresh draws, not rows of the base
    assert ds.source["synthetic"] is True and "SYNTHETIC" in ds.source["notes"][0]
    again = clustered(3000, 64, queries=50, intrinsic_dim=16, clusters=20, seed=4)
    assert np.array_equal(again.base, ds.base)  # seeded
    with pytest.raises(InvalidInputError, match="intrinsic_dim must be in 1..dim"):
        clustered(10, 8, intrinsic_dim=9)


# -- the man-page corpus (no torch needed) ---------------------------------------------------------------
SENTENCE = "The frobnicator reads each widget from the file and writes it back in a canonical order"  # 16 words
PAGE = "\n".join([
    '.TH FROB 1 "2024-01-01" "frob 1.0" "User Commands"',
    ".SH NAME",
    r"frob \- frobnicate the widgets of a file",
    ".SH SYNOPSIS",
    r".B frob", r"[\fIOPTION\fR]... \fIFILE\fR",
    ".SH DESCRIPTION",
    " ".join(f"{SENTENCE} number {i}." for i in range(14)),  # 14 x 18 = 252 words: split in balanced chunks
    ".PP",
    "Widgets are small.",  # 3 words: merged with its neighbour, not a passage of its own
    ".PP",
    "Every widget keeps its name, its size in bytes and the time it was last frobnicated by anyone.",
    ".SH OPTIONS",
    ".TP",
    r'.BR \-v ", " \-\-verbose',
    "Print every widget as it is frobnicated, with its name and its size in bytes, so that a long run "
    "can be followed from another terminal.",
    ".TP",
    r".B \-n",
    "Do nothing.",
    ".SH SEE ALSO",
    ".BR frob.conf (5),",
    ".BR widget (7)",
    ".SH AUTHOR",
    "Written by someone who likes widgets very much and wrote a long paragraph about it to fill the section.",
])


def _write_page(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.gz"
    with gzip.open(path, "wt") as f:
        f.write(text + "\n")
    return path


@pytest.mark.skipif(shutil.which("man") is None, reason="the man-page builder renders pages with man(1), which "
                    "this machine lacks (Debian: apt install man-db)")
def test_man_page_split_into_passages(tmp_path: Path) -> None:
    path = _write_page(tmp_path / "man1", "frob.1", PAGE)
    name, passages = manpages.split_passages(manpages.render(path), "frob.1", "1")
    assert name == "frob - frobnicate the widgets of a file"
    texts = [p.text for p in passages]
    assert all(manpages.MIN_WORDS <= p.n_words <= manpages.MAX_WORDS for p in passages), [p.n_words for p in passages]
    assert [p.position for p in passages] == list(range(len(passages)))
    long = [p for p in passages if "number" in p.text]
    # Balanced (to a sentence: 18 words), not 120 + 120 + 12; no word lost.
    assert sum(p.n_words for p in long) == 14 * 18 and all(84 - 18 <= p.n_words <= 84 + 18 for p in long)
    assert "Widgets are small. Every widget keeps its name," in texts[3]  # a short paragraph merged with the next
    assert all(p.text.count(".") == p.text.count("number") for p in long)  # cut at sentence ends only
    assert any(t.startswith("-v, --verbose: Print every widget") for t in texts)
    joined = " ".join(texts)
    assert "frob.conf" not in joined and "likes widgets" not in joined and "[OPTION]" not in joined
    assert {p.heading for p in passages} == {"DESCRIPTION", "OPTIONS"}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 400), min_size=1, max_size=30), st.integers(3, 40))
def test_pack_respects_word_limits(lengths: list[int], sentence: int) -> None:
    words = iter(f"w{i}" for i in range(10**6))
    paragraphs = []
    for n in lengths:
        ws = [next(words) for _ in range(n)]
        paragraphs.append(" ".join(w + ("." if (j + 1) % sentence == 0 else "") for j, w in enumerate(ws)))
    out = manpages.pack(paragraphs)
    assert all(manpages.MIN_WORDS <= len(p.split()) <= manpages.MAX_WORDS for p in out)
    flat = [w.rstrip(".") for p in out for w in p.split()]
    assert flat == sorted(flat, key=lambda w: int(w[1:]))  # order kept, nothing duplicated
    if sum(lengths) >= manpages.MIN_WORDS and all(n <= manpages.MAX_WORDS for n in lengths):
        assert out  # enough text always gives a passage


def test_list_pages_skips_translations_aliases_links_and_excluded(tmp_path: Path) -> None:
    real = _write_page(tmp_path / "man1", "frob.1", PAGE)
    _write_page(tmp_path / "man1", "alias.1", ".so man1/frob.1")
    _write_page(tmp_path / "man1", "gcloud-widgets.1", PAGE)
    _write_page(tmp_path / "fr" / "man1", "frob.1", PAGE)
    _write_page(tmp_path / "man7", "widget.7", PAGE.replace("FROB 1", "WIDGET 7"))
    os.symlink(real, tmp_path / "man1" / "frobnicate.1.gz")
    pages = manpages.list_pages(tmp_path)
    assert [(p.name, p.section) for p in pages] == [("frob.1", "1"), ("widget.7", "7")]
    assert [p.name for p in manpages.list_pages(tmp_path, sections=("7",))] == ["widget.7"]
    parsed = list(manpages.parse_pages(pages, workers=2))
    assert [p.page.name for p in parsed if p] == ["frob.1", "widget.7"]


def test_prose_filter() -> None:
    assert manpages.is_prose("Every widget keeps its name and its size in bytes.")
    assert not manpages.is_prose("int open(const char *pathname, int flags, mode_t mode);")
    assert not manpages.is_prose("+------+------+ | a | b | +------+------+")


# -- the shipped dataset --------------------------------------------------------------------------------
def test_shipped_manpages_5k() -> None:
    ds = load_dataset_dir(SHIPPED)
    meta = ds.source["meta"]
    assert ds.base.shape == (5000, 384) and ds.queries.shape == (200, 384) and ds.metric == "ip"
    assert ds.source["base_dtype"] == "float16" and ds.queries.dtype == np.float32
    assert np.allclose(np.linalg.norm(ds.base, axis=1), 1, atol=2e-3)
    assert np.allclose(np.linalg.norm(ds.queries, axis=1), 1, atol=1e-5)
    # Ground truth = brute force on the vectors as shipped (ids; where scores tie closely, the scores).
    assert ds.gt is not None and ds.gt.shape == (200, 100)
    ids, scores = brute_force(ds.base, ds.queries, 100)
    gt_scores = np.take_along_axis(ds.queries @ ds.base.T, ds.gt, axis=1)
    assert np.abs(gt_scores - scores).max() < 1e-6
    assert (ds.gt == ids).mean() > 0.999
    # Queries come from held-out pages: no query is (a copy of) a base vector, nor its text a base passage.
    assert scores[:, 0].max() < 0.999
    attrs = pq.read_table(SHIPPED / "attrs.parquet").to_pydict()
    assert attrs["id"] == list(range(5000)) and set(attrs) >= {"section", "page", "n_words", "position"}
    assert min(attrs["n_words"]) >= 20 and max(attrs["n_words"]) <= 120
    held_out = set(meta["queries"]["pages"])
    assert len(held_out) == 200 and not held_out & set(attrs["page"])
    if (SHIPPED / "texts.txt.gz").exists():
        lines = gz_lines(SHIPPED / "texts.txt.gz")
        assert len(lines) == 5200 and not set(lines[5000:]) & set(lines[:5000])
        assert all(len(t.split()) == n for t, n in zip(lines[:5000], attrs["n_words"], strict=True))
    for name in ("README.md", "meta.json", "gt_ip.npy"):
        assert (SHIPPED / name).exists()


# -- the command ----------------------------------------------------------------------------------------
def test_cli_synthetic_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "syn"
    assert dataset_main(["dataset", "synthetic", str(out), "--rows", "600", "--dim", "16", "--intrinsic-dim", "4",
                         "--queries", "12", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["rows"] == 600 and made["synthetic"] is True
    assert dataset_main(["dataset", "--json", "info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == made | {"path": str(out)}
    assert info["dtype"] == "float16" and info["gt"] == [12, 100] and info["metric"] == "ip"
    assert dataset_main(["dataset", "info", str(out / "queries.npy"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 12
    assert dataset_main(["dataset", "info", str(out / "gt_ip.npy"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "neighbour ids"
    assert dataset_main(["dataset", "info", str(tmp_path / "nope"), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "InvalidInputError"


# -- embedding (the embed extra, which `make test` installs) ---------------------------------------------
@pytest.mark.slow
def test_build_text_dataset(tmp_path: Path) -> None:
    from pgembed.tools import models
    from pgembed.tools.datasets.text import build_text_dataset, embed

    model = models.load(models.Model.MINILM)
    v = embed(model, ["list directory contents", "show the files in a folder", "the price of bread in Paris"])
    assert v.shape == (3, 384) and v[0] @ v[1] > v[0] @ v[2] + 0.2
    out = build_text_dataset(tmp_path / "mini", max_passages=150, queries=5, seed=3)
    ds = load_dataset_dir(out)
    assert ds.base.shape == (150, 384) and ds.queries.shape == (5, 384)
    ids, _ = brute_force(ds.base, ds.queries, 100)
    assert ds.gt is not None and (ds.gt == ids).mean() > 0.99
    meta = json.loads((out / "meta.json").read_text())
    assert meta["timings_s"]["embed_s_per_1000_passages"] > 0 and meta["software"]["torch"]
    assert (out / "README.md").read_text().startswith("# mini")
    from pgembed.tools.datasets.relevance import build_relevance, load_relevance

    meta = build_relevance(out, out, queries=4, seed=1, model=model)
    vectors, table, relevant = load_relevance(out)
    assert meta["queries"] == len(vectors) == len(table["text"]) <= 4 and vectors.shape[1] == 384
    attrs = pq.read_table(out / "attrs.parquet").to_pydict()
    for page, rows in zip(table["page"], relevant, strict=True):
        assert rows == {i for i, p in zip(attrs["id"], attrs["page"], strict=True) if p == page}


def test_relevance_descriptions_and_their_round_trip(tmp_path: Path) -> None:
    from pgembed.tools.bench.relevance import ndcg, reciprocal_rank
    from pgembed.tools.datasets.relevance import description

    assert description("ls - list directory contents") == "list directory contents"
    assert description("open, openat, creat - open and  possibly create a file") == "open and possibly create a file"
    assert description("bash - shell") is None and description("no dash here") is None
    assert reciprocal_rank([5, 3, 9], {9}, 10) == pytest.approx(1 / 3) and reciprocal_rank([5], {9}, 10) == 0
    assert ndcg([1, 2], {1, 2}, 10) == pytest.approx(1.0)
    assert ndcg([7, 1], {1}, 10) == pytest.approx(1 / np.log2(3))
