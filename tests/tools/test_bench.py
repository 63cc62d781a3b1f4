"""`pgembed bench`: its JSON is read by other tools, so its field names are part of the interface."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pgembed.cli import main
from pgembed.groundtruth import exact_topk
from tests.helpers import unit_vectors


def test_codec_bench_writes_the_documented_json(dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                ) -> None:
    base, queries = unit_vectors(3000, 32, seed=1), unit_vectors(40, 32, seed=2)
    np.save(tmp_path / "base.npy", base.astype(np.float16))
    np.save(tmp_path / "queries.npy", queries)
    out = tmp_path / "codecs.json"
    code = main(["bench", "quality", "--dsn", dsn, "--base", str(tmp_path / "base.npy"), "--queries",
                 str(tmp_path / "queries.npy"), "--codecs", "f16,bq,sq8,rabitq", "--k", "5", "--out", str(tmp_path)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["dataset"]["n_base"] == 3000 and result["dataset"]["k"] == 5
    methods = {r["method"] for r in result["rows"]}
    assert methods == {"f16", "bq", "sq8", "rabitq"}
    for row in result["rows"]:
        assert {"method", "knobs", "recall_at_k", "bytes_per_vector", "encode_per_s", "sql_encode_per_s"} <= set(row)
        assert 0 <= row["recall_at_k"] <= 1 and row["bytes_per_vector"] > 0
    by = {(r["method"], r["knobs"]["rerank_factor"]): r for r in result["rows"]}
    assert by[("f16", 1)]["recall_at_k"] >= 0.99  # float16 loses almost nothing
    assert by[("bq", 40)]["recall_at_k"] > by[("bq", 1)]["recall_at_k"]  # re-ranking more finds more
    assert by[("bq", 1)]["bytes_per_vector"] < by[("sq8", 1)]["bytes_per_vector"] < by[("f16", 1)]["bytes_per_vector"]
    assert by[("rabitq", 1)]["error_bound_holds"] > 0.9


def test_exact_top_matches_a_full_sort() -> None:
    # The benches' ground truth: blockwise over a base larger than one block of queries x rows.
    base, queries = unit_vectors(50_000, 8, seed=3), unit_vectors(5, 8, seed=4)
    ids, scores = exact_topk(base, queries, 7, "ip")
    full = np.argsort(-(queries @ base.T), axis=1, kind="stable")[:, :7]
    assert np.array_equal(ids, full) and np.allclose(scores, np.take_along_axis(queries @ base.T, full, 1))


def test_spec_list_splitting() -> None:
    from pgembed.cli.bench import split_specs

    assert split_specs("f16,bq,pca128,bq2,mrl64+f32,leanvec32") == ["f16", "bq", "pca128,bq2", "mrl64+f32",
                                                                       "leanvec32"]


# -- search in the database: `pgembed bench --baselines / --search` ----------------------------------------
SEARCH_ROW_FIELDS = {"method", "filter", "knobs", "plan", "recall_at_k", "qps", "p50_ms", "p99_ms",
                     "min_rows_returned", "bytes_per_vector", "index_bytes", "build_s"}


def _search_inputs(tmp_path: Path, n: int = 3000, dim: int = 32) -> list[str]:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(5)
    np.save(tmp_path / "base.npy", unit_vectors(n, dim, seed=6).astype(np.float16))
    np.save(tmp_path / "queries.npy", unit_vectors(30, dim, seed=7))
    ids = rng.permutation(n).astype(np.int32)  # row order in the file must not matter
    category = np.where(rng.random(n) < 0.02, "rare", np.where(rng.random(n) < 0.5, "news", "blog"))
    pq.write_table(pa.table({"id": ids, "category": category[ids], "n_words": rng.integers(0, 1000, n)[ids]}),
                   tmp_path / "attrs.parquet")
    return ["--base", str(tmp_path / "base.npy"), "--queries", str(tmp_path / "queries.npy"),
            "--attrs", str(tmp_path / "attrs.parquet"), "--filter", "rare=category = 'rare'",
            "--filter", "wide=n_words < 400 AND category <> 'rare'", "--k", "5", "--queries-limit", "20"]


def test_search_bench_baselines_through_the_cli(dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "search.json"
    code = main(["bench", "search", "--dsn", dsn, *_search_inputs(tmp_path), "--no-pgembed", "--ef-search", "10,40",
                 "--rerank-factors", "2,4", "--out", str(tmp_path)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["dataset"]["n_base"] == 3000 and result["dataset"]["n_queries"] == 20
    assert set(result["filters"]) == {"rare", "wide"}
    assert 0.005 < result["filters"]["rare"]["selectivity"] < 0.05
    rows = result["rows"]
    assert {r["method"] for r in rows} == {"pgvector-hnsw-f32", "pgvector-hnsw-f16", "pgvector-bit-rerank",
                                           "pgvector-btree-exact"}
    assert {r["filter"] for r in rows} == {None, "rare", "wide"}
    for row in rows:
        assert set(row) >= SEARCH_ROW_FIELDS
        assert 0 <= row["recall_at_k"] <= 1 and row["qps"] > 0 and row["p99_ms"] >= row["p50_ms"] > 0
        assert 0 <= row["min_rows_returned"] <= 5
    exact = [r for r in rows if r["method"] == "pgvector-btree-exact"]
    assert len(exact) == 3
    for row in exact:  # exact by construction: every query gets its true top k
        assert row["recall_at_k"] == 1.0 and row["min_rows_returned"] == 5
    assert next(r for r in exact if r["filter"] == "rare")["plan"] == "btree+exact"
    assert next(r for r in exact if r["filter"] == "rare")["index_bytes"] > 0  # the B-tree on category
    f32 = [r for r in rows if r["method"] == "pgvector-hnsw-f32"]
    # iterative scans only under a filter; float32 gets strict_order too
    assert {r["knobs"]["iterative_scan"] for r in f32 if r["filter"] is None} == {"off"}
    assert {r["knobs"]["iterative_scan"] for r in f32 if r["filter"] == "wide"} == {"off", "relaxed_order",
                                                                                    "strict_order"}
    hnsw = [r for r in f32 if r["plan"].startswith("hnsw")]
    assert hnsw and all(r["index_bytes"] > 0 and r["build_s"] > 0 for r in hnsw)
    bit = [r for r in rows if r["method"] == "pgvector-bit-rerank"]
    assert {r["knobs"]["candidates"] for r in bit} == {10, 20}
    assert all(r["bytes_per_vector"] < 16 for r in bit)  # bit(32): 4 bytes of bits + header
    unfiltered_f32 = max((r for r in f32 if r["filter"] is None), key=lambda r: r["knobs"]["ef_search"])
    assert unfiltered_f32["recall_at_k"] >= 0.8
    assert [s["filter"] for s in result["summary"]] == [None, "rare", "wide"]
    for s in result["summary"]:  # the exact plan always reaches 0.95; pgembed was not asked for
        assert s["pgvector"]["recall_at_k"] >= 0.95 and s["pgembed"] is None


def test_search_bench_pgembed_search(dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "search.json"
    code = main(["bench", "search", "--dsn", dsn, *_search_inputs(tmp_path), "--no-baselines", "--codecs", "bq2",
                 "--ef-search", "40", "--oversample", "1,4", "--recall-targets", "0.95", "--tune-sample", "40",
                 "--out", str(tmp_path)])
    assert code == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert rows and {r["method"] for r in rows} == {"pgembed"}
    assert result["codecs"]["bq2"]["index_bytes"] > 0
    assert 8 < result["codecs"]["bq2"]["bytes_per_vector"] < 24  # bit(64) codes and their header
    for row in rows:
        assert set(row) >= SEARCH_ROW_FIELDS and sum(row["plan_counts"].values()) == 20
        assert 0 <= row["recall_at_k"] <= 1
    for row in (r for r in rows if r["knobs"] == {"plan": "exact"}):
        assert row["plan"] == "exact" and row["recall_at_k"] == 1.0 and row["min_rows_returned"] == 5
    assert any(r["knobs"] == {"recall": 0.95} for r in rows)


def test_filter_parsing_and_tie_aware_recall() -> None:
    from pgembed.errors import InvalidInputError
    from pgembed.tools.bench.search import filter_columns, parse_filters, truth_for

    assert parse_filters(["a=x = 1 AND y >= 2", "b_2=z LIKE 'q%'"]) == {"a": "x = 1 AND y >= 2",
                                                                      "b_2": "z LIKE 'q%'"}
    for bad in ("no equals sign", "=x = 1", "two words=x = 1"):
        with pytest.raises(InvalidInputError):
            parse_filters([bad])
    assert filter_columns("section = '5' AND n_words < 40", ["section", "n_words", "words", "source"]) == [
        "section", "n_words"]
    e = np.eye(3, dtype=np.float32)
    base = np.vstack([e[0], e[0], e[1], e[0], e[2]])  # rows 0, 1 and 3 are equal; row 3 is filtered out
    queries = np.array([[1, 0.5, 0]], dtype=np.float32)
    truth = truth_for(base, queries, 2, np.array([True, True, True, False, True]), "f", "x")
    assert truth.need == 2 and truth.kth[0] == 1.0
    assert truth.recall(base, queries, [np.array([1, 0])]) == 1.0  # duplicates of the best are all hits
    assert truth.recall(base, queries, [np.array([0, 2])]) == 0.5
    assert truth.recall(base, queries, [np.array([0, 3])]) == 0.5  # row 3 scores 1 but is outside the filter
    assert truth.recall(base, queries, [np.array([0])]) == 0.5  # a missing row is a miss
    rare = truth_for(base, queries, 5, np.array([False, False, True, False, False]), "g", "y")
    assert rare.need == 1 and rare.recall(base, queries, [np.array([2])]) == 1.0  # fewer than k rows match


def test_workload_bench_through_the_cli(dsn: str, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    rng = np.random.default_rng(2)
    base = rng.standard_normal((2000, 16)).astype(np.float32)
    np.save(tmp_path / "base.npy", base)
    np.save(tmp_path / "queries.npy", rng.standard_normal((60, 16)).astype(np.float32))
    sections = ["a", "b", "c", "d", "e"]
    pq.write_table(pa.table({"id": np.arange(2000, dtype=np.int32),
                             "section": [sections[i % 7 % 5] for i in range(2000)],
                             "n_words": rng.integers(20, 120, 2000).astype(np.int32)}), tmp_path / "attrs.parquet")
    out = tmp_path / "workload.json"
    code = main(["bench", "workload", "--base", str(tmp_path / "base.npy"), "--queries", str(tmp_path / "queries.npy"),
                 "--attrs", str(tmp_path / "attrs.parquet"), "--workload", "generate", "--dsn", dsn,
                 "--out", str(tmp_path)])
    assert code == 0
    result = json.loads(out.read_text())
    modes = {r["mode"] for r in result["rows"]}
    assert modes == {"batch", "batch-each", "batch-probe", "loop", "pgvector-loop"}
    batch = [r for r in result["rows"] if r["mode"] == "batch"]
    assert all(r["min_rows_returned"] >= 1 and r["peak_client_bytes"] > 0 for r in batch)
    assert sum(batch[0]["plan_mix"].values()) == 60
    assert all(r["recall_at_k"] == 1.0 for r in batch if set(r["plan_mix"]) == {"scan"})
    assert result["workload"]["queries"] == 60 and "batch_over_loop" in result["ratios"]


def test_attributes_load_from_parquet_and_csv_alike(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from pgembed.errors import InvalidInputError
    from pgembed.tools.bench.search import load_attrs

    table = pa.table({"id": [2, 0, 1, 3], "kind": ["b", "a", "a", "c"], "year": [2001, 1999, 2000, 2002]})
    pq.write_table(table, tmp_path / "a.parquet")
    pcsv.write_csv(table, tmp_path / "a.csv")
    from_parquet = load_attrs(tmp_path / "a.parquet", 3)
    from_csv = load_attrs(tmp_path / "a.csv", 3)
    assert from_parquet[0] == from_csv[0] == {"kind": "text", "year": "bigint"}
    for values in (from_parquet[1], from_csv[1]):
        assert list(values["kind"]) == ["a", "a", "b"] and list(values["year"]) == [1999, 2000, 2001]
    with pytest.raises(InvalidInputError, match="parquet or .csv"):
        load_attrs(tmp_path / "a.json", 3)
    (tmp_path / "bad.csv").write_text("kind\nx\n")
    with pytest.raises(InvalidInputError, match="no `id` column"):
        load_attrs(tmp_path / "bad.csv", 1)
