"""`pgembed serve | stop | status`: the embedded server (pgembed.server.EmbeddedServer)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import asdict

from pgembed.cli._common import Add, console, emit
from pgembed.server import EmbeddedServer


def cmd_serve(args: argparse.Namespace) -> None:
    server = EmbeddedServer(args.data_dir)
    was_running = server.status().running
    dsn = server.ensure_running(port=args.port)
    emit(args, {"dsn": dsn, "data_dir": str(server.data_dir), "already_running": was_running},
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
    emit(args, {"stopped": stopped}, lambda d: console.print("stopped" if d["stopped"] else "was not running"))


def cmd_status(args: argparse.Namespace) -> None:
    status = asdict(EmbeddedServer(args.data_dir).status())
    emit(args, status, lambda d: console.print_json(json.dumps(d, default=str)))


def register(add: Add, parents: dict[str, argparse.ArgumentParser]) -> None:
    p = add("serve", cmd_serve, "run the embedded PostgreSQL in the foreground and print its DSN", [parents["local"]])
    p.add_argument("--port", type=int, default=None, help="also listen on TCP 127.0.0.1:PORT")
    add("stop", cmd_stop, "stop the embedded server", [parents["local"]])
    add("status", cmd_status, "show whether the embedded server runs, and its DSN", [parents["local"]])
