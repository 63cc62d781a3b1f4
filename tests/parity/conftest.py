"""The parity tests run twice: with pgembed's functions bound to the C kernels, and to the SQL twins."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from pgembed.db.kernels import kernels_wanted_by_environment
from pgembed.vocabulary import KernelMode
from tests.conftest import TEMPLATE, _new_database

MODES = [KernelMode.TWINS] if kernels_wanted_by_environment() is False else [KernelMode.KERNELS, KernelMode.TWINS]


@pytest.fixture(params=MODES, ids=[m.value for m in MODES])
def kernel_mode(request: pytest.FixtureRequest) -> KernelMode:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def dsn(server_dsn: str, kernel_mode: KernelMode) -> Iterator[str]:
    """A database of this test's own, its functions bound to `kernel_mode`."""
    for conninfo in _new_database(server_dsn, TEMPLATE):
        with psycopg.connect(conninfo, autocommit=True) as conn:
            active = conn.execute("SELECT pgembed.bind_kernels(%s)", [kernel_mode is KernelMode.KERNELS]).fetchone()
        assert active == (kernel_mode.value,)
        yield conninfo
