"""The `pgembed` command. Each command mirrors a library call and prints JSON with --json."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import psycopg

import pgembed
from pgembed.cli import bench, catalog, datasets, jobs, kernels, search, server
from pgembed.cli._common import Handler, console, parents
from pgembed.errors import PgembedError

COMMAND_MODULES = (server, catalog, kernels, search, jobs, bench, datasets)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgembed", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pgembed {pgembed.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Handler, help_text: str,
            with_parents: Sequence[argparse.ArgumentParser]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, parents=list(with_parents))
        p.set_defaults(handler=handler)
        return p

    shared = parents()
    for module in COMMAND_MODULES:
        module.register(add, shared)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except PgembedError as err:
        return _failed(args, type(err).__name__, str(err))
    except psycopg.Error as err:  # the server refused (a privilege, a lock, a constraint): its message, no traceback
        message = err.diag.message_primary or str(err)
        return _failed(args, type(err).__name__, message, err.sqlstate)
    return 0


def _failed(args: argparse.Namespace, error: str, message: str, sqlstate: str | None = None) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"error": error, "message": message,
                          **({"sqlstate": sqlstate} if sqlstate else {})}))
    console.print(f"[red]error:[/] {message}", highlight=False)
    return 1


if __name__ == "__main__":
    sys.exit(main())
