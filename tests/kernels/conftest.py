"""The kernels' tests talk to pgembed_kernels.* and pgembed_twins.* directly, in one database of the module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg import sql

from pgembed.db.kernels import kernels_wanted_by_environment


@pytest.fixture(scope="module")
def kernel_conn(server_dsn_for_module: str) -> Iterator[psycopg.Connection]:
    """A connection to a database where both the kernels and the twins are installed."""
    if kernels_wanted_by_environment() is False:
        pytest.skip("PGEMBED_KERNELS=off: this run is on the SQL twins (tests/kernels compare the kernels with them)")
    with psycopg.connect(server_dsn_for_module, autocommit=True) as conn:
        register_vector(conn)
        installed = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pgembed_kernels'").fetchone()
        assert installed is not None, ("pgembed_kernels is not installed in the test database: `make kernels` "
                                       "builds it for the embedded server, `pgembed kernels install --pg-config` "
                                       "for the server of PGEMBED_TEST_DSN")
        yield conn


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    """A connection to the test's own database (the db fixture's), vectors adapted."""
    with psycopg.connect(dsn, autocommit=True) as c:
        register_vector(c)
        yield c


@pytest.fixture
def reader(conn: psycopg.Connection) -> Iterator[str]:
    """A role of no rights of its own, dropped with what it was granted."""
    name = f"reader_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name)))
    yield name
    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
