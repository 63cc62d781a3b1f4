"""The soak test: an application's writers and readers on one collection for a while, a re-fit in the middle,
and then every row checked.

Writers (one connection each, autocommit) own disjoint keys, so each knows the last write it saw acknowledged
for every key it owns:
- insert: plain SQL INSERT of new keys;
- update: transactions of plain SQL UPDATEs of the vector of two owned rows, in random order (what deadlocked
  against a backfill batch before);
- delete: plain SQL DELETE of an owned row, or its INSERT again;
- ingest: pgembed's ingest() of small batches of new keys.
Readers: pgembed's search() (with and without a filter), search_batch(), and the SQL function pgembed.search().

Afterwards: every acknowledged write is in the table (or its row gone, for a delete), every row's codes are
what numpy's encoder gives for its vector under the active codecs, and no search returned fewer than k rows.
Vectors are the shipped real dataset's (pgembed/tools/data/manpages-5k)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

import pgembed
from pgembed.errors import InvalidInputError
from pgembed.statements import soak as q
from pgembed.statements.benchmarks import drop_table_if_exists
from pgembed.tools.datasets.files import load_dataset_dir
from pgembed.tools.demo import DEMO_DATASET
from pgembed.tools.reliability.checks import stale_codes
from pgembed.vocabulary import Placement

TABLE = "pgembed_soak"
CODECS = ("bq2", "sq8")  # both trainable: fit() makes a version 2 of each; the HNSW index is on bq2
K = 10
WRITER_KINDS = ("insert", "update", "delete", "ingest")
READER_KINDS = ("search", "search_filtered", "search_batch", "sql_search")
INGEST_ROWS = 20
# An application's pace, not a load generator's: the table grows by about 100 rows/s per insert and ingest writer.
PAUSE_SECONDS = {"insert": 0.01, "update": 0.01, "delete": 0.01, "ingest": 0.2}
KEYS_PER_WRITER = 1_000_000  # writer w's new keys start at (w + 1) * KEYS_PER_WRITER


@dataclass
class SoakConfig:
    seconds: float = 600.0
    writers: int = 8
    readers: int = 8
    rows: int = 3000  # rows in the table when the load starts (the pool's first)
    fit_at: float = 0.5  # fit() starts at this fraction of the run
    placement: Placement = Placement.TABLE
    seed: int = 0


@dataclass
class _Log:
    """What one worker saw: its operations' (start, seconds) and its errors by kind."""
    timings: list[tuple[float, float]] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    short: int = 0

    def failed(self, err: BaseException) -> None:
        name = type(err).__name__
        self.errors[name] += 1
        if len(self.examples) < 3:
            self.examples.append(f"{name}: {err}"[:300])


@dataclass
class _Expected:
    """A writer's keys with the pool row of their last acknowledged write (None: deleted)."""
    rows: dict[int, int | None] = field(default_factory=dict)
    uncertain: set[int] = field(default_factory=set)  # a write that failed may or may not have landed


def run_soak(config: SoakConfig, *, dsn: str | None = None, data_dir: str | None = None) -> dict[str, Any]:
    """The soak on the database `dsn` names (default: the embedded server): its figures (see the module)."""
    data = load_dataset_dir(DEMO_DATASET)
    pool = data.base
    if config.rows >= len(pool):
        raise InvalidInputError(f"rows must be below the pool's {len(pool)} vectors")
    with pgembed.connect(dsn, data_dir=data_dir) as db:
        collection = _setup(db, pool, config)
        deadlocks_before = int(db.value(q.DEADLOCKS))
        stop = threading.Event()
        writer_logs = [_Log() for _ in range(config.writers)]
        reader_logs = [_Log() for _ in range(config.readers)]
        expected = [_Expected() for _ in range(config.writers)]
        for key in range(config.rows):
            expected[key % config.writers].rows[key] = key
        threads = [threading.Thread(target=_guard(_writer, writer_logs[w]),
                                    args=(db.conninfo, collection.info, pool, w, config, expected[w], stop))
                   for w in range(config.writers)]
        threads += [threading.Thread(target=_guard(_reader, reader_logs[r]),
                                     args=(db.conninfo, data.queries, r, config, stop)) for r in range(config.readers)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(config.seconds * config.fit_at)
        fit_started = time.monotonic()
        fit_error = None
        try:
            encoded = collection.fit()
        except Exception as err:  # reported in the result: the soak goes on to check the rows
            fit_error, encoded = f"{type(err).__name__}: {err}", 0
        fit_ended = time.monotonic()
        time.sleep(max(0.0, started + config.seconds - time.monotonic()))
        stop.set()
        for thread in threads:
            thread.join()
        ended = time.monotonic()
        deadlocks = int(db.value(q.DEADLOCKS)) - deadlocks_before
        lost = _lost_writes(db, collection.info, pool, expected)
        stale, missing = stale_codes(db, collection)
        versions = {c.name: c.version for c in collection.codecs()}
    window = (fit_started - started, fit_ended - started)
    return {
        "dataset": data.name, "dim": int(pool.shape[1]), "pool_vectors": int(len(pool)),
        "config": {"seconds": config.seconds, "writers": config.writers, "readers": config.readers,
                   "rows": config.rows, "fit_at": config.fit_at, "placement": config.placement.value,
                   "codecs": list(CODECS), "k": K, "writer_kinds": _kinds(WRITER_KINDS, config.writers),
                   "reader_kinds": _kinds(READER_KINDS, config.readers), "seed": config.seed},
        "seconds": round(ended - started, 1),
        "fit": {"started_s": round(window[0], 1), "seconds": round(window[1] - window[0], 1),
                "rows_encoded": encoded, "error": fit_error, "versions_after": versions},
        "writes": _summary(writer_logs, started, window), "reads": _summary(reader_logs, started, window),
        "errors": sum(sum(log.errors.values()) for log in writer_logs + reader_logs) + (fit_error is not None),
        "deadlocks": deadlocks, "short_results": sum(log.short for log in reader_logs),
        "lost_writes": lost, "stale_codes": stale, "missing_codes": missing,
        "rows_checked": sum(len(e.rows) for e in expected),
    }


def _kinds(kinds: tuple[str, ...], n: int) -> list[str]:
    return [kinds[i % len(kinds)] for i in range(n)]


def _setup(db: pgembed.Database, pool: np.ndarray, config: SoakConfig) -> pgembed.Collection:
    db.migrate()
    if any(c.name == TABLE for c in db.collections()):
        db.get_collection(TABLE).drop(drop_table=True)
    db.execute(drop_table_if_exists(TABLE))
    collection = db.create_collection(TABLE, int(pool.shape[1]), attrs={"pool_row": "integer", "cat": "text"},
                                      metric="ip", placement=config.placement)
    keys = np.arange(config.rows)
    collection.ingest(keys, pool[: config.rows], {"pool_row": keys.tolist(), "cat": [_cat(int(k)) for k in keys]})
    for spec in CODECS:
        collection.add_codec(spec, spec)
    collection.create_index(CODECS[0])
    return collection


def _cat(key: int) -> str:
    return "a" if key % 2 else "b"


def _guard(work: Callable[..., None], log: _Log) -> Callable[..., None]:
    def run(*args: Any) -> None:
        try:
            work(*args, log)
        except Exception as err:  # a worker that cannot go on: counted, as every error is
            log.failed(err)
    return run


def _writer(conninfo: str, info: Any, pool: np.ndarray, w: int, config: SoakConfig, expected: _Expected,
            stop: threading.Event, log: _Log) -> None:
    kind = WRITER_KINDS[w % len(WRITER_KINDS)]
    rng = random.Random(config.seed * 1000 + w)
    owned = sorted(expected.rows)
    next_key = (w + 1) * KEYS_PER_WRITER
    insert, update = q.insert_row(info, ["pool_row", "cat"]), q.update_vector(info, "pool_row")
    delete = q.delete_row(info)
    with psycopg.connect(conninfo, autocommit=True) as conn, \
            (pgembed.connect(conninfo) if kind == "ingest" else nullcontext()) as db:
        register_vector(conn)
        collection = db.get_collection(TABLE) if db is not None else None
        while not stop.is_set():
            began = time.monotonic()
            touched: dict[int, int | None] = {}  # what this write sets, once acknowledged
            if kind == "insert":
                touched, next_key = {next_key: rng.randrange(len(pool))}, next_key + 1
            elif kind == "update":
                touched = {key: rng.randrange(len(pool)) for key in rng.sample(owned, 2)}
            elif kind == "delete":
                key = rng.choice(owned)
                deleted = key in expected.rows and expected.rows[key] is None and key not in expected.uncertain
                touched = {key: rng.randrange(len(pool)) if deleted else None}
            else:
                touched = {key: rng.randrange(len(pool)) for key in range(next_key, next_key + INGEST_ROWS)}
                next_key += INGEST_ROWS
            try:
                if kind == "update":
                    with conn.transaction():  # two rows, in random order
                        for key, row in touched.items():
                            conn.execute(update, (pool[row], row, key))
                elif kind == "ingest":
                    assert collection is not None
                    rows = [row for row in touched.values() if row is not None]
                    collection.ingest(list(touched), pool[rows], {"pool_row": rows,
                                                                 "cat": [_cat(k) for k in touched]})
                else:
                    ((key, row),) = touched.items()
                    if row is None:
                        conn.execute(delete, (key,))
                    else:
                        conn.execute(insert, (key, pool[row], row, _cat(key)))
            except Exception as err:
                log.failed(err)
                expected.uncertain.update(touched)  # it may or may not have landed (a failed commit)
                time.sleep(0.05)
                continue
            log.timings.append((began, time.monotonic() - began))
            expected.rows.update(touched)
            stop.wait(PAUSE_SECONDS[kind])


def _reader(conninfo: str, queries: np.ndarray, r: int, config: SoakConfig, stop: threading.Event,
            log: _Log) -> None:
    kind = READER_KINDS[r % len(READER_KINDS)]
    rng = random.Random(config.seed * 1000 + 500 + r)
    with pgembed.connect(conninfo) as db:
        collection = db.get_collection(TABLE)
        register_vector(db.conn)
        while not stop.is_set():
            began = time.monotonic()
            try:
                if kind == "search_batch":
                    batch = queries[rng.sample(range(len(queries)), 16)]
                    counts = [int(c) for c in collection.search_batch(batch, k=K).counts]
                elif kind == "sql_search":
                    query = queries[rng.randrange(len(queries))]
                    counts = [int(db.value(q.SQL_SEARCH, (TABLE, query, K, None)))]
                else:
                    where = {"cat": "a"} if kind == "search_filtered" else None
                    counts = [len(collection.search(queries[rng.randrange(len(queries))], k=K, where=where))]
            except Exception as err:
                log.failed(err)
                time.sleep(0.05)
                continue
            log.timings.append((began, time.monotonic() - began))
            log.short += sum(c < K for c in counts)


def _summary(logs: list[_Log], started: float, window: tuple[float, float]) -> dict[str, Any]:
    """Operations and latency (ms) before, during and after the fit, and the errors by kind."""
    def latency(during: Callable[[float], bool]) -> dict[str, Any]:
        seconds = np.array([s for log in logs for t, s in log.timings if during(t - started)])
        if not len(seconds):
            return {"ops": 0}
        return {"ops": int(len(seconds)), "p50_ms": round(float(np.percentile(seconds, 50)) * 1e3, 2),
                "p99_ms": round(float(np.percentile(seconds, 99)) * 1e3, 2),
                "max_ms": round(float(seconds.max()) * 1e3, 2)}

    errors: Counter[str] = Counter()
    for log in logs:
        errors.update(log.errors)
    return {"all": latency(lambda t: True), "before_fit": latency(lambda t: t < window[0]),
            "during_fit": latency(lambda t: window[0] <= t < window[1]),
            "after_fit": latency(lambda t: t >= window[1]), "errors": dict(errors),
            "error_examples": [e for log in logs for e in log.examples][:5]}


def _lost_writes(db: pgembed.Database, info: Any, pool: np.ndarray, expected: list[_Expected]) -> int:
    """Acknowledged writes the table does not show: a row missing, present after its delete, or with another
    vector or pool row than the last acknowledged write gave it."""
    table = {int(k): (np.asarray(v, dtype=np.float32), row) for k, v, row, _ in
             db.execute(q.rows_with(info, ["pool_row", "cat"])).fetchall()}
    lost = 0
    for writer in expected:
        for key, row in writer.rows.items():
            if key in writer.uncertain:
                continue
            found = table.get(key)
            if row is None:
                lost += found is not None
            elif found is None or found[1] != row or not np.array_equal(found[0], pool[row]):
                lost += 1
    return lost
