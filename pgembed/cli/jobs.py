"""`pgembed demo` (the main job) and `pgembed tour` (the machinery end to end)."""

from __future__ import annotations

import argparse

from pgembed.cli._common import Add, emit


def cmd_demo(args: argparse.Namespace) -> None:
    from pgembed.tools.demo import run_main_job

    result = run_main_job(args.dsn, args.data_dir, dataset=args.dataset, quiet=args.json)
    emit(args, result, lambda _d: None)


def cmd_tour(args: argparse.Namespace) -> None:
    from pgembed.tools.tour import run_tour

    result = run_tour(dsn=args.dsn, data_dir=args.data_dir, rows=args.rows, quiet=args.json)
    emit(args, result, lambda _d: None)


def register(add: Add, parents: dict[str, argparse.ArgumentParser]) -> None:
    db = [parents["db"]]
    p = add("demo", cmd_demo, "the main job: on a small real dataset (shipped), what pgembed does better than "
            "plain pgvector on the same table, measured now", db)
    p.add_argument("--dataset", default=None, metavar="DIR", help="another dataset folder (default: the shipped one)")
    p = add("tour", cmd_tour, "the machinery end to end on generated data: ingest, codes, index, a filtered "
            "two-stage query", db)
    p.add_argument("--rows", type=int, default=50_000)
