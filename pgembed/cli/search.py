"""`pgembed search | tune | advise`: hybrid search, recall targets, workload advice."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from pgembed.cli._common import (
    Add,
    add_search_arguments,
    console,
    emit,
    json_arg,
    load_npy,
    search_params,
    table_console,
)
from pgembed.cli.catalog import open_db
from pgembed.errors import InvalidInputError


def _query_vector(args: argparse.Namespace) -> np.ndarray:
    if (args.query is None) == (args.query_file is None):
        raise InvalidInputError("give the query as --query '[0.1, ...]' or as --query-file Q.npy [--row N]")
    if args.query is not None:
        return np.asarray(json_arg(args.query, "--query"), dtype=np.float32)
    queries = load_npy(args.query_file, "--query-file")
    if queries.ndim == 2 and not 0 <= args.row < len(queries):
        raise InvalidInputError(f"--row {args.row}: {args.query_file} has rows 0 to {len(queries) - 1}")
    return np.asarray(queries[args.row] if queries.ndim == 2 else queries, dtype=np.float32)


def cmd_search(args: argparse.Namespace) -> None:
    columns = args.columns.split(",") if args.columns else None
    with open_db(args) as db:
        result = db.get_collection(args.collection).search(
            _query_vector(args), args.k, where=json_arg(args.where, "--where"), params=search_params(args),
            columns=columns, text=args.text)
    data = {"ids": result.ids.tolist(), "distances": result.distances.tolist(), "rows": result.rows,
            "scores": None if result.scores is None else result.scores.tolist(), "plan": result.plan.describe()}

    def render(d: dict[str, Any]) -> None:
        fused = d["scores"] is not None
        table = Table("rank", "id", "distance", *(["score"] if fused else []), *(columns or []))
        for rank, (key, distance) in enumerate(zip(d["ids"], d["distances"], strict=True), 1):
            extra = [str(v) for v in d["rows"][rank - 1].values()] if d["rows"] else []
            score = [f"{d['scores'][rank - 1]:.6f}"] if fused else []
            table.add_row(str(rank), str(key), f"{distance:.6f}", *score, *extra)
        table_console().print(table)
        console.print(f"plan: {d['plan']['kind']} — {d['plan']['reason']}", highlight=False)

    emit(args, data, render)


def cmd_tune(args: argparse.Namespace) -> None:
    with open_db(args) as db:
        queries = load_npy(args.queries, "--queries") if args.queries else None
        results = db.get_collection(args.collection).tune(
            args.recall, k=args.k, sample=args.sample, queries=queries, progress=not args.json,
            selectivities=[float(s) for s in args.selectivities.split(",")])
    data = [r.describe() for r in results]

    def render(rows: list[dict[str, Any]]) -> None:
        table = Table("codec", "partial index", "selectivity", "oversample", "ef_search", "recall", "queries/s")
        for r in rows:
            t = r["tuned"]
            recall = t["measured_recall"] if t else r["best_recall"]
            table.add_row(r["codec"], r["index"] or "-", f"{r['selectivity']:g}",
                          f"{t['oversample']:g}" if t else "not reached", str(t["ef_search"]) if t else "-",
                          f"{recall:.3f}", f"{t['queries_per_s']:.0f}" if t else "-")
        table_console().print(table)

    emit(args, data, render)


def cmd_advise(args: argparse.Namespace) -> None:
    try:
        workload = json.loads(Path(args.workload).read_text())
    except (OSError, ValueError) as err:
        raise InvalidInputError(f"--workload {args.workload}: {err}") from err
    with open_db(args) as db:
        advice = db.get_collection(args.collection).advise(
            workload, codec=args.codec, min_share=args.min_share, max_indexes=args.max_indexes,
            partition=args.partition, max_partitions=args.max_partitions, apply=args.apply, progress=not args.json)
    data = advice.describe()

    def render(d: dict[str, Any]) -> None:
        table = Table("kind", "predicate", "queries", "rows", "ms now", "after", "gain s", "index")
        for kind in ("indexes", "partition_indexes"):
            for i in d[kind]:
                table.add_row("hot predicate" if kind == "indexes" else f"partition ({d['partition_by']})",
                              json.dumps(i["predicate"]), str(i["queries"]), f"{i['estimated_rows']:.0f}",
                              f"{i['seconds_now'] * 1e3:.2f}", f"{i['seconds_after'] * 1e3:.2f}",
                              f"{i['estimated_gain_s']:.3f}", i["applied"] or "(not built)")
        table_console().print(table)
        console.print(f"partition by: {d['partition_by']} ({d['partition_reason']})", highlight=False)

    emit(args, data, render)


def register(add: Add, parents: dict[str, argparse.ArgumentParser]) -> None:
    db = [parents["db"]]
    p = add("search", cmd_search, "the k nearest rows to a query among those a filter keeps (hybrid search)", db)
    p.add_argument("collection")
    p.add_argument("--query", default=None, metavar="JSON", help="the query vector as a JSON list")
    p.add_argument("--query-file", default=None, metavar="Q.npy", help="a .npy file of query vectors (see --row)")
    p.add_argument("--row", type=int, default=0, help="which row of --query-file")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--where", default=None, metavar="JSON", help="a filter, e.g. '{\"year\": {\"$gte\": 2020}}'")
    p.add_argument("--columns", default=None, help="comma-separated table columns to return with each hit")
    p.add_argument("--text", default=None,
                   help="a hybrid search: this text's full-text matches fused with the vector's")
    add_search_arguments(p)
    p = add("tune", cmd_tune, "measure and store the search knobs that reach a recall target", db)
    p.add_argument("collection")
    p.add_argument("--recall", type=float, default=0.95)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--sample", type=int, default=200, help="collection vectors used as queries")
    p.add_argument("--queries", default=None, metavar="Q.npy", help="tune on these real queries instead")
    p.add_argument("--selectivities", default="1,0.1,0.02")
    p = add("advise", cmd_advise, "workload-aware layout: partial HNSW indexes for a workload's hot predicates "
            "(and, with --partition, one per value of its partitioning column), with estimated gains", db)
    p.add_argument("collection")
    p.add_argument("--workload", required=True, metavar="W.json",
                   help='a list of filters (one per query, null for none) or {"filters": {...}, "queries": [...]}')
    p.add_argument("--codec", default=None, help="code column to index (default: the first with an HNSW index)")
    p.add_argument("--min-share", type=float, default=0.02)
    p.add_argument("--max-indexes", type=int, default=8)
    p.add_argument("--partition", action="store_true", help="also partition the index by the workload's column")
    p.add_argument("--max-partitions", type=int, default=64)
    p.add_argument("--apply", action="store_true", help="build them (CREATE INDEX CONCURRENTLY)")
