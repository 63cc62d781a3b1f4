"""The soak test's short form (`make soak` runs it for 10 minutes): 8 writers and 8 readers on one collection
of real vectors, a re-fit in the middle; no error, deadlock, short result, lost write or stale code."""

from __future__ import annotations

import pytest

from pgembed.tools.reliability.soak import SoakConfig, run_soak
from pgembed.vocabulary import Placement


@pytest.mark.parametrize("placement", [Placement.TABLE, Placement.COMPANION])
def test_a_short_soak_through_a_refit_loses_nothing_and_fails_nothing(dsn: str, placement: Placement) -> None:
    result = run_soak(SoakConfig(seconds=30, rows=2000, fit_at=0.3, placement=placement), dsn=dsn)
    failures = {name: result[name] for name in ("errors", "deadlocks", "short_results", "lost_writes",
                                                "stale_codes", "missing_codes")}
    assert failures == dict.fromkeys(failures, 0), (failures, result["writes"]["errors"],
                                                    result["reads"]["errors"], result["writes"]["error_examples"],
                                                    result["reads"]["error_examples"], result["fit"])
    assert result["fit"]["versions_after"] == {"bq2": 2, "sq8": 2}  # the re-fit finished during the load
    assert result["fit"]["seconds"] < result["seconds"]
    assert all(result[side]["during_fit"]["ops"] > 0 for side in ("writes", "reads"))  # load went on meanwhile
    assert result["rows_checked"] > 2000
