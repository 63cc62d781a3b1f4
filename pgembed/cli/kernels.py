"""`pgembed kernels install | status | enable | disable`: pgembed's C kernels (pgembed.tools.kernels builds
and installs them; Database.kernels() and use_kernels() report and choose)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pgembed
from pgembed.cli._common import Add, console, emit


def _installed(result: Any) -> dict[str, Any]:
    return {"extension_dir": str(result.extension_dir), "library_dir": str(result.library_dir),
            "settings": result.settings, "build_seconds": round(result.build.seconds, 2),
            "pg_config": str(result.build.pg_config), "sanitize": result.build.sanitize}


def _render_install(data: dict[str, Any]) -> None:
    console.print(f"built in {data['build_seconds']} s against {data['pg_config']}; installed into "
                  f"{data['extension_dir']} and {data['library_dir']}", highlight=False)
    if data["settings"] and not data["embedded"]:
        console.print("set these on that server (postgresql.conf or ALTER SYSTEM), restart, then `pgembed migrate`:")
        for name, value in data["settings"].items():
            print(f"{name} = '{value}'")


def cmd_install(args: argparse.Namespace) -> None:
    from pgembed.tools import kernels

    if args.prefix and not args.pg_config:
        raise pgembed.InvalidInputError("--prefix needs --pg-config (the server it is for)")
    if args.pg_config is None:
        result = kernels.install_embedded(sanitize=args.sanitize)
    elif args.prefix:
        result = kernels.install_prefix(Path(args.pg_config), Path(args.prefix), sanitize=args.sanitize)
    else:
        result = kernels.install_into(Path(args.pg_config), sanitize=args.sanitize)
    emit(args, {**_installed(result), "embedded": args.pg_config is None}, _render_install)


def _render_status(data: dict[str, Any]) -> None:
    console.print(f"[bold]{data['active']}[/]: {data['reason']}", highlight=False)


def cmd_status(args: argparse.Namespace) -> None:
    with pgembed.connect(args.dsn, data_dir=args.data_dir) as db:
        emit(args, asdict(db.kernels()), _render_status)


def cmd_enable(args: argparse.Namespace) -> None:
    with pgembed.connect(args.dsn, data_dir=args.data_dir) as db:
        emit(args, asdict(db.use_kernels(True)), _render_status)


def cmd_disable(args: argparse.Namespace) -> None:
    with pgembed.connect(args.dsn, data_dir=args.data_dir) as db:
        emit(args, asdict(db.use_kernels(False)), _render_status)


def register(add: Add, parents: dict[str, argparse.ArgumentParser]) -> None:
    db = [parents["db"]]
    group = add("kernels", lambda _args: None, "pgembed's C kernels: install them on a server, and choose them or "
                "the SQL twins in a database", [])
    sub = group.add_subparsers(dest="kernels", required=True, metavar="{install,status,enable,disable}")

    def subcommand(name: str, handler: Any, help_text: str,
                   with_parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, parents=with_parents)
        p.set_defaults(handler=handler)
        return p

    p = subcommand("install", cmd_install, "build the kernels with PGXS and install them: for the embedded server "
                   "by default, or for the server of --pg-config (into its own folders, or --prefix)",
                   [parents["local"]])
    p.add_argument("--pg-config", default=None, metavar="PATH", help="that server's pg_config")
    p.add_argument("--prefix", default=None, metavar="DIR",
                   help="install under DIR (extension/, lib/) for a PostgreSQL 18 server's extension_control_path "
                        "and dynamic_library_path, instead of its own folders")
    p.add_argument("--sanitize", action="store_true", help="build with AddressSanitizer and UBSan (tests only)")
    subcommand("status", cmd_status, "which implementation runs in the database (pgembed.kernels()), and why", db)
    subcommand("enable", cmd_enable, "run the kernels in the database (installing the extension where the server "
               "has it and the role may)", db)
    subcommand("disable", cmd_disable, "run the SQL twins in the database (same results, slower); kept across "
               "migrate", db)
