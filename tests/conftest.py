"""Every database test runs against a real PostgreSQL with pgvector.

Backends, chosen by environment:
- default: pgembed's embedded server, in a temporary data directory of this test session;
- PGEMBED_TEST_DSN=postgresql://...: an existing server (the role needs CREATEDB);
- PGEMBED_TEST_BACKEND=docker: a container from docker/ through testcontainers (needs a Docker engine;
  asking for it where there is none is an error, not a skip).

Each test gets a database of its own, cloned from a template that already has pgvector and the catalog.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

import pgembed
from pgembed.server import EmbeddedServer

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = "pgembed_test_template"


def _docker_dsn(stack: list) -> str:
    try:
        from testcontainers.postgres import PostgresContainer
    except ImportError as err:
        raise pytest.UsageError("PGEMBED_TEST_BACKEND=docker needs testcontainers (pip install '.[test]')") from err
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        raise pytest.UsageError("PGEMBED_TEST_BACKEND=docker, but no Docker engine answers `docker info`")
    from testcontainers.core.image import DockerImage

    # The image users run (docker/Dockerfile): pgvector's official image plus pgembed's migrated catalog.
    image = DockerImage(path=str(REPO), dockerfile_path="docker/Dockerfile", tag="pgembed-postgres:test")
    image.build()
    stack.append(image.remove)
    container = PostgresContainer(str(image), username="postgres", password="postgres", dbname="postgres",
                                  driver=None)
    container.start()
    stack.append(container.stop)
    return container.get_connection_url()


SANITIZE_ENV = "PGEMBED_TEST_SANITIZE"  # `make kernels-sanitize`: the kernels built with ASan and UBSan


def _sanitizer(log_dir: Path, stack: list) -> dict[str, str]:
    """The embedded server's environment for a sanitized build of the kernels; at the end of the session, any
    report the sanitizers wrote fails the run."""
    from pgembed.tools.kernels import sanitizer_environment

    environment = sanitizer_environment(log_dir)

    def check() -> None:
        reports = sorted(log_dir.glob("*"))
        if reports:
            text = "\n".join(p.read_text(errors="replace")[-3000:] for p in reports)
            raise AssertionError(f"the sanitizers reported {len(reports)} problem(s) in the kernels:\n{text}")

    stack.insert(0, check)  # after the server stopped: cleanups run in reverse
    return environment


def open_folder() -> Path:
    """A folder for an embedded server's data directory. pytest's temporary folders are private (0700), and a
    server that root starts runs as another account, which pgembed does not let into them (pgembed.server):
    this one is made in the system's temporary directory and opened (0755) by the test."""
    folder = Path(tempfile.mkdtemp(prefix="pgembed-test-"))
    folder.chmod(0o755)
    return folder


@pytest.fixture
def server_folder() -> Iterator[Path]:
    folder = open_folder()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """Admin DSN of the test server (its maintenance database)."""
    cleanups: list = []
    if os.environ.get("PGEMBED_TEST_DSN"):
        dsn = os.environ["PGEMBED_TEST_DSN"]
    elif os.environ.get("PGEMBED_TEST_BACKEND", "embedded") == "docker":
        dsn = _docker_dsn(cleanups)
    else:
        root = open_folder()
        environment = _sanitizer(root / "sanitizer", cleanups) if os.environ.get(SANITIZE_ENV) else None
        cleanups.insert(0, lambda: shutil.rmtree(root, ignore_errors=True))  # the last cleanup
        server = EmbeddedServer(root / "data", environment=environment)
        dsn = server.ensure_running()
        cleanups.append(server.stop)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    template_dsn = make_conninfo(dsn, dbname=TEMPLATE)
    pgembed.connect(template_dsn, migrate=True).close()
    try:
        yield dsn
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE)))
        for cleanup in reversed(cleanups):
            cleanup()


def _new_database(server_dsn: str, template: str) -> Iterator[str]:
    name = f"pgembed_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
    try:
        yield make_conninfo(server_dsn, dbname=name)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def dsn(server_dsn: str) -> Iterator[str]:
    """A database of this test's own, with pgvector and pgembed's catalog installed."""
    yield from _new_database(server_dsn, TEMPLATE)


@pytest.fixture(scope="module")
def server_dsn_for_module(server_dsn: str) -> Iterator[str]:
    """A database shared by one test module's tests (for a measurement several tests look at)."""
    yield from _new_database(server_dsn, TEMPLATE)


@pytest.fixture
def bare_dsn(server_dsn: str) -> Iterator[str]:
    """A database of this test's own with nothing installed (no pgvector, no catalog)."""
    yield from _new_database(server_dsn, "template0")


@pytest.fixture
def db(dsn: str) -> Iterator[pgembed.Database]:
    with pgembed.connect(dsn) as database:
        yield database


@pytest.fixture
def sql_conn(dsn: str) -> Iterator[psycopg.Connection]:
    """A plain psycopg connection, as another application would hold (no pgembed involved)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn
