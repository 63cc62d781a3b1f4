"""Read vector datasets from the files benchmarks ship them in, refusing anything malformed by name.

Formats, chosen by extension: `.npy`; TEXMEX `.fvecs` / `.bvecs` / `.ivecs` (each row an int32 little-endian
dimension, then that many float32 / uint8 / int32 values); ann-benchmarks `.hdf5` (train, test, neighbors,
distances, attribute `distance`); and the folder layout pgembed's own builders write (see `load_dataset_dir`).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pgembed.errors import InvalidInputError, MissingDependencyError
from pgembed.vectors import as_matrix

METRICS = ("ip", "cosine", "l2")
# ann-benchmarks names its metrics by distance; pgembed by what a collection is created with.
_HDF5_METRICS = {"angular": "cosine", "cosine": "cosine", "euclidean": "l2", "l2": "l2", "dot": "ip", "ip": "ip"}
_VECS: dict[str, np.dtype[Any]] = {".fvecs": np.dtype("<f4"), ".bvecs": np.dtype("u1"), ".ivecs": np.dtype("<i4")}
_HDF5 = (".hdf5", ".h5")


@dataclass
class Dataset:
    """Base vectors, queries, and (when known) their exact neighbours, best first."""

    name: str
    base: np.ndarray  # float32, (n, d)
    queries: np.ndarray  # float32, (nq, d)
    gt: np.ndarray | None  # int, (nq, k): base row ids, best first
    metric: str  # 'ip' | 'cosine' | 'l2'
    attrs_path: str | None = None
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.base.shape[1])

    def head(self, rows: int) -> Dataset:
        """The first `rows` base vectors, with the same queries; the ground truth (for all rows) is dropped."""
        if rows >= len(self.base):
            return self
        return replace(self, base=self.base[:rows], gt=None)


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def _existing(path: str | Path, role: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise InvalidInputError(f"{role} file {p} does not exist")
    if p.is_dir():
        raise InvalidInputError(f"{role} path {p} is a folder, expected a file")
    return p


def _read_vecs(path: Path, dtype: np.dtype) -> np.ndarray:
    """Rows of a TEXMEX file as an (n, d) array of `dtype`; every row must declare the same dimension."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0:
        raise InvalidInputError(f"{path} is empty: no rows")
    if raw.size < 4:
        raise InvalidInputError(f"{path} is truncated: {raw.size} bytes, less than one dimension header")
    dim = int(raw[:4].view("<i4")[0])
    if dim <= 0:
        raise InvalidInputError(f"{path}: row 0 declares dimension {dim}; not a {path.suffix} file?")
    row_bytes = 4 + dim * dtype.itemsize
    if raw.size % row_bytes:
        raise InvalidInputError(f"{path}: {_ragged_detail(raw, dim, dtype.itemsize)}")
    rows = raw.reshape(-1, row_bytes)
    dims = np.ascontiguousarray(rows[:, :4]).view("<i4").ravel()
    bad = np.flatnonzero(dims != dim)
    if bad.size:
        r = int(bad[0])
        raise InvalidInputError(f"{path}: ragged rows: row {r} declares dimension {int(dims[r])}, row 0 {dim} "
                                f"({bad.size} row(s) differ)")
    return np.ascontiguousarray(rows[:, 4:]).view(dtype).reshape(-1, dim)


def _ragged_detail(raw: np.ndarray, dim: int, itemsize: int) -> str:
    # The size does not divide into rows: walk the headers to say where the first odd row is (error path only).
    offset, row = 0, 0
    while offset + 4 <= raw.size:
        d = int(raw[offset:offset + 4].view("<i4")[0])
        if d != dim:
            return f"ragged rows: row {row} (byte {offset}) declares dimension {d}, row 0 {dim}"
        offset += 4 + d * itemsize
        row += 1
    return (f"truncated: {raw.size} bytes is not a whole number of rows of dimension {dim} "
            f"({4 + dim * itemsize} bytes each); the last row is cut short")


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as err:  # pickled object arrays, or not a .npy at all
        raise InvalidInputError(f"{path} is not a plain numeric .npy array: {err}") from err


def _vector_matrix(arr: np.ndarray, path: Path, role: str) -> np.ndarray:
    """`arr` as validated float32 (n, d), the message naming the file and what it was read as."""
    if arr.ndim != 2:
        raise InvalidInputError(f"{path}: {role} must be a 2-d (rows, dim) array, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{path}: {role} is empty: no rows")
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 1:
        arr = arr.astype(np.float32)  # .bvecs (SIFT1B, ...): byte components are exact in float32
    elif arr.dtype.kind != "f":
        raise InvalidInputError(f"{path}: {role} must be float16/32/64, got {arr.dtype}")
    return as_matrix(arr, what=f"{role} in {path}")


def read_vectors(path: str | Path, *, role: str = "vectors") -> np.ndarray:
    """The vectors stored in a .npy / .fvecs / .bvecs file as validated float32 (n, d)."""
    p = _existing(path, role)
    ext = _suffix(p)
    if ext == ".npy":
        arr = _load_npy(p)
    elif ext in (".fvecs", ".bvecs"):
        arr = _read_vecs(p, _VECS[ext])
    elif ext == ".ivecs":
        raise InvalidInputError(f"{p}: .ivecs holds integer ids (ground truth), not {role}")
    else:
        raise InvalidInputError(f"{p}: unknown extension {p.suffix!r} for {role}; expected .npy, .fvecs or .bvecs "
                                f"(or .hdf5 holding a whole dataset)")
    return _vector_matrix(arr, p, role)


def read_ids(path: str | Path, *, role: str = "ground truth") -> np.ndarray:
    """Integer neighbour ids (nq, k) from a .npy or .ivecs file."""
    p = _existing(path, role)
    ext = _suffix(p)
    if ext == ".npy":
        arr = _load_npy(p)
    elif ext == ".ivecs":
        arr = _read_vecs(p, _VECS[".ivecs"])
    else:
        raise InvalidInputError(f"{p}: unknown extension {p.suffix!r} for {role}; expected .npy or .ivecs")
    return _id_matrix(arr, p, role)


def _id_matrix(arr: np.ndarray, path: Path, role: str) -> np.ndarray:
    if arr.ndim != 2:
        raise InvalidInputError(f"{path}: {role} must be a 2-d (queries, k) array, got shape {arr.shape}")
    if arr.size == 0:
        raise InvalidInputError(f"{path}: {role} is empty")
    if arr.dtype.kind not in "iu":
        raise InvalidInputError(f"{path}: {role} must hold integer ids, got {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _check_gt(gt: np.ndarray, n_base: int, n_queries: int, where: str) -> None:
    if gt.shape[0] != n_queries:
        raise InvalidInputError(f"{where}: ground truth has {gt.shape[0]} rows but there are {n_queries} queries")
    lo, hi = int(gt.min()), int(gt.max())
    if lo < 0 or hi >= n_base:
        raise InvalidInputError(f"{where}: ground truth ids span {lo}..{hi}, outside the base's 0..{n_base - 1}")


def _check_dims(base: np.ndarray, queries: np.ndarray, base_path: Path, queries_path: Path) -> None:
    if base.shape[1] != queries.shape[1]:
        raise InvalidInputError(f"dimensions disagree: base {base_path} has {base.shape[1]}, "
                                f"queries {queries_path} has {queries.shape[1]}")


def _check_metric(metric: str | None) -> None:
    if metric is not None and metric not in METRICS:
        raise InvalidInputError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")


def _infer_metric(base: np.ndarray) -> str:
    # Unit-length vectors are embeddings meant for inner product; anything else is most likely L2 (SIFT, GIST).
    norms = np.linalg.norm(base[: min(len(base), 10_000)], axis=1)
    return "ip" if np.allclose(norms, 1.0, atol=1e-2) else "l2"


def _h5py() -> Any:
    try:
        import h5py  # type: ignore[import-untyped]
    except ImportError as err:
        raise MissingDependencyError("reading .hdf5 needs h5py: pip install 'pgembed-search[bench]'") from err
    return h5py


def _load_hdf5(path: Path, metric: str | None) -> Dataset:
    h5py = _h5py()
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise InvalidInputError(f"{path} is not a readable HDF5 file: {err}") from err
    with f:
        missing = [k for k in ("train", "test") if k not in f]
        if missing:
            raise InvalidInputError(f"{path}: no dataset {' or '.join(map(repr, missing))}; an ann-benchmarks file "
                                    f"holds 'train', 'test', 'neighbors' (and 'distances')")
        base = _vector_matrix(np.asarray(f["train"]), path, "base ('train')")
        queries = _vector_matrix(np.asarray(f["test"]), path, "queries ('test')")
        gt = _id_matrix(np.asarray(f["neighbors"]), path, "ground truth ('neighbors')") if "neighbors" in f else None
        distance = f.attrs.get("distance")
        has_distances = "distances" in f
    if isinstance(distance, bytes):
        distance = distance.decode()
    _check_dims(base, queries, path, path)
    if gt is not None:
        _check_gt(gt, len(base), len(queries), str(path))
    file_metric = _HDF5_METRICS.get(str(distance).lower()) if distance is not None else None
    if distance is not None and file_metric is None:
        raise InvalidInputError(f"{path}: distance {distance!r} is not supported (angular, euclidean or dot)")
    if metric is not None and file_metric is not None and metric != file_metric:
        raise InvalidInputError(f"{path}: the file's distance is {distance!r} ({file_metric}), "
                                f"but metric={metric!r} was asked; its neighbours are for {file_metric}")
    notes = []
    final = metric or file_metric
    if final is None:
        final = _infer_metric(base)
        notes.append(f"no 'distance' attribute: metric inferred as {final} from the vector norms")
    return Dataset(name=path.stem, base=base, queries=queries, gt=gt, metric=final,
                   source={"format": "ann-benchmarks hdf5", "path": str(path), "distance": distance,
                           "has_distances": has_distances, "notes": notes})


def load_dataset(base: str | Path, queries: str | Path | None = None, gt: str | Path | None = None,
                 attrs: str | Path | None = None, *, metric: str | None = None) -> Dataset:
    """Load a dataset from files chosen by extension (or from a dataset folder, or one ann-benchmarks .hdf5).

    Without `metric`, an .hdf5 file's `distance` attribute decides, a folder's meta.json, else unit-length
    base vectors mean 'ip' and others 'l2' (noted in `source["notes"]`).
    """
    _check_metric(metric)
    bp = Path(base)
    if bp.is_dir():
        if queries is not None or gt is not None or attrs is not None:
            raise InvalidInputError(f"{bp} is a dataset folder: it holds its queries, ground truth and attributes")
        ds = load_dataset_dir(bp)
        if metric is not None and metric != ds.metric:
            raise InvalidInputError(f"{bp}: its ground truth is for {ds.metric}, but metric={metric!r} was asked")
        return ds
    bp = _existing(bp, "base")
    if _suffix(bp) in _HDF5:
        if queries is not None or gt is not None:
            raise InvalidInputError(f"{bp} is an ann-benchmarks file holding the queries ('test') and ground truth "
                                    f"('neighbors'); do not pass queries or gt with it")
        ds = _load_hdf5(bp, metric)
    else:
        if queries is None:
            raise InvalidInputError(f"base {bp} needs a queries file (only .hdf5 files and folders hold both)")
        base_v = read_vectors(bp, role="base")
        qp = Path(queries)
        queries_v = read_vectors(qp, role="queries")
        _check_dims(base_v, queries_v, bp, qp)
        gt_ids = None
        if gt is not None:
            gt_ids = read_ids(gt)
            _check_gt(gt_ids, len(base_v), len(queries_v), str(gt))
        notes = []
        if metric is None:
            metric = _infer_metric(base_v)
            notes.append(f"metric inferred as {metric} from the vector norms")
        ds = Dataset(name=bp.name.split(".")[0], base=base_v, queries=queries_v, gt=gt_ids, metric=metric,
                     source={"format": _suffix(bp).lstrip("."), "base": str(bp), "queries": str(qp),
                             "gt": str(gt) if gt is not None else None, "notes": notes})
    if attrs is not None:
        ds.attrs_path = str(_check_attrs(Path(attrs), len(ds.base)))
    return ds


def _check_attrs(path: Path, n_base: int) -> Path:
    p = _existing(path, "attrs")
    if _suffix(p) != ".parquet":
        raise InvalidInputError(f"{p}: attributes must be a .parquet file, got {p.suffix!r}")
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError:
        return p  # cannot look inside without pyarrow; whoever reads it will need pyarrow anyway
    md = pq.read_metadata(p)
    if md.num_rows != n_base:
        raise InvalidInputError(f"{p}: {md.num_rows} attribute rows but {n_base} base vectors")
    return p


def load_dataset_dir(path: str | Path) -> Dataset:
    """Load a dataset folder: base.f16.npy (or base.npy), queries.npy, gt_<metric>.npy, attrs.parquet, meta.json."""
    d = Path(path)
    if not d.is_dir():
        raise InvalidInputError(f"{d} is not a folder")
    base_path = next((d / n for n in ("base.f16.npy", "base.npy") if (d / n).exists()), None)
    if base_path is None:
        raise InvalidInputError(f"{d}: no base.f16.npy or base.npy")
    meta: dict[str, Any] = {}
    if (d / "meta.json").exists():
        try:
            meta = json.loads((d / "meta.json").read_text())
        except json.JSONDecodeError as err:
            raise InvalidInputError(f"{d / 'meta.json'} is not valid JSON: {err}") from err
    metric = meta.get("metric")
    gt_path = None
    for m in ([metric] if metric in METRICS else list(METRICS)):
        if (d / f"gt_{m}.npy").exists():
            metric, gt_path = m, d / f"gt_{m}.npy"
            break
    if metric not in METRICS:
        metric = "ip"  # pgembed's folders hold unit-length embeddings; without meta or gt, assume inner product
    ds = load_dataset(base_path, d / "queries.npy", gt_path, metric=metric)
    if (d / "attrs.parquet").exists():
        ds.attrs_path = str(_check_attrs(d / "attrs.parquet", len(ds.base)))
    ds.name = str(meta.get("name") or d.name)
    ds.source = {"format": "folder", "dir": str(d), "base": base_path.name,
                 "base_dtype": str(np.load(base_path, mmap_mode="r").dtype), "gt": gt_path.name if gt_path else None,
                 "texts": "texts.txt.gz" if (d / "texts.txt.gz").exists() else None, "meta": meta,
                 "notes": ds.source.get("notes", [])}
    return ds


def _write_vecs(path: str | Path, x: np.ndarray, dtype: np.dtype) -> None:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise InvalidInputError(f"writing {path}: need a non-empty 2-d array, got shape {x.shape}")
    n, dim = x.shape
    rows = np.empty((n, 4 + dim * dtype.itemsize), dtype=np.uint8)
    rows[:, :4] = np.full((n, 1), dim, dtype="<i4").view(np.uint8)
    rows[:, 4:] = np.ascontiguousarray(x, dtype=dtype).view(np.uint8).reshape(n, -1)
    rows.tofile(path)


def write_fvecs(path: str | Path, x: np.ndarray) -> None:
    """Write float32 rows as TEXMEX .fvecs."""
    _write_vecs(path, x, _VECS[".fvecs"])


def write_ivecs(path: str | Path, x: np.ndarray) -> None:
    """Write int32 rows (neighbour ids) as TEXMEX .ivecs."""
    _write_vecs(path, x, _VECS[".ivecs"])


def write_bvecs(path: str | Path, x: np.ndarray) -> None:
    """Write uint8 rows as TEXMEX .bvecs."""
    _write_vecs(path, x, _VECS[".bvecs"])


def describe_path(path: str | Path) -> dict[str, Any]:
    """Shape, on-disk dtype, metric and ground truth of a dataset folder, an .hdf5 file or one vector file."""
    p = Path(path)
    if p.is_dir() or p.suffix.lower() in (".hdf5", ".h5"):
        ds = load_dataset_dir(p) if p.is_dir() else load_dataset(p)
        return {"path": str(p), "name": ds.name, "rows": len(ds.base), "dim": ds.dim,
                "dtype": ds.source.get("base_dtype", "float32"), "queries": len(ds.queries), "metric": ds.metric,
                "gt": list(ds.gt.shape) if ds.gt is not None else None, "attrs": ds.attrs_path,
                "synthetic": bool(ds.source.get("meta", {}).get("synthetic") or ds.source.get("synthetic")),
                "notes": ds.source.get("notes", [])}
    if p.suffix.lower() == ".ivecs":
        ids = read_ids(p)
        return {"path": str(p), "rows": len(ids), "k": ids.shape[1], "dtype": "int32", "kind": "neighbour ids"}
    raw_dtype = str(np.load(p, mmap_mode="r").dtype) if p.suffix.lower() == ".npy" and p.is_file() else None
    if raw_dtype is not None and np.dtype(raw_dtype).kind in "iu":
        ids = read_ids(p)
        return {"path": str(p), "rows": len(ids), "k": ids.shape[1], "dtype": raw_dtype, "kind": "neighbour ids"}
    x = read_vectors(p)
    dtype = raw_dtype or {".fvecs": "float32", ".bvecs": "uint8"}.get(p.suffix.lower(), "?")
    return {"path": str(p), "rows": len(x), "dim": int(x.shape[1]), "dtype": dtype, "kind": "vectors",
            "unit_length": bool(np.allclose(np.linalg.norm(x[:10_000], axis=1), 1.0, atol=1e-2))}


def base_texts(folder: str | Path, rows: int) -> list[str] | None:
    """The texts of base rows 0..rows-1 from a dataset folder's texts.txt.gz (line i is row i; the queries'
    texts follow them), or None when the folder has none."""
    path = Path(folder) / "texts.txt.gz"
    if not path.exists():
        return None
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [next(f).rstrip("\n") for _ in range(rows)]
