"""What a benchmark ran on, recorded beside its figures."""

from __future__ import annotations

import os
import platform
from typing import Any

import pgembed
from pgembed.statements import benchmarks

# The server settings a load's and an index build's speed depend on.
RECORDED_SETTINGS = ("shared_buffers", "maintenance_work_mem", "max_parallel_maintenance_workers",
                     "synchronous_commit")


def describe_environment(db: pgembed.Database) -> dict[str, Any]:
    server = db.session.row(benchmarks.SERVER_VERSIONS)
    settings: dict[str, str] = {name: value for name, value in
                                db.session.rows(benchmarks.SERVER_SETTINGS, (list(RECORDED_SETTINGS),))}
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgres": server[0] if server else None,
        "pgvector": server[1] if server else None,
        "pgembed": pgembed.__version__,
        "server_settings": settings,
    }
