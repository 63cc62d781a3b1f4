"""The command line mirrors the library; every command answers --json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql

from pgembed.cli import main
from pgembed.db.migrate import head_revision
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
    assert code == 1 and error["error"] == "SchemaError" and "no collection named 'nosuch'" in error["message"]
    code, error = run_json(capsys, "add-codec", "nosuch", "x", "pq7", "--dsn", dsn)
    assert code == 1


def test_the_main_job_compares_with_plain_pgvector_on_the_shipped_real_dataset(capsys: pytest.CaptureFixture[str],
                                                                             dsn: str) -> None:
    code, result = run_json(capsys, "demo", "--dsn", dsn)
    assert code == 0 and result["dataset"] == {"name": "manpages-5k", "rows": 5000, "queries": 200, "dim": 384}
    for rows in result["filtered"].values():
        mine = rows[-1]
        assert mine["label"].startswith("pgembed") and mine["rows_per_query"] == 10
        assert mine["recall"] >= result["recall_target"]
    memory = {m["label"]: m for m in result["memory"]}
    assert memory["pgembed bq2 + re-rank"]["bytes_per_vector"] < memory["pgvector HNSW float32"]["bytes_per_vector"]
    assert {m["label"] for m in result["batch"]["modes"]} == {
        "plain pgvector, one at a time", "pgembed search(), one at a time", "pgembed search_batch()"}
    assert all(m["qps"] > 0 and 0 < m["recall"] <= 1 for m in result["batch"]["modes"])
    # The first screen says what the figures say: the filtered line quotes this run's numbers.
    from pgembed.tools.demo import summary

    first = summary(result)[0]
    worst = min(result["filtered"].values(), key=lambda rows: rows[0]["recall"])
    assert f"{worst[0]['rows_per_query']:.1f} of 10 rows" in first
    with psycopg.connect(dsn) as conn:  # the demo's table is gone afterwards
        assert conn.execute("SELECT to_regclass('pgembed_demo')").fetchone() == (None,)


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


def test_dataset_commands_take_json_before_or_after_the_subcommand() -> None:
    from pgembed.cli import build_parser
    from pgembed.cli.datasets import cmd_info

    parser = build_parser()
    for argv in (["dataset", "--json", "info", "x"], ["dataset", "info", "x", "--json"]):
        args = parser.parse_args(argv)
        assert args.json is True and args.handler is cmd_info and args.path == "x"
    args = parser.parse_args(["dataset", "synthetic", "out", "--rows", "10", "--dim", "4"])
    assert args.json is False and (args.rows, args.dim, args.intrinsic_dim, args.queries) == (10, 4, 32, 1000)
    args = parser.parse_args(["dataset", "build", "out", "--passages", "5000", "--queries", "200", "--seed", "1"])
    assert (args.passages, args.queries, args.seed, args.sections) == (5000, 200, 1, "1,2,3,4,5,6,7,8")


def test_errors_are_json_and_info_never_attaches(capsys: pytest.CaptureFixture[str], dsn: str,
                                                 sql_conn: psycopg.Connection) -> None:
    sql_conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, v vector(8))")
    code, error = run_json(capsys, "info", "items", "--dsn", dsn)
    assert code == 1 and error["error"] == "SchemaError" and "no collection named 'items'" in error["message"]
    assert sql_conn.execute("SELECT count(*) FROM pgembed.collections").fetchone() == (0,)
    # The server's refusal: its message and SQLSTATE, not a traceback.
    read_only = psycopg.conninfo.make_conninfo(dsn, options="-c default_transaction_read_only=on")
    code, error = run_json(capsys, "attach", "items", "--dsn", read_only)
    assert code == 1 and error["sqlstate"] == "25006" and "read-only transaction" in error["message"]
