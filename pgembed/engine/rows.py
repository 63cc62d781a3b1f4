"""Reading a collection's rows: counts and samples (what codecs fit on and tune() queries with)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pgembed.db.copy import as_float32
from pgembed.engine.context import CollectionContext
from pgembed.errors import InvalidInputError
from pgembed.statements import rows as q


def count(ctx: CollectionContext) -> int:
    return int(ctx.session.value(q.count(ctx.info)))


def table_rows(ctx: CollectionContext) -> float:
    """The rows the planner counts on (pgembed.table_rows: pg_class.reltuples, or a count)."""
    return float(ctx.session.value(q.TABLE_ROWS, (ctx.info.table.as_string(ctx.session.conn),)))


def sample_rows(ctx: CollectionContext, n: int, *, seed: int = 0) -> tuple[list[Any], np.ndarray]:
    """Keys and vectors of up to `n` rows (statements.rows.sample: all of them when the table is small)."""
    if n < 1:
        raise InvalidInputError(f"sample size must be positive, got {n}")
    with ctx.session.conn.cursor(binary=True) as cur:
        fetched = cur.execute(q.sample(ctx.info, n, seed, table_rows(ctx))).fetchall()
    if not fetched:
        return [], np.empty((0, ctx.info.dim), dtype=np.float32)
    return [r[0] for r in fetched], np.stack([as_float32(r[1]) for r in fetched])
