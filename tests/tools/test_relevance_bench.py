"""The relevance bench on the shipped manpages-5k and its judgments, against a real server: every mode
measured, the stored tsvector giving the same answers as the expression index."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pgembed.tools.bench.relevance import MODES, run_relevance_bench


def test_relevance_bench_on_the_shipped_dataset(dsn: str) -> None:
    folder = Path(str(resources.files("pgembed.tools.data").joinpath("manpages-5k")))
    result = run_relevance_bench(folder, folder, dsn=dsn, split="test", limit=12)
    assert result["queries"] == 12 and result["rows"] == 5000
    assert [m["mode"] for m in result["modes"]] == [m.name for m in MODES]
    assert [f["stored"] for f in result["text_search"]] == [False, True]
    for row in result["modes"]:
        assert 0.0 <= row["ndcg@10"] <= 1.0 and 0.0 <= row["mrr@10"] <= 1.0 and row["p50_ms"] > 0
        if row["text_match"] is not None:
            assert row["stored_same_answers"] == 12, row["mode"]
        if not row["text_only"]:
            assert row["mean_rows"] == 10 and row["empty_lists"] == 0
    vector = result["modes"][0]
    assert vector["mode"] == "vector" and vector["ndcg@10"] > 0.2  # real queries find their pages' passages
    cutoff = result["cutoff"]
    assert cutoff["train_queries"] == 12 and cutoff["test_queries"] == 12 and len(cutoff["rows"]) == 4
    for row in cutoff["rows"]:
        for method in ("raw", "calibrated"):
            assert 0 <= row[method]["precision"] <= 1 and 0 <= row[method]["recall"] <= 1
        assert row["raw at equal recall"]["recall"] >= row["calibrated"]["recall"]


def test_diversity_figures_on_the_shipped_dataset(dsn: str) -> None:
    folder = Path(str(resources.files("pgembed.tools.data").joinpath("manpages-5k")))
    result = run_relevance_bench(folder, folder, dsn=dsn, split="test", limit=8, only="diversity")
    rows = {d["diversity"]: d for d in result["diversity"]}
    assert set(rows) == {None, 0.7, 0.5} and rows[None]["mmr_p50_ms"] is None and rows[0.5]["mmr_p50_ms"] > 0
    assert rows[0.5]["distinct_pages"] >= rows[None]["distinct_pages"]  # MMR spreads the rows over pages
