"""The `pgembed` command. Each command mirrors a library call and prints JSON with --json."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

import pgembed
from pgembed import migrate as migrations
from pgembed.datasets.cli import add_commands as add_dataset_commands
from pgembed.errors import PgembedError
from pgembed.server import EmbeddedServer

console = Console(stderr=True)
Handler = Callable[[argparse.Namespace], Any]


def _emit(args: argparse.Namespace, data: Any, render: Callable[[Any], None] | None = None) -> None:
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    elif render is not None:
        render(data)
    else:
        console.print(data)


def _open(args: argparse.Namespace) -> pgembed.Database:
    return pgembed.connect(args.dsn, data_dir=args.data_dir)


# -- server ---------------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> None:
    server = EmbeddedServer(args.data_dir)
    was_running = server.status().running
    dsn = server.ensure_running(port=args.port)
    _emit(args, {"dsn": dsn, "data_dir": str(server.data_dir), "already_running": was_running},
          lambda d: print(d["dsn"], flush=True))
    sys.stdout.flush()
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    console.print(f"[green]serving[/] {dsn}  (data: {server.data_dir}); Ctrl-C stops", highlight=False)
    done.wait()
    if was_running:
        console.print("the server was already running before `serve`; leaving it up")
    else:
        server.stop()
        console.print("server stopped")


def cmd_stop(args: argparse.Namespace) -> None:
    stopped = EmbeddedServer(args.data_dir).stop()
    _emit(args, {"stopped": stopped}, lambda d: console.print("stopped" if d["stopped"] else "was not running"))


def cmd_status(args: argparse.Namespace) -> None:
    status = asdict(EmbeddedServer(args.data_dir).status())
    _emit(args, status, lambda d: console.print_json(json.dumps(d, default=str)))


# -- catalog --------------------------------------------------------------------------------------------
def cmd_migrate(args: argparse.Namespace) -> None:
    with pgembed.connect(args.dsn, data_dir=args.data_dir, migrate=False) as db:
        before = db.catalog_revision()
        if args.downgrade:
            db.downgrade(args.downgrade)
        else:
            db.migrate(args.revision)
        after = db.catalog_revision()
    _emit(args, {"from": before, "to": after, "head": migrations.head_revision()},
          lambda d: console.print(f"catalog: {d['from']} -> {d['to']} (head {d['head']})"))


def cmd_collections(args: argparse.Namespace) -> None:
    with _open(args) as db:
        rows = [asdict(c) for c in db.collections()]

    def render(rows: list[dict[str, Any]]) -> None:
        table = Table("name", "table", "key", "vector", "dim", "metric")
        for r in rows:
            table.add_row(r["name"], f"{r['table_schema']}.{r['table_name']}", r["key_column"], r["vector_column"],
                          str(r["dim"]), r["metric"])
        Console().print(table)

    _emit(args, rows, render)


def cmd_info(args: argparse.Namespace) -> None:
    with _open(args) as db:
        info = db.collection(args.name).describe()
    _emit(args, info, lambda d: Console().print_json(json.dumps(d, default=str)))


def cmd_attach(args: argparse.Namespace) -> None:
    with _open(args) as db:
        info = db.collection(args.table, vector=args.vector, key=args.key, metric=args.metric,
                             name=args.name).describe()
    _emit(args, info, lambda d: console.print(f"collection {d['name']}: {d['rows']} rows, dim {d['dim']}"))


def cmd_add_codec(args: argparse.Namespace) -> None:
    with _open(args) as db:
        collection = db.collection(args.collection)
        queries = np.load(args.fit_queries) if args.fit_queries else None
        collection.add_codec(args.codec_name, args.kind, sample=args.sample, fit_queries=queries,
                             progress=not args.json)
        info = collection.describe()
    _emit(args, info["codecs"], lambda d: console.print(f"codecs: {', '.join(c['name'] for c in d)}"))


def _json_arg(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise pgembed.InvalidInputError(f"{what} is not valid JSON: {err}") from err


def cmd_index(args: argparse.Namespace) -> None:
    with _open(args) as db:
        index = db.collection(args.collection).create_index(
            args.on, args.method, m=args.m, ef_construction=args.ef_construction, lists=args.lists,
            where=_json_arg(args.where, "--where"), concurrently=args.concurrently, progress=not args.json,
        )
    _emit(args, asdict(index), lambda d: console.print(f"built {d['index_name']} in {d['build_seconds']:.1f}s"))


def cmd_ingest(args: argparse.Namespace) -> None:
    vectors = np.load(args.vectors, mmap_mode="r")
    ids = np.load(args.ids) if args.ids else np.arange(args.start_id, args.start_id + len(vectors))
    with _open(args) as db:
        collection = db.collection(args.collection)
        batches = ((ids[i : i + args.batch], vectors[i : i + args.batch], None)
                   for i in range(0, len(vectors), args.batch))
        rows = collection.ingest_batches(batches, progress=not args.json, total=len(vectors))
    _emit(args, {"rows": rows}, lambda d: console.print(f"ingested {d['rows']} rows"))


def _query_vector(args: argparse.Namespace) -> np.ndarray:
    if (args.query is None) == (args.query_file is None):
        raise pgembed.InvalidInputError("give the query as --query '[0.1, ...]' or as --query-file Q.npy [--row N]")
    if args.query is not None:
        return np.asarray(_json_arg(args.query, "--query"), dtype=np.float32)
    queries = np.load(args.query_file)
    return np.asarray(queries[args.row] if queries.ndim == 2 else queries, dtype=np.float32)


def cmd_search(args: argparse.Namespace) -> None:
    with _open(args) as db:
        result = db.collection(args.collection).search(
            _query_vector(args), args.k, where=_json_arg(args.where, "--where"), recall=args.recall,
            codec=args.codec, ef_search=args.ef_search, oversample=args.oversample, plan=args.plan,
            columns=args.columns.split(",") if args.columns else None,
        )
    data = {"ids": result.ids.tolist(), "distances": result.distances.tolist(), "rows": result.rows,
            "plan": result.plan.describe()}

    def render(d: dict[str, Any]) -> None:
        table = Table("rank", "id", "distance", *(args.columns.split(",") if args.columns else []))
        for rank, (key, distance) in enumerate(zip(d["ids"], d["distances"], strict=True), 1):
            extra = [str(v) for v in d["rows"][rank - 1].values()] if d["rows"] else []
            table.add_row(str(rank), str(key), f"{distance:.6f}", *extra)
        Console().print(table)
        console.print(f"plan: {d['plan']['kind']} — {d['plan']['reason']}", highlight=False)

    _emit(args, data, render)


def cmd_tune(args: argparse.Namespace) -> None:
    with _open(args) as db:
        queries = np.load(args.queries) if args.queries else None
        results = db.collection(args.collection).tune(
            args.recall, k=args.k, sample=args.sample, queries=queries, progress=not args.json,
            selectivities=[float(s) for s in args.selectivities.split(",")],
        )
    data = [{"codec": r.codec, "index": r.index, "selectivity": r.selectivity, "best_recall": r.best_recall,
             "tuned": asdict(r.tuned) if r.tuned else None} for r in results]

    def render(rows: list[dict[str, Any]]) -> None:
        table = Table("codec", "partial index", "selectivity", "oversample", "ef_search", "recall", "queries/s")
        for r in rows:
            t = r["tuned"]
            recall = t["measured_recall"] if t else r["best_recall"]
            table.add_row(r["codec"], r["index"] or "-", f"{r['selectivity']:g}",
                          f"{t['oversample']:g}" if t else "not reached", str(t["ef_search"]) if t else "-",
                          f"{recall:.3f}", f"{t['queries_per_s']:.0f}" if t else "-")
        Console().print(table)

    _emit(args, data, render)


def cmd_advise(args: argparse.Namespace) -> None:
    try:
        workload = json.loads(Path(args.workload).read_text())
    except (OSError, ValueError) as err:
        raise pgembed.InvalidInputError(f"--workload {args.workload}: {err}") from err
    with _open(args) as db:
        advice = db.collection(args.collection).advise(
            workload, codec=args.codec, min_share=args.min_share, max_indexes=args.max_indexes,
            partition=args.partition, max_partitions=args.max_partitions, apply=args.apply, progress=not args.json)
    data = advice.describe()

    def render(d: dict[str, Any]) -> None:
        table = Table("kind", "predicate", "queries", "rows", "ms/query now", "after", "gain s", "index")
        for kind in ("indexes", "partition_indexes"):
            for i in d[kind]:
                table.add_row("hot predicate" if kind == "indexes" else f"partition ({d['partition_by']})",
                              json.dumps(i["predicate"]), str(i["queries"]), f"{i['estimated_rows']:.0f}",
                              f"{i['seconds_now'] * 1e3:.2f}", f"{i['seconds_after'] * 1e3:.2f}",
                              f"{i['estimated_gain_s']:.3f}", i["applied"] or "(not built)")
        Console().print(table)
        Console().print(f"partition by: {d['partition_by']} ({d['partition_reason']})")

    _emit(args, data, render)


# -- jobs -----------------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> None:
    from pgembed.demo import run_main_job

    result = run_main_job(args.dsn, args.data_dir, dataset=args.dataset, rows=args.rows, queries=args.queries,
                          specs=_bench_specs(args), out_dir=args.out, quiet=args.json)
    _emit(args, result, lambda _d: None)


def cmd_tour(args: argparse.Namespace) -> None:
    from pgembed.demo import run_demo

    result = run_demo(dsn=args.dsn, data_dir=args.data_dir, rows=args.rows, quiet=args.json)
    _emit(args, result, lambda _d: None)


def cmd_bench_ingest(args: argparse.Namespace) -> None:
    from pgembed.bench.ingest import run_ingest_bench

    result = run_ingest_bench(
        dsn=args.dsn, data_dir=args.data_dir, base=args.base, rows=args.rows, repeats=args.repeats,
        quiet=args.json,
    )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    _emit(args, result, lambda _d: None)


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if not getattr(args, n)]
    if missing:
        raise PgembedError(f"this bench needs {', '.join(missing)}")


def _bench_specs(args: argparse.Namespace) -> list[str] | None:
    if not args.codecs:
        return None
    return [s.strip() for s in args.codecs.split(";")] if ";" in args.codecs else _split_specs(args.codecs)


def cmd_bench(args: argparse.Namespace) -> None:
    specs = _bench_specs(args)
    to_stdout = args.json == "-"
    if args.workload:
        from pgembed.bench.workload import run_workload_bench

        _need(args, "base", "queries", "attrs")
        result = run_workload_bench(args.base, args.queries, args.attrs,
                                    None if args.workload == "generate" else args.workload, k=args.k,
                                    dsn=args.dsn, data_dir=args.data_dir, quiet=to_stdout)
    elif args.baselines or args.search:
        from pgembed.bench.search import parse_filters, run_search_bench

        _need(args, "base", "queries")
        result = run_search_bench(
            args.base, args.queries, args.gt, args.attrs, parse_filters(args.filter), baselines=args.baselines,
            search=args.search, k=args.k, rows=args.rows, queries_limit=args.queries_limit, codecs=specs,
            ef_search=_int_list(args.ef_search), oversample=_float_list(args.oversample),
            rerank_factors=_int_list(args.rerank_factors), recall_targets=_float_list(args.recall_targets),
            tune_sample=args.tune_sample, tune_queries=args.tune_queries,
            partial=[t.strip() for t in args.partial.split(";") if t.strip()],
            dsn=args.dsn, data_dir=args.data_dir, quiet=to_stdout,
        )
    elif args.quality:
        from pgembed.bench.codecs import run_codec_bench

        _need(args, "base", "queries")
        if args.attrs or args.filter or args.rows or args.queries_limit or args.dataset or args.collection:
            raise PgembedError("--quality takes --base/--queries/--gt files only (--attrs, --filter, --rows, "
                               "--queries-limit, --dataset and --collection are for the other benches)")
        result = run_codec_bench(args.base, args.queries, args.gt, specs, k=args.k, fit_sample=args.fit_sample,
                                 fit_queries=args.fit_queries or 0, dsn=args.dsn, data_dir=args.data_dir,
                                 quiet=to_stdout)
    else:
        result = _compression_bench(args, specs, quiet=to_stdout)
    if to_stdout:
        print(json.dumps(result, indent=2, default=str))
    elif args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))


SEARCH_BENCH_ONLY = ("attrs", "filter", "partial", "tune_queries")


def _compression_bench(args: argparse.Namespace, specs: list[str] | None, *, quiet: bool) -> dict[str, Any]:
    from pgembed.bench.compression import run_compression_bench
    from pgembed.bench.report import write_outputs

    ignored = [f"--{name.replace('_', '-')}" for name in SEARCH_BENCH_ONLY if getattr(args, name, None)]
    if ignored:
        raise PgembedError(f"{', '.join(ignored)}: for the filtered-search bench (--baselines / --search); the "
                           "compression bench measures unfiltered search")
    dataset = _dataset(args)
    if getattr(args, "rows", None):
        dataset = dataset.head(args.rows)
    result = run_compression_bench(
        dataset, specs, k=args.k, baselines=not args.no_baselines, candidates=_int_list(args.candidates),
        queries_limit=args.queries_limit, fit_sample=args.fit_sample, fit_queries=args.fit_queries,
        batch=not args.no_batch, dsn=args.dsn, data_dir=args.data_dir, quiet=quiet)
    files = write_outputs(result, args.out)
    if not quiet:
        _show_compression(result, files)
    return result


def _show_compression(result: dict[str, Any], files: dict[str, str]) -> None:
    from pgembed.bench.compression import results_table

    out = Console(width=None if sys.stdout.isatty() else 200)
    out.print(results_table(result))
    out.print(f"every row: {files['csv']} and {files['json']}", highlight=False)
    out.print(f"plots: {files['recall_qps_png']}  {files['recall_bytes_png']}", highlight=False)


def _dataset(args: argparse.Namespace) -> Any:
    """The bench's dataset: files (--base/--queries/--gt), a dataset folder (--dataset), or a collection."""
    from pgembed.bench.compression import dataset_from_collection
    from pgembed.datasets.files import load_dataset

    given = [name for name in ("base", "dataset", "collection") if getattr(args, name, None)]
    if len(given) != 1:
        raise PgembedError("give the data once: --base FILE (with --queries), --dataset DIR, or --collection NAME")
    if args.collection:
        _need(args, "queries")
        with pgembed.connect(args.dsn, data_dir=args.data_dir) as db:
            return dataset_from_collection(db, args.collection, args.queries, args.gt)
    return load_dataset(args.dataset or args.base, args.queries, args.gt, metric=args.metric)


def cmd_advise_codec(args: argparse.Namespace) -> None:
    from pgembed.advise_codec import advise_codec

    if args.results:
        if args.base or args.dataset or args.collection:
            raise PgembedError("--results reads a measured frontier: give it alone, or the data to measure")
        try:
            result = json.loads(Path(args.results).read_text())
        except (OSError, ValueError) as err:
            raise PgembedError(f"--results {args.results}: {err}") from err
    else:
        result = _compression_bench(args, _bench_specs(args), quiet=True)
    picks = [advise_codec(result, budget.strip(), min_recall=args.min_recall,
                          include_client_scan=args.include_client_scan, count_index=args.count_index).to_dict()
             for budget in args.budget.split(",") if budget.strip()]
    data = picks[0] if len(picks) == 1 else picks

    def render(_: Any) -> None:
        table = Table(title=f"codec advice ({result['dataset']['name']}, recall@{result['dataset']['k']})")
        for column in ("budget", "method", "knobs", "B/vector", "recall", "q/s", "reason"):
            table.add_column(column)
        for p in picks:
            knobs = " ".join(f"{k}={v}" for k, v in p["knobs"].items())
            table.add_row(p["budget"]["text"], p["method"], knobs, f"{p['bytes_per_vector']:.1f}",
                          f"{p['recall_at_k']:.3f}", f"{p['qps']:,.0f}", p["reason"])
        Console().print(table)

    _emit(args, data, render)


def _int_list(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def _float_list(text: str) -> list[float]:
    return [float(t) for t in text.split(",") if t.strip()]


def _split_specs(text: str) -> list[str]:
    """'f16,bq,pca128,bq2,mrl64+f32' -> ['f16', 'bq', 'pca128,bq2', 'mrl64+f32']: a projection joins the
    token that follows it; write a pipeline with '+' to say it exactly."""
    from pgembed.codecs.projection import PROJECTIONS

    specs: list[str] = []
    pending: list[str] = []
    for token in (t.strip() for t in text.split(",") if t.strip()):
        pending.append(token)
        if "+" in token or token.rstrip("0123456789") not in PROJECTIONS:
            specs.append(",".join(pending))
            pending = []
    if pending:
        specs.append(",".join(pending))
    return specs


# -- parser ---------------------------------------------------------------------------------------------
def _dataset_arguments(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("data (one of --base, --dataset, --collection)")
    d.add_argument("--base", default=None, help="base vectors: .npy, .fvecs/.bvecs, or an ann-benchmarks .hdf5 "
                                                "(which also holds the queries and neighbours)")
    d.add_argument("--queries", default=None, help="query vectors: .npy or .fvecs")
    d.add_argument("--gt", default=None, help="exact top-k ids, .npy or .ivecs (compared with the truth the bench "
                                              "computes)")
    d.add_argument("--metric", default=None, choices=["cosine", "ip", "l2"],
                   help="the data's metric (default: the file's, else unit-length vectors mean ip)")
    d.add_argument("--dataset", default=None, metavar="DIR",
                   help="a dataset folder (base[.f16].npy, queries.npy, gt_ip.npy), as `pgembed dataset` writes")
    d.add_argument("--collection", default=None, metavar="NAME",
                   help="an existing collection's vectors (copied to a scratch collection; yours is not touched)")


def _compression_arguments(p: argparse.ArgumentParser) -> None:
    c = p.add_argument_group("the compression bench")
    c.add_argument("--candidates", default="10,20,40,80,160,320",
                   help="rows fetched from a code index and re-ranked, swept (oversample = candidates / k)")
    c.add_argument("--no-baselines", action="store_true", help="leave plain pgvector out")
    c.add_argument("--no-batch", action="store_true", help="leave the batched measurement out")
    c.add_argument("--out", default="bench-out", metavar="DIR", help="where the CSV, JSON and PNG plots go")


def build_parser() -> argparse.ArgumentParser:
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument("--data-dir", default=None, help="embedded server data directory ($PGEMBED_DATA_DIR)")
    common = argparse.ArgumentParser(add_help=False, parents=[data_dir])
    common.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    server_common = argparse.ArgumentParser(add_help=False, parents=[data_dir])
    server_common.add_argument("--dsn", default=None,
                               help="PostgreSQL DSN (default $PGEMBED_DSN, $DATABASE_URL, else the embedded server)")
    db_common = argparse.ArgumentParser(add_help=False, parents=[common])
    db_common.add_argument("--dsn", default=None,
                           help="PostgreSQL DSN (default $PGEMBED_DSN, $DATABASE_URL, else the embedded server)")

    parser = argparse.ArgumentParser(prog="pgembed", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pgembed {pgembed.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Handler, help_text: str, parents: Sequence[argparse.ArgumentParser]):  # type: ignore[no-untyped-def]
        p = sub.add_parser(name, help=help_text, description=help_text, parents=list(parents))
        p.set_defaults(handler=handler)
        return p

    p = add("serve", cmd_serve, "run the embedded PostgreSQL in the foreground and print its DSN", [common])
    p.add_argument("--port", type=int, default=None, help="also listen on TCP 127.0.0.1:PORT")
    add("stop", cmd_stop, "stop the embedded server", [common])
    add("status", cmd_status, "show whether the embedded server runs, and its DSN", [common])

    p = add("migrate", cmd_migrate, "upgrade (or --downgrade) pgembed's catalog schema", [db_common])
    p.add_argument("--revision", default="head")
    p.add_argument("--downgrade", default=None, metavar="REV", help="downgrade to REV ('base' removes it)")
    add("collections", cmd_collections, "list collections", [db_common])
    p = add("info", cmd_info, "describe a collection: codecs, indexes, sizes", [db_common])
    p.add_argument("name")
    p = add("attach", cmd_attach, "make an existing table with a vector column a collection", [db_common])
    p.add_argument("table")
    p.add_argument("--vector", default=None)
    p.add_argument("--key", default=None)
    p.add_argument("--metric", default="cosine", choices=["cosine", "ip", "l2"])
    p.add_argument("--name", default=None)
    p = add("add-codec", cmd_add_codec, "add a code column (kept in step by the database) and fill it",
            [db_common])
    p.add_argument("collection")
    p.add_argument("codec_name")
    p.add_argument("kind", metavar="spec", help="codec spec: f16, bq, bq2..bq4, sq8, osq4, pq48, pca128,bq2, ...")
    p.add_argument("--sample", type=int, default=50_000, help="rows to fit trainable codecs on")
    p.add_argument("--fit-queries", default=None, metavar="Q.npy", help="a query sample (LeanVec fits on it)")
    p = add("index", cmd_index, "build a pgvector index on the vector or on a codec's codes", [db_common])
    p.add_argument("collection")
    p.add_argument("--on", default="vector", help="'vector' or a codec name")
    p.add_argument("--method", default="hnsw", choices=["hnsw", "ivfflat"])
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=64)
    p.add_argument("--lists", type=int, default=None)
    p.add_argument("--concurrently", action="store_true")
    p.add_argument("--where", default=None, metavar="JSON",
                   help="a partial index over the rows this filter keeps, e.g. '{\"category\": \"news\"}'")
    p = add("search", cmd_search, "the k nearest rows to a query among those a filter keeps (hybrid search)",
            [db_common])
    p.add_argument("collection")
    p.add_argument("--query", default=None, metavar="JSON", help="the query vector as a JSON list")
    p.add_argument("--query-file", default=None, metavar="Q.npy", help="a .npy file of query vectors (see --row)")
    p.add_argument("--row", type=int, default=0, help="which row of --query-file")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--where", default=None, metavar="JSON", help="a filter, e.g. '{\"year\": {\"$gte\": 2020}}'")
    p.add_argument("--recall", type=float, default=None, help="a recall target (uses what `tune` measured)")
    p.add_argument("--codec", default=None)
    p.add_argument("--ef-search", type=int, default=None)
    p.add_argument("--oversample", type=float, default=None)
    p.add_argument("--plan", default="auto", choices=["auto", "exact", "index"])
    p.add_argument("--columns", default=None, help="comma-separated table columns to return with each hit")
    p = add("tune", cmd_tune, "measure and store the search knobs that reach a recall target", [db_common])
    p.add_argument("collection")
    p.add_argument("--recall", type=float, default=0.95)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--sample", type=int, default=200, help="collection vectors used as queries")
    p.add_argument("--queries", default=None, metavar="Q.npy", help="tune on these real queries instead")
    p.add_argument("--selectivities", default="1,0.1,0.02")
    p = add("advise", cmd_advise, "workload-aware layout: partial HNSW indexes for a workload's hot predicates "
            "(and, with --partition, one per value of its partitioning column), with estimated gains", [db_common])
    p.add_argument("collection")
    p.add_argument("--workload", required=True, metavar="W.json",
                   help='a list of filters (one per query, null for none) or {"filters": {...}, "queries": [...]}')
    p.add_argument("--codec", default=None, help="code column to index (default: the first with an HNSW index)")
    p.add_argument("--min-share", type=float, default=0.02)
    p.add_argument("--max-indexes", type=int, default=8)
    p.add_argument("--partition", action="store_true", help="also partition the index by the workload's column")
    p.add_argument("--max-partitions", type=int, default=64)
    p.add_argument("--apply", action="store_true", help="build them (CREATE INDEX CONCURRENTLY)")
    p = add("ingest", cmd_ingest, "bulk-load vectors from a .npy file through binary COPY", [db_common])
    p.add_argument("collection")
    p.add_argument("--vectors", required=True, help=".npy file, (n, dim)")
    p.add_argument("--ids", default=None, help=".npy file of keys (default: consecutive from --start-id)")
    p.add_argument("--start-id", type=int, default=0)
    p.add_argument("--batch", type=int, default=50_000)

    p = add("demo", cmd_demo, "the main job: a short compression bench on a small real dataset (shipped), "
            "with the table, the advice for 64 B/vector and the plots", [db_common])
    p.add_argument("--dataset", default=None, metavar="DIR", help="another dataset folder (default: the shipped one)")
    p.add_argument("--rows", type=int, default=None, help="take the first N base vectors")
    p.add_argument("--queries", type=int, default=None, help="measure the first N queries")
    p.add_argument("--codecs", default=None, help="codec specs (default: all of them)")
    p.add_argument("--out", default="bench-out/demo", metavar="DIR", help="where the CSV, JSON and plots go")
    p = add("tour", cmd_tour, "the machinery end to end on generated data: ingest, codes, index, a filtered "
            "two-stage query", [db_common])
    p.add_argument("--rows", type=int, default=50_000)
    p = add("bench", cmd_bench, "the compression benchmark: every codec (and plain pgvector) measured in the "
            "database: bytes/vector, build and encode time, recall@1/10/100, q/s single and batched, p50/p99; "
            "a table, --json, CSV and PNG plots. --quality: codec quality in numpy only; --baselines/--search: "
            "filtered search; --workload: batches", [server_common])
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="OUT.json",
                   help="write every row as JSON to OUT.json (stdout when no file is given)")
    _dataset_arguments(p)
    p.add_argument("--codecs", default=None,
                   help="codec specs, comma-separated; a projection joins the token after it ('f16,pca128,bq2' "
                        "is f16 and pca128+bq2); write pipelines with '+' or separate specs with ';' to be exact")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--fit-sample", type=int, default=50_000, help="base rows to fit codecs on")
    p.add_argument("--fit-queries", type=int, default=None,
                   help="queries used to fit LeanVec, then left out of every measurement (default: 200 or a fifth of "
                        "them when a codec fits on queries, else 0)")
    p.add_argument("--queries-limit", type=int, default=None, metavar="N", help="measure the first N queries")
    p.add_argument("--quality", action="store_true",
                   help="codec quality only, in numpy (recall with re-ranking, encode rates): no search")
    _compression_arguments(p)
    s = p.add_argument_group("search in the database (--baselines / --search)")
    s.add_argument("--baselines", action="store_true",
                   help="plain pgvector: HNSW on float32, on ::halfvec, on binary_quantize with re-rank; B-tree+exact")
    s.add_argument("--search", action="store_true",
                   help="pgembed's Collection.search over the --codecs (default bq, bq2, pca128,f16)")
    s.add_argument("--attrs", default=None, metavar="ATTRS",
                   help="attribute columns, .parquet or .csv (an `id` column = row of the base), loaded with the "
                        "vectors")
    s.add_argument("--filter", action="append", default=[], metavar="NAME=SQL_WHERE",
                   help="a filter in SQL over the attribute columns (repeatable); exact ground truth per filter")
    p.add_argument("--rows", type=int, default=None, help="take the first N base rows (default all)")
    s.add_argument("--ef-search", default="10,20,40,80,160,320", help="hnsw.ef_search values swept (comma-separated)")
    s.add_argument("--oversample", default="1,2,4,10,20", help="pgembed oversampling factors swept")
    s.add_argument("--rerank-factors", default="2,4,10,20", help="bit baseline: candidates re-ranked = k x factor")
    s.add_argument("--recall-targets", default="0.9,0.95,0.99",
                   help="pgembed: search(recall=...) targets measured after tune()")
    s.add_argument("--tune-sample", type=int, default=200, help="pgembed: tune(sample=N) vectors used as queries")
    s.add_argument("--tune-queries", type=int, default=0, metavar="N",
                   help="pgembed: tune on the query file's last N queries (never timed) instead of base vectors")
    s.add_argument("--workload", default=None, metavar="WORKLOAD.json|generate",
                   help="batch workload: search_batch vs pgembed's search in a loop vs plain pgvector one at a time")
    s.add_argument("--partial", default="", metavar="SPEC[;SPEC]",
                   help="pgembed: partial HNSW indexes on these codecs for each filter given as JSON (hot predicates)")
    p = add("advise-codec", cmd_advise_codec, "the codec to use within a memory budget, from a measured "
            "frontier (--results R.json of `pgembed bench`) or measured now on the data given", [server_common])
    p.add_argument("--json", action="store_true", help="print the recommendation as JSON on stdout")
    p.add_argument("--budget", required=True,
                   help="bytes per vector ('64B') or a total for the collection ('12MB'); comma-separated for several")
    p.add_argument("--min-recall", type=float, default=None,
                   help="the fastest setting reaching this recall@k within the budget (default: the best recall)")
    p.add_argument("--include-client-scan", action="store_true",
                   help="also pick codes only a client-side scan can search (sq8, pq)")
    p.add_argument("--count-index", action="store_true", help="the budget counts the HNSW index's bytes too")
    p.add_argument("--results", default=None, metavar="R.json", help="a `pgembed bench --json` result to choose from")
    _dataset_arguments(p)
    p.add_argument("--codecs", default=None, help="codec specs to measure (as `pgembed bench --codecs`)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--fit-sample", type=int, default=50_000)
    p.add_argument("--fit-queries", type=int, default=None)
    p.add_argument("--queries-limit", type=int, default=None, metavar="N")
    _compression_arguments(p)
    add_dataset_commands(add, [common])
    p = add("bench-ingest", cmd_bench_ingest, "measure bulk ingest (vectors/s) and index build time", [db_common])
    p.add_argument("--base", default=None, help=".npy base vectors (default: generated, clearly labelled)")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None, help="also write the JSON result to this file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except PgembedError as err:
        if getattr(args, "json", False):
            print(json.dumps({"error": type(err).__name__, "message": str(err)}))
        console.print(f"[red]error:[/] {err}", highlight=False)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
