"""`pgembed demo` (`make demo`), the main job: on the small real dataset shipped with pgembed (man-page passages
embedded with all-MiniLM-L6-v2, pgembed/tools/data/manpages-5k), one table with plain pgvector's indexes and
pgembed's side by side, and what pgembed does better, measured in this run:

1. a filtered query: pgvector's HNSW as written returns fewer than k rows; pgembed's planner returns k rows at
   the recall asked for (and how plain pgvector does when the user adds the iterative scan or writes the exact
   plan by hand);
2. the memory each configuration needs for recall@10 0.95, unfiltered, and its speed here (all in RAM, where
   float32 HNSW is fastest: said so);
3. a batch of mixed queries: search_batch against the same queries one at a time, through pgembed and through
   plain pgvector at its best per filter.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from rich.console import Console
from rich.table import Table

import pgembed
from pgembed.db import catalog
from pgembed.engine.filters import compile_on
from pgembed.errors import SchemaError
from pgembed.groundtruth import exact_topk, recall_at_k, unit_rows
from pgembed.planning.filters import as_filter
from pgembed.statements import benchmarks as q
from pgembed.statements.benchmarks import Baseline
from pgembed.tools.datasets.files import load_dataset_dir

DEMO_DATASET = Path(__file__).parent / "data" / "manpages-5k"
TABLE = "pgembed_demo"
K = 10
TARGET = 0.95
CODECS = ("bq", "bq2")  # 1-bit (mean-centred) and 2-bit thermometer codes, each with an HNSW index
FILTERS: dict[str, dict[str, Any]] = {"section = 5": {"section": "5"}, "package = systemd": {"package": "systemd"}}
BATCH_FILTERS: list[dict[str, Any] | None] = [None, {"package": "systemd"}, {"section": "5"}, {"section": "8"}]
SWEEP = (10, 20, 40, 80, 160, 320)  # ef_search, or candidates re-ranked
ROUNDS = 3
WIDTH = 100


@dataclass
class Measured:
    label: str
    rows_per_query: float
    recall: float
    ms_per_query: float
    note: str = ""


def run_main_job(dsn: str | None = None, data_dir: str | Path | None = None, *, dataset: str | Path | None = None,
                 quiet: bool = False) -> dict[str, Any]:
    console = Console(quiet=quiet, width=WIDTH, highlight=False)
    started = time.perf_counter()
    data = load_dataset_dir(dataset or DEMO_DATASET)
    attrs = _attributes(data.attrs_path, len(data.base))
    console.rule(f"pgembed demo: {data.name}")
    console.print(f"{len(data.base):,} real text embeddings x {data.dim}, {len(data.queries)} held-out queries. One "
                  "table, plain pgvector's indexes and pgembed's side by side, measured now; all of it fits in RAM.")
    with pgembed.connect(dsn, data_dir=data_dir, migrate=True) as db, _scratch(db, data.dim) as docs:
        with console.status("loading the table and building the indexes"):
            _load(db, docs, data.base, attrs)
        truth = _Truth(data.base, data.queries)
        with _Plain(db, docs.info, truth) as plain:
            with console.status("measuring: filtered search"):
                filtered = {name: _filtered(docs, plain, truth, where, attrs) for name, where in FILTERS.items()}
            with console.status("measuring: memory for recall@10 0.95"):
                memory = _memory(db, docs, plain, truth)
            with console.status("measuring: a batch against one query at a time"):
                batch = _batch(docs, plain, truth, attrs, memory)
    result = {"dataset": {"name": data.name, "rows": len(data.base), "queries": len(data.queries), "dim": data.dim},
              "k": K, "recall_target": TARGET,
              "filtered": {name: [asdict(m) for m in rows] for name, rows in filtered.items()},
              "memory": memory, "batch": batch, "seconds": round(time.perf_counter() - started, 1)}
    _show(console, result)
    return result


# -- the table ------------------------------------------------------------------------------------------------
@contextmanager
def _scratch(db: pgembed.Database, dim: int) -> Iterator[pgembed.Collection]:
    """The demo's own collection, dropped afterwards; a table of that name that is not the demo's is refused."""
    existing = catalog.find_collection(db.session, TABLE)
    if existing is not None:
        if existing.table_name != TABLE:
            raise SchemaError(f"a collection named {TABLE!r} exists on another table: the demo leaves it alone")
        db.collection(TABLE).drop(drop_table=True)
    elif db.value(q.REGCLASS, (TABLE,)) is not None:
        raise SchemaError(f"a table named {TABLE!r} exists and is not the demo's: the demo leaves it alone")
    docs = db.create_collection(TABLE, dim, attrs={"section": "text", "package": "text", "n_words": "integer"})
    try:
        yield docs
    finally:
        docs.drop(drop_table=True)


def _attributes(path: str | None, rows: int) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    if path is None:
        raise SchemaError("the demo's dataset needs attributes (attrs.parquet): section, package, n_words")
    table = pq.read_table(path, columns=["id", "section", "package", "n_words"]).to_pydict()
    order = np.argsort(np.asarray(table["id"]))
    return {c: np.asarray(table[c], dtype=object if c != "n_words" else np.int64)[order]
            for c in ("section", "package", "n_words")}


def _load(db: pgembed.Database, docs: pgembed.Collection, base: np.ndarray, attrs: dict[str, np.ndarray]) -> None:
    """Rows through pgembed (binary COPY; codes by the database's trigger), pgembed's HNSW indexes on codes,
    plain pgvector's three HNSW indexes and B-trees on the filtered columns."""
    docs.ingest(np.arange(len(base)), base, {c: list(v) for c, v in attrs.items()})
    for codec in CODECS:
        docs.add_codec(codec, codec)
        docs.create_index(codec, "hnsw")
    for method in (Baseline.HNSW_F32, Baseline.HNSW_F16, Baseline.BIT_RERANK):
        db.execute(q.create_baseline_index(docs.info, method, _index_name(method), m=16, ef_construction=64))
    for column in ("section", "package"):
        db.execute(q.create_btree(docs.info, column))
    db.execute(q.analyze(docs.info.table))


def _index_name(method: Baseline) -> str:
    return f"{TABLE}_{method.value.replace('-', '_')}"


class _Truth:
    """Exact neighbours in numpy (cosine: unit rows, inner product), and recall against them, counting ties."""

    def __init__(self, base: np.ndarray, queries: np.ndarray) -> None:
        self.base = unit_rows(base)
        self.queries = unit_rows(queries)

    def distances(self, q: int, ids: Sequence[int]) -> np.ndarray:
        return 1.0 - self.base[np.asarray(ids, dtype=np.int64)] @ self.queries[q] if len(ids) else np.empty(0)

    def true(self, mask: np.ndarray | None) -> list[np.ndarray]:
        rows = np.flatnonzero(mask) if mask is not None else np.arange(len(self.base))
        _, scores = exact_topk(self.base[rows], self.queries, min(K, len(rows)), "ip")
        return [1.0 - s.astype(np.float64) for s in scores]

    def recall(self, found: Sequence[Sequence[int]], truth: list[np.ndarray]) -> float:
        return recall_at_k([self.distances(i, ids) for i, ids in enumerate(found)], truth, K)


Run = Callable[[int], Sequence[int]]  # query number -> the keys found


def _interleaved(configs: dict[str, Run], queries: int, rounds: int = 2) -> dict[str, tuple[list[Sequence[int]],
                                                                                            float]]:
    """Every configuration on every query, query by query in a rotating order and `rounds` times, so that the
    machine's noise falls on all of them alike: the answers and the median milliseconds a query of each."""
    labels = list(configs)
    for run in configs.values():
        run(0)  # warm: the first statement pays for planning and the catalog reads
    seconds: dict[str, list[float]] = {label: [] for label in labels}
    found: dict[str, list[Sequence[int]]] = {}
    for r in range(rounds):
        found = {label: [] for label in labels}
        for i in range(queries):
            shift = (i + r) % len(labels)
            for label in labels[shift:] + labels[:shift]:
                t = time.perf_counter()
                found[label].append(configs[label](i))
                seconds[label].append(time.perf_counter() - t)
    return {label: (found[label], 1000 * statistics.median(seconds[label])) for label in labels}


class _Plain:
    """Plain pgvector, no pgembed involved: a connection of its own per pgvector setting (SET is per session)."""

    def __init__(self, db: pgembed.Database, info: Any, truth: _Truth) -> None:
        self.db, self.info, self.truth = db, info, truth
        self.conns: dict[tuple[int, str], psycopg.Connection] = {}

    def __enter__(self) -> _Plain:
        return self

    def __exit__(self, *exc: object) -> None:
        for conn in self.conns.values():
            conn.close()

    def run(self, statement: Any, ef_search: int = 40, iterative_scan: str = "off") -> Run:
        conn = self.conns.get((ef_search, iterative_scan))
        if conn is None:
            conn = psycopg.connect(self.db.conninfo, password=self.db.session.password, autocommit=True)
            register_vector(conn)
            for setting in q.set_hnsw(ef_search, iterative_scan):
                conn.execute(setting)
            self.conns[(ef_search, iterative_scan)] = conn
        queries = self.truth.queries
        return lambda i: [r[0] for r in conn.execute(statement, {"q": queries[i]}, prepare=True).fetchall()]


# -- 1. a filtered query ----------------------------------------------------------------------------------------
def _filtered(docs: pgembed.Collection, plain: _Plain, truth: _Truth, where: dict[str, Any],
              attrs: dict[str, np.ndarray]) -> list[Measured]:
    mask = np.ones(len(truth.base), dtype=bool)
    for column, value in where.items():
        mask &= attrs[column] == value
    true = truth.true(mask)
    clause = compile_on(docs.context.session, docs.info.table, as_filter(where))
    plans: set[str] = set()

    def pgembed_search(i: int) -> list[int]:
        result = docs.search(truth.queries[i], K, where=where, recall=TARGET)
        plans.add(result.plan.kind.value)
        return [int(x) for x in result.ids]

    configs: dict[str, Run] = {
        "pgvector HNSW, as written": plain.run(q.baseline_query(docs.info, Baseline.HNSW_F32, K, clause, tag="as")),
        "pgvector HNSW + iterative scan": plain.run(q.baseline_query(docs.info, Baseline.HNSW_F32, K, clause, tag="it"),
                                                    iterative_scan="relaxed_order"),
        "pgvector B-tree + exact, by hand": plain.run(q.baseline_query(docs.info, Baseline.BTREE_EXACT, K, clause)),
        f"pgembed search(recall={TARGET})": pgembed_search,
    }
    measured = _interleaved(configs, len(truth.queries))
    return [Measured(label, float(np.mean([len(f) for f in found])), truth.recall(found, true), ms,
                     "plan: " + ", ".join(sorted(plans)) if label.startswith("pgembed") else "")
            for label, (found, ms) in measured.items()]


# -- 2. memory for recall@10 0.95 -------------------------------------------------------------------------------
def _memory(db: pgembed.Database, docs: pgembed.Collection, plain: _Plain, truth: _Truth) -> list[dict[str, Any]]:
    """Per configuration, the cheapest setting of the sweep reaching the target (found by recall alone), then
    those settings timed together, interleaved."""
    true = truth.true(None)
    n, rows = len(truth.queries), len(truth.base)
    chosen: dict[str, tuple[Run, dict[str, Any]]] = {}
    for label, method in (("pgvector HNSW float32", Baseline.HNSW_F32), ("pgvector HNSW halfvec", Baseline.HNSW_F16),
                          ("pgvector binary_quantize + re-rank", Baseline.BIT_RERANK)):
        index = int(db.value(q.RELATION_SIZE, (_index_name(method),)))
        for setting in SWEEP if method is not Baseline.BIT_RERANK else SWEEP[1:]:
            candidates = setting if method is Baseline.BIT_RERANK else 0
            ef = max(40, setting) if candidates else setting
            run = plain.run(q.baseline_query(docs.info, method, K, candidates=candidates, tag=f"{setting}"), ef)
            knob = "candidates" if candidates else "ef_search"
            figures: dict[str, Any] = {"label": label, "setting": f"{knob} {setting}",
                       "recall": truth.recall([run(i) for i in range(n)], true), "bytes_per_vector": index / rows,
                       "index_bytes": index, "code_bytes_per_vector": 0.0, "ef_search": ef,
                       "candidates": candidates or None}
            chosen[label] = (run, figures)
            if figures["recall"] >= TARGET:
                break
    for codec in CODECS:
        info = next(c for c in docs.codecs() if c.name == codec)
        index_name = next(i.index_name for i in docs.indexes() if i.codec_id == info.id and i.predicate is None)
        index = int(db.value(q.RELATION_SIZE, (index_name,)))
        code_bytes = float(db.value(q.column_bytes(docs.info.table, [info.column_name])))
        for candidates in SWEEP[1:]:
            def search(i: int, c: int = candidates, name: str = codec) -> list[int]:
                return [int(x) for x in docs.search(truth.queries[i], K, codec=name, oversample=c / K,
                                                    ef_search=max(40, c), plan="index").ids]

            figures = {"label": f"pgembed {codec} + re-rank", "setting": f"candidates {candidates}",
                       "recall": truth.recall([search(i) for i in range(n)], true), "bytes_per_vector": index / rows,
                       "index_bytes": index, "code_bytes_per_vector": code_bytes, "candidates": candidates}
            chosen[figures["label"]] = (search, figures)
            if figures["recall"] >= TARGET:
                break
    timed = _interleaved({label: run for label, (run, _) in chosen.items()}, n)
    return [{**figures, "ms_per_query": timed[label][1]} for label, (_, figures) in chosen.items()]


# -- 3. a batch against one query at a time ---------------------------------------------------------------------
def _batch(docs: pgembed.Collection, plain: _Plain, truth: _Truth, attrs: dict[str, np.ndarray],
           memory: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(truth.queries)
    where = [BATCH_FILTERS[i % len(BATCH_FILTERS)] for i in range(n)]
    truths: dict[int, list[np.ndarray]] = {}
    for j, f in enumerate(BATCH_FILTERS):
        mask = None if f is None else np.logical_and.reduce([attrs[c] == v for c, v in f.items()])
        truths[j] = truth.true(mask)
    true = [truths[i % len(BATCH_FILTERS)][i] for i in range(n)]
    docs.tune(recall=TARGET, selectivities=(1.0,))  # what search(recall=...) unfiltered takes
    # Plain pgvector at its best per filter: HNSW at the ef_search that reached the target unfiltered, the
    # exact plan through the B-tree for the selective filters.
    f32 = next(m for m in memory if m["label"] == "pgvector HNSW float32")
    statements = {j: q.baseline_query(docs.info, Baseline.HNSW_F32 if f is None else Baseline.BTREE_EXACT, K,
                                      None if f is None else compile_on(docs.context.session, docs.info.table,
                                                                        as_filter(f)), tag=f"batch {j}")
                  for j, f in enumerate(BATCH_FILTERS)}
    runs = {j: plain.run(statement, f32["ef_search"]) for j, statement in statements.items()}

    def plain_loop() -> list[Sequence[int]]:
        return [runs[i % len(BATCH_FILTERS)](i) for i in range(n)]

    def pgembed_loop() -> list[Sequence[int]]:
        return [[int(x) for x in docs.search(truth.queries[i], K, where=where[i], recall=TARGET).ids]
                for i in range(n)]

    def pgembed_batch() -> list[Sequence[int]]:
        result = docs.search_batch(truth.queries, K, where=where)
        return [[int(x) for x in result.ids[i, : result.counts[i]]] for i in range(n)]

    modes = {"plain pgvector, one at a time": plain_loop, "pgembed search(), one at a time": pgembed_loop,
             "pgembed search_batch()": pgembed_batch}
    seconds: dict[str, list[float]] = {name: [] for name in modes}
    recall: dict[str, float] = {}
    names = list(modes)
    for r in range(ROUNDS):  # interleaved, in a rotating order: the machine's noise falls on every mode alike
        for name in names[r % len(names):] + names[: r % len(names)]:
            run = modes[name]
            t = time.perf_counter()
            found = run()
            seconds[name].append(time.perf_counter() - t)
            recall[name] = truth.recall(found, true)
    qps = {name: n / statistics.median(s) for name, s in seconds.items()}
    batch_qps = qps["pgembed search_batch()"]
    return {"queries": n, "filters": [f for f in BATCH_FILTERS], "rounds": ROUNDS,
            "modes": [{"label": name, "qps": qps[name], "recall": recall[name],
                       "batch_speedup": batch_qps / qps[name], "qps_rounds": [n / s for s in seconds[name]]}
                      for name in modes]}


# -- the report -----------------------------------------------------------------------------------------------
def _show(console: Console, result: dict[str, Any]) -> None:
    console.print()
    console.print("[bold]pgembed against plain pgvector on this table, measured now:[/]")
    for line in summary(result):
        console.print(f" {line}")
    for name, rows in result["filtered"].items():
        table = Table(title=f"1. filtered search: {name}, k = {K}", width=WIDTH)
        for column in ("configuration", "rows/query", f"recall@{K}", "ms/query", "note"):
            table.add_column(column)
        for m in rows:
            table.add_row(m["label"], f"{m['rows_per_query']:.1f}", f"{m['recall']:.3f}", f"{m['ms_per_query']:.2f}",
                          m["note"])
        console.print(table)
    table = Table(title=f"2. unfiltered: the cheapest setting reaching recall@{K} {TARGET}", width=WIDTH)
    for column in ("configuration", "setting", "recall", "index B/vec", "codes in table", "ms/query"):
        table.add_column(column)
    for m in result["memory"]:
        reached = "" if m["recall"] >= TARGET else " (not reached)"
        table.add_row(m["label"], m["setting"], f"{m['recall']:.3f}{reached}", f"{m['bytes_per_vector']:,.0f}",
                      f"{m['code_bytes_per_vector']:,.0f} B" if m["code_bytes_per_vector"] else "-",
                      f"{m['ms_per_query']:.2f}")
    console.print(table)
    table = Table(title=f"3. {result['batch']['queries']} queries, filters {{none, package, section 5, section 8}}, "
                  f"median of {result['batch']['rounds']} interleaved rounds", width=WIDTH)
    for column in ("mode", "q/s", f"recall@{K}", "search_batch's q/s over it"):
        table.add_column(column)
    for m in result["batch"]["modes"]:
        table.add_row(m["label"], f"{m['qps']:,.0f}", f"{m['recall']:.3f}",
                      "-" if m["label"] == "pgembed search_batch()" else f"{m['batch_speedup']:.2f}x")
    console.print(table)
    console.print(f"took {result['seconds']:.0f}s. The full benchmarks (every codec, filtered search and "
                  "102k-row workloads): docs/benchmarks.md and docs/results/*.png; `make bench-codecs`, "
                  "`make bench-search`, `make bench-workload` run them again; on your data: "
                  "`pgembed bench compression --base B.npy --queries Q.npy`.")


def summary(result: dict[str, Any]) -> list[str]:
    """The first screen: what the figures of this run say, better or not."""
    lines = []
    name, rows = min(result["filtered"].items(), key=lambda item: item[1][0]["recall"])  # where HNSW does worst
    written, iterative, _, mine = rows
    lines.append(f"1. Filtered search ({name}): pgvector's HNSW as written returned {written['rows_per_query']:.1f} "
                 f"of {K} rows a query (recall@{K} {written['recall']:.2f}); with the iterative scan, "
                 f"{iterative['rows_per_query']:.1f} rows at {iterative['recall']:.3f} in "
                 f"{iterative['ms_per_query']:.2f} ms. pgembed: {mine['rows_per_query']:.1f} rows at "
                 f"{mine['recall']:.3f} (asked {TARGET}) in {mine['ms_per_query']:.2f} ms, its planner's choice "
                 "(the exact plan a user can also write by hand).")
    memory = {m["label"]: m for m in result["memory"]}
    f32, bit = memory["pgvector HNSW float32"], memory["pgvector binary_quantize + re-rank"]
    for number, codec in zip(("2.", "  "), CODECS, strict=True):
        m = memory[f"pgembed {codec} + re-rank"]
        if m["recall"] < TARGET:
            lines.append(f"{number} pgembed {codec} did not reach recall@{K} {TARGET} here (best {m['recall']:.3f}).")
            continue
        verdict = ("fewer" if m["candidates"] < (bit["candidates"] or 0) else "as many or more")
        smaller = f32["bytes_per_vector"] / m["bytes_per_vector"]
        lines.append(f"{number} Unfiltered at recall@{K} {TARGET}: pgembed {codec}'s index takes "
                     f"{m['bytes_per_vector']:.0f} B a vector, {smaller:.1f}x less than float32 HNSW; "
                     f"it re-ranks {m['candidates']} candidates, {verdict} than pgvector's binary_quantize recipe "
                     f"({bit['candidates']}, {bit['bytes_per_vector']:.0f} B): {m['ms_per_query']:.2f} vs "
                     f"{bit['ms_per_query']:.2f} ms.")
    fastest = min(result["memory"], key=lambda m: m["ms_per_query"] if m["recall"] >= TARGET else 1e9)
    lines.append(f"   All in RAM, as here, the fastest is {fastest['label']} ({fastest['ms_per_query']:.2f} ms); "
                 "codes are for when memory is short, which this run does not show.")
    modes = {m["label"]: m for m in result["batch"]["modes"]}
    batch, plain = modes["pgembed search_batch()"], modes["plain pgvector, one at a time"]
    ratio = batch["qps"] / plain["qps"]
    lines.append(f"3. A batch of {result['batch']['queries']} mixed queries: search_batch {batch['qps']:,.0f} q/s "
                 f"(recall {batch['recall']:.3f}) against plain pgvector one at a time {plain['qps']:,.0f} q/s "
                 f"(recall {plain['recall']:.3f}): {ratio:.2f}x" + ("." if ratio > 1.05 else
                 "; at 5,000 rows a batch does not pay (102k rows: docs/benchmarks.md, \"Batched search\")."))
    return lines
