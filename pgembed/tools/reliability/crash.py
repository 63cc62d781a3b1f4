"""The crash suite: the embedded server killed (SIGKILL of the postmaster and every process of it, as a power cut
leaves things) in the middle of each of pgembed's long operations, started again, and the next call made.

Scenarios, each on a collection of its own:
- ingest: calls of ingest() one after another; the kill comes after some were acknowledged;
- backfill: add_codec() on a table of rows, killed while it fills the codes;
- fit: fit() of the collection's codecs, killed once its new versions are building;
- activation: fit() again, killed while it builds the new version's HNSW index;
- concurrent_index: create_index(concurrently=True), killed while the index builds.
After the restart, the call that finishes the operation (the one pgembed's messages name: backfill() for a
codec left building, create_index() again for an index) runs once. Then: every acknowledged row is there (the
interrupted ingest() call wrote all its rows or none), every row's codes are numpy's for its vector, no codec
is left building, no index is invalid, and search() returns k rows. Vectors are the shipped real dataset's
(pgembed/tools/data/manpages-5k), repeated under new keys to make a table large enough to interrupt."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

import pgembed
from pgembed.records import CollectionInfo
from pgembed.server import EmbeddedServer
from pgembed.statements import crash as q
from pgembed.statements.benchmarks import drop_table_if_exists
from pgembed.tools.datasets.files import load_dataset_dir
from pgembed.tools.demo import DEMO_DATASET
from pgembed.tools.reliability.checks import stale_codes
from pgembed.vocabulary import CodecState, Placement
from pgembed.vocabulary import CrashScenario as Scenario

K = 10
INGEST_ROWS = 500  # rows per ingest() call of the ingest scenario
WAIT_SECONDS = 120  # the longest a scenario waits for the moment to kill


@dataclass(frozen=True)
class CrashConfig:
    rows: int = 20_000  # of each scenario's table (the ingest scenario's grows from rows / 4)
    placement: Placement = Placement.TABLE
    scenarios: tuple[Scenario, ...] = tuple(Scenario)


def run_crash_suite(config: CrashConfig, *, data_dir: str | Path) -> dict[str, Any]:
    """Every scenario against the embedded server in `data_dir` (made if new, stopped at the end): its figures
    (see the module)."""
    server = EmbeddedServer(data_dir)
    server.ensure_running()
    pool = load_dataset_dir(DEMO_DATASET).base
    try:
        results = [_run(scenario, server, pool, config) for scenario in config.scenarios]
    finally:
        server.stop()
    return {"dataset": DEMO_DATASET.name, "rows": config.rows, "placement": config.placement.value, "k": K,
            "scenarios": results,
            "failed": [r["scenario"] for r in results if not r["ok"]]}


def kill_server(server: EmbeddedServer) -> int:
    """SIGKILL the postmaster and every process it started, and wait until they are gone; returns how many."""
    pid = server.status().pid
    if pid is None:
        raise RuntimeError(f"no server runs in {server.data_dir}")
    pids = [pid, *_children(pid)]
    for p in pids:
        with contextlib.suppress(ProcessLookupError):  # gone by itself already
            os.kill(p, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes of the killed server still run: {[p for p in pids if _alive(p)]}")
        time.sleep(0.05)
    return len(pids)


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    # A zombie counts: PostgreSQL will not start while its old postmaster's pid exists, reaped or not.
    return Path(f"/proc/{pid}").exists()


def _keys_vectors(pool: np.ndarray, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    keys = np.arange(start, start + n)
    return keys, pool[keys % len(pool)]


def _run(scenario: Scenario, server: EmbeddedServer, pool: np.ndarray, config: CrashConfig) -> dict[str, Any]:
    table = f"pgembed_crash_{scenario.value}"
    dsn = server.ensure_running()
    with pgembed.connect(dsn) as db:
        collection = _setup(db, table, pool, scenario, config)
    operation, moment = _SCENARIOS[scenario]
    acknowledged: list[int] = []  # ingest: the first key of every call that returned
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            with pgembed.connect(dsn) as db:
                operation(db.get_collection(table), pool, config, acknowledged)
            outcome["operation"] = "finished before the kill"
        except Exception as err:  # noqa: BLE001 - the suite reports what the operation raised, whatever it was
            outcome["operation"] = f"{type(err).__name__}"
            outcome["error"] = str(err).strip()
            outcome["server_lost"] = isinstance(err, psycopg.OperationalError | pgembed.errors.ConnectionLostError)

    thread = threading.Thread(target=work, daemon=True)
    started = time.monotonic()
    thread.start()
    with psycopg.connect(dsn, autocommit=True) as monitor:
        moment_seen = _wait_for(lambda: moment(monitor, collection.info, acknowledged), thread)
    killed_at = time.monotonic() - started
    killed = kill_server(server)
    thread.join(60)
    restarted = time.monotonic()
    dsn = server.ensure_running()
    restart_seconds = time.monotonic() - restarted
    with pgembed.connect(dsn) as db:
        collection = db.get_collection(table)
        building_after_crash = sorted(c.name for c in collection.codecs() if c.state is CodecState.BUILDING)
        invalid_after_crash = int(db.value(q.INVALID_INDEXES))
        finishing_call = _finish(scenario, collection)
        result = _check(db, collection, pool, scenario, config, acknowledged)
    result.update(scenario=scenario.value, interrupted=moment_seen and outcome.get("operation") != "finished "
                  "before the kill", operation=outcome.get("operation"), error=outcome.get("error"),
                  server_lost=bool(outcome.get("server_lost")), killed_after_s=round(killed_at, 2),
                  processes_killed=killed, restart_s=round(restart_seconds, 2),
                  building_after_crash=building_after_crash, invalid_indexes_after_crash=invalid_after_crash,
                  finishing_call=finishing_call)
    result["ok"] = bool(result["interrupted"] and result["lost_rows"] == 0 and result["partial_ingest"] == 0
                        and result["stale_codes"] == 0 and result["missing_codes"] == 0
                        and not result["building"] and result["invalid_indexes"] == 0
                        and result["search_rows"] == K)
    return result


def _wait_for(condition: Callable[[], bool], thread: threading.Thread) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline and thread.is_alive():
        try:
            if condition():
                return True
        except psycopg.errors.UndefinedColumn:
            pass  # a column the operation is making (its catalog row came first): look again
        time.sleep(0.02)
    return False


# -- setups, operations and the moments to kill them ---------------------------------------------------------------
def _setup(db: pgembed.Database, table: str, pool: np.ndarray, scenario: Scenario,
           config: CrashConfig) -> pgembed.Collection:
    db.migrate()
    if any(c.name == table for c in db.collections()):
        db.get_collection(table).drop(drop_table=True)
    db.execute(drop_table_if_exists(table))
    collection = db.create_collection(table, int(pool.shape[1]), metric="ip", placement=config.placement)
    rows = config.rows // 4 if scenario is Scenario.INGEST else config.rows
    keys, x = _keys_vectors(pool, 0, rows)
    collection.ingest(keys, x)
    if scenario is not Scenario.BACKFILL:
        collection.add_codec("bq2", "bq2")
        collection.add_codec("sq8", "sq8")
    if scenario is Scenario.ACTIVATION:
        collection.create_index("bq2")
    return collection


def _ingest(collection: pgembed.Collection, pool: np.ndarray, config: CrashConfig, acknowledged: list[int]) -> None:
    start = config.rows // 4
    while True:
        keys, x = _keys_vectors(pool, start, INGEST_ROWS)
        collection.ingest(keys, x)
        acknowledged.append(start)
        start += INGEST_ROWS


def _add_codec(collection: pgembed.Collection, pool: np.ndarray, config: CrashConfig, acknowledged: list[int]) -> None:
    collection.add_codec("sq8", "sq8")


def _fit(collection: pgembed.Collection, pool: np.ndarray, config: CrashConfig, acknowledged: list[int]) -> None:
    collection.fit()


def _concurrent_index(collection: pgembed.Collection, pool: np.ndarray, config: CrashConfig,
                      acknowledged: list[int]) -> None:
    collection.create_index("vector", concurrently=True)


def _after_calls(conn: psycopg.Connection, info: CollectionInfo, acknowledged: list[int]) -> bool:
    return len(acknowledged) >= 5


def _codes_filling(conn: psycopg.Connection, info: CollectionInfo, acknowledged: list[int]) -> bool:
    # Some rows coded, most still to do: the backfill runs.
    column = conn.execute(q.BUILDING_COLUMN, (info.id,)).fetchone()
    if column is None:
        return False
    coded = _value(conn, q.coded_rows(info, column[0]))
    return 0 < coded < _value(conn, q.row_count(info)) // 2


def _versions_building(conn: psycopg.Connection, info: CollectionInfo, acknowledged: list[int]) -> bool:
    return _value(conn, q.BUILDING_VERSIONS, (info.id,)) > 0


def _index_building(conn: psycopg.Connection, info: CollectionInfo, acknowledged: list[int]) -> bool:
    return _value(conn, q.INDEX_BUILDS, (info.codes_table.as_string(conn), info.table.as_string(conn))) > 0


def _value(conn: psycopg.Connection, statement: sql.SQL | sql.Composed, params: Any = None) -> int:
    row = conn.execute(statement, params).fetchone()
    return int(row[0]) if row else 0


Moment = Callable[[psycopg.Connection, CollectionInfo, list[int]], bool]
_SCENARIOS: dict[Scenario, tuple[Callable[..., None], Moment]] = {
    Scenario.INGEST: (_ingest, _after_calls),
    Scenario.BACKFILL: (_add_codec, _codes_filling),
    Scenario.FIT: (_fit, _versions_building),
    Scenario.ACTIVATION: (_fit, _index_building),
    Scenario.CONCURRENT_INDEX: (_concurrent_index, _index_building),
}


# -- after the restart ---------------------------------------------------------------------------------------------
def _finish(scenario: Scenario, collection: pgembed.Collection) -> str:
    """The one call that finishes what the crash interrupted, as pgembed's messages name it."""
    if scenario is Scenario.CONCURRENT_INDEX:
        collection.create_index("vector", concurrently=True)
        return "create_index('vector', concurrently=True)"
    if any(c.state is CodecState.BUILDING for c in collection.codecs()):
        collection.backfill()
        return "backfill()"
    return "none"


def _check(db: pgembed.Database, collection: pgembed.Collection, pool: np.ndarray, scenario: Scenario,
           config: CrashConfig, acknowledged: list[int]) -> dict[str, Any]:
    keys = {int(k): np.asarray(v, dtype=np.float32) for k, v in db.execute(q.keys_vectors(collection.info))}
    first = config.rows // 4 if scenario is Scenario.INGEST else config.rows
    expected = list(range(first)) + [k for start in acknowledged for k in range(start, start + INGEST_ROWS)]
    lost = sum(1 for k in expected if k not in keys or not np.array_equal(keys[k], pool[k % len(pool)]))
    # The interrupted call (the one after the last acknowledged) wrote all its rows or none.
    pending = (acknowledged[-1] + INGEST_ROWS) if acknowledged else first
    written = sum(1 for k in range(pending, pending + INGEST_ROWS) if k in keys)
    partial = int(scenario is Scenario.INGEST and written not in (0, INGEST_ROWS))
    stale, missing = stale_codes(db, collection)
    hits = collection.search(pool[0], K)
    return {"rows": len(keys), "acknowledged_rows": len(expected), "lost_rows": lost, "partial_ingest": partial,
            "stale_codes": stale, "missing_codes": missing,
            "building": sorted(c.name for c in collection.codecs() if c.state is CodecState.BUILDING),
            "invalid_indexes": int(db.value(q.INVALID_INDEXES)), "search_rows": len(hits),
            "versions": {c.name: c.version for c in collection.codecs()}}
