"""The memory-budget bench (`pgembed bench memory`): search when the database's RAM is short, the case codes
exist for, against plain pgvector at its best on the same table and under the same budget.

A server of its own (an embedded data directory) holds one table: key, vector, the dataset's attributes and
passage text when it has them. Plain pgvector gets HNSW on the float32 column, on `embedding::halfvec(d)`,
and on `binary_quantize(embedding)::bit(d)` re-ranked by hand as its README shows. pgembed attaches the same
table with companion placement (codes in pgembed.codes_<id>; the user's table is not rewritten) and searches
through its library: coarse candidates from the `bq2` HNSW index, then optionally a `sq8` tier, then the exact
re-rank or none.

Under the budget the server runs with `shared_buffers` = budget and `debug_io_direct = 'data'`, so that no
OS page cache holds the data either: every page not in shared buffers is a read from disk. Each configuration
is measured warm (after a warm-up pass) with one client, in rounds that rotate their order; the fastest
configuration of each family reaching the recall floor is then measured cold (the server restarted: empty
buffers) and warm with several clients. The same sweep runs with everything in memory (shared_buffers 1GB,
buffered I/O). Reads per query are pg_stat_database's blks_read over the queries, times the block size.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from rich.console import Console

import pgembed
from pgembed.db.extension import ensure_pgvector
from pgembed.groundtruth import recall_at_k
from pgembed.server import EmbeddedServer
from pgembed.statements import benchmarks
from pgembed.statements.benchmarks import Baseline
from pgembed.tools.bench.search import load_attrs, relation_size, run_concurrently
from pgembed.tools.datasets.files import Dataset, base_texts

TABLE = "memory_docs"
IN_MEMORY_BUFFERS = "1GB"
HNSW = {"m": 16, "ef_construction": 64}
DEFAULT_CODECS = ("bq2", "sq8")  # candidates from the first's HNSW index; the others are compact tiers
BLOCK = 8192


@dataclass(frozen=True)
class Config:
    """One way to answer the queries: a family (pgvector's method, or pgembed) and its knobs."""

    family: str
    knobs: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.family} " + ", ".join(f"{k}={v}" for k, v in self.knobs.items())


def codec_name(spec: str) -> str:
    """A codec's name in the bench collection: its spec with what a name cannot hold made '_'."""
    return re.sub(r"[^a-z0-9_]", "_", spec.lower())


def configs(k: int, codecs: Sequence[str] = DEFAULT_CODECS) -> list[Config]:
    """pgvector's knobs swept, and pgembed's: candidates from the first codec's HNSW index, then each other
    codec as a compact tier, with the exact re-rank or without."""
    out = [Config(Baseline.HNSW_F32.value, {"ef_search": ef}) for ef in (40, 64, 100)]
    out += [Config(Baseline.HNSW_F16.value, {"ef_search": ef}) for ef in (40, 64, 100)]
    out += [Config(Baseline.BIT_RERANK.value, {"candidates": c}) for c in (100, 160, 240)]
    coarse, *tiers = [codec_name(c) for c in codecs]
    out += [Config("pgembed", {"codec": coarse, "oversample": o}) for o in (6.0, 8.0, 12.0)]
    out += [Config("pgembed", {"codec": coarse, "oversample": 1.0, "rerank": False})]  # the codes alone (f16)
    for tier in tiers:
        out += [Config("pgembed", {"codec": coarse, "oversample": o, "refine": tier, "refine_oversample": 2.0})
                for o in (8.0, 12.0)]
        out += [Config("pgembed", {"codec": coarse, "oversample": o, "refine": tier, "rerank": False})
                for o in (8.0, 12.0)]
    return out


@dataclass(frozen=True)
class Truth:
    """The base, its metric and the true neighbours of the measured queries (ids, best first)."""

    base: np.ndarray
    metric: str
    ids: np.ndarray
    distances: list[np.ndarray]  # of `ids`, per query

    @classmethod
    def of(cls, base: np.ndarray, metric: str, queries: np.ndarray, ids: np.ndarray) -> Truth:
        return cls(base, metric, ids, [distances(base, q, row, metric) for q, row in zip(queries, ids.tolist(),
                                                                                       strict=True)])


@dataclass
class Measured:
    config: Config
    setting: str  # "budget" or "memory"
    mode: str  # "warm" or "cold"
    clients: int
    qps: float
    p50_ms: float | None
    p99_ms: float | None
    recall: float
    read_bytes_per_query: float
    rounds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"family": self.config.family, "knobs": self.config.knobs, "setting": self.setting, "mode": self.mode,
                "clients": self.clients, "qps": self.qps, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms,
                "recall": self.recall, "read_bytes_per_query": self.read_bytes_per_query, "rounds": self.rounds}


# -- the server ------------------------------------------------------------------------------------------------
class BudgetServer:
    """The bench's own embedded server, restarted with the settings of each case."""

    def __init__(self, data_dir: Path) -> None:
        self.server = EmbeddedServer(data_dir)
        self.dsn = self.server.ensure_running()

    def restart(self, shared_buffers: str, direct_io: bool) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(benchmarks.set_system("shared_buffers", shared_buffers))
            conn.execute(benchmarks.set_system("debug_io_direct", "data" if direct_io else ""))
        self.server.stop()
        self.dsn = self.server.ensure_running()

    def connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self.dsn, autocommit=True)
        ensure_pgvector(conn)
        return conn


# -- loading ---------------------------------------------------------------------------------------------------
def load(db: pgembed.Database, ds: Dataset, folder: Path | None, codecs: Sequence[str],
         console: Console) -> dict[str, Any]:
    """The table, pgvector's three indexes and pgembed's companion codecs and index; their sizes and the cost
    of adding the codecs in each placement."""
    n = len(ds.base)
    types, values = load_attrs(ds.attrs_path, n) if ds.attrs_path else ({}, {})
    body = base_texts(folder, n) if folder is not None else None
    if body is not None:
        types, values = {**types, "body": "text"}, {**values, "body": body}
    for name in (TABLE, TABLE + "_intable"):
        if any(c.name == name for c in db.collections()):
            db.collection(name).drop(drop_table=True)
        db.session.execute(benchmarks.drop_table_if_exists(name))
    docs = db.create_collection(TABLE, ds.dim, attrs=types, metric=ds.metric, placement="companion")
    console.print(f"loading {n:,} rows into {TABLE}")
    docs.ingest(np.arange(n), ds.base, values)
    db.execute(benchmarks.vacuum_analyze(docs.info.table))
    db.execute(benchmarks.BUILD_MEMORY)
    sizes: dict[str, Any] = {"table_bytes": relation_size(db.session, TABLE)}
    build = {"companion": _add_codecs(db, docs, codecs)}
    sizes["table_bytes_after_codecs"] = relation_size(db.session, TABLE)
    # The same codecs in the user's table, on a copy: today's placement, for the build-time comparison.
    for statement in benchmarks.copy_table(TABLE, TABLE + "_intable", docs.info.key_column):
        db.execute(statement)
    copy = db.collection(TABLE + "_intable")
    before = relation_size(db.session, TABLE + "_intable")
    build["table"] = _add_codecs(db, copy, codecs)
    build["table"]["table_bytes_before"] = before
    build["table"]["table_bytes_after"] = relation_size(db.session, TABLE + "_intable")
    copy.drop(drop_table=True)
    console.print(f"codecs added: companion {build['companion']['seconds']:.1f} s "
                  f"(filled in {build['companion']['fill_seconds']:.1f} s), in the table "
                  f"{build['table']['seconds']:.1f} s (filled in {build['table']['fill_seconds']:.1f} s)")
    indexes: dict[str, int] = {}
    for method, name in ((Baseline.HNSW_F32, "memory_f32"), (Baseline.HNSW_F16, "memory_f16"),
                         (Baseline.BIT_RERANK, "memory_bit")):
        console.print(f"building {name}")
        db.execute(benchmarks.create_baseline_index(docs.info, method, name, **HNSW))
        indexes[method.value] = relation_size(db.session, name)
    console.print(f"building pgembed's {codecs[0]} index")
    index = docs.create_index(codec_name(codecs[0]), m=HNSW["m"], ef_construction=HNSW["ef_construction"])
    indexes[f"pgembed-{codec_name(codecs[0])}"] = relation_size(db.session, f"pgembed.{index.index_name}")
    indexes["pgembed-companion"] = relation_size(db.session, f"pgembed.codes_{docs.info.id}")
    db.execute(benchmarks.vacuum_analyze(docs.info.table))
    db.execute(benchmarks.vacuum_analyze(docs.info.codes_table))
    return {"sizes": {**sizes, "indexes": indexes}, "build": build, "rows": n, "codecs": list(codecs)}


def _add_codecs(db: pgembed.Database, c: pgembed.Collection, codecs: Sequence[str]) -> dict[str, Any]:
    """The codecs added (fitted) and then encoded in one backfill: the seconds of each part, WAL written."""
    wal = db.value(benchmarks.WAL_POSITION)
    started = time.perf_counter()
    for spec in codecs:
        c.add_codec(codec_name(spec), spec, backfill=False)
    fitted = time.perf_counter()
    c.backfill()
    filled = time.perf_counter()
    written = db.value(benchmarks.WAL_SINCE, (wal,))
    return {"seconds": filled - started, "fit_seconds": fitted - started, "fill_seconds": filled - fitted,
            "wal_bytes": int(written)}


# -- measuring -------------------------------------------------------------------------------------------------
Runner = Callable[[np.ndarray], list[int]]
Figures = tuple[float, float | None, float | None, float, float]  # q/s, p50 ms, p99 ms, recall, bytes read/query


def _runner(family: str, knobs: dict[str, Any], conn: psycopg.Connection, k: int) -> Runner:
    """One query at a time, on `conn`: pgvector's statement as its README writes it, or pgembed's search()."""
    if family == "pgembed":
        docs = pgembed.Database(conn).collection(TABLE)

        def search(q: np.ndarray) -> list[int]:
            return [int(x) for x in docs.search(q, k, **knobs).ids]

        return search
    method = Baseline(family)
    info = pgembed.Database(conn).collection(TABLE).info
    candidates = int(knobs.get("candidates", 0))
    ef = int(knobs.get("ef_search", candidates))
    for statement in benchmarks.set_hnsw(max(ef, candidates)):
        conn.execute(statement)
    statement = benchmarks.baseline_query(info, method, k, None, candidates=candidates, tag="memory")

    def run(q: np.ndarray) -> list[int]:
        return [int(r[0]) for r in conn.execute(statement, {"q": q}, prepare=True).fetchall()]

    return run


def _blocks_read(conn: psycopg.Connection) -> int:
    conn.execute(benchmarks.CLEAR_STATS_SNAPSHOT)
    row = conn.execute(benchmarks.BLOCKS_READ).fetchone()
    assert row is not None
    return int(row[0])


def distances(base: np.ndarray, q: np.ndarray, ids: Sequence[int], metric: str) -> np.ndarray:
    """The exact distances of rows `ids` to `q` (a missing row, -1: infinitely far), for recall by distance."""
    rows = np.asarray([i for i in ids if i >= 0], dtype=np.int64)
    v = base[rows].astype(np.float64)
    if metric == "l2":
        d = np.linalg.norm(v - q, axis=1)
    elif metric == "ip":
        d = -(v @ q)
    else:
        d = 1 - (v @ q) / (np.linalg.norm(v, axis=1) * np.linalg.norm(q))
    return np.concatenate([d, np.full(len(ids) - len(rows), np.inf)])


def measure(server: BudgetServer, config: Config, queries: np.ndarray, truth: Truth, k: int, *,
            warmup: np.ndarray | None, clients: int = 1) -> tuple[float, float | None, float | None, float, float]:
    """(q/s, p50 ms, p99 ms, recall@k, bytes read per query); latencies with one client only."""
    monitor = server.connect()
    connections = [server.connect() for _ in range(clients)]
    try:
        runners = [_runner(config.family, config.knobs, conn, k) for conn in connections]
        if warmup is not None:
            for q in warmup:
                runners[0](q)
        found: list[list[int]] = [[] for _ in range(len(queries))]
        latencies: list[float] = []

        def work(runner: Runner, rows: Sequence[int]) -> Callable[[], None]:
            def run() -> None:
                for i in rows:
                    t = time.perf_counter()
                    found[i] = runner(queries[i])
                    if clients == 1:
                        latencies.append(time.perf_counter() - t)
            return run

        before = _blocks_read(monitor)
        elapsed = run_concurrently([work(runners[c], range(c, len(queries), clients)) for c in range(clients)])
    finally:
        for conn in connections:
            conn.close()
    try:
        time.sleep(0.5)  # a backend's statistics reach pg_stat_database when it exits
        read = (_blocks_read(monitor) - before) * BLOCK / len(queries)
    finally:
        monitor.close()
    got = [distances(truth.base, q, row + [-1] * (k - len(row)), truth.metric)
           for q, row in zip(queries, found, strict=True)]
    p50 = float(np.median(latencies)) * 1e3 if latencies else None
    p99 = float(np.percentile(latencies, 99)) * 1e3 if latencies else None
    return len(queries) / elapsed, p50, p99, recall_at_k(got, truth.distances, k), read


def sweep(server: BudgetServer, setting: str, queries: np.ndarray, truth: Truth, warmup: np.ndarray,
          k: int, rounds: int, codecs: Sequence[str], console: Console) -> list[Measured]:
    """Every configuration warm with one client, `rounds` times in rotated order; the median round."""
    all_configs = configs(k, codecs)
    seen: dict[int, list[Figures]] = {i: [] for i in range(len(all_configs))}
    for r in range(rounds):
        order = list(range(len(all_configs)))
        order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            seen[i].append(measure(server, all_configs[i], queries, truth, k, warmup=warmup))
            qps, _, _, recall, read = seen[i][-1]
            console.print(f"  [{setting}] {all_configs[i].label}: {qps:.1f} q/s, recall {recall:.3f}, "
                          f"{read / 1024:.0f} kB read/query")
    out = []
    for i, results in seen.items():
        qps_values = [x[0] for x in results]
        median = sorted(results, key=lambda x: x[0])[len(results) // 2]
        out.append(Measured(all_configs[i], setting, "warm", 1, statistics.median(qps_values), median[1], median[2],
                            median[3], median[4], rounds=qps_values))
    return out


def best(rows: Sequence[Measured], family: str, floor: float) -> Measured | None:
    eligible = [r for r in rows if r.config.family == family and r.recall >= floor]
    return max(eligible, key=lambda r: r.qps) if eligible else None


FAMILIES = (Baseline.HNSW_F32.value, Baseline.HNSW_F16.value, Baseline.BIT_RERANK.value, "pgembed")


def run_memory_bench(ds: Dataset, *, folder: str | Path | None = None, data_dir: str | Path,
                     fraction: float = 0.25, queries: int = 300, rounds: int = 2, k: int = 10,
                     floor: float = 0.95, clients: int = 4, reuse: bool = False,
                     codecs: Sequence[str] = DEFAULT_CODECS, console: Console | None = None) -> dict[str, Any]:
    console = console or Console()
    if ds.gt is None:
        raise ValueError("the memory bench needs the dataset's ground truth")
    server = BudgetServer(Path(data_dir))
    server.restart(IN_MEMORY_BUFFERS, direct_io=False)
    with server.connect() as conn:
        db = pgembed.Database(conn)
        db.migrate()
        loaded = _reuse(db, len(ds.base), codecs) if reuse else None
        if loaded is None:
            loaded = load(db, ds, Path(folder) if folder else None, codecs, console)
            db.execute(benchmarks.CREATE_LOAD_FACTS)
            db.execute(benchmarks.SAVE_LOAD_FACTS, (psycopg.types.json.Jsonb(loaded),))
    f32_bytes = loaded["sizes"]["indexes"][Baseline.HNSW_F32.value]
    budget = int(f32_bytes * fraction)
    budget_setting = f"{max(budget // 1024, 128)}kB"
    q = ds.queries[:queries]
    truth = Truth.of(ds.base, ds.metric, q, ds.gt[:queries, :k])
    warmup = ds.queries[queries:queries + 200] if len(ds.queries) >= queries + 200 else ds.queries[:200]
    result: dict[str, Any] = {"dataset": ds.name, "rows": loaded["rows"], "dim": ds.dim, "k": k, "queries": len(q),
                              "rounds": rounds, "floor": floor, "fraction": fraction, "budget_bytes": budget,
                              "shared_buffers": budget_setting, **loaded, "rows_measured": []}
    for setting, buffers, direct in (("budget", budget_setting, True), ("memory", IN_MEMORY_BUFFERS, False)):
        console.print(f"[bold]{setting}[/]: shared_buffers {buffers}, direct I/O {'on' if direct else 'off'}")
        server.restart(buffers, direct_io=direct)
        rows = sweep(server, setting, q, truth, warmup, k, rounds, codecs, console)
        for family in FAMILIES:
            pick = best(rows, family, floor)
            if pick is None:
                continue
            server.restart(buffers, direct_io=direct)  # empty buffers (and with direct I/O, nothing cached)
            qps, p50, p99, recall, read = measure(server, pick.config, q, truth, k, warmup=None)
            rows.append(Measured(pick.config, setting, "cold", 1, qps, p50, p99, recall, read))
            qps, _, _, recall, read = measure(server, pick.config, q, truth, k, warmup=warmup, clients=clients)
            rows.append(Measured(pick.config, setting, "warm", clients, qps, None, None, recall, read))
        result["rows_measured"] += [r.as_dict() for r in rows]
    server.restart(IN_MEMORY_BUFFERS, direct_io=False)
    result["summary"] = summarize(result, floor, clients)
    return result


def _reuse(db: pgembed.Database, rows: int, codecs: Sequence[str]) -> dict[str, Any] | None:
    if not db.value(benchmarks.LOAD_FACTS_PRESENT):
        return None
    facts = db.value(benchmarks.LOAD_FACTS)
    return facts if facts and facts.get("rows") == rows and facts.get("codecs") == list(codecs) else None


def summarize(result: dict[str, Any], floor: float, clients: int) -> dict[str, Any]:
    """The issue's comparisons: pgembed's best against plain pgvector's best, and against its float32 HNSW,
    per setting, mode and clients."""
    out: dict[str, Any] = {}
    for setting in ("budget", "memory"):
        for mode, n in (("warm", 1), ("cold", 1), ("warm", clients)):
            rows = [r for r in result["rows_measured"] if r["setting"] == setting and r["mode"] == mode
                    and r["clients"] == n and r["recall"] >= floor]
            by_family: dict[str, dict[str, Any]] = {}
            for r in rows:
                if r["family"] not in by_family or r["qps"] > by_family[r["family"]]["qps"]:
                    by_family[r["family"]] = r
            ours = by_family.get("pgembed")
            theirs = [by_family[f] for f in FAMILIES[:-1] if f in by_family]
            best_theirs = max(theirs, key=lambda r: r["qps"]) if theirs else None
            f32 = by_family.get(Baseline.HNSW_F32.value)
            out[f"{setting}/{mode}/{n}"] = {
                "pgembed": ours, "pgvector_best": best_theirs,
                "over_pgvector_best": ours["qps"] / best_theirs["qps"] if ours and best_theirs else None,
                "over_f32": ours["qps"] / f32["qps"] if ours and f32 else None,
            }
    return out
