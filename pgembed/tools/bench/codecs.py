"""`pgembed bench quality`: the quality of every codec on a dataset.

For each codec spec: bytes per vector (measured in PostgreSQL with pg_column_size on the SQL encoder's
output, extra columns included), encode throughput in numpy and in SQL, recall@k of the ranking by the
codes alone, and recall@k after re-ranking the top k*r candidates by exact inner product.

Recall counts ties as hits: a returned id whose exact score is at least the k-th ground-truth score minus
1e-6 (real corpora hold exact duplicates; pgembed.groundtruth.recall_at_k, on distances). Ground truth is
exact inner product, computed when not given.
Queries used to fit a codec (LeanVec-OOD) are never used to measure it: with --fit-queries N, the first
N queries fit, and every codec is measured on the rest.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

import pgembed
from pgembed.codecs import Codec, RaBitQCodec, SqlExpr, make_codec
from pgembed.codecs.rabitq import FACTORS
from pgembed.errors import InvalidInputError
from pgembed.groundtruth import exact_topk, recall_at_k
from pgembed.statements import benchmarks
from pgembed.tools.bench.environment import describe_environment
from pgembed.vectors import as_matrix

DEFAULT_SPECS = ("f16", "bq", "bq2", "bq3", "bq4", "sq8", "osq4", "pq48", "mrl128", "pca128", "pca128,bq2",
                 "leanvec128", "rabitq")
RERANK_FACTORS = (1, 2, 4, 5, 10, 15, 20, 40)  # the issue asks 1,2,4,10,20,40; 5 and 15 = 50 and 150
BLOCK = 20_000
SAMPLE_TABLE = "bench_vectors"


def load_matrix(path: str | Path, what: str) -> np.ndarray:
    return as_matrix(np.load(path, mmap_mode="r"), what=f"{what} ({path})")


def top_candidates(codec: Codec, queries: np.ndarray, codes: np.ndarray, extras: dict[str, np.ndarray],
                    depth: int) -> np.ndarray:
    """Indices of the `depth` best codes per query by the codec's own similarity, blockwise."""
    best = np.empty((len(queries), 0), dtype=np.int64)
    best_scores = np.empty((len(queries), 0), dtype=np.float32)
    for start in range(0, len(codes), BLOCK):
        block_extras = {name: values[start : start + BLOCK] for name, values in extras.items()}
        scores = codec.similarity(queries, codes[start : start + BLOCK], block_extras or None).astype(np.float32)
        take = min(depth, scores.shape[1])
        part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        all_scores = np.concatenate([best_scores, np.take_along_axis(scores, part, axis=1)], axis=1)
        all_ids = np.concatenate([best, part + start], axis=1)
        keep = np.argpartition(-all_scores, min(depth, all_scores.shape[1]) - 1, axis=1)[:, :depth]
        best_scores = np.take_along_axis(all_scores, keep, axis=1)
        best = np.take_along_axis(all_ids, keep, axis=1)
    return best


def recall_after_rerank(base: np.ndarray, queries: np.ndarray, candidates: np.ndarray, depth: int, k: int,
                        truth: np.ndarray) -> float:
    """Re-rank the first `depth` candidates (best by code first) exactly; recall@k with ties as hits, against
    `truth`, the k true distances (negative inner products) per query."""
    found = []
    for i, query in enumerate(queries):
        exact = base[candidates[i, :depth]] @ query
        found.append(-exact[np.argsort(-exact)[:k]])
    return recall_at_k(found, list(truth), k)


def file_truth(base: np.ndarray, queries: np.ndarray, gt_ids: np.ndarray) -> np.ndarray:
    """True distances (negative inner products) of a ground-truth file's k rows per query. The file's order is
    taken as it is: its k-th row is the k-th nearest, so a row listed before it counts as no farther (on
    float32 scores a file's near-ties may come out in another order)."""
    distances = np.stack([-(base[ids] @ query) for ids, query in zip(gt_ids, queries, strict=True)])
    kth_distance = np.array([-float(base[ids[-1]] @ query) for ids, query in zip(gt_ids, queries, strict=True)],
                            dtype=np.float32)
    return np.minimum(distances, kth_distance[:, None])


def order_by_code(codec: Codec, queries: np.ndarray, codes: np.ndarray, extras: dict[str, np.ndarray],
                   candidates: np.ndarray) -> np.ndarray:
    """Sort each query's candidates best-first by the codec's similarity."""
    ordered = np.empty_like(candidates)
    for i in range(len(queries)):
        cand_extras = {name: values[candidates[i]] for name, values in extras.items()}
        scores = codec.similarity(queries[i : i + 1], codes[candidates[i]], cand_extras or None)[0]
        ordered[i] = candidates[i][np.argsort(-scores, kind="stable")]
    return ordered


def sql_encoders(codec: Codec) -> list[SqlExpr]:
    """The SQL encoder of every column the codec's codes occupy: the main one, then its extras."""
    return [codec.sql_encoder(), *(codec.sql_extra_encoder(e.suffix) for e in codec.extra_columns())]


def load_sample_table(db: pgembed.Database, sample: np.ndarray, table: str = SAMPLE_TABLE) -> str:
    """A temporary table of the sample vectors, for this session: what SQL encoders are timed on. Returns its
    name."""
    session = db.session
    session.execute(benchmarks.drop_temp_table(table))
    session.execute(benchmarks.create_sample_table(table, sample.shape[1]))
    with session.conn.cursor() as cur, cur.copy(benchmarks.copy_sample_in(table)) as copy:
        for i, v in enumerate(sample):
            copy.write_row((i, "[" + ",".join(map(repr, v.tolist())) + "]"))
    return table


def sql_encode_rate(db: pgembed.Database, codec: Codec, sample: np.ndarray | str, budget_s: float = 3.0
                    ) -> tuple[float, float]:
    """(rows/s of the SQL encoder over a table of vectors, mean bytes of its output per vector). `sample`:
    the vectors, or the name of a table load_sample_table made (reused across codecs)."""
    session = db.session
    with session.transaction():
        table = sample if isinstance(sample, str) else load_sample_table(db, sample)
        available = int(session.value(benchmarks.count_sample(table)))
        encoders = sql_encoders(codec)
        rows, elapsed, size = 0, 0.0, 0.0
        limit = 50
        while elapsed < budget_s and rows < available:
            limit = min(limit, available)
            statement = benchmarks.encoded_bytes(table, encoders, limit)
            started = time.perf_counter()
            size = float(session.value(statement))
            elapsed = time.perf_counter() - started
            rows = limit
            limit *= 4
        if not isinstance(sample, str):
            session.execute(benchmarks.drop_temp_table(table))
    return rows / elapsed, size


def run_codec_bench(base_path: str, queries_path: str, gt_path: str | None = None,
                    specs: list[str] | None = None, k: int = 10, fit_sample: int = 50_000, fit_queries: int = 0,
                    dsn: str | None = None, data_dir: str | Path | None = None, quiet: bool = False,
                    rerank_factors: tuple[int, ...] = RERANK_FACTORS) -> dict[str, Any]:
    console = Console(quiet=quiet, stderr=True)
    specs = list(specs or DEFAULT_SPECS)
    base = load_matrix(base_path, "base")
    codecs = {spec: make_codec(spec, base.shape[1]) for spec in specs}
    all_queries = load_matrix(queries_path, "queries")
    if any(c.uses_queries for c in codecs.values()) and fit_queries == 0:
        fit_queries = min(200, len(all_queries) // 5)
    if fit_queries >= len(all_queries):
        raise InvalidInputError(f"--fit-queries {fit_queries} leaves no queries to measure with")
    query_sample, queries = all_queries[:fit_queries], all_queries[fit_queries:]
    depth_max = k * max(rerank_factors)
    started = time.perf_counter()
    if gt_path is not None:
        truth = file_truth(base, queries, np.load(gt_path)[fit_queries:, :k])
        gt_source = str(gt_path)
    else:
        truth = -exact_topk(base, queries, k, "ip")[1]
        gt_source = "computed (exact inner product)"
    console.print(f"ground truth: {gt_source} ({time.perf_counter() - started:.1f}s)")
    rng = np.random.default_rng(0)
    sample = base[np.sort(rng.choice(len(base), min(fit_sample, len(base)), replace=False))]
    dataset = {"base": str(base_path), "queries": str(queries_path), "n_base": int(len(base)),
               "n_queries": int(len(queries)), "dim": int(base.shape[1]), "k": k, "ground_truth": gt_source,
               "fit_sample": int(len(sample)), "fit_queries": int(fit_queries)}
    rows: list[dict[str, Any]] = []
    with pgembed.connect(dsn, data_dir=data_dir, migrate=True) as db:
        environment = describe_environment(db)
        for spec, codec in codecs.items():
            t0 = time.perf_counter()
            codec.fit(sample, query_sample if codec.uses_queries else None)
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            codes = codec.encode(base)
            encode_s = time.perf_counter() - t0
            extras = {e.suffix: codec.encode_extra(e.suffix, base) for e in codec.extra_columns()}
            sql_rate, sql_bytes = sql_encode_rate(db, codec, sample[:20_000])
            candidates = order_by_code(codec, queries, codes, extras,
                                        top_candidates(codec, queries, codes, extras, depth_max))
            common = {"method": spec, "bytes_per_vector": round(sql_bytes, 1), "code_bytes": codec.code_bytes,
                      "encode_per_s": round(len(base) / encode_s), "sql_encode_per_s": round(sql_rate),
                      "fit_s": round(fit_s, 2)}
            if isinstance(codec, RaBitQCodec):
                common["error_bound_holds"] = rabitq_bound_coverage(codec, base, queries, codes, extras[FACTORS])
            line = []
            for r in rerank_factors:
                recall = recall_after_rerank(base, queries, candidates, k * r, k, truth)
                rows.append({**common, "knobs": {"rerank_factor": r, "candidates": k * r}, "recall_at_k": recall})
                line.append(f"r{r}={recall:.3f}")
            console.print(f"  {spec:<14} {' '.join(line)}  numpy {common['encode_per_s']:,}/s  "
                          f"SQL {common['sql_encode_per_s']:,}/s  {common['bytes_per_vector']} B")
    result = {"dataset": dataset, "rows": rows, "environment": environment}
    if not quiet:
        Console().print(results_table(result))
    return result


def rabitq_bound_coverage(codec: RaBitQCodec, base: np.ndarray, queries: np.ndarray, codes: np.ndarray,
                          factors: np.ndarray, pairs_per_query: int = 2000) -> float:
    """Fraction of (query, vector) pairs whose exact inner product lies within the stated error bound."""
    rng = np.random.default_rng(1)
    picks = rng.choice(len(base), min(pairs_per_query, len(base)), replace=False)
    estimate = codec.estimate(queries, codes[picks], factors[picks])
    bound = codec.error_bound(queries, factors[picks])
    return float(np.mean(np.abs(estimate - queries @ base[picks].T) <= bound))


def results_table(result: dict[str, Any]) -> Table:
    rows = result["rows"]
    factors = sorted({r["knobs"]["rerank_factor"] for r in rows})
    d = result["dataset"]
    table = Table(title=f"codecs on {Path(d['base']).name}: {d['n_base']:,} x {d['dim']}, "
                        f"{d['n_queries']} queries, recall@{d['k']}")
    for column in ("method", "B/vector", "numpy enc/s", "SQL enc/s",
                   *(("codes only" if f == 1 else f"rerank {d['k'] * f}") for f in factors)):
        table.add_column(column, justify="right")
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = {r["knobs"]["rerank_factor"]: r for r in rows if r["method"] == method}
        first = next(iter(mine.values()))
        table.add_row(method, f"{first['bytes_per_vector']:.0f}", f"{first['encode_per_s']:,}",
                      f"{first['sql_encode_per_s']:,}", *(f"{mine[f]['recall_at_k']:.3f}" for f in factors))
    return table
