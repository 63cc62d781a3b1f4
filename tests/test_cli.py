"""The command line mirrors the library; every command answers --json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql

from pgembed.cli import main
from pgembed.migrate import head_revision
from tests.helpers import unit_vectors


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def kinds_collection(capsys: pytest.CaptureFixture[str], dsn: str, sql_conn: psycopg.Connection, table: str,
                     rows: int, seed: int) -> np.ndarray:
    """A plain table (id, kind 'a' or 'b' (every third row), v vector(8)) written by SQL, then made a
    collection with a `bq` codec and its HNSW index, all through the CLI; returns the vectors."""
    sql_conn.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, kind text, v vector(8))").format(
        sql.Identifier(table)))
    x = unit_vectors(rows, 8, seed=seed)
    with sql_conn.cursor() as cur:
        cur.executemany(sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(sql.Identifier(table)),
                        [(i, "a" if i % 3 else "b", "[" + ",".join(map(str, r)) + "]") for i, r in enumerate(x)])
    assert run_json(capsys, "attach", table, "--dsn", dsn)[0] == 0
    assert run_json(capsys, "add-codec", table, "bq", "bq", "--dsn", dsn)[0] == 0
    assert run_json(capsys, "index", table, "--on", "bq", "--m", "8", "--dsn", dsn)[0] == 0
    return x


def test_migrate_twice(capsys: pytest.CaptureFixture[str], bare_dsn: str) -> None:
    assert run_json(capsys, "migrate", "--dsn", bare_dsn) == (0, {"from": None, "to": head_revision(),
                                                                    "head": head_revision()})
    assert run_json(capsys, "migrate", "--dsn", bare_dsn)[1]["from"] == head_revision()
    assert run_json(capsys, "migrate", "--dsn", bare_dsn, "--downgrade", "base")[1]["to"] is None


def test_attach_codec_ingest_index_info(capsys: pytest.CaptureFixture[str], dsn: str, sql_conn: psycopg.Connection,
                                        tmp_path: Path) -> None:
    sql_conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, v vector(8))")
    code, info = run_json(capsys, "attach", "items", "--dsn", dsn, "--metric", "l2")
    assert code == 0 and info["rows"] == 0 and info["metric"] == "l2"

    vectors = tmp_path / "v.npy"
    np.save(vectors, unit_vectors(500, 8))
    assert run_json(capsys, "ingest", "items", "--vectors", str(vectors), "--dsn", dsn) == (0, {"rows": 500})
    code, codecs = run_json(capsys, "add-codec", "items", "bq", "binary", "--dsn", dsn)
    assert code == 0 and [c["name"] for c in codecs] == ["bq"] and codecs[0]["fitted_rows"] == 500
    np.save(tmp_path / "q.npy", unit_vectors(20, 8, seed=5))
    code, codecs = run_json(capsys, "add-codec", "items", "lv", "leanvec4,sq8", "--fit-queries",
                            str(tmp_path / "q.npy"), "--dsn", dsn)
    assert code == 0 and {c["name"]: c["kind"] for c in codecs} == {"bq": "bq", "lv": "leanvec4,sq8"}
    code, index = run_json(capsys, "index", "items", "--on", "bq", "--m", "8", "--dsn", dsn)
    assert code == 0 and index["opclass"] == "bit_hamming_ops"

    code, info = run_json(capsys, "info", "items", "--dsn", dsn)
    assert info["rows"] == 500 and info["indexes"][0]["bytes"] > 0
    code, listing = run_json(capsys, "collections", "--dsn", dsn)
    assert [c["name"] for c in listing] == ["items"]
    assert sql_conn.execute("SELECT count(*) FROM items WHERE v_bq IS NOT NULL").fetchone() == (500,)


def test_errors_are_json_too(capsys: pytest.CaptureFixture[str], dsn: str) -> None:
    code, error = run_json(capsys, "info", "nosuch", "--dsn", dsn)
    assert code == 1 and error["error"] == "SchemaError" and "does not exist" in error["message"]
    code, error = run_json(capsys, "add-codec", "nosuch", "x", "pq7", "--dsn", dsn)
    assert code == 1


def test_the_main_job_benches_the_shipped_real_dataset(capsys: pytest.CaptureFixture[str], dsn: str,
                                                        tmp_path: Path) -> None:
    code, result = run_json(capsys, "demo", "--rows", "800", "--queries", "20", "--codecs", "bq,pq12",
                            "--out", str(tmp_path), "--dsn", dsn)
    assert code == 0
    assert result["dataset"]["name"] == "manpages-5k" and result["dataset"]["n_base"] == 800
    assert result["dataset"]["gt_file_agreement"] is None  # a subset: the shipped truth is not for it
    assert {r["method"] for r in result["rows"]} >= {"bq", "pq12", "pgvector-hnsw-f32"}
    assert result["advice"]["method"] == "bq" and result["advice"]["bytes_per_vector"] <= 64
    code, result = run_json(capsys, "demo", "--rows", "300", "--queries", "10", "--codecs", "f16", "--out",
                            str(tmp_path / "big"), "--dsn", dsn)
    assert code == 0 and result["advice"] is None  # nothing of f16's size fits 64 bytes: said, not a crash
    for name in ("compression.csv", "compression.json", "compression-recall-qps.png", "compression-recall-bytes.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_the_tour_runs_end_to_end(capsys: pytest.CaptureFixture[str], dsn: str) -> None:
    code, result = run_json(capsys, "tour", "--rows", "3000", "--dsn", dsn)
    assert code == 0
    assert len(result["hits"]) == 10
    assert all(hit[1] == "docs" and hit[2] >= 2015 for hit in result["hits"])
    distances = [hit[3] for hit in result["hits"]]
    assert distances == sorted(distances)
    assert result["recall_at_10"] >= 0.8
    assert result["collection"]["rows"] == 3000


def test_search_tune_and_partial_index_mirror_the_library(capsys: pytest.CaptureFixture[str], dsn: str,
                                                           sql_conn: psycopg.Connection, tmp_path: Path) -> None:
    x = kinds_collection(capsys, dsn, sql_conn, "docs", 600, seed=9)
    code, partial = run_json(capsys, "index", "docs", "--on", "bq", "--m", "8", "--where", '{"kind": "b"}',
                             "--dsn", dsn)
    assert code == 0 and partial["predicate"] == {"kind": "b"}
    np.save(tmp_path / "q.npy", x[:3])
    code, hits = run_json(capsys, "search", "docs", "--query-file", str(tmp_path / "q.npy"), "--row", "1",
                          "--k", "5", "--where", '{"kind": "a"}', "--columns", "kind", "--plan", "exact", "--dsn", dsn)
    assert code == 0 and hits["ids"][0] == 1 and len(hits["ids"]) == 5
    assert all(r["kind"] == "a" for r in hits["rows"]) and hits["plan"]["kind"] == "exact"
    code, hits = run_json(capsys, "search", "docs", "--query", json.dumps(x[0].tolist()), "--k", "3",
                          "--where", '{"kind": "b"}', "--dsn", dsn)
    assert code == 0 and hits["ids"][0] == 0 and hits["plan"]["index"] == partial["index_name"]
    code, tuned = run_json(capsys, "tune", "docs", "--recall", "0.8", "--sample", "30", "--selectivities", "1",
                           "--dsn", dsn)
    assert code == 0 and tuned[0]["codec"] == "bq" and tuned[0]["selectivity"] == 1.0
    code, error = run_json(capsys, "search", "docs", "--query", "[1, 2]", "--dsn", dsn)
    assert code == 1 and "dimension" in error["message"]
    code, error = run_json(capsys, "search", "docs", "--query", "[1, 2", "--dsn", dsn)
    assert code == 1 and "not valid JSON" in error["message"]


def test_advise_mirrors_the_library(capsys: pytest.CaptureFixture[str], dsn: str, sql_conn: psycopg.Connection,
                                    tmp_path: Path) -> None:
    kinds_collection(capsys, dsn, sql_conn, "posts", 2000, seed=10)  # 667 rows of kind b: a partial index pays
    sql_conn.execute("ANALYZE posts")
    workload = tmp_path / "w.json"
    workload.write_text(json.dumps([{"kind": "b"}] * 8 + [None] * 2))
    code, advice = run_json(capsys, "advise", "posts", "--workload", str(workload), "--partition", "--dsn", dsn)
    assert code == 0 and advice["partition_by"] == "kind" and advice["queries"] == 10
    assert [i["predicate"] for i in advice["indexes"]] == [{"kind": "b"}] and advice["indexes"][0]["applied"] is None
    code, applied = run_json(capsys, "advise", "posts", "--workload", str(workload), "--apply", "--dsn", dsn)
    assert code == 0 and applied["indexes"][0]["applied"]
    workload.write_text("[{")
    code, error = run_json(capsys, "advise", "posts", "--workload", str(workload), "--dsn", dsn)
    assert code == 1 and "--workload" in error["message"]
