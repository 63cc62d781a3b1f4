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


# -- jobs -----------------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> None:
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


def cmd_bench(args: argparse.Namespace) -> None:
    from pgembed.bench.codecs import run_codec_bench

    specs = None
    if args.codecs:
        specs = [s.strip() for s in args.codecs.split(";")] if ";" in args.codecs else _split_specs(args.codecs)
    to_stdout = args.json == "-"
    if args.workload:
        from pgembed.bench.workload import run_workload_bench

        if not args.attrs:
            raise PgembedError("--workload needs --attrs (the columns its filters are written over)")
        result = run_workload_bench(args.base, args.queries, args.attrs,
                                    None if args.workload == "generate" else args.workload, k=args.k,
                                    dsn=args.dsn, data_dir=args.data_dir, quiet=to_stdout)
    elif args.baselines or args.search:
        from pgembed.bench.search import parse_filters, run_search_bench

        result = run_search_bench(
            args.base, args.queries, args.gt, args.attrs, parse_filters(args.filter), baselines=args.baselines,
            search=args.search, k=args.k, rows=args.rows, queries_limit=args.queries_limit, codecs=specs,
            ef_search=_int_list(args.ef_search), oversample=_float_list(args.oversample),
            rerank_factors=_int_list(args.rerank_factors), recall_targets=_float_list(args.recall_targets),
            tune_sample=args.tune_sample, tune_queries=args.tune_queries,
            partial=[t.strip() for t in args.partial.split(";") if t.strip()],
            dsn=args.dsn, data_dir=args.data_dir, quiet=to_stdout,
        )
    else:
        if args.attrs or args.filter or args.rows or args.queries_limit:
            raise PgembedError("--attrs, --filter, --rows and --queries-limit apply to --baselines / --search")
        result = run_codec_bench(args.base, args.queries, args.gt, specs, k=args.k, fit_sample=args.fit_sample,
                                 fit_queries=args.fit_queries, dsn=args.dsn, data_dir=args.data_dir,
                                 quiet=to_stdout)
    if to_stdout:
        print(json.dumps(result, indent=2))
    elif args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


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
    p = add("ingest", cmd_ingest, "bulk-load vectors from a .npy file through binary COPY", [db_common])
    p.add_argument("collection")
    p.add_argument("--vectors", required=True, help=".npy file, (n, dim)")
    p.add_argument("--ids", default=None, help=".npy file of keys (default: consecutive from --start-id)")
    p.add_argument("--start-id", type=int, default=0)
    p.add_argument("--batch", type=int, default=50_000)

    p = add("demo", cmd_demo, "end-to-end run on generated data: the main job", [db_common])
    p.add_argument("--rows", type=int, default=50_000)
    p = add("bench", cmd_bench, "codec quality: bytes/vector, encode rates, recall@k with re-ranking; with "
            "--baselines / --search: search measured in the database (qps, latency, recall), per filter",
            [server_common])
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="OUT.json",
                   help="write every row as JSON to OUT.json (stdout when no file is given)")
    p.add_argument("--base", required=True, help=".npy base vectors (float16 or float32)")
    p.add_argument("--queries", required=True, help=".npy query vectors")
    p.add_argument("--gt", default=None, help=".npy exact top-k ids (computed when not given)")
    p.add_argument("--codecs", default=None,
                   help="codec specs, comma-separated; a projection joins the token after it ('f16,pca128,bq2' "
                        "is f16 and pca128+bq2); write pipelines with '+' or separate specs with ';' to be exact")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--fit-sample", type=int, default=50_000, help="base rows to fit codecs on")
    p.add_argument("--fit-queries", type=int, default=0,
                   help="queries used to fit LeanVec (then left out of every measurement)")
    s = p.add_argument_group("search in the database (--baselines / --search)")
    s.add_argument("--baselines", action="store_true",
                   help="plain pgvector: HNSW on float32, on ::halfvec, on binary_quantize with re-rank; B-tree+exact")
    s.add_argument("--search", action="store_true",
                   help="pgembed's Collection.search over the --codecs (default bq, bq2, pca128,f16)")
    s.add_argument("--attrs", default=None, metavar="ATTRS.parquet",
                   help="attribute columns (an `id` column = row of the base), loaded with the vectors")
    s.add_argument("--filter", action="append", default=[], metavar="NAME=SQL_WHERE",
                   help="a filter in SQL over the attribute columns (repeatable); exact ground truth per filter")
    s.add_argument("--rows", type=int, default=None, help="take the first N base rows (default all)")
    s.add_argument("--queries-limit", type=int, default=None, metavar="N", help="time the first N queries")
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
