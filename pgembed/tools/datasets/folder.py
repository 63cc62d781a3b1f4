"""Write a dataset folder: the layout `load_dataset_dir` reads and `pgembed bench --base/--queries/--gt` takes.

base.f16.npy (float16, row = id), queries.npy (float32), gt_<metric>.npy (int32 exact top-k, computed on the
vectors *as saved*, ties by smaller id), attrs.parquet (id + columns), texts.txt.gz (optional), meta.json,
README.md. The folder appears whole or not at all (written beside it, then renamed).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pgembed.errors import InvalidInputError
from pgembed.groundtruth import exact_topk
from pgembed.tools.datasets.files import Dataset, MissingDependencyError


def _pyarrow() -> Any:
    try:
        import pyarrow  # type: ignore[import-untyped]
        import pyarrow.parquet  # type: ignore[import-untyped]
    except ImportError as err:
        raise MissingDependencyError("writing attrs.parquet needs pyarrow: "
                                     "pip install 'pgembed-search[bench]'") from err
    return pyarrow


def write_dataset_dir(ds: Dataset, out_dir: str | Path, *, attrs: Mapping[str, Any] | None = None,
                      texts: Sequence[str] | None = None, meta: Mapping[str, Any] | None = None,
                      readme: str | None = None, k: int = 100, overwrite: bool = False) -> Path:
    """Save `ds` as a folder; its ground truth is recomputed exactly on the float16 vectors as shipped.

    `attrs` maps column -> values (a sequence or array, one per base row; an `id` column is added first);
    `texts` holds the base passages then the queries, one line each. Returns the folder. Refuses a non-empty
    folder unless `overwrite`.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InvalidInputError(f"{out} exists and is not empty (pass overwrite to replace it)")
    n, nq = len(ds.base), len(ds.queries)
    if texts is not None and len(texts) != n + nq:
        raise InvalidInputError(f"texts: {len(texts)} lines for {n} base rows + {nq} queries")
    if texts is not None and any("\n" in t for t in texts):
        raise InvalidInputError("texts: a text holds a newline; one line per row is the format")
    base16 = ds.base.astype(np.float16)
    if not np.isfinite(base16).all():
        raise InvalidInputError("base vectors overflow float16 (|x| > 65504); not shippable as base.f16.npy")
    k = min(k, n)
    gt, _ = exact_topk(base16.astype(np.float32), ds.queries, k, ds.metric)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        np.save(tmp / "base.f16.npy", base16)
        np.save(tmp / "queries.npy", np.ascontiguousarray(ds.queries, dtype=np.float32))
        np.save(tmp / f"gt_{ds.metric}.npy", gt)
        files = ["base.f16.npy", "queries.npy", f"gt_{ds.metric}.npy"]
        if attrs is not None:
            pa = _pyarrow()
            cols: dict[str, Any] = {"id": pa.array(np.arange(n, dtype=np.int32))}
            for name, values in attrs.items():
                if len(values) != n:
                    raise InvalidInputError(f"attrs column {name!r}: {len(values)} values for {n} base rows")
                cols[name] = pa.array(values)
            pa.parquet.write_table(pa.table(cols), tmp / "attrs.parquet")
            files.append("attrs.parquet")
        if texts is not None:
            # mtime=0: the same texts give the same bytes, so a rebuild does not churn the repository.
            with open(tmp / "texts.txt.gz", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
                gz.write(("\n".join(texts) + "\n").encode())
            files.append("texts.txt.gz")
        info = {"name": ds.name, "n_base": n, "dim": ds.dim, "n_queries": nq, "k_gt": k, "metric": ds.metric,
                "base_dtype_shipped": "float16",
                "ground_truth": f"exact top-{k} by {ds.metric} on base.f16.npy cast to float32 vs the float32 "
                                "queries; ties by smaller id",
                **dict(meta or {})}
        info["files"] = sorted([*files, "meta.json", *(["README.md"] if readme else [])])
        (tmp / "meta.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
        if readme:
            (tmp / "README.md").write_text(readme)
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
