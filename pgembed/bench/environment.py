"""What a benchmark ran on, recorded beside its figures."""

from __future__ import annotations

import os
import platform
from typing import Any

import pgembed


def describe_environment(db: pgembed.Database) -> dict[str, Any]:
    server = db.execute("SELECT current_setting('server_version'), "
                        "(SELECT extversion FROM pg_extension WHERE extname = 'vector')").fetchone()
    settings: dict[str, str] = dict(db.execute(
        "SELECT name, current_setting(name) FROM pg_settings WHERE name IN "
        "('shared_buffers', 'maintenance_work_mem', 'max_parallel_maintenance_workers', 'synchronous_commit')"
    ).fetchall())
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgres": server[0] if server else None,
        "pgvector": server[1] if server else None,
        "pgembed": pgembed.__version__,
        "server_settings": settings,
    }
