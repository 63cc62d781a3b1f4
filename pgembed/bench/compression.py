"""`pgembed bench`: every codec measured inside PostgreSQL, with the memory it costs (issue 6).

One run loads a dataset into a fresh collection through pgembed itself and measures, per codec
configuration, what a user choosing a codec needs to know:

- storage: bytes per vector of the code columns on disk (pg_column_size over stored rows: the compressed
  representation a memory budget is about), the HNSW index's bytes per vector (pg_relation_size / rows), and
  their sum; fit, build and encode times (numpy, and the database's own SQL encoder);
- search over a sweep of its knobs: recall@1/10/100 against exact ground truth, queries per second single
  client (p50/p99 latency) and batched.

Three kinds of configuration:

- "index": codecs with a pgvector type (bit, halfvec, vector): an HNSW index on the code column, searched by
  pgembed's own `Collection.search(plan="index")` with `candidates` rows fetched from the index and
  re-ranked by exact distance on the source vector (oversample = candidates / k, ef_search =
  max(40, candidates)); batched through `search_batch(plan="index")` on two connections;
- "client-scan": codecs stored as bytea (sq8, pq<M>), which no pgvector index can serve: scored the way
  FAISS scores a flat code index, in numpy over codes held in memory, the `candidates` best re-ranked by
  exact distance in one SQL statement. search() cannot use these as a coarse stage; the advisor leaves them
  out unless asked;
- "baseline": plain pgvector as its README shows it, no pgembed involved: HNSW on the float32 column, on
  `embedding::halfvec(d)`, and on `binary_quantize(embedding)::bit(d)` with the re-rank written by hand.

recall@k counts a returned id as a hit when its exact score is at least the k-th ground-truth score minus
1e-6 (real corpora hold exact duplicates). recall@100 is measured where a configuration fetches at least
100 candidates (a second, untimed pass with k = 100). Queries used to fit a codec (LeanVec-OOD) are never
measured: the first `fit_queries` queries fit, the others measure every configuration.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from psycopg import sql
from rich.console import Console
from rich.table import Table

import pgembed
from pgembed import schema
from pgembed.bench.codecs import _order_by_code, _top_candidates, exact_top, load_sample_table, sql_encode_rate
from pgembed.bench.environment import describe_environment
from pgembed.bench.search import (
    HNSW_PARAMS,
    BaselineRunner,
    Timed,
    Truth,
    _bytes_per_vector,
    _relation_size,
    fresh_collection,
    time_queries,
)
from pgembed.codecs import Codec, make_codec
from pgembed.errors import InvalidInputError
from pgembed.progress import advancer, progress_bar

TABLE = "pgembed_bench_codecs"
# Chosen so that every memory budget of 16..256 bytes per vector has candidates (on-disk sizes with headers:
# bit(b) takes b/8 + 5 bytes, bytea n + 1, halfvec(d) 2d + 8): pq12 13 B, pca88,bq 16 B, pq24 25 B,
# pca192,bq 29 B, pca128,bq2 37 B, pq48 49 B, bq 53 B, bq2 101 B, bq4 197 B, pca120,f16 248 B, ...
DEFAULT_SPECS = ("f16", "sq8", "bq", "bq2", "bq4", "osq4", "rabitq", "pq12", "pq24", "pq48", "pca88,bq",
                 "pca192,bq", "pca128,bq2", "pca120,f16", "mrl128", "leanvec128")
BASELINES = ("pgvector-hnsw-f32", "pgvector-hnsw-f16", "pgvector-bit-rerank")
CANDIDATES = (10, 20, 40, 80, 160, 320)
MIN_EF_SEARCH = 40
INDEXABLE_TYPES = ("bit", "halfvec", "vector")
RECALL_KS = (1, 10, 100)
BATCH_WORKERS = 2  # this machine's cores
WARM_QUERIES = 50  # run at a configuration's widest setting before its sweep: its index pages get cached


@dataclass
class Storage:
    """What one configuration stores, and what storing it cost."""

    method: str
    kind: str  # "index" | "client-scan" | "baseline"
    bytes_per_vector: float  # the code columns (or the indexed value, for a baseline) on disk
    index_bytes: int | None = None
    build_s: float | None = None
    fit_s: float | None = None
    encode_per_s: int | None = None
    sql_encode_per_s: int | None = None
    name: str | None = None  # the collection's codec name (kind "index")
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self, n: int) -> dict[str, Any]:
        index_bpv = None if self.index_bytes is None else round(self.index_bytes / n, 1)
        return {"method": self.method, "kind": self.kind, "bytes_per_vector": self.bytes_per_vector,
                "index_bytes": self.index_bytes, "index_bytes_per_vector": index_bpv,
                "total_bytes_per_vector": round(self.bytes_per_vector + (index_bpv or 0.0), 1),
                "build_s": self.build_s, "fit_s": self.fit_s, "encode_per_s": self.encode_per_s,
                "sql_encode_per_s": self.sql_encode_per_s, **self.extra}


@dataclass
class GroundTruth:
    """Per k of RECALL_KS, a Truth over the whole base: the k-th exact score per query."""

    truths: dict[int, Truth]
    source: str

    def recalls(self, scoring: np.ndarray, queries: np.ndarray, results: Sequence[np.ndarray],
                results100: Sequence[np.ndarray] | None) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for k, truth in self.truths.items():
            if k == 100:
                got = None if results100 is None else truth.recall(scoring, queries, list(results100))
            elif all(len(r) >= k for r in results) or k == 1:
                got = truth.recall(scoring, queries, [np.asarray(r)[:k] for r in results])
            else:
                got = None
            out[f"recall_at_{k}"] = None if got is None else round(got, 4)
        return out


def ground_truth(scoring: np.ndarray, queries: np.ndarray, gt: np.ndarray | None, ks: Sequence[int]
                 ) -> GroundTruth:
    """The k-th best exact score per query, from a given top-k id file or computed (exact, blockwise)."""
    deepest = max(ks)
    if gt is not None and gt.shape[1] >= deepest:
        top_scores = np.stack([np.einsum("ij,ij->i", scoring[gt[:, j]], queries) for j in range(deepest)], 1)
        source = "given (ids); scores recomputed on the vectors as loaded"
    else:
        _, top_scores = exact_top(scoring, queries, deepest)
        source = "computed: exact top-k in numpy (float32)"
    everything = np.ones(len(scoring), dtype=bool)
    return GroundTruth({k: Truth(None, None, everything, top_scores[:, k - 1].astype(np.float32), k)
                        for k in ks}, source)


def normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.finfo(np.float32).tiny)


def _indexable(codec: Codec) -> bool:
    return codec.sql_type().split("(")[0] in INDEXABLE_TYPES


def run_compression_bench(dataset: Any, specs: Sequence[str] | None = None, *, k: int = 10,
                          baselines: bool = True, candidates: Sequence[int] = CANDIDATES,
                          queries_limit: int | None = None, fit_sample: int = 50_000, fit_queries: int | None = None,
                          batch: bool = True, dsn: str | None = None, data_dir: str | Path | None = None,
                          quiet: bool = False) -> dict[str, Any]:
    """Measure every codec configuration of `specs` (default DEFAULT_SPECS) and the plain-pgvector baselines
    on `dataset` (a pgembed.datasets.Dataset): one row per configuration and knob setting."""
    console = Console(quiet=quiet, stderr=True)
    started_all = time.perf_counter()
    if dataset.metric not in ("cosine", "ip"):
        raise InvalidInputError(f"dataset {dataset.name!r} has metric {dataset.metric!r}; the compression "
                                "bench measures cosine / inner-product data")
    if k < 1 or any(c < 1 for c in candidates):
        raise InvalidInputError("k and every candidates value must be at least 1")
    specs = list(specs or DEFAULT_SPECS)
    if not specs and not baselines:
        raise InvalidInputError("nothing to measure: no codecs and no baselines")
    base = np.ascontiguousarray(dataset.base, dtype=np.float32)
    n, dim = base.shape
    codecs = {spec: make_codec(spec, dim) for spec in specs}  # bad specs fail before any work
    all_queries = np.ascontiguousarray(dataset.queries, dtype=np.float32)
    if fit_queries is None:
        fit_queries = min(200, len(all_queries) // 5) if any(c.uses_queries for c in codecs.values()) else 0
    if fit_queries >= len(all_queries):
        raise InvalidInputError(f"fit_queries={fit_queries} leaves none of the {len(all_queries)} queries to "
                                "measure with")
    query_sample = all_queries[:fit_queries]
    stop = len(all_queries) if queries_limit is None else min(len(all_queries), fit_queries + queries_limit)
    queries = all_queries[fit_queries:stop]
    gt = None if dataset.gt is None else np.asarray(dataset.gt)[fit_queries:stop]
    # The collection's metric is cosine: truth on normalised vectors (float16-shipped "unit" vectors are
    # off by ~1e-4 in norm, enough to reorder near-ties against inner product).
    scoring = normalise(base)
    started = time.perf_counter()
    truth = ground_truth(scoring, normalise(queries), gt, [x for x in RECALL_KS if x <= n])
    truth_s = time.perf_counter() - started
    rng = np.random.default_rng(0)
    sample = base[np.sort(rng.choice(n, min(fit_sample, n), replace=False))]

    rows: list[dict[str, Any]] = []
    storages: list[Storage] = []

    def emit(storage: Storage, knobs: dict[str, Any], timed: Timed, results100: list[np.ndarray] | None,
             batch_qps: float | None, plan: str) -> None:
        latencies = timed.latencies
        row = {**storage.row(n), "knobs": knobs, "plan": plan, "k": k,
               **truth.recalls(scoring, queries, timed.results, results100),
               "qps": round(len(latencies) / float(latencies.sum()), 1),
               "batch_qps": None if batch_qps is None else round(batch_qps, 1),
               "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 3),
               "p99_ms": round(float(np.percentile(latencies, 99)) * 1000, 3)}
        row["recall_at_k"] = row.get(f"recall_at_{k}")
        rows.append(row)
        r10 = row.get("recall_at_10")
        console.print(f"  {storage.method:<22} {_knobs_text(knobs):<34} {storage.bytes_per_vector:>7.1f} B  "
                      f"recall@10 {'-' if r10 is None else f'{r10:.3f}'}  {row['qps']:>8,.1f} q/s"
                      + ("" if batch_qps is None else f"  batch {batch_qps:,.1f} q/s"), highlight=False)

    with pgembed.connect(dsn, data_dir=data_dir, migrate=True) as db:
        environment = describe_environment(db)
        collection = fresh_collection(db, TABLE, dim, {})
        # Codecs with an index type go on before the load: the database computes their codes in the COPY.
        indexed = {spec: c for spec, c in codecs.items() if _indexable(c)}
        names: dict[str, str] = {}
        fits: dict[str, float] = {}
        for spec in indexed:
            names[spec] = re.sub(r"\W+", "_", spec)
            t0 = time.perf_counter()
            collection.add_codec(names[spec], spec, fit_on=sample,
                                 fit_queries=query_sample if indexed[spec].uses_queries else None)
            fits[spec] = time.perf_counter() - t0
        t0 = time.perf_counter()
        collection.ingest(np.arange(n), base, progress=not quiet)
        load_s = time.perf_counter() - t0
        console.print(f"loaded {n:,} x {dim} through pgembed with {len(indexed)} code columns ({load_s:.1f}s)")

        encoder_sample = load_sample_table(db, sample[:20_000])  # SQL encoders are timed on these rows
        for spec, codec in codecs.items():
            storage = _store(db, collection, spec, codec, names.get(spec), fits.get(spec), base, sample,
                             encoder_sample, query_sample, console)
            storages.append(storage)
        db.execute(sql.SQL("VACUUM ANALYZE {}").format(collection.info.table))

        nq = len(queries)
        with progress_bar("configurations", len(storages) + (len(BASELINES) if baselines else 0),
                          not quiet) as bar:
            advance = advancer(bar)
            for storage in storages:
                codec = codecs[storage.method]
                if storage.kind == "index":
                    _measure_index(collection, storage, queries, k, candidates, batch, emit)
                else:
                    _measure_client_scan(collection, storage, codec, base, queries, k, candidates, batch, emit)
                advance(1)
            if baselines:
                runner = BaselineRunner(db.new_connection(), collection.info.table, dim, k, queries)
                deep = BaselineRunner(runner.conn, collection.info.table, dim, 100, queries) if n >= 100 else None
                try:
                    for method in BASELINES:
                        _measure_baseline(runner, deep, method, n, k, candidates, emit, console)
                        advance(1)
                finally:
                    runner.conn.close()
        collection.drop(drop_table=True)

    meta = {"name": dataset.name, "source": dataset.source, "n_base": int(n), "dim": int(dim),
            "n_queries": int(nq), "fit_queries": int(fit_queries), "metric": dataset.metric, "k": k,
            "ground_truth": truth.source, "ground_truth_s": round(truth_s, 2), "load_s": round(load_s, 2),
            "fit_sample": int(len(sample)), "hnsw": HNSW_PARAMS, "candidates": list(candidates),
            "batch_workers": BATCH_WORKERS if batch else None}
    result = {"benchmark": "compression", "dataset": meta, "rows": rows,
              "seconds": round(time.perf_counter() - started_all, 1), "environment": environment}
    return result


def dataset_from_collection(collection: pgembed.Collection, queries_path: str | Path, gt_path: str | Path | None = None
                            ) -> Any:
    """An existing collection's vectors as a bench dataset (the bench copies them to a scratch collection and
    never touches the user's table). A ground-truth file holds the collection's keys; they become positions."""
    from pgembed.datasets.files import Dataset, read_ids, read_vectors

    rows = collection.count()
    if rows == 0:
        raise InvalidInputError(f"collection {collection.name!r} is empty: nothing to measure")
    keys, vectors = collection.sample_rows(rows)
    queries = read_vectors(queries_path, role="queries")
    if queries.shape[1] != collection.dim:
        raise InvalidInputError(f"queries {queries_path} have dimension {queries.shape[1]}, collection "
                                f"{collection.name!r} has {collection.dim}")
    gt = None
    if gt_path is not None:
        position = {key: i for i, key in enumerate(keys)}
        given = read_ids(gt_path)
        missing = sorted({int(x) for x in given.ravel()} - set(position))[:3]
        if missing:
            raise InvalidInputError(f"ground truth {gt_path} names keys not in {collection.name!r}: {missing}")
        gt = np.vectorize(lambda key: position[int(key)])(given)
    return Dataset(name=collection.name, base=vectors.astype(np.float32), queries=queries, gt=gt,
                   metric=collection.metric, source={"collection": collection.name, "rows": rows,
                                                     "queries": str(queries_path)})


def _knobs_text(knobs: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in knobs.items())


def _store(db: pgembed.Database, collection: pgembed.Collection, spec: str, codec: Codec, name: str | None,
           fit_s: float | None, base: np.ndarray, sample: np.ndarray, encoder_sample: sql.Identifier,
           query_sample: np.ndarray, console: Console) -> Storage:
    """Fit/encode timings, the SQL encoder's rate and the bytes on disk; the HNSW index for an indexed codec."""
    if name is not None:  # fitted by add_codec; this instance times numpy's encoder
        codec = collection.codec(name)
    else:
        t0 = time.perf_counter()
        codec.fit(sample, query_sample if codec.uses_queries else None)
        fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    codec.encode(base)
    encode_per_s = int(len(base) / (time.perf_counter() - t0))
    sql_rate, _ = sql_encode_rate(db, codec, encoder_sample, budget_s=2.0)
    if name is None:
        return Storage(spec, "client-scan", _stored_bytes(db, codec, sample[:1000]), fit_s=round(fit_s or 0, 2),
                       encode_per_s=encode_per_s, sql_encode_per_s=int(sql_rate))
    index = collection.create_index(name, "hnsw", m=HNSW_PARAMS["m"], ef_construction=HNSW_PARAMS["ef_construction"])
    info = next(c for c in collection.codecs() if c.name == name and c.state == "active")
    columns = [c for c, _ in schema.code_columns(info.column_name, codec)]
    storage = Storage(spec, "index", _bytes_per_vector(db.conn, collection.info.table, *map(sql.Identifier, columns)),
                      index_bytes=_relation_size(db.conn, index.index_name),
                      build_s=round(index.build_seconds or 0.0, 2), fit_s=round(fit_s or 0, 2),
                      encode_per_s=encode_per_s, sql_encode_per_s=int(sql_rate), name=name)
    console.print(f"codec {spec}: {storage.bytes_per_vector} B/vector, HNSW {storage.build_s}s "
                  f"{(storage.index_bytes or 0) / 2**20:.1f} MiB", highlight=False)
    return storage


def _stored_bytes(db: pgembed.Database, codec: Codec, vectors: np.ndarray) -> float:
    """Mean bytes on disk of the codec's SQL encoding, stored in a table (short varlena headers included)."""
    columns = [("code", codec.sql_encode(sql.SQL("v")))]
    columns += [(f"extra_{i}", codec.sql_encode_extra(e.suffix, sql.SQL("v")))
                for i, e in enumerate(codec.extra_columns())]
    with db.transaction():
        db.execute(sql.SQL("CREATE TEMP TABLE bench_codes_in (v vector({})) ON COMMIT DROP").format(
            sql.Literal(codec.dim)))
        with db.conn.cursor().copy("COPY bench_codes_in (v) FROM STDIN") as copy:
            for v in vectors:
                copy.write_row(("[" + ",".join(map(repr, v.tolist())) + "]",))
        db.execute(sql.SQL("CREATE TEMP TABLE bench_codes ON COMMIT DROP AS SELECT {} FROM bench_codes_in").format(
            sql.SQL(", ").join(sql.SQL("{} AS {}").format(e, sql.Identifier(c)) for c, e in columns)))
        return _bytes_per_vector(db.conn, sql.Identifier("bench_codes"), *(sql.Identifier(c) for c, _ in columns))


def _measure_index(collection: pgembed.Collection, storage: Storage, queries: np.ndarray, k: int,
                   candidates: Sequence[int], batch: bool, emit: Callable[..., None]) -> None:
    widest = max(max(candidates), k)
    for q in queries[:WARM_QUERIES]:
        collection.search(q, k, codec=storage.name, oversample=widest / k, ef_search=max(MIN_EF_SEARCH, widest),
                          plan="index")
    for c in candidates:
        knobs = {"candidates": max(c, k), "oversample": max(c, k) / k, "ef_search": max(MIN_EF_SEARCH, c)}
        options: dict[str, Any] = {"codec": storage.name, "oversample": knobs["oversample"],
                                   "ef_search": knobs["ef_search"], "plan": "index"}

        def run(i: int, options: dict[str, Any] = options) -> tuple[np.ndarray, None]:
            return np.asarray(collection.search(queries[i], k, **options).ids, dtype=np.int64), None

        timed = time_queries(run, len(queries))
        deep = None
        if knobs["candidates"] >= 100 and collection.count() >= 100:
            deep_options = {**options, "oversample": knobs["candidates"] / 100}
            deep = [np.asarray(collection.search(q, 100, **deep_options).ids, dtype=np.int64) for q in queries]
        batch_qps = None
        if batch:
            t0 = time.perf_counter()
            collection.search_batch(queries, k, workers=BATCH_WORKERS, **options)
            batch_qps = len(queries) / (time.perf_counter() - t0)
        emit(storage, knobs, timed, deep, batch_qps, "hnsw+rerank")


def _measure_client_scan(collection: pgembed.Collection, storage: Storage, codec: Codec, base: np.ndarray,
                         queries: np.ndarray, k: int, candidates: Sequence[int], batch: bool,
                         emit: Callable[..., None]) -> None:
    """Flat scan of the codes in numpy (held in memory, as FAISS's flat code indexes hold them), then the
    re-rank by exact distance in SQL. A query's latency = its scoring + its re-rank statement."""
    codes = codec.encode(base)
    extras = {e.suffix: codec.encode_extra(e.suffix, base) for e in codec.extra_columns()}
    depth = min(max(max(candidates), 100), len(base))
    scoring_s = np.empty(len(queries))
    ranked = np.empty((len(queries), depth), dtype=np.int64)
    for i in range(len(queries)):
        t0 = time.perf_counter()
        top = _top_candidates(codec, queries[i : i + 1], codes, extras, depth)
        ranked[i] = _order_by_code(codec, queries[i : i + 1], codes, extras, top)[0]
        scoring_s[i] = time.perf_counter() - t0
    batch_scoring_s = 0.0
    if batch:
        t0 = time.perf_counter()
        _order_by_code(codec, queries, codes, extras, _top_candidates(codec, queries, codes, extras, depth))
        batch_scoring_s = time.perf_counter() - t0
    info = collection.info
    rerank = sql.SQL("SELECT {key} FROM {table} WHERE {key} = ANY(%(ids)s) ORDER BY {vector} <=> %(q)s, {key} "
                     "LIMIT %(k)s").format(key=sql.Identifier(info.key_column), table=info.table,
                                           vector=sql.Identifier(info.vector_column))
    conn = collection.conn

    def rerank_ids(i: int, pool: np.ndarray, limit: int) -> np.ndarray:
        got = conn.execute(rerank, {"ids": pool.tolist(), "q": queries[i], "k": limit}, prepare=True).fetchall()
        return np.fromiter((r[0] for r in got), dtype=np.int64, count=len(got))

    for i in range(min(WARM_QUERIES, len(queries))):
        rerank_ids(i, ranked[i, :depth], k)
    for c in candidates:
        pool_size = min(max(c, k), depth)
        knobs = {"candidates": pool_size, "oversample": pool_size / k}

        def run(i: int, pool_size: int = pool_size) -> tuple[np.ndarray, None]:
            return rerank_ids(i, ranked[i, :pool_size], k), None

        timed = time_queries(run, len(queries))
        rerank_s = float(timed.latencies.sum())
        timed.latencies = timed.latencies + scoring_s
        deep = [rerank_ids(i, ranked[i, :pool_size], 100) for i in range(len(queries))] \
            if pool_size >= 100 else None
        batch_qps = len(queries) / (batch_scoring_s + rerank_s) if batch else None
        emit(storage, knobs, timed, deep, batch_qps, "client-scan+rerank")


def _measure_baseline(runner: BaselineRunner, deep: BaselineRunner | None, method: str, n: int, k: int,
                      candidates: Sequence[int], emit: Callable[..., None], console: Console) -> None:
    d = sql.Literal(runner.dim)
    expression, opclass, value = {
        "pgvector-hnsw-f32": (sql.SQL("embedding"), "vector_cosine_ops", sql.SQL("embedding")),
        "pgvector-hnsw-f16": (sql.SQL("embedding::halfvec({})").format(d), "halfvec_cosine_ops",
                              sql.SQL("embedding::halfvec({})").format(d)),
        "pgvector-bit-rerank": (sql.SQL("binary_quantize(embedding)::bit({})").format(d), "bit_hamming_ops",
                                sql.SQL("binary_quantize(embedding)::bit({})").format(d)),
    }[method]
    name = f"{TABLE}_{method.split('-')[-1] if method != 'pgvector-bit-rerank' else 'bit'}_hnsw"
    build_s, index_bytes = runner.build(name, expression, opclass)
    storage = Storage(method, "baseline", _bytes_per_vector(runner.conn, runner.table, value),
                      index_bytes=index_bytes, build_s=round(build_s, 2))
    console.print(f"baseline {method}: HNSW {build_s:.1f}s {index_bytes / 2**20:.1f} MiB", highlight=False)
    try:
        widest = max(max(candidates), k)
        runner.settings(max(MIN_EF_SEARCH, widest), "off")
        warm = runner.statement(method, None, f"{method} warm", widest)
        for q in runner.queries[:WARM_QUERIES]:
            runner.conn.execute(warm, {"q": q}).fetchall()
        for c in candidates:
            ef = max(c, k) if method != "pgvector-bit-rerank" else max(MIN_EF_SEARCH, c)
            knobs: dict[str, Any] = {"ef_search": ef}
            if method == "pgvector-bit-rerank":
                knobs = {"candidates": max(c, k), "ef_search": ef}
            runner.settings(ef, "off")
            statement = runner.statement(method, None, f"{method} {knobs}", knobs.get("candidates", 0))
            timed, label = runner.measure(statement, "off")
            results100 = None
            if deep is not None and (knobs.get("candidates", ef) >= 100):
                statement100 = deep.statement(method, None, f"{method} {knobs} k100", knobs.get("candidates", 0))
                results100 = deep.measure(statement100, "off")[0].results
            emit(storage, knobs, timed, results100, None, label)
    finally:
        runner.drop(name)


def results_table(result: dict[str, Any], *, every_row: bool = False) -> Table:
    """Per configuration, its fastest knob setting at recall@10 >= 0.95 (else its best recall)."""
    d = result["dataset"]
    title = (f"codecs on {d['name']}: {d['n_base']:,} x {d['dim']}, {d['n_queries']} queries, "
             f"recall@{d['k']} (best setting per codec: fastest at >= 0.95, else best recall)")
    table = Table(title=title)
    for column in ("method", "kind", "B/vector", "index B/v", "build s", "knobs", "recall@1", "recall@10",
                   "recall@100", "q/s", "batch q/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column in ("method", "kind", "knobs") else "right")
    chosen = result["rows"] if every_row else best_per_method(result["rows"])

    def fmt(value: Any, spec: str = ".3f") -> str:
        return "-" if value is None else format(value, spec)

    for r in chosen:
        table.add_row(r["method"], r["kind"], fmt(r["bytes_per_vector"], ".1f"),
                      fmt(r["index_bytes_per_vector"], ".0f"), fmt(r["build_s"], ".1f"), _knobs_text(r["knobs"]),
                      fmt(r.get("recall_at_1")),
                      fmt(r.get("recall_at_10")), fmt(r.get("recall_at_100")), fmt(r["qps"], ",.0f"),
                      fmt(r["batch_qps"], ",.0f"), fmt(r["p50_ms"], ".2f"), fmt(r["p99_ms"], ".2f"))
    return table


def best_per_method(rows: Sequence[dict[str, Any]], target: float = 0.95) -> list[dict[str, Any]]:
    """Per method, its fastest row at recall >= target, else its best recall; sorted by bytes."""

    def rank(r: dict[str, Any]) -> tuple[bool, float]:
        recall = r.get("recall_at_k") or 0.0
        return (True, float(r["qps"])) if recall >= target else (False, recall)

    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["method"] not in best or rank(r) > rank(best[r["method"]]):
            best[r["method"]] = r
    return sorted(best.values(), key=lambda r: r["bytes_per_vector"])
