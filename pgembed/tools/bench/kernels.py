"""The C kernels against their SQL twins (issue 13), in one database and one run, interleaved and repeated:
SQL encoding rows/s for every codec, ingest into a table keeping pq48 + bq2 + f16 codes, code distances/s of
the estimators, search_batch() in SQL against its one-query-at-a-time form (the same answers checked), the
extension's build time, and a backend's memory over a million kernel calls.

Everything runs on one backend (no parallel workers). The twins are timed on a prefix of the rows sized to
take about `twin_seconds` (their rates are per row, so the prefix only bounds the run's length).
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from psycopg import sql
from rich.console import Console
from rich.table import Table

import pgembed
from pgembed.codecs import SOURCE, make_codec
from pgembed.codecs.pq import PQCodec
from pgembed.db.kernels import ensure_kernels
from pgembed.groundtruth import exact_topk, recall_at_k, unit_rows
from pgembed.statements import benchmarks as q
from pgembed.statements import catalog as catalog_statements
from pgembed.tools.bench.environment import describe_environment
from pgembed.tools.bench.search import fresh_collection, load_attrs
from pgembed.tools.datasets.files import load_dataset_dir
from pgembed.vocabulary import KernelBenchPart, KernelMode

TABLE = "pgembed_bench_kernels"
INGEST_TABLE = "pgembed_bench_kernels_ingest"
CODECS = ("f16", "bq", "bq2", "bq4", "sq8", "osq4", "pq48", "mrl128", "pca128", "pca128,bq2", "leanvec128",
          "rabitq", "ivf320", "ivf1024")
INGEST_CODECS = ("pq48", "bq2", "f16")
UNFOLDED_PQ = "pq48"
ESTIMATORS = (("pq48", "pq_distance"), ("sq8", "sq8_distance"), ("bq2", "bits_distance"),
              ("rabitq", "rabitq_distance"))
# pgembed.estimate_topk: one read of the codes for this many queries at once
SCAN_CODECS = ("pq48", "sq8", "bq2")
SCAN_QUERIES = (1, 16, 64, 256)
TWIN_SCAN_QUERIES = 16
COMPACT_TIER_QUERIES = (64, 256)
COMPACT_TIER_CANDIDATES = (40, 100)
# the partitionings probe_topk reads, and the clusters a query reads in each; plain pgvector's HNSW beside them
PROBE_CODECS = {"ivf320": (16, 32, 48, 64), "ivf1024": (32, 64, 96, 128)}
PROBE_FIT_ROWS = 50_000
PGVECTOR_EF = (40, 64, 100, 200)
TWIN_PROBE_QUERIES = 50
PARTS = tuple(KernelBenchPart)
MODES = (KernelMode.KERNELS, KernelMode.TWINS)
FIT_ROWS = 20_000


def _bind(db: pgembed.Database, mode: KernelMode) -> None:
    active = db.session.value(catalog_statements.BIND_KERNELS, (mode is KernelMode.KERNELS, False))
    if active != mode.value:
        raise pgembed.PgembedError(f"asked for the {mode.value}, the database runs the {active}: "
                                   f"{db.kernels().reason}")


def _orders(repeats: int) -> list[tuple[KernelMode, ...]]:
    """Kernels first in even repeats, twins first in odd ones: drift on a noisy machine hits both alike."""
    return [MODES if r % 2 == 0 else MODES[::-1] for r in range(repeats)]


def _timed(db: pgembed.Database, statement: sql.Composable, params: Any) -> float:
    started = time.perf_counter()
    db.session.execute(statement, params).fetchall()
    return time.perf_counter() - started


def _rate(db: pgembed.Database, statement: sql.Composable, fixed: tuple[Any, ...], rows: int) -> float:
    """Rows/s of `statement` with parameters (*fixed, rows): its rows are the first `rows` of the table."""
    return rows / _timed(db, statement, (*fixed, rows))


def _interleaved(db: pgembed.Database, rate: Callable[[int], float], rows: int, repeats: int,
                 twin_seconds: float) -> tuple[dict[str, list[float]], dict[str, int]]:
    """`rate(n)`, rows/s on the first n rows with the mode bound now, in both modes and every repeat: the kernels
    on `rows`, the twins on a prefix that takes about `twin_seconds` (a probe on 100 rows; 200 to `rows`)."""
    samples: dict[str, list[float]] = {m.value: [] for m in MODES}
    sizes: dict[str, int] = {}
    for order in _orders(repeats):
        for mode in order:
            _bind(db, mode)
            if mode.value not in sizes:
                sizes[mode.value] = rows if mode is KernelMode.KERNELS else int(
                    min(rows, max(200, rate(100) * twin_seconds)))
            samples[mode.value].append(rate(sizes[mode.value]))
    return samples, sizes


def _median_rates(samples: dict[str, list[float]]) -> dict[str, float]:
    return {mode: round(statistics.median(v)) for mode, v in samples.items()}


def _summary(samples: dict[str, list[float]]) -> dict[str, Any]:
    medians = _median_rates(samples)
    return {"per_s": medians, "runs": {m: [round(x) for x in v] for m, v in samples.items()},
            "kernel_over_twin": round(medians["kernels"] / medians["twins"], 1) if medians.get("twins") else None}


def measure_build(repeats: int) -> dict[str, Any]:
    from pgembed.tools import kernels

    seconds = []
    for _ in range(repeats):
        built = kernels.build()
        seconds.append(built.seconds)
        shutil.rmtree(built.directory, ignore_errors=True)
    return {"seconds": [round(s, 2) for s in seconds], "median_s": round(statistics.median(seconds), 2),
            "cflags": built.cflags}


def measure_encoders(db: pgembed.Database, sample: np.ndarray, queries: np.ndarray, rows: int, repeats: int,
                     twin_seconds: float, console: Console) -> dict[str, Any]:
    table = sql.Identifier(TABLE)
    results: dict[str, Any] = {}
    for spec in CODECS:
        codec = make_codec(spec, sample.shape[1])
        codec.fit(sample, queries if codec.uses_queries else None)
        expressions = [codec.sql_encoder(SOURCE), *(codec.sql_extra_encoder(e.suffix) for e in codec.extra_columns())]
        statement = q.count_encoded(table, "id", expressions, "embedding")
        samples, sizes = _interleaved(db, partial(_rate, db, statement, ()), rows, repeats, twin_seconds)
        results[spec] = {**_summary(samples), "rows": sizes}
        console.print(f"  encode {spec}: {results[spec]['per_s']}")
        if spec == UNFOLDED_PQ and isinstance(codec, PQCodec):
            results[f"{spec} (codebook not a constant)"] = _unfolded_pq(db, codec, table, rows, repeats)
    return results


def _unfolded_pq(db: pgembed.Database, codec: PQCodec, table: sql.Identifier, rows: int,
                 repeats: int) -> dict[str, Any]:
    """The kernel with the codebook as a value read from a subquery, interleaved with the constant form: what
    the prepared codebook (an int8 copy scored first, the few closest centroids re-checked exactly) is worth."""
    columns, norms = codec.sql_codebook()
    folded = q.count_encoded(table, "id", [codec.sql_encoder(SOURCE)], "embedding")
    unfolded = q.count_pq_encoded_unfolded(table, "id", "embedding", codec.sub)
    _bind(db, KernelMode.KERNELS)
    pairs = [(_rate(db, folded, (), rows), _rate(db, unfolded, (columns.text, norms.text), rows))
             for _ in range(repeats)]
    constant, parameter = (round(statistics.median(x)) for x in zip(*pairs, strict=True))
    return {"per_s": {"kernels": parameter}, "constant_per_s": constant,
            "runs": {"kernels": [round(p) for _, p in pairs], "constant": [round(c) for c, _ in pairs]},
            "constant_over_parameter": round(constant / parameter, 2), "rows": {"kernels": rows}}


def measure_ingest(db: pgembed.Database, vectors: np.ndarray, sample: np.ndarray, rows: int, repeats: int,
                   twin_seconds: float, console: Console) -> dict[str, Any]:
    collection = fresh_collection(db, INGEST_TABLE, vectors.shape[1], {})
    for spec in INGEST_CODECS:
        collection.add_codec(spec, spec, fit_on=sample)
    table = sql.Identifier(INGEST_TABLE)

    def rate(n: int) -> float:
        db.session.execute(q.truncate(table))
        db.session.execute(q.CHECKPOINT)
        started = time.perf_counter()
        collection.ingest(np.arange(n), vectors[:n])
        return n / (time.perf_counter() - started)

    samples, sizes = _interleaved(db, rate, rows, repeats, twin_seconds)
    console.print(f"  ingest pq48+bq2+f16: {_median_rates(samples)}")
    collection.drop(drop_table=True)
    return {**_summary(samples), "rows": sizes, "codecs": list(INGEST_CODECS)}


def measure_estimators(db: pgembed.Database, collection: pgembed.Collection, query: np.ndarray, rows: int,
                       repeats: int, twin_seconds: float, console: Console) -> dict[str, Any]:
    table = collection.info.table
    results: dict[str, Any] = {}
    for codec, estimator in ESTIMATORS:
        column = _column(collection, codec)
        arguments = [column, f"{column}_factors"] if codec == "rabitq" else [column]
        lut = db.session.value(q.QUERY_TABLE, (collection.name, codec, query))
        statement = q.count_estimated(table, collection.info.key_column, f"pgembed.{estimator}", arguments)
        samples, sizes = _interleaved(db, partial(_rate, db, statement, (lut,)), rows, repeats,
                                      twin_seconds)
        results[codec] = {"estimator": estimator, **_summary(samples), "rows": sizes}
        console.print(f"  estimate {codec} ({estimator}): {results[codec]['per_s']}")
    # pgvector's exact distance on the float vectors and its Hamming distance on bit codes, same scan, same run
    for name, column, operator, cast, value in (
            ("pgvector <#> on vector(384)", collection.info.vector_column, "<#>", "vector", query),
            ("pgvector <~> on bq2 bits", _column(collection, "bq2"), "<~>", "varbit",
             "1" * (2 * len(query)))):
        statement = q.count_distances(table, collection.info.key_column, column, operator, cast)
        results[name] = {"per_s": {"pgvector": round(statistics.median(
            _rate(db, statement, (value,), rows) for _ in range(repeats)))}}
        console.print(f"  {name}: {results[name]['per_s']}")
    return results


def measure_estimate_topk(db: pgembed.Database, collection: pgembed.Collection, queries: np.ndarray, rows: int,
                          k: int, repeats: int, twin_seconds: float, console: Console) -> dict[str, Any]:
    """pgembed.estimate_topk's code distances/s (queries x rows / s), the query tables made inside the timing:
    the kernels over every row; the twins (one statement per query) over the rows of the first n keys, and only
    for up to TWIN_SCAN_QUERIES queries, since their cost is per distance whatever the number of queries."""
    results: dict[str, Any] = {}
    key = collection.info.key_column
    for codec in SCAN_CODECS:
        for nq in SCAN_QUERIES:
            batch = list(queries[:nq])

            def rows_per_s(n: int, codec: str = codec, batch: list[np.ndarray] = batch) -> float:
                where = None if n >= rows else json.dumps({key: {"$lt": n}})
                return n / _timed(db, q.ESTIMATE_TOPK, (collection.name, codec, batch, k, where))

            if nq <= TWIN_SCAN_QUERIES:
                samples, sizes = _interleaved(db, rows_per_s, rows, repeats, twin_seconds)
            else:
                _bind(db, KernelMode.KERNELS)
                samples = {KernelMode.KERNELS.value: [rows_per_s(rows) for _ in range(repeats)]}
                sizes = {KernelMode.KERNELS.value: rows}
            distances = {mode: [nq * r for r in rates] for mode, rates in samples.items()}
            name = f"{codec} x {nq}"
            results[name] = {"codec": codec, "queries": nq, **_summary(distances), "rows": sizes}
            console.print(f"  estimate_topk {codec}, {nq} queries, distances/s: {results[name]['per_s']}")
    return results


def measure_compact_tier(db: pgembed.Database, collection: pgembed.Collection, queries: np.ndarray, k: int,
                         repeats: int, console: Console) -> dict[str, Any]:
    """A batch's compact tier against the exact scan, kernels bound, interleaved: pgembed.estimate_topk with
    `candidates` (codes for all the queries in one read, then the candidates' exact distances) and
    pgembed.scan_topk (every row's exact distance); q/s, and recall@k against the exact scan's distances."""
    _bind(db, KernelMode.KERNELS)
    results: dict[str, Any] = {}
    for nq in COMPACT_TIER_QUERIES:
        batch = list(queries[:nq])
        forms: dict[str, tuple[sql.Composable, tuple[Any, ...]]] = {"exact scan_topk": (q.SCAN_TOPK, (
            collection.name, batch, k))}
        for codec in SCAN_CODECS:
            for candidates in COMPACT_TIER_CANDIDATES:
                forms[f"{codec}, {candidates} candidates"] = (q.ESTIMATE_RERANK, (
                    collection.name, codec, batch, k, candidates))
        seconds: dict[str, list[float]] = {name: [] for name in forms}
        answers: dict[str, list[tuple[Any, ...]]] = {}
        for r in range(repeats):
            for name in (list(forms) if r % 2 == 0 else list(forms)[::-1]):
                statement, params = forms[name]
                started = time.perf_counter()
                answers[name] = db.session.rows(statement, params)
                seconds[name].append(time.perf_counter() - started)
        truth = _distances_by_query(answers["exact scan_topk"], nq)
        for name, runs in seconds.items():
            found = _distances_by_query(answers[name], nq)
            results[f"{name} x {nq}"] = {
                "queries": nq, "q_per_s": round(nq / statistics.median(runs), 1),
                "runs_s": [round(x, 3) for x in runs], "recall_at_k": round(recall_at_k(found, truth, k), 4)}
            console.print(f"  compact tier {name}, {nq} queries: {results[f'{name} x {nq}']}")
    return results


def _distances_by_query(rows: list[tuple[Any, ...]], nq: int) -> list[np.ndarray]:
    by_query: list[list[float]] = [[] for _ in range(nq)]
    for query_no, _key, distance in rows:
        by_query[query_no - 1].append(distance)
    return [np.asarray(d, dtype=np.float64) for d in by_query]


def _column(collection: pgembed.Collection, codec: str) -> str:
    return next(c.column_name for c in collection.codecs() if c.name == codec)


def _answers(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(*r[:-1], "NaN" if r[-1] != r[-1] else r[-1]) for r in rows]


def measure_search_batch(db: pgembed.Database, collection: pgembed.Collection, queries: np.ndarray,
                         workloads: dict[str, list[str | None]], k: int, repeats: int,
                         console: Console) -> dict[str, Any]:
    results: dict[str, Any] = {}
    name = collection.name
    qlist = list(queries)
    for workload, filters in workloads.items():
        kinds: dict[str, int] = {}
        for f in dict.fromkeys(filters):
            kind = db.session.value(q.SEARCH_PLAN_KIND, (name, queries[0], k, f))
            kinds[kind] = kinds.get(kind, 0) + filters.count(f)
        times: dict[str, list[float]] = {f"{m.value} {form}": [] for m in MODES for form in ("batch", "loop")}
        answers: dict[str, list[tuple[Any, ...]]] = {}
        for order in _orders(repeats):
            for mode in order:
                _bind(db, mode)
                started = time.perf_counter()
                batch = db.session.rows(q.SEARCH_BATCH, (name, qlist, k, filters))
                times[f"{mode.value} batch"].append(time.perf_counter() - started)
                started = time.perf_counter()
                loop: list[tuple[Any, ...]] = []
                for i, vector in enumerate(qlist):
                    loop += [(i + 1, *r) for r in db.session.rows(q.SEARCH_ONE, (name, vector, k, filters[i]))]
                times[f"{mode.value} loop"].append(time.perf_counter() - started)
                answers.setdefault(f"{mode.value} batch", _answers(batch))
                answers.setdefault(f"{mode.value} loop", _answers(loop))
        reference = answers["kernels loop"]
        same = {key: value == reference for key, value in answers.items()}
        qps = {key: round(len(qlist) / statistics.median(v), 1) for key, v in times.items()}
        results[workload] = {
            "queries": len(qlist), "k": k, "plans": kinds, "q_per_s": qps,
            "batch_over_loop": {m.value: round(qps[f"{m.value} batch"] / qps[f"{m.value} loop"], 2) for m in MODES},
            "same_answers_as_kernels_loop": same, "rows_returned": len(reference),
            "seconds": {key: [round(x, 3) for x in v] for key, v in times.items()},
        }
        console.print(f"  search_batch {workload}: {qps} same={same}")
    return results


def measure_probe(db: pgembed.Database, collection: pgembed.Collection, base: np.ndarray, queries: np.ndarray,
                  k: int, repeats: int, console: Console) -> dict[str, Any]:
    """pgembed.probe_topk for all the queries at once, per partitioning and probes, against plain pgvector's
    HNSW on the float32 column (m 16, ef_construction 64) one query at a time, each ef_search (the queries sent
    in pgvector's binary format by both); interleaved,
    `repeats` rounds in rotated order, the median. Recall@k against the exact scan (pgembed.scan_topk).
    The twins answer the first TWIN_PROBE_QUERIES queries at one setting, checked equal to the kernels'."""
    _bind(db, KernelMode.KERNELS)
    batch = list(queries)
    built: dict[str, float] = {}
    for spec in PROBE_CODECS:
        started = time.perf_counter()
        collection.add_codec(spec, spec, fit_on=base[:PROBE_FIT_ROWS])
        built[spec] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    plain = collection.create_index("vector", "hnsw", m=16, ef_construction=64).index_name
    built["pgvector hnsw"] = round(time.perf_counter() - started, 1)
    db.session.execute(q.vacuum_analyze(collection.info.table))
    info = collection.info
    # every form's rows judged by the same float64 distances (cosine: the collection's metric), ties within 1e-6
    scoring, qn = unit_rows(base), unit_rows(queries)
    truth = list(-exact_topk(scoring, qn, k, "ip")[1])

    def distances(rows: list[tuple[Any, ...]]) -> list[np.ndarray]:
        keys: list[list[int]] = [[] for _ in batch]
        for query_no, key, *_ in rows:
            keys[query_no - 1].append(int(key))
        return [np.sort(-(qn[i] @ scoring[np.asarray(ids, dtype=np.int64)].T)) for i, ids in enumerate(keys)]

    def probe(spec: str, probes: int) -> Callable[[], list[tuple[Any, ...]]]:
        return lambda: db.session.rows(q.PROBE_TOPK, (collection.name, spec, batch, k, probes))

    def pgvector(ef: int) -> Callable[[], list[tuple[Any, ...]]]:
        statement = q.baseline_query(info, q.Baseline.HNSW_F32, k, tag=f"ef {ef}", binary=True)

        def run() -> list[tuple[Any, ...]]:
            for setting in q.set_hnsw(ef):
                db.session.execute(setting)
            rows: list[tuple[Any, ...]] = []
            for i, vector in enumerate(batch):
                rows += [(i + 1, *r) for r in db.session.rows(statement, {"q": vector})]
            return rows
        return run

    forms: dict[str, Callable[[], list[tuple[Any, ...]]]] = {f"pgvector hnsw, ef {ef}": pgvector(ef)
                                                              for ef in PGVECTOR_EF}
    for spec, settings in PROBE_CODECS.items():
        forms.update({f"probe_topk {spec}, {p} probes": probe(spec, p) for p in settings})
    seconds: dict[str, list[float]] = {name: [] for name in forms}
    answers: dict[str, list[tuple[Any, ...]]] = {}
    names = list(forms)
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            started = time.perf_counter()
            answers[name] = forms[name]()
            seconds[name].append(time.perf_counter() - started)
    for reset in q.RESET_HNSW:
        db.session.execute(reset)
    collection.drop_index(plain)
    rows: dict[str, dict[str, Any]] = {}
    for name, runs in seconds.items():
        rows[name] = {"q_per_s": round(len(batch) / statistics.median(runs), 1),
                      "runs_s": [round(x, 3) for x in runs],
                      "recall_at_k": round(recall_at_k(distances(answers[name]), truth, k), 4)}
        console.print(f"  {name}: {rows[name]}")
    spec, probes = next(iter(PROBE_CODECS)), PROBE_CODECS[next(iter(PROBE_CODECS))][1]
    few = batch[:TWIN_PROBE_QUERIES]
    timed: dict[str, float] = {}
    found: dict[str, list[tuple[Any, ...]]] = {}
    for mode in MODES:
        _bind(db, mode)
        started = time.perf_counter()
        found[mode.value] = db.session.rows(q.PROBE_TOPK, (collection.name, spec, few, k, probes))
        timed[mode.value] = round(len(few) / (time.perf_counter() - started), 1)
    _bind(db, KernelMode.KERNELS)

    def best(prefix: str) -> dict[str, Any] | None:
        reaching = {n: r for n, r in rows.items() if n.startswith(prefix) and r["recall_at_k"] >= 0.95}
        name = max(reaching, key=lambda n: reaching[n]["q_per_s"]) if reaching else None
        return {"form": name, **reaching[name]} if name else None

    ours, theirs = best("probe_topk"), best("pgvector")
    return {"queries": len(batch), "k": k, "build_s": built, "forms": rows,
            "best_at_0.95": {"probe_topk": ours, "pgvector": theirs,
                             "ratio": round(ours["q_per_s"] / theirs["q_per_s"], 2) if ours and theirs else None},
            "twins": {"queries": len(few), "form": f"{spec}, {probes} probes", "q_per_s": timed,
                      "same_answers": _answers(found["kernels"]) == _answers(found["twins"])}}


def _resident(pid: int) -> int | None:
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def measure_memory(db: pgembed.Database, collection: pgembed.Collection, query: np.ndarray, rows: int,
                   console: Console) -> dict[str, Any]:
    """A million calls of each estimator in one session, in rounds: the backend's memory after each round."""
    _bind(db, KernelMode.KERNELS)
    table = collection.info.table
    times = max(1, round(1_000_000 / rows))
    results: dict[str, Any] = {}
    for codec, estimator in ESTIMATORS:
        column = _column(collection, codec)
        arguments = [column, f"{column}_factors"] if codec == "rabitq" else [column]
        lut = db.session.value(q.QUERY_TABLE, (collection.name, codec, query))
        statement = q.count_estimated(table, collection.info.key_column, f"pgembed.{estimator}", arguments, times)
        seen: list[dict[str, Any]] = []
        for _round in range(3):
            calls = db.session.value(statement, (lut, rows))
            contexts, pid = db.session.row(q.BACKEND_MEMORY) or (0, 0)
            seen.append({"calls": int(calls), "contexts_bytes": int(contexts), "resident_bytes": _resident(pid)})
        results[codec] = {"estimator": estimator, "rounds": seen,
                          "contexts_growth_bytes": seen[-1]["contexts_bytes"] - seen[0]["contexts_bytes"],
                          "resident_growth_bytes": (seen[-1]["resident_bytes"] - seen[0]["resident_bytes"]
                                                    if seen[0]["resident_bytes"] is not None else None)}
        console.print(f"  memory {estimator}: {seen}")
    return results


def _workloads(n: int) -> dict[str, list[str | None]]:
    """Two workloads of n queries: every query filtered (exact plans: one scan a filter group), and a mix the
    planner answers both ways (unfiltered and 49% filters through the index, selective ones exactly)."""
    man2 = json.dumps({"source": "man", "section": "2"})
    library = json.dumps({"source": "pydoc", "section": "library"})
    man5 = json.dumps({"source": "man", "section": "5"})
    short = json.dumps({"n_words": {"$lt": 40}})
    return {"filtered": [(man2, library, man5)[i % 3] for i in range(n)],
            "mixed": [(None, man2, short, library)[i % 4] for i in range(n)]}


def run_kernels_bench(dataset: str | Path, dsn: str | None = None, data_dir: str | Path | None = None, *,
                      rows: int = 20_000, queries: int = 1000, k: int = 10, repeats: int = 3,
                      twin_seconds: float = 3.0, only: KernelBenchPart | str | None = None,
                      quiet: bool = False) -> dict[str, Any]:
    """Every part of the bench, or `only` one of them."""
    if only is not None and only not in PARTS:
        raise pgembed.InvalidInputError(f"only={only!r}: one of {', '.join(PARTS)}")
    parts: tuple[KernelBenchPart, ...] = PARTS if only is None else (KernelBenchPart(only),)
    console = Console(quiet=quiet, stderr=True)
    ds = load_dataset_dir(dataset)
    base = np.ascontiguousarray(ds.base, dtype=np.float32)
    qs = np.ascontiguousarray(ds.queries[:queries], dtype=np.float32)
    if ds.attrs_path is None:
        raise pgembed.InvalidInputError(f"{dataset} has no attrs.parquet (the search workloads filter on it)")
    types, values = load_attrs(ds.attrs_path, len(base))
    keep = [c for c in ("source", "section", "n_words") if c in types]
    sample = base[:FIT_ROWS]
    # LeanVec's query sample: base rows after the fit sample (the last 1,000 of a smaller set), never the timed queries
    fit_queries = base[FIT_ROWS: FIT_ROWS + 1000] if len(base) >= FIT_ROWS + 1000 else base[-1000:]
    console.print(f"kernels bench on {ds.name}: {len(base):,} x {base.shape[1]}, {len(qs)} queries")
    result: dict[str, Any] = {"benchmark": "kernels", "dataset": ds.name, "base_rows": len(base),
                              "dim": int(base.shape[1]), "queries": len(qs), "k": k, "repeats": repeats,
                              "encode_rows": rows, "twin_seconds": twin_seconds}
    if KernelBenchPart.BUILD in parts:
        result["build"] = measure_build(repeats)
        console.print(f"  build: {result['build']['median_s']} s")
    if parts == (KernelBenchPart.BUILD,):
        _render(result, console)
        return result
    with pgembed.connect(dsn, data_dir=data_dir, migrate=True) as db:
        chosen = ensure_kernels(db.conn).active  # installed where it may be; the database's own binding, kept
        _bind(db, KernelMode.KERNELS)
        result["environment"] = describe_environment(db)
        db.session.execute(q.ONE_BACKEND)
        collection = fresh_collection(db, TABLE, base.shape[1], {c: types[c] for c in keep})
        collection.ingest(np.arange(len(base)), base, {c: values[c] for c in keep})
        db.session.execute(q.vacuum_analyze(collection.info.table))
        if KernelBenchPart.ENCODE in parts:
            result["encode"] = measure_encoders(db, sample, fit_queries, rows, repeats, twin_seconds, console)
        if KernelBenchPart.INGEST in parts:
            result["ingest"] = measure_ingest(db, base, sample, rows, repeats, twin_seconds, console)
        _bind(db, KernelMode.KERNELS)
        if {KernelBenchPart.ESTIMATORS, KernelBenchPart.MEMORY, KernelBenchPart.SEARCH_BATCH} & set(parts):
            for spec in ("pq48", "sq8", "bq2", "rabitq"):
                collection.add_codec(spec, spec, fit_on=sample)
            db.session.execute(q.vacuum_analyze(collection.info.table))
        if KernelBenchPart.ESTIMATORS in parts:
            result["estimators"] = measure_estimators(db, collection, qs[0], len(base), repeats, twin_seconds,
                                                      console)
            result["estimate_topk"] = measure_estimate_topk(db, collection, qs, len(base), k, repeats,
                                                            twin_seconds, console)
            result["compact_tier"] = measure_compact_tier(db, collection, qs, k, repeats, console)
        if KernelBenchPart.MEMORY in parts:
            result["memory"] = measure_memory(db, collection, qs[0], len(base), console)
        if KernelBenchPart.SEARCH_BATCH in parts:
            collection.create_index("bq2", "hnsw")
            db.session.execute(q.create_btree(collection.info, "section"))
            db.session.execute(q.vacuum_analyze(collection.info.table))
            result["search_batch"] = measure_search_batch(db, collection, qs, _workloads(len(qs)), k,
                                                          max(2, repeats - 1), console)
        if KernelBenchPart.PROBE in parts:
            result["probe"] = measure_probe(db, collection, base, qs, k, repeats, console)
        collection.drop(drop_table=True)
        _bind(db, chosen)
    _render(result, console)
    return result


def _render(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"kernels against twins on {result['dataset']} (one backend)")
    for column in ("measure", "kernels", "twins", "ratio"):
        table.add_column(column)
    for spec, r in result.get("encode", {}).items():
        twins = r["per_s"].get("twins")
        table.add_row(f"encode {spec} rows/s", f"{r['per_s']['kernels']:,}", f"{twins:,}" if twins else "",
                      f"{r['kernel_over_twin']}x" if twins else "")
    if "ingest" in result:
        r = result["ingest"]
        table.add_row("ingest pq48+bq2+f16 vectors/s", f"{r['per_s']['kernels']:,}", f"{r['per_s']['twins']:,}",
                      f"{r['kernel_over_twin']}x")
    for codec, r in result.get("estimators", {}).items():
        per_s = r["per_s"]
        if "pgvector" in per_s:
            table.add_row(f"{codec} distances/s", f"{per_s['pgvector']:,}", "", "")
        else:
            table.add_row(f"{r['estimator']} ({codec}) distances/s", f"{per_s['kernels']:,}", f"{per_s['twins']:,}",
                          f"{r['kernel_over_twin']}x")
    for name, r in result.get("estimate_topk", {}).items():
        twins = r["per_s"].get("twins")
        table.add_row(f"estimate_topk {name} queries, distances/s", f"{r['per_s']['kernels']:,}",
                      f"{twins:,}" if twins else "", f"{r['kernel_over_twin']}x" if twins else "")
    for name, r in result.get("compact_tier", {}).items():
        table.add_row(f"{name}: q/s (recall@k)", f"{r['q_per_s']:,} ({r['recall_at_k']})", "", "")
    for workload, r in result.get("search_batch", {}).items():
        table.add_row(f"search_batch {workload}: batch/loop", f"{r['batch_over_loop']['kernels']}x",
                      f"{r['batch_over_loop']['twins']}x", "")
    for name, r in result.get("probe", {}).get("forms", {}).items():
        table.add_row(f"{name}: q/s (recall@k)", f"{r['q_per_s']:,} ({r['recall_at_k']})", "", "")
    if "build" in result:
        table.add_row("build s (median)", f"{result['build']['median_s']}", "", "")
    console.print(table)
