"""The compression bench against a real PostgreSQL: what it measures, what it writes, and the advice from it."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pgembed
from pgembed.cli import main
from pgembed.codecs import make_codec
from pgembed.errors import InvalidInputError, UnknownCodecError
from pgembed.tools.bench.advisor import advise_codec, pareto_frontier
from pgembed.tools.bench.compression import TABLE, run_compression_bench
from pgembed.tools.bench.report import write_outputs
from pgembed.tools.datasets import synthetic
from pgembed.tools.datasets.folder import write_dataset_dir

SPECS = ["bq", "pq4", "pca16,bq2"]
CANDIDATES = (10, 40, 120)


@pytest.fixture(scope="module")
def data() -> Any:
    # Synthetic on purpose: these tests check the machinery; figures come from real embeddings only.
    return synthetic.clustered(1500, 32, queries=25, intrinsic_dim=8, clusters=12, seed=3)


@pytest.fixture(scope="module")
def result(data: Any, server_dsn_for_module: str) -> dict[str, Any]:
    return run_compression_bench(data, SPECS, candidates=CANDIDATES, fit_sample=1500, dsn=server_dsn_for_module,
                                 quiet=True)


def by(result: dict[str, Any], method: str) -> list[dict[str, Any]]:
    return [r for r in result["rows"] if r["method"] == method]


def test_every_configuration_and_setting_is_measured(result: dict[str, Any]) -> None:
    methods = {r["method"] for r in result["rows"]}
    assert methods == {*SPECS, "pgvector-hnsw-f32", "pgvector-hnsw-f16", "pgvector-bit-rerank"}
    for method in methods:
        assert len(by(result, method)) == len(CANDIDATES)
    kinds = {r["method"]: r["kind"] for r in result["rows"]}
    assert kinds["bq"] == kinds["pca16,bq2"] == "index" and kinds["pq4"] == "client-scan"
    for r in result["rows"]:
        assert 0.0 <= r["recall_at_1"] <= 1.0 and 0.0 <= r["recall_at_10"] <= 1.0
        assert r["recall_at_k"] == r["recall_at_10"]
        fetched = r["knobs"].get("candidates", r["knobs"].get("ef_search"))
        assert (r["recall_at_100"] is None) == (fetched < 100), r
        assert r["qps"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"]
        assert r["batch_qps"] > 0


def test_bytes_are_what_postgres_stores(result: dict[str, Any]) -> None:
    # bit(32): 4 bytes + a 1-byte short varlena header + the 4-byte bit length; bytea of 4: 4 + 1.
    assert {r["bytes_per_vector"] for r in by(result, "bq")} == {9.0}
    assert {r["bytes_per_vector"] for r in by(result, "pca16,bq2")} == {9.0}
    assert {r["bytes_per_vector"] for r in by(result, "pq4")} == {5.0}
    assert {r["bytes_per_vector"] for r in by(result, "pgvector-hnsw-f32")} == {4 * 32 + 8.0}
    for r in result["rows"]:
        if r["kind"] == "client-scan":
            assert r["index_bytes"] is None and r["total_bytes_per_vector"] == r["bytes_per_vector"]
        else:
            assert r["index_bytes"] > 0 and r["build_s"] is not None
            assert r["total_bytes_per_vector"] == pytest.approx(r["bytes_per_vector"] + r["index_bytes"] / 1500,
                                                                abs=0.11)


def test_more_candidates_never_lose_recall_on_a_flat_scan(result: dict[str, Any]) -> None:
    # The same code ranking, a longer prefix re-ranked exactly: recall can only grow.
    recalls = [r["recall_at_10"] for r in sorted(by(result, "pq4"), key=lambda r: r["knobs"]["candidates"])]
    assert recalls == sorted(recalls) and recalls[-1] > recalls[0]


def test_in_database_recall_matches_a_flat_scan_of_the_same_codes(result: dict[str, Any], data: Any) -> None:
    widest = max(by(result, "pgvector-hnsw-f32"), key=lambda r: r["knobs"]["ef_search"])
    assert widest["recall_at_10"] >= 0.97 and widest["recall_at_1"] >= 0.95
    # HNSW with ef_search 120 over 1,500 rows is close to exhaustive: the index plan's recall should be what
    # re-ranking the 120 best codes of a numpy scan gives.
    codec = make_codec("bq", 32).fit(data.base)
    codes = codec.encode(data.base)
    flat = 0
    for i, q in enumerate(data.queries):
        pool = np.argsort(-codec.similarity(q[None], codes)[0], kind="stable")[:120]
        top = pool[np.argsort(-(data.base[pool] @ q))[:10]]
        flat += len(set(top.tolist()) & set(data.gt[i, :10].tolist()))
    measured = next(r for r in by(result, "bq") if r["knobs"]["candidates"] == 120)["recall_at_10"]
    assert measured == pytest.approx(flat / (10 * len(data.queries)), abs=0.05)


def test_the_scratch_collection_is_gone(result: dict[str, Any], server_dsn_for_module: str) -> None:
    with pgembed.connect(server_dsn_for_module) as db:
        assert TABLE not in {c.name for c in db.collections()}
        assert db.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone() == (None,)


def test_outputs_are_written(result: dict[str, Any], tmp_path: Path) -> None:
    files = write_outputs(dict(result), tmp_path / "out")
    with open(files["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(result["rows"]) and json.loads(rows[0]["knobs"]) == result["rows"][0]["knobs"]
    for png in ("recall_qps_png", "recall_bytes_png"):
        assert Path(files[png]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(Path(files["json"]).read_text())["rows"] == json.loads(json.dumps(result["rows"]))


def test_the_advice_is_on_the_measured_frontier_and_add_codec_takes_it(result: dict[str, Any],
                                                                        data: Any, dsn: str) -> None:
    pick = advise_codec(result, "10B")
    assert pick.method in ("bq", "pca16,bq2") and pick.bytes_per_vector <= 10
    frontier = pareto_frontier([r for r in result["rows"] if r["kind"] == "index"])
    assert any(r["method"] == pick.method and r["knobs"] == pick.knobs for r in frontier)
    with pgembed.connect(dsn) as db:
        docs = db.create_collection("advised", 32)
        docs.ingest(np.arange(len(data.base)), data.base)
        docs.add_codec("chosen", pick.to_dict())
        docs.create_index("chosen")
        hits = docs.search(data.queries[0], 10, params=pick.params)
        assert hits.plan.kind == "index" and hits.plan.codec == "chosen" and len(hits.ids) == 10
        assert (hits.plan.oversample, hits.plan.ef_search) == (pick.knobs["oversample"], pick.knobs["ef_search"])


def test_any_k_is_measured_and_short_answers_count_as_misses(data: Any, server_dsn_for_module: str) -> None:
    small = replace(data, base=data.base[:300], gt=None)
    result = run_compression_bench(small, ["pq4"], k=5, candidates=(5, 300), baselines=False, batch=False,
                                   fit_sample=300, dsn=server_dsn_for_module, quiet=True)
    assert all(r["recall_at_k"] == r["recall_at_5"] is not None for r in result["rows"])
    widest = max(result["rows"], key=lambda r: r["knobs"]["candidates"])
    assert widest["recall_at_5"] == 1.0 and widest["recall_at_100"] == 1.0  # every row re-ranked exactly


def test_bad_requests_fail_before_any_work(data: Any, server_dsn_for_module: str) -> None:
    with pytest.raises(UnknownCodecError, match="pq7"):
        run_compression_bench(data, ["bq", "pq7"], dsn=server_dsn_for_module, quiet=True)
    with pytest.raises(InvalidInputError, match="metric 'l2'"):
        run_compression_bench(replace(data, metric="l2"), ["bq"], dsn=server_dsn_for_module, quiet=True)
    with pytest.raises(InvalidInputError, match="leaves none"):
        run_compression_bench(data, ["bq"], fit_queries=25, dsn=server_dsn_for_module, quiet=True)
    with pytest.raises(InvalidInputError, match="not unit length"):
        run_compression_bench(replace(data, base=data.base * 3), ["bq"], dsn=server_dsn_for_module, quiet=True)
    with pytest.raises(InvalidInputError, match="same codec"):
        run_compression_bench(data, ["pca16,bq", "pca16+bq"], dsn=server_dsn_for_module, quiet=True)
    with pytest.raises(InvalidInputError, match="dimension 32"):
        run_compression_bench(replace(data, queries=data.queries[:, :8]), ["bq"], dsn=server_dsn_for_module,
                              quiet=True)


def test_a_user_table_with_the_scratch_name_is_never_dropped(data: Any, dsn: str, sql_conn: Any) -> None:
    sql_conn.execute(f"CREATE TABLE {TABLE} (id int)")
    sql_conn.execute(f"INSERT INTO {TABLE} VALUES (1)")
    with pytest.raises(InvalidInputError, match="not a bench collection"):
        run_compression_bench(data, ["bq"], dsn=dsn, quiet=True)
    assert sql_conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone() == (1,)


def test_cli_bench_and_advise_codec_mirror_the_library(capsys: pytest.CaptureFixture[str], data: Any,
                                                       server_dsn_for_module: str, tmp_path: Path) -> None:
    folder = write_dataset_dir(replace(data, base=data.base[:600], gt=None), tmp_path / "ds")
    out = tmp_path / "bench"
    code = main(["bench", "compression", "--dataset", str(folder), "--codecs", "bq,pq4", "--candidates", "10,40",
                 "--no-batch", "--no-baselines", "--out", str(out), "--dsn", server_dsn_for_module, "--json"])
    measured = json.loads(capsys.readouterr().out)
    assert code == 0 and {r["method"] for r in measured["rows"]} == {"bq", "pq4"}
    assert (out / "compression.csv").exists() and (out / "compression-recall-qps.png").exists()

    code = main(["advise-codec", "--results", str(out / "compression.json"), "--budget", "16B", "--json"])
    advice = json.loads(capsys.readouterr().out)
    assert code == 0 and advice["method"] == "bq" and advice["bytes_per_vector"] == 9.0
    assert set(advice) >= {"method", "knobs", "bytes_per_vector", "recall_at_k", "qps"}
    code = main(["advise-codec", "--results", str(out / "compression.json"), "--budget", "8B,16B",
                 "--include-client-scan", "--json"])
    both = json.loads(capsys.readouterr().out)
    assert code == 0 and [p["method"] for p in both] == ["pq4", max(
        [r for r in measured["rows"]], key=lambda r: (r["recall_at_k"], r["qps"]))["method"]]

    code = main(["advise-codec", "--results", str(out / "compression.json"), "--budget", "lots", "--json"])
    error = json.loads(capsys.readouterr().out)
    assert code == 1 and "budget 'lots'" in error["message"]
    code = main(["bench", "compression", "--dataset", str(folder), "--base", "x.npy", "--dsn", server_dsn_for_module])
    assert code == 1 and "give the data once" in capsys.readouterr().err


def test_bench_on_an_existing_collection_leaves_it_untouched(capsys: pytest.CaptureFixture[str], data: Any,
                                                            dsn: str, tmp_path: Path) -> None:
    with pgembed.connect(dsn) as db:
        mine = db.create_collection("mine", 32)
        keys = np.arange(1000, 1600)
        mine.ingest(keys, data.base[:600])
        before = (mine.count(), [c.name for c in mine.codecs()], [i.index_name for i in mine.indexes()])
    np.save(tmp_path / "q.npy", data.queries)
    np.save(tmp_path / "gt.npy", keys[np.argsort(-(data.queries @ data.base[:600].T), axis=1)[:, :100]])
    code = main(["bench", "compression", "--collection", "mine", "--queries", str(tmp_path / "q.npy"), "--gt",
                 str(tmp_path / "gt.npy"), "--codecs", "bq", "--candidates", "10,100", "--no-batch", "--no-baselines",
                 "--out", str(tmp_path / "out"), "--dsn", dsn, "--json"])
    measured = json.loads(capsys.readouterr().out)
    assert code == 0 and measured["dataset"]["n_base"] == 600
    assert measured["dataset"]["gt_file_agreement"] == 1.0  # keys mapped to the right rows
    with pgembed.connect(dsn) as db:
        mine = db.collection("mine")
        assert (mine.count(), [c.name for c in mine.codecs()], [i.index_name for i in mine.indexes()]) == before
    np.save(tmp_path / "bad.npy", np.full((25, 100), 7))
    code = main(["bench", "compression", "--collection", "mine", "--queries", str(tmp_path / "q.npy"), "--gt",
                 str(tmp_path / "bad.npy"), "--out", str(tmp_path / "out"), "--dsn", dsn, "--json"])
    error = json.loads(capsys.readouterr().out)
    assert code == 1 and "names keys not in 'mine': [7]" in error["message"]
    code = main(["bench", "compression", "--collection", "unattached", "--queries", str(tmp_path / "q.npy"),
                 "--out", str(tmp_path / "out"), "--dsn", dsn, "--json"])
    error = json.loads(capsys.readouterr().out)
    assert code == 1 and "no collection named 'unattached'" in error["message"]
    with pgembed.connect(dsn) as db:
        assert {c.name for c in db.collections()} == {"mine"}  # nothing attached by the bench
