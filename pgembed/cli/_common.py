"""What every command shares: its parents (--dsn, --data-dir, --json), one argument group for the search
knobs, printing results, and reading JSON and list arguments."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from pgembed.errors import InvalidInputError
from pgembed.planning.params import RRF, SearchParams
from pgembed.vocabulary import Metric, PlanKind, TextMatch

console = Console(stderr=True)
Handler = Callable[[argparse.Namespace], Any]
Add = Callable[[str, Handler, str, Sequence[argparse.ArgumentParser]], argparse.ArgumentParser]


def parents() -> dict[str, argparse.ArgumentParser]:
    """"local": --data-dir and --json (the embedded server's own commands); "db": those and --dsn."""
    local = argparse.ArgumentParser(add_help=False)
    local.add_argument("--data-dir", default=None, help="embedded server data directory ($PGEMBED_DATA_DIR)")
    local.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    db = argparse.ArgumentParser(add_help=False, parents=[local])
    db.add_argument("--dsn", default=None,
                    help="PostgreSQL DSN (default $PGEMBED_DSN, $DATABASE_URL, else the embedded server)")
    return {"local": local, "db": db}


def emit(args: argparse.Namespace, data: Any, render: Callable[[Any], None] | None = None) -> None:
    """The result: as JSON on stdout with --json, else rendered for a person."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
    elif render is not None:
        render(data)
    else:
        console.print(data)


def table_console() -> Console:
    """Tables on stdout, wrapped for a terminal, at most 100 columns when piped."""
    return Console(width=None if sys.stdout.isatty() else 100)


def json_arg(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidInputError(f"{what} is not valid JSON: {err}") from err


def load_npy(path: str | Path, what: str, *, mmap: bool = False) -> np.ndarray:
    """A .npy file an option names, or an error that names the option and the file."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise InvalidInputError(f"{what} {path}: not a readable .npy array ({err})") from err


def int_list(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def float_list(text: str) -> list[float]:
    return [float(t) for t in text.split(",") if t.strip()]


def add_search_arguments(p: argparse.ArgumentParser) -> None:
    """The knobs of SearchParams, once for every command that searches."""
    g = p.add_argument_group("search knobs (SearchParams)")
    g.add_argument("--recall", type=float, default=None, help="a recall@k target (uses what `tune` measured)")
    g.add_argument("--codec", default=None, help="the code column to take candidates from")
    g.add_argument("--ef-search", type=int, default=None, help="pgvector's hnsw.ef_search")
    g.add_argument("--oversample", type=float, default=None, help="candidates fetched per result")
    g.add_argument("--plan", default=PlanKind.AUTO.value, choices=[p.value for p in PlanKind])
    g.add_argument("--refine", default=None, help="a codec whose codes re-rank the candidates (a compact tier)")
    g.add_argument("--refine-oversample", type=float, default=None, help="results per k the tier keeps")
    g.add_argument("--no-rerank", action="store_true", help="no exact re-rank: distances are the codes' estimates")
    g.add_argument("--fusion", default="rrf", metavar="rrf|JSON",
                   help="with --text: 'rrf', or the lists' weights, e.g. '{\"vector\": 1, \"text\": 0.5}'")
    g.add_argument("--fusion-depth", type=int, default=None, help="with --text: rows each list holds")
    g.add_argument("--text-match", default=TextMatch.WEBSEARCH.value, choices=[m.value for m in TextMatch],
                   help="with --text: how the text becomes a full-text query")


def search_params(args: argparse.Namespace) -> SearchParams:
    fusion = args.fusion if args.fusion == RRF else json_arg(args.fusion, "--fusion")
    return SearchParams(recall=args.recall, codec=args.codec, ef_search=args.ef_search, oversample=args.oversample,
                        plan=args.plan, refine=args.refine, refine_oversample=args.refine_oversample,
                        rerank=not args.no_rerank, fusion=fusion, fusion_depth=args.fusion_depth,
                        text_match=args.text_match)


METRICS = [m.value for m in Metric]
