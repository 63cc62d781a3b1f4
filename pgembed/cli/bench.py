"""`pgembed bench compression | search | workload | quality | ingest | kernels | memory` and `pgembed advise-codec`: the
benchmarks (pgembed.tools.bench), each the library runner of the same name. Every one prints its table, or the
whole result with --json; --out DIR keeps the result as DIR/<bench>.json (the compression bench also writes its
CSV and plots there)."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from rich.table import Table

import pgembed
from pgembed.cli._common import METRICS, Add, emit, float_list, int_list, table_console
from pgembed.codecs.projection import PROJECTIONS
from pgembed.errors import InvalidInputError
from pgembed.vocabulary import CrashScenario, KernelBenchPart, Placement


def split_specs(text: str) -> list[str]:
    """'f16,bq,pca128,bq2,mrl64+f32' -> ['f16', 'bq', 'pca128,bq2', 'mrl64+f32']: a projection joins the token
    that follows it; write a pipeline with '+', or separate specs with ';', to say it exactly."""
    if ";" in text:
        return [s.strip() for s in text.split(";") if s.strip()]
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


def _specs(args: argparse.Namespace) -> list[str] | None:
    return split_specs(args.codecs) if args.codecs else None


def _keep(args: argparse.Namespace, name: str, result: dict[str, Any]) -> None:
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))


# -- the benches ----------------------------------------------------------------------------------------------
def cmd_compression(args: argparse.Namespace) -> None:
    result, files = _compression(args)
    emit(args, result, lambda r: _show_compression(r, files))


def _compression(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    from pgembed.tools.bench.compression import run_compression_bench
    from pgembed.tools.bench.report import write_outputs

    dataset = _dataset(args)
    if args.rows:
        dataset = dataset.head(args.rows)
    result = run_compression_bench(
        dataset, _specs(args), k=args.k, baselines=not args.no_baselines, candidates=int_list(args.candidates),
        queries_limit=args.queries_limit, fit_sample=args.fit_sample, fit_queries=args.fit_queries,
        batch=not args.no_batch, dsn=args.dsn, data_dir=args.data_dir, quiet=args.json)
    return result, write_outputs(result, args.out)


def _show_compression(result: dict[str, Any], files: dict[str, str]) -> None:
    from pgembed.tools.bench.compression import results_table

    out = table_console()
    out.print(results_table(result))
    out.print(f"every row: {files['csv']} and {files['json']}", highlight=False)
    out.print(f"plots: {files['recall_qps_png']}  {files['recall_bytes_png']}", highlight=False)


def _dataset(args: argparse.Namespace) -> Any:
    """The bench's dataset: files (--base/--queries/--gt), a dataset folder (--dataset), or a collection."""
    from pgembed.tools.bench.compression import dataset_from_collection
    from pgembed.tools.datasets.files import load_dataset

    given = [name for name in ("base", "dataset", "collection") if getattr(args, name, None)]
    if len(given) != 1:
        raise InvalidInputError("give the data once: --base FILE (with --queries), --dataset DIR, or --collection NAME")
    if args.collection:
        if not args.queries:
            raise InvalidInputError("--collection needs --queries Q.npy")
        with pgembed.connect(args.dsn, data_dir=args.data_dir) as db:
            return dataset_from_collection(db, args.collection, args.queries, args.gt)
    return load_dataset(args.dataset or args.base, args.queries, args.gt, metric=args.metric)


def cmd_search(args: argparse.Namespace) -> None:
    from pgembed.tools.bench.search import parse_filters, run_search_bench

    result = run_search_bench(
        args.base, args.queries, args.gt, args.attrs, parse_filters(args.filter), baselines=not args.no_baselines,
        search=not args.no_pgembed, k=args.k, rows=args.rows, queries_limit=args.queries_limit, codecs=_specs(args),
        ef_search=int_list(args.ef_search), oversample=float_list(args.oversample),
        rerank_factors=int_list(args.rerank_factors), recall_targets=float_list(args.recall_targets),
        tune_sample=args.tune_sample, tune_queries=args.tune_queries,
        partial=[t.strip() for t in args.partial.split(";") if t.strip()],
        dsn=args.dsn, data_dir=args.data_dir, quiet=args.json)
    _keep(args, "search", result)
    emit(args, result, lambda _r: None)


def cmd_workload(args: argparse.Namespace) -> None:
    from pgembed.tools.bench.workload import run_workload_bench

    result = run_workload_bench(args.base, args.queries, args.attrs,
                                None if args.workload == "generate" else args.workload, k=args.k,
                                dsn=args.dsn, data_dir=args.data_dir, quiet=args.json)
    _keep(args, "workload", result)
    emit(args, result, lambda _r: None)


def cmd_quality(args: argparse.Namespace) -> None:
    from pgembed.tools.bench.codecs import run_codec_bench

    result = run_codec_bench(args.base, args.queries, args.gt, _specs(args), k=args.k, fit_sample=args.fit_sample,
                             fit_queries=args.fit_queries or 0, dsn=args.dsn, data_dir=args.data_dir, quiet=args.json)
    _keep(args, "codecs", result)
    emit(args, result, lambda _r: None)


def cmd_ingest(args: argparse.Namespace) -> None:
    from pgembed.tools.bench.ingest import run_ingest_bench

    result = run_ingest_bench(dsn=args.dsn, data_dir=args.data_dir, base=args.base, rows=args.rows,
                              repeats=args.repeats, quiet=args.json)
    _keep(args, "ingest", result)
    emit(args, result, lambda _r: None)


def cmd_kernels(args: argparse.Namespace) -> None:
    from pgembed.tools.bench.kernels import run_kernels_bench

    result = run_kernels_bench(args.dataset, dsn=args.dsn, data_dir=args.data_dir, rows=args.rows,
                               queries=args.queries, k=args.k, repeats=args.repeats,
                               twin_seconds=args.twin_seconds, only=args.only, quiet=args.json)
    _keep(args, f"kernels-{args.only}" if args.only else "kernels", result)
    emit(args, result, lambda _r: None)


def cmd_memory(args: argparse.Namespace) -> None:
    from rich.console import Console

    from pgembed.tools.bench.memory import DEFAULT_CODECS, codec_name, run_memory_bench
    from pgembed.tools.datasets.files import load_dataset_dir

    data_dir = args.server_dir or str(Path(tempfile.gettempdir()) / "pgembed-bench-memory")
    result = run_memory_bench(load_dataset_dir(args.dataset), folder=args.dataset, data_dir=data_dir,
                              fraction=args.fraction, queries=args.queries, rounds=args.rounds, k=args.k,
                              floor=args.floor, clients=args.clients, reuse=args.reuse,
                              codecs=[c.strip() for c in args.codecs.split(";") if c.strip()],
                              console=Console(stderr=True, quiet=args.json))
    codecs = "-".join(codec_name(c) for c in result["codecs"])
    _keep(args, "memory" if codecs == "-".join(DEFAULT_CODECS) else f"memory-{codecs}", result)
    emit(args, result, lambda r: print(json.dumps(r["summary"], indent=2, default=str)))


def cmd_relevance(args: argparse.Namespace) -> None:
    from rich.console import Console

    from pgembed.tools.bench.relevance import run_relevance_bench

    console = Console(stderr=True, quiet=args.json)
    result = run_relevance_bench(args.dataset, args.labels, dsn=args.dsn, data_dir=args.data_dir, k=args.k,
                                 split=None if args.split == "all" else args.split, limit=args.limit,
                                 only=args.only,
                                 log=lambda m: console.print(m, highlight=False))
    _keep(args, f"relevance-{args.only}" if args.only else "relevance", result)

    def render(r: dict[str, Any]) -> None:
        for d in r.get("diversity", []):
            gain = d[f"ndcg@{r['k']}"]
            print(f"diversity {d['diversity']}: nDCG {gain:.3f}  pages {d['distinct_pages']:.2f}  "
                  f"p50 {d['p50_ms']:.1f} ms  p99 {d['p99_ms']:.1f} ms  MMR p50 {d['mmr_p50_ms']} ms")
        for row in r.get("cutoff", {}).get("rows", []):
            print(row["threshold chosen by"], *(f"{m}: P {row[m]['precision']:.3f} R {row[m]['recall']:.3f}"
                                               for m in ("raw", "calibrated", "raw at equal recall")))
        if "modes" not in r and "model_stage" not in r:
            return
        k = r["k"]
        for m in r.get("modes", r.get("model_stage", [])):
            ndcg, mrr = m[f"ndcg@{k}"], m[f"mrr@{k}"]
            print(f"{m['mode']:42} nDCG@{k} {ndcg:.3f}  MRR@{k} {mrr:.3f}  p50 {m['p50_ms']:.1f} ms  "
                  f"p99 {m['p99_ms']:.1f} ms")

    emit(args, result, render)


def cmd_soak(args: argparse.Namespace) -> None:
    from pgembed.tools.reliability.soak import SoakConfig, run_soak

    config = SoakConfig(seconds=args.seconds, writers=args.writers, readers=args.readers, rows=args.rows,
                        fit_at=args.fit_at, placement=Placement(args.placement), seed=args.seed)
    result = run_soak(config, dsn=args.dsn, data_dir=args.data_dir)
    _keep(args, f"soak-{config.placement.value}", result)
    emit(args, result, _show_soak)


def cmd_overhead(args: argparse.Namespace) -> None:
    from pgembed.tools.bench.overhead import run_overhead_bench

    result = run_overhead_bench(args.base, args.queries, args.attrs, k=args.k, queries_limit=args.queries_limit,
                                rounds=args.rounds, dsn=args.dsn, data_dir=args.data_dir)
    _keep(args, "overhead", result)
    emit(args, result, _show_overhead)


def _show_overhead(result: dict[str, Any]) -> None:
    table = Table(title=f"overhead: search() against the same plan by hand, {result['dataset']['n_base']} rows, "
                        f"{result['dataset']['queries']} queries x {result['rounds']} rounds")
    for column in ("case", "plan", "pgembed q/s", "hand SQL q/s", "pgembed's statement by hand q/s",
                   "ratio (median, min)", "same ids"):
        table.add_column(column)
    for name, case in result["cases"].items():
        table.add_row(name, case["plan"]["kind"], str(case["pgembed_qps"]), str(case["hand_sql_qps"]),
                      str(case["pgembed_statement_by_hand_qps"]), f"{case['ratio_median']}, {case['ratio_min']}",
                      str(case["same_ids"]))
    table_console().print(table)


def cmd_crash(args: argparse.Namespace) -> None:
    from pgembed.tools.reliability.crash import CrashConfig, run_crash_suite

    if args.dsn:
        raise InvalidInputError("the crash suite kills the server it runs on: it runs an embedded server of its own "
                                "(--data-dir), never the one --dsn names")
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.gettempdir()) / "pgembed-crash" / "data"
    config = CrashConfig(rows=args.rows, placement=Placement(args.placement),
                         scenarios=tuple(CrashScenario(s) for s in args.scenarios))
    result = run_crash_suite(config, data_dir=data_dir)
    _keep(args, f"crash-{config.placement.value}", result)
    emit(args, result, _show_crash)
    if result["failed"]:
        raise SystemExit(1)


def _show_crash(result: dict[str, Any]) -> None:
    table = Table(title=f"crash suite: kill -9 of the server, {result['rows']} rows, {result['placement']} placement")
    for column in ("scenario", "killed after s", "left building", "invalid indexes", "finishing call", "lost rows",
                   "stale / missing codes", "ok"):
        table.add_column(column)
    for r in result["scenarios"]:
        table.add_row(r["scenario"], str(r["killed_after_s"]), ", ".join(r["building_after_crash"]) or "-",
                      str(r["invalid_indexes_after_crash"]), r["finishing_call"], str(r["lost_rows"]),
                      f"{r['stale_codes']} / {r['missing_codes']}", "yes" if r["ok"] else "NO")
    table_console().print(table)


def _show_soak(result: dict[str, Any]) -> None:
    table = Table(title=f"soak: {result['config']['writers']} writers, {result['config']['readers']} readers, "
                        f"{result['seconds']} s, fit() at {result['fit']['started_s']} s for "
                        f"{result['fit']['seconds']} s ({result['config']['placement']} placement)")
    for column in ("figure", "value"):
        table.add_column(column)
    for name in ("errors", "deadlocks", "short_results", "lost_writes", "stale_codes", "missing_codes",
                 "rows_checked"):
        table.add_row(name, str(result[name]))
    for side in ("writes", "reads"):
        for window in ("before_fit", "during_fit", "after_fit"):
            w = result[side][window]
            table.add_row(f"{side} {window}", f"{w['ops']} ops, p50 {w.get('p50_ms')} ms, p99 {w.get('p99_ms')} ms, "
                                              f"max {w.get('max_ms')} ms")
    table_console().print(table)


def cmd_advise_codec(args: argparse.Namespace) -> None:
    from pgembed.tools.bench.advisor import advise_codec

    if args.results:
        if args.base or args.dataset or args.collection:
            raise InvalidInputError("--results reads a measured frontier: give it alone, or the data to measure")
        try:
            result = json.loads(Path(args.results).read_text())
        except (OSError, ValueError) as err:
            raise InvalidInputError(f"--results {args.results}: {err}") from err
    else:
        args.json, shown = True, args.json  # measure quietly: the advice is what is shown
        result, _ = _compression(args)
        args.json = shown
    picks = [advise_codec(result, budget.strip(), min_recall=args.min_recall,
                          include_client_scan=args.include_client_scan, count_index=args.count_index).to_dict()
             for budget in args.budget.split(",") if budget.strip()]

    def render(_: Any) -> None:
        table = Table(title=f"codec advice ({result['dataset']['name']}, recall@{result['dataset']['k']})")
        for column in ("budget", "method", "knobs", "B/vector", "recall", "q/s", "reason"):
            table.add_column(column)
        for p in picks:
            knobs = " ".join(f"{k}={v}" for k, v in p["knobs"].items())
            table.add_row(p["budget"]["text"], p["method"], knobs, f"{p['bytes_per_vector']:.1f}",
                          f"{p['recall_at_k']:.3f}", f"{p['qps']:,.0f}", p["reason"])
        table_console().print(table)

    emit(args, picks[0] if len(picks) == 1 else picks, render)


# -- arguments ------------------------------------------------------------------------------------------------
def _data_arguments(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("data (one of --base, --dataset, --collection)")
    d.add_argument("--base", default=None, help="base vectors: .npy, .fvecs/.bvecs, or an ann-benchmarks .hdf5 "
                                                "(which also holds the queries and neighbours)")
    d.add_argument("--queries", default=None, help="query vectors: .npy or .fvecs")
    d.add_argument("--gt", default=None, help="exact top-k ids, .npy or .ivecs (compared with the truth the bench "
                                              "computes)")
    d.add_argument("--metric", default=None, choices=METRICS,
                   help="the data's metric (default: the file's, else unit-length vectors mean ip)")
    d.add_argument("--dataset", default=None, metavar="DIR",
                   help="a dataset folder (base[.f16].npy, queries.npy, gt_ip.npy), as `pgembed dataset` writes")
    d.add_argument("--collection", default=None, metavar="NAME",
                   help="an existing collection's vectors (copied to a scratch collection; yours is not touched)")
    d.add_argument("--rows", type=int, default=None, help="take the first N base rows (default all)")


def _codec_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--codecs", default=None,
                   help="codec specs, comma-separated; a projection joins the token after it ('f16,pca128,bq2' is "
                        "f16 and pca128+bq2); write pipelines with '+' or separate specs with ';' to be exact")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--fit-sample", type=int, default=50_000, help="base rows to fit codecs on")
    p.add_argument("--fit-queries", type=int, default=None,
                   help="queries used to fit LeanVec, then left out of every measurement (default: 200 or a fifth of "
                        "them when a codec fits on queries, else 0)")
    p.add_argument("--queries-limit", type=int, default=None, metavar="N", help="measure the first N queries")


def _compression_arguments(p: argparse.ArgumentParser, out: str | None) -> None:
    _data_arguments(p)
    _codec_arguments(p)
    c = p.add_argument_group("the compression bench")
    c.add_argument("--candidates", default="10,20,40,80,160,320",
                   help="rows fetched from a code index and re-ranked, swept (oversample = candidates / k)")
    c.add_argument("--no-baselines", action="store_true", help="leave plain pgvector out")
    c.add_argument("--no-batch", action="store_true", help="leave the batched measurement out")
    c.add_argument("--out", default=out, metavar="DIR", help="where the CSV, JSON and PNG plots go")


def _keep_result_argument(p: argparse.ArgumentParser, kept_as: str) -> None:
    p.add_argument("--out", default=None, metavar="DIR", help=f"keep the result as DIR/{kept_as}")


def register(add: Add, parents: dict[str, argparse.ArgumentParser]) -> None:
    db = [parents["db"]]
    bench = add("bench", _usage, "the benchmarks: compression (every codec and plain pgvector), search (filtered "
                "search against plain pgvector), workload (batches against loops), quality (codecs in numpy), "
                "soak (writers and readers through a re-fit), crash (kill -9 during each long operation), overhead "
                "(search() against hand SQL), ingest, "
                "kernels (the C kernels against their SQL twins), memory", [])
    sub = bench.add_subparsers(dest="bench", required=True,
                               metavar="{compression,search,workload,quality,soak,crash,overhead,ingest,kernels,memory}")

    def subcommand(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help_text, description=help_text, parents=db)
        q.set_defaults(handler=handler)
        return q

    p = subcommand("compression", cmd_compression, "every codec and plain pgvector measured in the database: "
                   "bytes/vector, build and encode time, recall@1/10/100, q/s single and batched, p50/p99")
    _compression_arguments(p, out="bench-out")

    p = subcommand("search", cmd_search, "filtered search: plain pgvector at its best (HNSW on float32, on "
                   "::halfvec, binary_quantize and re-rank, B-tree and exact) against pgembed's search()")
    p.add_argument("--base", required=True, help="base vectors (.npy)")
    p.add_argument("--queries", required=True, help="query vectors (.npy)")
    p.add_argument("--gt", default=None, help="exact top-k ids of the unfiltered queries (.npy), compared")
    p.add_argument("--attrs", default=None, metavar="ATTRS",
                   help="attribute columns, .parquet or .csv (an `id` column = row of the base), loaded with the "
                        "vectors")
    p.add_argument("--filter", action="append", default=[], metavar="NAME=FILTER",
                   help="a filter (JSON in the filter language, or SQL over the attributes), repeatable; exact "
                        "ground truth per filter")
    p.add_argument("--no-baselines", action="store_true", help="leave plain pgvector out")
    p.add_argument("--no-pgembed", action="store_true", help="leave pgembed's search() out")
    p.add_argument("--codecs", default=None, help="pgembed's codecs (default bq, bq2, pca128,f16)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--rows", type=int, default=None, help="take the first N base rows (default all)")
    p.add_argument("--queries-limit", type=int, default=None, metavar="N", help="measure the first N queries")
    p.add_argument("--ef-search", default="10,20,40,80,160,320", help="hnsw.ef_search values swept")
    p.add_argument("--oversample", default="1,2,4,10,20", help="pgembed's oversampling factors swept")
    p.add_argument("--rerank-factors", default="2,4,10,20", help="bit baseline: candidates re-ranked = k x factor")
    p.add_argument("--recall-targets", default="0.9,0.95,0.99", help="search(recall=...) measured after tune()")
    p.add_argument("--tune-sample", type=int, default=200, help="tune(sample=N) vectors used as queries")
    p.add_argument("--tune-queries", type=int, default=0, metavar="N",
                   help="tune on the query file's last N queries (never timed) instead of base vectors")
    p.add_argument("--partial", default="", metavar="SPEC[;SPEC]",
                   help="partial HNSW indexes on these codecs for each filter given as JSON (hot predicates)")
    _keep_result_argument(p, "search.json")

    p = subcommand("workload", cmd_workload, "a batch of skewed hybrid queries: search_batch against pgembed's "
                   "search() in a loop and plain pgvector one query at a time, before and after advise()")
    p.add_argument("--base", required=True, help="base vectors (.npy)")
    p.add_argument("--queries", required=True, help="query vectors (.npy)")
    p.add_argument("--attrs", required=True, metavar="ATTRS", help="attribute columns, .parquet or .csv")
    p.add_argument("--workload", default="generate", metavar="W.json|generate",
                   help="a workload document, or generate one from the attributes")
    p.add_argument("--k", type=int, default=10)
    _keep_result_argument(p, "workload.json")

    p = subcommand("quality", cmd_quality, "codec quality in numpy alone: bytes/vector, encode rates, recall@k "
                   "with re-ranking")
    p.add_argument("--base", required=True, help="base vectors (.npy)")
    p.add_argument("--queries", required=True, help="query vectors (.npy)")
    p.add_argument("--gt", default=None, help="exact top-k ids (.npy)")
    _codec_arguments(p)
    _keep_result_argument(p, "codecs.json")

    p = subcommand("soak", cmd_soak, "the soak test: writers (plain SQL and ingest) and readers (search, "
                   "search_batch, SQL) on one collection of real vectors, fit() in the middle; then every row "
                   "checked: errors, deadlocks, short results, lost writes, stale codes, latency")
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--writers", type=int, default=8)
    p.add_argument("--readers", type=int, default=8)
    p.add_argument("--rows", type=int, default=3000, help="rows before the load starts")
    p.add_argument("--fit-at", type=float, default=0.5, help="fit() starts at this fraction of the run")
    p.add_argument("--placement", choices=[x.value for x in Placement], default=Placement.TABLE.value)
    p.add_argument("--seed", type=int, default=0)
    _keep_result_argument(p, "soak-<placement>.json")

    p = subcommand("overhead", cmd_overhead, "pgembed's search() against the same plan written by hand in SQL on "
                   "the same table (a 1% filter and none), interleaved rounds")
    p.add_argument("--base", required=True, help="base vectors (.npy)")
    p.add_argument("--queries", required=True, help="query vectors (.npy)")
    p.add_argument("--attrs", required=True, help="attributes with columns source and section (.parquet, .csv)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--queries-limit", type=int, default=300)
    p.add_argument("--rounds", type=int, default=5)
    _keep_result_argument(p, "overhead.json")

    p = subcommand("crash", cmd_crash, "the crash suite: the embedded server killed (SIGKILL) during ingest, "
                   "backfill, fit, activation and a concurrent index build, restarted, and the next call made; "
                   "then rows and codes checked (an embedded server of its own: --data-dir)")
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--placement", choices=[x.value for x in Placement], default=Placement.TABLE.value)
    p.add_argument("--scenarios", nargs="+", default=[s.value for s in CrashScenario],
                   choices=[s.value for s in CrashScenario])
    _keep_result_argument(p, "crash-<placement>.json")

    p = subcommand("ingest", cmd_ingest, "bulk ingest (vectors/s) and index build time")
    p.add_argument("--base", default=None, help=".npy base vectors (default: generated, labelled so)")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    _keep_result_argument(p, "ingest.json")

    p = subcommand("kernels", cmd_kernels, "the C kernels against their SQL twins, same run: encoding rows/s per "
                   "codec, ingest with pq48+bq2+f16, estimator distances/s, search_batch() in SQL against one "
                   "query at a time, build time, memory over a million calls")
    p.add_argument("--dataset", required=True, metavar="DIR", help="a dataset folder with attrs.parquet")
    p.add_argument("--rows", type=int, default=20_000, help="rows each encoder and the ingest run on (kernels)")
    p.add_argument("--queries", type=int, default=1000, help="queries of the search_batch workloads")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--twin-seconds", type=float, default=3.0,
                   help="about how long one timing of a twin takes (its prefix of the rows is sized so)")
    p.add_argument("--only", default=None, choices=[p.value for p in KernelBenchPart],
                   help="one part of the bench (its figures go to kernels-<part>.json)")
    _keep_result_argument(p, "kernels.json (kernels-<only>.json with --only)")

    p = subcommand("relevance", cmd_relevance, "nDCG and MRR of vector, full-text and fused (RRF) search on "
                   "labelled queries (pgembed dataset relevance), and the latency each adds")
    p.add_argument("--dataset", required=True, metavar="DIR", help="a dataset folder with texts.txt.gz")
    p.add_argument("--labels", required=True, metavar="DIR", help="its relevance judgments (relevance_queries.*)")
    p.add_argument("--split", default="test", choices=["test", "train", "all"])
    p.add_argument("--limit", type=int, default=None, help="the first N queries of the split (and of train and "
                   "test for the cut-off)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--only", default=None, choices=["cutoff", "diversity", "model"],
                   help="measure the relevance cut-off, diversity (MMR), or the model stage (all-mpnet-base-v2, "
                        "the rerank-model extra) alone")
    _keep_result_argument(p, "relevance.json (relevance-<only>.json with --only)")

    p = subcommand("memory", cmd_memory, "search when RAM is short: a server of its own with shared_buffers at a "
                   "fraction of plain pgvector's float32 HNSW index and direct I/O, every configuration of pgvector "
                   "and pgembed (companion codes, stages) cold and warm, 1 and several clients; then all in memory")
    p.add_argument("--dataset", required=True, metavar="DIR", help="a dataset folder (ground truth needed)")
    p.add_argument("--fraction", type=float, default=0.25, help="the budget, as a fraction of the float32 HNSW's bytes")
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--rounds", type=int, default=2, help="warm sweeps, in rotated order (the median is kept)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--floor", type=float, default=0.95, help="the recall@k a configuration must reach")
    p.add_argument("--server-dir", default=None, metavar="DIR", help="the bench server's data directory")
    p.add_argument("--reuse", action="store_true", help="keep the table and indexes a previous run loaded")
    p.add_argument("--codecs", default="bq2;sq8", help="pgembed's codecs, ';'-separated: candidates from the first's "
                   "HNSW index, the others compact tiers")
    _keep_result_argument(p, "memory.json (DIR/memory-<codecs>.json for other --codecs)")

    p = add("advise-codec", cmd_advise_codec, "the codec to use within a memory budget, from a measured frontier "
            "(--results R.json of `pgembed bench compression`) or measured now on the data given", db)
    p.add_argument("--budget", required=True,
                   help="bytes per vector ('64B') or a total for the collection ('12MB'); comma-separated for several")
    p.add_argument("--min-recall", type=float, default=None,
                   help="the fastest setting reaching this recall@k within the budget (default: the best recall)")
    p.add_argument("--include-client-scan", action="store_true",
                   help="also pick codes only a client-side scan can search (sq8, pq)")
    p.add_argument("--count-index", action="store_true", help="the budget counts the HNSW index's bytes too")
    p.add_argument("--results", default=None, metavar="R.json", help="a `pgembed bench compression` result")
    _compression_arguments(p, out="bench-out")


def _usage(args: argparse.Namespace) -> None:
    raise InvalidInputError("give a bench: compression, search, workload, quality or ingest")
