"""`pgembed bench compression`: every codec measured inside PostgreSQL, with the memory it costs (issue 6).

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
from rich.console import Console
from rich.table import Table

import pgembed
from pgembed.codecs import Codec, make_codec
from pgembed.db import catalog
from pgembed.db.copy import read_vectors as read_collection_vectors
from pgembed.db.session import Session
from pgembed.engine.context import CollectionContext
from pgembed.errors import InvalidInputError
from pgembed.groundtruth import exact_topk, unit_rows
from pgembed.progress import advancer, progress_bar
from pgembed.statements import benchmarks
from pgembed.statements.benchmarks import Baseline
from pgembed.tools.bench.codecs import (
    load_sample_table,
    order_by_code,
    sql_encode_rate,
    sql_encoders,
    top_candidates,
)
from pgembed.tools.bench.environment import describe_environment
from pgembed.tools.bench.search import (
    HNSW_PARAMS,
    BaselineRunner,
    Timed,
    Truth,
    code_bytes,
    fresh_collection,
    mean_bytes,
    relation_size,
    run_concurrently,
    time_queries,
)

if TYPE_CHECKING:
    from psycopg.sql import Composed

TABLE = "pgembed_bench_codecs"
# Chosen so that every memory budget of 16..256 bytes per vector has candidates (on-disk sizes with headers:
# bit(b) takes b/8 + 5 bytes, bytea n + 1, halfvec(d) 2d + 8): pq12 13 B, pca88,bq 16 B, pq24 25 B,
# pca192,bq 29 B, pca128,bq2 37 B, pq48 49 B, bq 53 B, bq2 101 B, bq4 197 B, pca120,f16 248 B, ...
DEFAULT_SPECS = ("f16", "sq8", "bq", "bq2", "bq4", "osq4", "rabitq", "pq12", "pq24", "pq48", "pca88,bq",
                 "pca192,bq", "pca128,bq2", "pca120,f16", "mrl128", "leanvec128")
BASELINES = (Baseline.HNSW_F32, Baseline.HNSW_F16, Baseline.BIT_RERANK)
CANDIDATES = (10, 20, 40, 80, 160, 320)
MIN_EF_SEARCH = 40
INDEXABLE_TYPES = ("bit", "halfvec", "vector")
RECALL_KS = (1, 10, 100)
BATCH_WORKERS = 2  # this machine's cores
WARM_QUERIES = 50  # run at a configuration's widest setting before its sweep: its index pages get cached
STORED_CODES = "bench_codes"


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
    """Per k measured, a Truth over the whole base: the k-th exact score per query."""

    truths: dict[int, Truth]
    source: str
    file_agreement: float | None = None  # recall@k of a given ground-truth file against this truth

    def recalls(self, scoring: np.ndarray, queries: np.ndarray, results: Sequence[np.ndarray], k: int,
                results100: Sequence[np.ndarray] | None) -> dict[str, float | None]:
        """recall@r for every r measured: from the k-row results for r <= k (a short list counts its missing
        ids as misses), from the deep pass (k = 100) for r = 100 when there was one."""
        out: dict[str, float | None] = {}
        for r, truth in self.truths.items():
            got: float | None = None
            if r <= k:
                got = truth.recall(scoring, queries, [np.asarray(ids)[:r] for ids in results])
            elif r == 100 and results100 is not None:
                got = truth.recall(scoring, queries, list(results100))
            out[f"recall_at_{r}"] = None if got is None else round(got, 4)
        return out


def ground_truth(scoring: np.ndarray, queries: np.ndarray, gt: np.ndarray | None, ks: Sequence[int]
                 ) -> GroundTruth:
    """The k-th best exact score per query, always computed (exact, blockwise, on the vectors as loaded). A
    given top-k file is compared with it, not trusted: a wrong file would lower the bar and inflate recall."""
    deepest = max(ks)
    distances = -exact_topk(scoring, queries, deepest, "ip")[1]
    everything = np.ones(len(scoring), dtype=bool)
    truths = {k: Truth(None, None, everything, distances[:, :k]) for k in ks}
    agreement = None
    if gt is not None:
        depth = min(gt.shape[1], deepest)
        truth = truths.get(depth) or Truth(None, None, everything, distances[:, :depth])
        got = truth.recall(scoring, queries, list(np.asarray(gt)[:, :depth]))
        agreement = None if got is None else round(got, 5)
    return GroundTruth(truths, "computed: exact top-k in numpy (float32, cosine)", agreement)


def check_metric(dataset: Any, base: np.ndarray) -> None:
    """The bench measures cosine similarity; inner-product data qualifies only when it is unit length."""
    if dataset.metric == "cosine":
        return
    if dataset.metric == "ip":
        norms = np.linalg.norm(base[: min(len(base), 10_000)], axis=1)
        if np.all(np.abs(norms - 1) < 1e-2):
            return
        raise InvalidInputError(f"dataset {dataset.name!r}: inner-product data that is not unit length (norms "
                                f"{norms.min():.3g}..{norms.max():.3g}); the compression bench measures cosine "
                                "(give metric 'cosine' if that is what you search by)")
    raise InvalidInputError(f"dataset {dataset.name!r} has metric {dataset.metric!r}; the compression bench "
                            "measures cosine (unit-length inner product too); give --metric cosine if the "
                            "vectors are meant to be compared by angle")


def codec_names(codecs: dict[str, Codec]) -> dict[str, str]:
    """A column-safe codec name per spec; two specs for the same codec ('pca88,bq', 'pca88+bq') are refused."""
    seen: dict[str, str] = {}
    for spec, codec in codecs.items():
        if codec.spec in seen:
            raise InvalidInputError(f"codec specs {seen[codec.spec]!r} and {spec!r} are the same codec")
        seen[codec.spec] = spec
    return {spec: f"c{i}_" + re.sub(r"\W+", "_", codecs[spec].spec)[:40] for i, spec in enumerate(codecs)}


@contextmanager
def scratch_collection(db: pgembed.Database, dim: int) -> Iterator[pgembed.Collection]:
    """The bench's own collection, dropped afterwards even when the run fails. A table of that name that is
    not a leftover bench collection is refused, never dropped."""
    existing = catalog.find_collection(db.session, TABLE)
    table = db.session.row(benchmarks.REGCLASS, (TABLE,))
    if existing is None and table is not None and table[0] is not None:
        raise InvalidInputError(f"a table {TABLE!r} exists and is not a bench collection: rename it, or point "
                                "the bench at another database")
    collection = fresh_collection(db, TABLE, dim, {})
    try:
        yield collection
    finally:
        if not db.conn.closed:
            if db.in_transaction:
                db.conn.rollback()
            collection.drop(drop_table=True)


def _indexable(codec: Codec) -> bool:
    return codec.sql_type().split("(")[0] in INDEXABLE_TYPES


def run_compression_bench(dataset: Any, specs: Sequence[str] | None = None, *, k: int = 10,
                          baselines: bool = True, candidates: Sequence[int] = CANDIDATES,
                          queries_limit: int | None = None, fit_sample: int = 50_000, fit_queries: int | None = None,
                          batch: bool = True, dsn: str | None = None, data_dir: str | Path | None = None,
                          quiet: bool = False) -> dict[str, Any]:
    """Measure every codec configuration of `specs` (default DEFAULT_SPECS) and the plain-pgvector baselines
    on `dataset` (a pgembed.tools.datasets.Dataset): one row per configuration and knob setting."""
    console = Console(quiet=quiet, stderr=True)
    started_all = time.perf_counter()
    if k < 1 or any(c < 1 for c in candidates):
        raise InvalidInputError("k and every candidates value must be at least 1")
    specs = list(DEFAULT_SPECS if specs is None else specs)
    if not specs and not baselines:
        raise InvalidInputError("nothing to measure: no codecs and no baselines")
    base = np.ascontiguousarray(dataset.base, dtype=np.float32)
    if base.ndim != 2 or len(base) == 0:
        raise InvalidInputError(f"dataset {dataset.name!r} has no base vectors")
    n, dim = base.shape
    check_metric(dataset, base)
    codecs = {spec: make_codec(spec, dim) for spec in specs}  # bad specs fail before any work
    names = codec_names(codecs)
    all_queries = np.ascontiguousarray(dataset.queries, dtype=np.float32)
    if all_queries.ndim != 2 or all_queries.shape[1] != dim:
        raise InvalidInputError(f"queries of shape {all_queries.shape} do not match base vectors of dimension {dim}")
    if fit_queries is None:
        fit_queries = min(200, len(all_queries) // 5) if any(c.uses_queries for c in codecs.values()) else 0
    if not 0 <= fit_queries < len(all_queries):
        raise InvalidInputError(f"fit_queries={fit_queries} leaves none of the {len(all_queries)} queries to "
                                "measure with")
    query_sample = all_queries[:fit_queries]
    stop = len(all_queries) if queries_limit is None else min(len(all_queries), fit_queries + queries_limit)
    # The scratch collection's metric is cosine: queries and truth on unit vectors (float16-shipped "unit"
    # vectors are off by ~1e-4 in norm, enough to reorder near-ties against inner product).
    queries = unit_rows(all_queries[fit_queries:stop])
    if len(queries) == 0:
        raise InvalidInputError("no queries to measure with (queries_limit must be positive)")
    gt = None if dataset.gt is None else np.asarray(dataset.gt)[fit_queries:stop]
    scoring = unit_rows(base)
    started = time.perf_counter()
    truth = ground_truth(scoring, queries, gt, sorted({x for x in (*RECALL_KS, k) if x <= n}))
    truth_s = time.perf_counter() - started
    if truth.file_agreement is not None:
        console.print(f"ground truth computed; the given file's top ids agree at recall {truth.file_agreement:.4f}")
    rng = np.random.default_rng(0)
    sample = base[np.sort(rng.choice(n, min(fit_sample, n), replace=False))]

    rows: list[dict[str, Any]] = []
    storages: list[Storage] = []

    def emit(storage: Storage, knobs: dict[str, Any], timed: Timed, results100: list[np.ndarray] | None,
             batch_qps: float | None, plan: str) -> None:
        latencies = timed.latencies
        row = {**storage.row(n), "knobs": knobs, "plan": plan, "k": k,
               **truth.recalls(scoring, queries, timed.results, k, results100),
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

    with pgembed.connect(dsn, data_dir=data_dir, migrate=True) as db, scratch_collection(db, dim) as collection:
        environment = describe_environment(db)
        # Codecs with an index type go on before the load: the database computes their codes in the COPY.
        indexed = {spec: c for spec, c in codecs.items() if _indexable(c)}
        fits: dict[str, float] = {}
        for spec in indexed:
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
            storage = _store(db, collection, spec, codec, names[spec] if spec in indexed else None, fits.get(spec),
                             base, sample, encoder_sample, query_sample, console)
            storages.append(storage)
        db.session.execute(benchmarks.vacuum_analyze(collection.info.table))

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
                runner = BaselineRunner(Session(db.new_connection()), collection.info, k, queries)
                deep = BaselineRunner(runner.session, collection.info, 100, queries) if n >= 100 else None
                try:
                    for method in BASELINES:
                        _measure_baseline(runner, deep, method, k, candidates, emit, console,
                                          db.new_connection if batch else None)
                        advance(1)
                finally:
                    runner.session.conn.close()

    meta = {"name": dataset.name, "source": dataset.source, "n_base": int(n), "dim": int(dim),
            "n_queries": int(nq), "fit_queries": int(fit_queries), "metric": "cosine",
            "dataset_metric": dataset.metric, "k": k, "ground_truth": truth.source,
            "gt_file_agreement": truth.file_agreement, "ground_truth_s": round(truth_s, 2), "load_s": round(load_s, 2),
            "fit_sample": int(len(sample)), "hnsw": HNSW_PARAMS, "candidates": list(candidates),
            "batch_workers": BATCH_WORKERS if batch else None,
            "batch": "index and baseline rows: the queries spread over batch_workers connections (search_batch("
                     "plan='index') for pgembed); client-scan rows: one numpy scan for all queries, then the "
                     "re-rank statements on one connection"}
    result = {"benchmark": "compression", "dataset": meta, "rows": rows,
              "seconds": round(time.perf_counter() - started_all, 1), "environment": environment}
    return result


def dataset_from_collection(db: pgembed.Database, name: str, queries_path: str | Path,
                            gt_path: str | Path | None = None) -> Any:
    """An existing collection's vectors (every row with a vector) as a bench dataset. The
    collection is only read: the bench measures a scratch copy. A ground-truth file holds the collection's
    keys; they become row positions."""
    from pgembed.tools.datasets.files import Dataset, read_ids, read_vectors

    info = catalog.find_collection(db.session, name)
    if info is None:
        raise InvalidInputError(f"no collection named {name!r} (attach a table first: pgembed attach TABLE)")
    if info.name == TABLE:
        raise InvalidInputError(f"{TABLE!r} is the bench's own scratch collection; name another")
    context = CollectionContext(db.session, info)
    # Binary COPY of every row with a vector; the catalog is not touched.
    blocks = list(read_collection_vectors(context.session, info, benchmarks.EVERY_ROW, context.key_type()))
    if not blocks:
        raise InvalidInputError(f"collection {name!r} has no vectors: nothing to measure")
    keys = [key for block_keys, _ in blocks for key in block_keys]
    vectors = np.concatenate([block_vectors for _, block_vectors in blocks])
    queries = read_vectors(queries_path, role="queries")
    if queries.shape[1] != vectors.shape[1]:
        raise InvalidInputError(f"queries {queries_path} have dimension {queries.shape[1]}, collection "
                                f"{name!r} has {vectors.shape[1]}")
    gt = None
    if gt_path is not None:
        given = read_ids(gt_path)
        if given.shape[0] != len(queries):
            raise InvalidInputError(f"ground truth {gt_path} has {given.shape[0]} rows for {len(queries)} queries")
        position = {key: i for i, key in enumerate(keys)}
        missing = sorted({int(x) for x in given.ravel()} - set(position))[:3]
        if missing:
            raise InvalidInputError(f"ground truth {gt_path} names keys not in {name!r}: {missing}")
        gt = np.vectorize(lambda key: position[int(key)])(given)
    return Dataset(name=name, base=vectors, queries=queries, gt=gt, metric=info.metric,
                   source={"collection": name, "rows": len(keys), "queries": str(queries_path),
                           "notes": ["rows whose vector is NULL are left out"]})


def _knobs_text(knobs: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in knobs.items())


def _store(db: pgembed.Database, collection: pgembed.Collection, spec: str, codec: Codec, name: str | None,
           fit_s: float | None, base: np.ndarray, sample: np.ndarray, encoder_sample: str,
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
        return Storage(spec, "client-scan", _stored_bytes(db, codec, encoder_sample), fit_s=round(fit_s or 0, 2),
                       encode_per_s=encode_per_s, sql_encode_per_s=int(sql_rate))
    index = collection.create_index(name, "hnsw", m=HNSW_PARAMS["m"], ef_construction=HNSW_PARAMS["ef_construction"],
                                    progress=not console.quiet)
    storage = Storage(spec, "index", code_bytes(collection, name),
                      index_bytes=relation_size(db.session, index.index_name),
                      build_s=round(index.build_seconds or 0.0, 2), fit_s=round(fit_s or 0, 2),
                      encode_per_s=encode_per_s, sql_encode_per_s=int(sql_rate), name=name)
    console.print(f"codec {spec}: {storage.bytes_per_vector} B/vector, HNSW {storage.build_s}s "
                  f"{(storage.index_bytes or 0) / 2**20:.1f} MiB", highlight=False)
    return storage


def _stored_bytes(db: pgembed.Database, codec: Codec, vectors: str, rows: int = 1000) -> float:
    """Mean bytes on disk of the codec's SQL encoding of `rows` vectors of the sample table `vectors`, stored
    in a table (short varlena headers included)."""
    encoders = sql_encoders(codec)
    with db.transaction():
        db.session.execute(benchmarks.create_stored_codes(STORED_CODES, vectors, encoders, rows))
        return mean_bytes(db.session, benchmarks.stored_code_bytes(STORED_CODES, len(encoders), rows))


def _measure_index(collection: pgembed.Collection, storage: Storage, queries: np.ndarray, k: int,
                   candidates: Sequence[int], batch: bool, emit: Callable[..., None]) -> None:
    widest = max(max(candidates), k)
    for q in queries[:WARM_QUERIES]:
        collection.search(q, k, codec=storage.name, oversample=widest / k, ef_search=max(MIN_EF_SEARCH, widest),
                          plan="index")
    for c in candidates:
        fetched = max(c, k)
        knobs = {"candidates": fetched, "oversample": fetched / k, "ef_search": max(MIN_EF_SEARCH, fetched)}
        options: dict[str, Any] = {"codec": storage.name, "oversample": knobs["oversample"],
                                   "ef_search": knobs["ef_search"], "plan": "index"}

        def run(i: int, options: dict[str, Any] = options) -> tuple[np.ndarray, None]:
            return np.asarray(collection.search(queries[i], k, **options).ids, dtype=np.int64), None

        timed = time_queries(run, len(queries))
        deep = None
        if fetched >= 100:
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
        top = top_candidates(codec, queries[i : i + 1], codes, extras, depth)
        ranked[i] = order_by_code(codec, queries[i : i + 1], codes, extras, top)[0]
        scoring_s[i] = time.perf_counter() - t0
    batch_scoring_s = 0.0
    if batch:
        t0 = time.perf_counter()
        order_by_code(codec, queries, codes, extras, top_candidates(codec, queries, codes, extras, depth))
        batch_scoring_s = time.perf_counter() - t0
    rerank = benchmarks.rerank_keys(collection.info)
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


def concurrent_qps(connect: Callable[[], psycopg.Connection], statement: Composed, queries: np.ndarray,
                   ef_search: int, workers: int = BATCH_WORKERS) -> float:
    """Plain pgvector's batch: the same statement, the queries spread over `workers` connections at once
    (what an application without a batch API does); queries per second of wall time."""
    connections = [connect() for _ in range(workers)]
    try:
        for conn in connections:
            for setting in benchmarks.set_hnsw(ef_search):
                conn.execute(setting)
            conn.execute(statement, {"q": queries[0]}, prepare=True).fetchall()
        def work(conn: psycopg.Connection, share: np.ndarray) -> Callable[[], None]:
            def run() -> None:
                for q in share:
                    conn.execute(statement, {"q": q}, prepare=True).fetchall()
            return run

        elapsed = run_concurrently([work(conn, queries[i::workers]) for i, conn in enumerate(connections)])
        return len(queries) / elapsed
    finally:
        for conn in connections:
            conn.close()


def _measure_baseline(runner: BaselineRunner, deep: BaselineRunner | None, method: Baseline, k: int,
                      candidates: Sequence[int], emit: Callable[..., None], console: Console,
                      connect: Callable[[], psycopg.Connection] | None) -> None:
    name = f"{TABLE}_{'bit' if method is Baseline.BIT_RERANK else method.split('-')[-1]}_hnsw"
    build_s, index_bytes = runner.build(method, name)
    value_bytes = mean_bytes(runner.session, benchmarks.baseline_value_bytes(runner.info, method))
    storage = Storage(method.value, "baseline", value_bytes, index_bytes=index_bytes, build_s=round(build_s, 2))
    console.print(f"baseline {method}: HNSW {build_s:.1f}s {index_bytes / 2**20:.1f} MiB", highlight=False)
    try:
        widest = max(max(candidates), k)
        runner.settings(max(MIN_EF_SEARCH, widest), "off")
        warm = runner.statement(method, None, f"{method} warm", widest)
        for query in runner.queries[:WARM_QUERIES]:
            runner.session.rows(warm, {"q": query})
        for c in candidates:
            ef = max(c, k) if method is not Baseline.BIT_RERANK else max(MIN_EF_SEARCH, c)
            knobs: dict[str, Any] = {"ef_search": ef}
            if method is Baseline.BIT_RERANK:
                knobs = {"candidates": max(c, k), "ef_search": ef}
            runner.settings(ef, "off")
            statement = runner.statement(method, None, f"{method} {knobs}", knobs.get("candidates", 0))
            timed, label = runner.measure(statement, "off")
            results100 = None
            if deep is not None and (knobs.get("candidates", ef) >= 100):
                statement100 = deep.statement(method, None, f"{method} {knobs} k100", knobs.get("candidates", 0))
                results100 = deep.measure(statement100, "off")[0].results
            batch_qps = None if connect is None else concurrent_qps(connect, statement, runner.queries, ef)
            emit(storage, knobs, timed, results100, batch_qps, label)
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
