"""Bulk-ingest benchmark: vectors/s through `Collection.ingest` into a table whose float16 and binary code
columns the database computes, then index build times, table and index sizes.

Each repeat loads a fresh table; the plain-pgvector figure (same COPY, no code columns) is measured in the
same run so the cost of keeping codes is a ratio, not a guess across runs.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

import pgembed
from pgembed.statements import benchmarks
from pgembed.tools.bench.environment import describe_environment

TABLE = "pgembed_bench_ingest"


def load_base(path: str | Path | None, rows: int) -> tuple[np.ndarray, str]:
    if path is None:
        from pgembed.tools.tour import generate

        vectors, _ = generate(rows)
        return vectors, f"generated clustered unit vectors ({rows:,} x 384, synthetic)"
    base = np.load(path, mmap_mode="r")
    if len(base) < rows:
        raise pgembed.InvalidInputError(f"{path} has {len(base):,} rows, fewer than --rows {rows:,}")
    return np.ascontiguousarray(base[:rows], dtype=np.float32), f"{Path(path).name} (first {rows:,} rows)"


def _fresh(db: pgembed.Database, dim: int, codecs: bool, fit_on: np.ndarray) -> pgembed.Collection:
    if any(c.name == TABLE for c in db.collections()):
        db.collection(TABLE).drop(drop_table=True)
    collection = db.create_collection(TABLE, dim)
    if codecs:
        collection.add_codec("f16", "float16")
        collection.add_codec("bq", "binary", fit_on=fit_on)
    db.session.execute(benchmarks.CHECKPOINT)  # each repeat starts without the previous one's dirty buffers
    return collection


def run_ingest_bench(dsn: str | None = None, data_dir: str | Path | None = None, base: str | None = None,
                     rows: int = 100_000, repeats: int = 3, quiet: bool = False) -> dict[str, Any]:
    console = Console(quiet=quiet)
    vectors, dataset = load_base(base, rows)
    ids = np.arange(rows)
    fit_on = vectors[: min(rows, 20_000)]
    runs: dict[str, list[float]] = {"with_codes": [], "plain": []}
    with pgembed.connect(dsn, data_dir=data_dir, migrate=True) as db:
        environment = describe_environment(db)
        for repeat in range(repeats):
            for mode in ("with_codes", "plain"):  # interleaved: machine noise hits both alike
                collection = _fresh(db, vectors.shape[1], mode == "with_codes", fit_on)
                started = time.perf_counter()
                collection.ingest(ids, vectors)
                seconds = time.perf_counter() - started
                runs[mode].append(seconds)
                console.print(f"  repeat {repeat + 1} {mode}: {rows / seconds:,.0f} vectors/s")
        # The last table loaded is plain; load one with codes again for index builds and sizes.
        collection = _fresh(db, vectors.shape[1], True, fit_on)
        collection.ingest(ids, vectors)
        db.session.execute(benchmarks.vacuum_analyze(collection.info.table))
        builds = {}
        for on, method in (("bq", "hnsw"), ("f16", "hnsw"), ("vector", "hnsw")):
            index = collection.create_index(on, method, progress=not quiet)
            builds[f"{method} on {on}"] = index.build_seconds
        described = collection.describe()
        collection.drop(drop_table=True)
    best = {mode: rows / min(seconds) for mode, seconds in runs.items()}
    median = {mode: rows / statistics.median(seconds) for mode, seconds in runs.items()}
    result = {
        "benchmark": "ingest",
        "dataset": dataset,
        "rows": rows,
        "dim": int(vectors.shape[1]),
        "repeats": repeats,
        "vectors_per_s": {
            "with_codes_median": round(median["with_codes"]), "with_codes_best": round(best["with_codes"]),
            "plain_median": round(median["plain"]), "plain_best": round(best["plain"]),
        },
        "codes_cost_ratio": round(statistics.median(runs["with_codes"]) / statistics.median(runs["plain"]), 3),
        "seconds": runs,
        "index_build_s": {k: round(v or 0.0, 2) for k, v in builds.items()},
        "index_bytes": {i["name"]: i["bytes"] for i in described["indexes"]},
        "table_bytes": described["table_bytes"],
        "environment": environment,
    }
    table = Table(title=f"ingest: {dataset}")
    for column in ("measure", "value"):
        table.add_column(column)
    table.add_row("vectors/s with f16+bit codes (median)", f"{median['with_codes']:,.0f}")
    table.add_row("vectors/s plain vector table (median)", f"{median['plain']:,.0f}")
    table.add_row("time ratio codes / plain", f"{result['codes_cost_ratio']:.2f}")
    for name, seconds in result["index_build_s"].items():
        table.add_row(f"build {name}", f"{seconds:.1f} s")
    console.print(table)
    return result
