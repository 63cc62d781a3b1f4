"""pgembed's C kernels in one database: installed where the server has them and the role may, bound, and
reported. The SQL side is sql/functions/kernels.sql; building them is pgembed.tools.kernels.

The choice is kept by the database (pgembed.kernel_choice): `pgembed.bind_kernels(false)` (db.use_kernels(False),
`pgembed kernels disable`) stays until bound again, and every migrate() binds by it; with no choice made, the
kernels. `PGEMBED_KERNELS=off` or `=on` in the environment of a migrate() overrides it for that migrate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import psycopg

from pgembed.db.extension import EXTENSION_LOCK
from pgembed.errors import InvalidInputError
from pgembed.statements import catalog as q
from pgembed.statements import introspection
from pgembed.vocabulary import KernelMode

KERNELS_ENV = "PGEMBED_KERNELS"


@dataclass(frozen=True)
class KernelStatus:
    """Which implementation pgembed's functions run in a database, and why (pgembed.kernels())."""

    active: KernelMode
    installed: str | None
    available: str | None
    wanted: str
    reason: str
    functions: tuple[str, ...]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KernelStatus:
        return cls(active=KernelMode(data["active"]), installed=data["installed"], available=data["available"],
                   wanted=data["wanted"], reason=data["reason"], functions=tuple(data["functions"] or ()))


def kernels_wanted_by_environment() -> bool | None:
    """$PGEMBED_KERNELS as a choice: False for off/0/false/no, True for on/1/true/yes, None when unset."""
    value = os.environ.get(KERNELS_ENV, "").strip().lower()
    if not value:
        return None
    if value in ("off", "0", "false", "no"):
        return False
    if value in ("on", "1", "true", "yes"):
        return True
    raise InvalidInputError(f"{KERNELS_ENV}={value!r}: expected on or off")


def ensure_kernels(conn: psycopg.Connection, *, use: bool | None = None) -> KernelStatus:
    """Install the extension in this database when the server has the version pgembed wants and the role may
    (a savepoint: a refusal leaves the caller's transaction as it was), then bind pgembed's functions to the
    kernels, or to the twins when `use` is False, and record that as the database's choice. `use=None`:
    $PGEMBED_KERNELS when set, else the database's recorded choice, else the kernels; nothing recorded."""
    available, installed, wanted, chosen = conn.execute(q.KERNELS_AVAILABILITY).fetchone()  # type: ignore[misc]
    remember = use is not None
    if use is None:
        use = kernels_wanted_by_environment()
    if use is None:
        use = chosen is not False
    if use and available == wanted and installed != wanted:
        try:
            with conn.transaction():
                conn.execute(introspection.ADVISORY_XACT_LOCK, (EXTENSION_LOCK,))
                conn.execute(q.CREATE_KERNELS if installed is None else q.UPDATE_KERNELS)
        except psycopg.errors.DatabaseError:
            # not allowed, or a library this server cannot load: the twins serve, and pgembed.kernels() says
            # the extension is available but not installed (CREATE EXTENSION shows the server's reason)
            pass
    conn.execute(q.BIND_KERNELS, (use, remember))
    return kernel_status(conn)


def kernel_status(conn: psycopg.Connection) -> KernelStatus:
    return KernelStatus.from_json(conn.execute(q.KERNELS_STATUS).fetchone()[0])  # type: ignore[index]

