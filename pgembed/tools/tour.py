"""`pgembed tour`: the machinery end to end on generated data. Creates a collection, ingests vectors with
attributes through binary COPY (codes computed by the database), builds an HNSW index on the binary codes and a
B-tree, and runs one filtered hybrid query through the planner. The data are synthetic (clustered Gaussian
vectors), so the timings show the machinery, not retrieval quality on real embeddings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

import pgembed
from pgembed.groundtruth import exact_topk
from pgembed.statements import benchmarks as q

TOUR_TABLE = "pgembed_tour"
CATEGORIES = ("news", "blog", "docs", "forum", "paper", "wiki", "code", "mail")


def generate(rows: int, dim: int = 384, clusters: int = 64, seed: int = 7) -> tuple[np.ndarray, dict[str, Any]]:
    """Unit vectors around random cluster centres, with a skewed category and a year per row."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    labels = rng.integers(0, clusters, rows)
    vectors = centres[labels] + 0.9 * rng.standard_normal((rows, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    weights = 0.5 ** np.arange(len(CATEGORIES))
    category = rng.choice(len(CATEGORIES), rows, p=weights / weights.sum())
    attrs = {"category": [CATEGORIES[c] for c in category], "year": rng.integers(1995, 2026, rows)}
    return vectors, attrs


def run_tour(dsn: str | None = None, data_dir: str | Path | None = None, rows: int = 50_000,
             quiet: bool = False) -> dict[str, Any]:
    console = Console(quiet=quiet)
    timings: dict[str, float] = {}

    def step(name: str, started: float) -> None:
        timings[name] = round(time.perf_counter() - started, 3)
        console.print(f"  [green]✓[/] {name}: {timings[name]:.2f}s")

    console.rule("pgembed tour")
    t = time.perf_counter()
    db = pgembed.connect(dsn, data_dir=data_dir, migrate=True)
    step("connect + migrate", t)
    console.print(f"  server: {db.conn.info.parameter_status('server_version')}, "
                  f"database {db.conn.info.dbname}", highlight=False)
    with db:
        if any(c.name == TOUR_TABLE for c in db.collections()):
            db.collection(TOUR_TABLE).drop(drop_table=True)
        vectors, attrs = generate(rows)
        t = time.perf_counter()
        docs = db.create_collection(TOUR_TABLE, vectors.shape[1], attrs={"category": "text", "year": "integer"})
        docs.add_codec("f16", "float16")
        docs.add_codec("bq", "binary", fit_on=vectors[:10_000])
        step("create collection + codecs", t)

        t = time.perf_counter()
        docs.ingest(np.arange(rows), vectors, attrs, progress=not quiet)
        step(f"ingest {rows:,} vectors (binary COPY, codes by trigger)", t)
        timings["ingest_vectors_per_s"] = round(rows / timings[next(reversed(timings))])

        t = time.perf_counter()
        db.execute(q.create_btree(docs.info, "category"))
        index = docs.create_index("bq", "hnsw", progress=not quiet)
        db.execute(q.analyze(docs.info.table))
        step(f"HNSW index on binary codes ({index.index_name})", t)

        noise = np.random.default_rng(1).standard_normal((vectors.shape[1],)).astype(np.float32)
        query = vectors[123] + 0.05 * noise
        where = ("docs", 2015)
        hits, elapsed, plan = filtered_search(db, docs, query, where, k=10)
        timings["filtered query ms"] = round(elapsed * 1000, 2)
        exact = exact_ids(vectors, attrs, query, where, k=10)
        recall = len({h[0] for h in hits} & set(exact)) / len(exact)

        table = Table(title=f"10 nearest with category = '{where[0]}' AND year >= {where[1]}  "
                            f"({elapsed * 1000:.1f} ms, recall@10 vs exact {recall:.2f})")
        for column in ("id", "category", "year", "cosine distance"):
            table.add_column(column)
        for key, category, year, distance in hits:
            table.add_row(str(key), category, str(year), f"{distance:.4f}")
        console.print(table)
        console.print(f"plan: {plan}", highlight=False)
        sizes = docs.describe()
    return {"rows": rows, "timings_s": timings, "recall_at_10": recall, "hits": hits, "plan": plan,
            "collection": sizes}


def filtered_search(
    db: pgembed.Database, docs: pgembed.Collection, query: np.ndarray, where: tuple[str, int], k: int
) -> tuple[list[tuple[int, str, int, float]], float, str]:
    """Hybrid search through the planner: HNSW on the bit codes with iterative scan (so the filter cannot
    starve the result), re-ranked by exact distance; or exact, if the filter keeps few rows."""
    flt = {"category": where[0], "year": {"$gte": where[1]}}
    docs.search(query, k, where=flt, oversample=10)  # warm the plan and the buffers once
    started = time.perf_counter()
    result = docs.search(query, k, where=flt, oversample=10, columns=["category", "year"])
    elapsed = time.perf_counter() - started
    assert result.rows is not None
    hits = [(int(key), row["category"], int(row["year"]), float(distance))
            for key, row, distance in zip(result.ids, result.rows, result.distances, strict=True)]
    return hits, elapsed, f"{result.plan.kind}: {result.plan.reason}"


def exact_ids(vectors: np.ndarray, attrs: dict[str, Any], query: np.ndarray, where: tuple[str, int],
              k: int) -> list[int]:
    mask = (np.asarray(attrs["category"]) == where[0]) & (np.asarray(attrs["year"]) >= where[1])
    ids = np.flatnonzero(mask)
    top, _ = exact_topk(vectors[ids], query[None, :], min(k, len(ids)), "cosine")
    return [int(i) for i in ids[top[0]]]
