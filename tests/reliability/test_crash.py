"""The crash suite's short form (`make crash` runs it at 20,000 rows): an embedded server of the test's own,
killed (SIGKILL of the postmaster and its processes) during ingest, backfill, fit, activation and a concurrent
index build, then started again; the next call finishes each operation, and no row or code is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgembed.tools.reliability.crash import CrashConfig, run_crash_suite
from pgembed.vocabulary import CrashScenario, Placement


@pytest.mark.parametrize("placement", [Placement.TABLE, Placement.COMPANION])
def test_a_kill_during_each_long_operation_needs_no_manual_step(server_folder: Path, placement: Placement) -> None:
    result = run_crash_suite(CrashConfig(rows=8000, placement=placement), data_dir=server_folder / "data")
    by_scenario = {r["scenario"]: r for r in result["scenarios"]}
    assert set(by_scenario) == {s.value for s in CrashScenario}
    assert result["failed"] == [], result["scenarios"]
    # Each kill came in the middle: the operation failed with the server gone, and left work to finish.
    # (psycopg's OperationalError or one of its kinds, such as CrashShutdown, or pgembed's ConnectionLostError)
    assert all(r["interrupted"] and r["server_lost"] for r in result["scenarios"]), result["scenarios"]
    assert by_scenario["backfill"]["building_after_crash"] == ["sq8"]
    assert by_scenario["fit"]["building_after_crash"] == ["bq2", "sq8"]
    assert by_scenario["concurrent_index"]["invalid_indexes_after_crash"] == 1
    assert {r["finishing_call"] for r in result["scenarios"]} >= {"backfill()", "create_index('vector', "
                                                                   "concurrently=True)"}
