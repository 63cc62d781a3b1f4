"""The codec advisor's choice among measured rows (pure: no database needed)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgembed.codecs.spec import codec_spec_of
from pgembed.errors import InvalidInputError, UnknownCodecError
from pgembed.planning.params import SearchParams
from pgembed.tools.bench.advisor import Recommendation, advise_codec, pareto_frontier, parse_budget


def row(method: str, size: float, recall: float, qps: float, kind: str = "index", index: float = 300.0,
        **knobs: Any) -> dict[str, Any]:
    return {"method": method, "kind": kind, "bytes_per_vector": size, "total_bytes_per_vector": size + index,
            "recall_at_k": recall, "qps": qps, "knobs": knobs or {"candidates": 40, "oversample": 4.0,
                                                                   "ef_search": 40}}


ROWS = [
    row("pca88,bq", 16, 0.70, 400),
    row("pca192,bq", 29, 0.86, 380),
    row("bq", 53, 0.93, 500, candidates=80, oversample=8.0, ef_search=80),
    row("bq", 53, 0.96, 300, candidates=320, oversample=32.0, ef_search=320),
    row("bq2", 101, 0.97, 420),
    row("pq12", 13, 0.93, 180, kind="client-scan"),
    row("pgvector-bit-rerank", 56, 0.99, 900, kind="baseline"),
    row("pgvector-hnsw-f16", 776, 0.999, 1000, kind="baseline"),
]


def test_budgets_parse_per_vector_and_as_totals() -> None:
    assert parse_budget("64B").bytes_per_vector == 64
    assert parse_budget("64").bytes_per_vector == 64
    assert parse_budget(" 12.5 b ").bytes_per_vector == 12.5
    assert parse_budget(32).bytes_per_vector == 32
    assert parse_budget("1MB", rows=1000).bytes_per_vector == 1000
    assert parse_budget("1MiB", rows=1024).bytes_per_vector == 1024
    for bad in ("", "64 parsecs", "-3B", "0", "abc", "1e3B", True):
        with pytest.raises(InvalidInputError, match="budget"):
            parse_budget(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="row count"):
        parse_budget("12MB")


def test_best_recall_within_the_budget_never_a_baseline_or_a_client_scan_unless_asked() -> None:
    pick = advise_codec({"rows": ROWS, "dataset": {"k": 10}}, "64B")
    assert (pick.method, pick.recall_at_k, pick.knobs["candidates"]) == ("bq", 0.96, 320)
    assert pick.params == SearchParams(plan="index", oversample=32.0, ef_search=320)
    assert advise_codec(ROWS, "20B").method == "pca88,bq"
    assert advise_codec(ROWS, "20B", include_client_scan=True).method == "pq12"
    assert advise_codec(ROWS, "2000B").method == "bq2"  # the baselines' 0.999 is not a codec
    with pytest.raises(InvalidInputError, match="smallest is pca88,bq at 16.0"):
        advise_codec(ROWS, "15B")


def test_a_recall_floor_takes_the_fastest_setting_that_reaches_it() -> None:
    pick = advise_codec(ROWS, "128B", min_recall=0.95)
    assert pick.method == "bq2" and "fastest" in pick.reason
    pick = advise_codec(ROWS, "64B", min_recall=0.99)
    assert pick.method == "bq" and pick.recall_at_k == 0.96 and "no setting" in pick.reason
    with pytest.raises(InvalidInputError, match="min_recall"):
        advise_codec(ROWS, "64B", min_recall=1.5)


def test_the_budget_can_count_the_index() -> None:
    assert advise_codec(ROWS, "360B", count_index=True).method == "bq"
    with pytest.raises(InvalidInputError, match="codes \\+ index"):
        advise_codec(ROWS, "64B", count_index=True)


def test_nothing_measured_is_a_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="run `pgembed bench` first"):
        advise_codec([r for r in ROWS if r["kind"] == "baseline"], "64B")


def test_add_codec_takes_a_recommendation_as_it_comes() -> None:
    pick = advise_codec(ROWS, "64B")
    assert codec_spec_of(pick) == "bq" and codec_spec_of(pick.to_dict()) == "bq"
    with pytest.raises(UnknownCodecError, match="a plain pgvector baseline, not a pgembed codec"):
        codec_spec_of({"method": "pgvector-hnsw-f16"})
    with pytest.raises(UnknownCodecError, match="needs a 'method'"):
        codec_spec_of({"knobs": {}})
    assert isinstance(pick, Recommendation) and set(pick.to_dict()) >= {
        "method", "knobs", "bytes_per_vector", "recall_at_k", "qps", "params"}


def test_the_search_knobs_serialise_and_come_back() -> None:
    pick = advise_codec(ROWS, "64B").to_dict()
    assert pick["params"] == {"recall": None, "codec": None, "ef_search": 320, "oversample": 32.0, "plan": "index",
                              "refine": None, "refine_oversample": None, "rerank": True,
                              "fusion": {"vector": 1.0, "text": 1.0}, "fusion_depth": None,
                              "text_match": "websearch", "diversity": None, "diversity_depth": None, "model": None,
                              "min_relevance": None, "probes": None}
    assert "search" not in pick
    assert SearchParams.from_dict(pick["params"]) == advise_codec(ROWS, "64B").params
    # A client-side scan is nothing search() can reproduce: every knob is left to the planner.
    assert advise_codec(ROWS, "20B", include_client_scan=True).params == SearchParams()
    # Rows measured without an oversample knob take it from the candidates fetched.
    assert advise_codec([row("bq", 53, 0.9, 100, candidates=40, ef_search=40)], "64B").params.oversample == 4.0


measured = st.lists(st.builds(
    row, st.sampled_from(["bq", "bq2", "pq12", "pca88,bq", "f16"]), st.sampled_from([13.0, 16.0, 53.0, 101.0, 248.0]),
    st.floats(0.0, 1.0), st.floats(1.0, 5000.0), st.sampled_from(["index", "client-scan", "baseline"])),
    min_size=1, max_size=25)


@given(measured, st.sampled_from([16, 32, 64, 128, 256]), st.booleans(),
       st.one_of(st.none(), st.floats(0.5, 1.0)))
@settings(max_examples=200, deadline=None)
def test_every_pick_is_on_the_measured_pareto_frontier(rows: list[dict[str, Any]], budget: int,
                                                        client_scan: bool, floor: float | None) -> None:
    kinds = {"index", "client-scan"} if client_scan else {"index"}
    eligible = [r for r in rows if r["kind"] in kinds]
    within = [r for r in eligible if r["bytes_per_vector"] <= budget]
    if not within:
        with pytest.raises(InvalidInputError):
            advise_codec(rows, budget, include_client_scan=client_scan, min_recall=floor)
        return
    pick = advise_codec(rows, budget, include_client_scan=client_scan, min_recall=floor)
    assert pick.bytes_per_vector <= budget
    frontier = pareto_frontier(eligible)
    assert any((r["method"], r["bytes_per_vector"], r["recall_at_k"], r["qps"]) ==
               (pick.method, pick.bytes_per_vector, pick.recall_at_k, pick.qps) for r in frontier)
    if floor is None or not any(r["recall_at_k"] >= floor for r in within):
        assert pick.recall_at_k == max(r["recall_at_k"] for r in within)
    else:
        assert pick.qps == max(r["qps"] for r in within if r["recall_at_k"] >= floor)
