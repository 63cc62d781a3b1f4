"""Checks the reliability suites make once the load or the crash is over: what the rows hold against what
pgembed's numpy codecs say they should."""

from __future__ import annotations

import numpy as np

import pgembed
from pgembed.codecs.base import codes_from_sql_text
from pgembed.statements import soak as q
from pgembed.vocabulary import CodecState


def stale_codes(db: pgembed.Database, collection: pgembed.Collection) -> tuple[int, int]:
    """Rows whose stored codes differ from numpy's encoding of their vector, and rows lacking a code."""
    active = [c for c in collection.codecs() if c.state is CodecState.ACTIVE]
    columns = [c.column_name for c in active]
    rows = db.execute(q.codes_with_vectors(collection.info, columns)).fetchall()
    if not rows:
        return 0, 0
    x = np.array([r[1] for r in rows], dtype=np.float32)
    stale = np.zeros(len(rows), dtype=bool)
    missing = 0
    for i, info in enumerate(active):
        codec = collection.codec(info.name)
        texts = [r[2 + i] for r in rows]
        present = np.array([t is not None for t in texts])
        missing += int((~present).sum())
        stored = codes_from_sql_text(codec.storage, texts, 0)
        expected = codec.encode(x[present])
        if codec.storage in ("vector", "halfvec"):
            expected = expected.astype(np.float32)
        stale[np.flatnonzero(present)] |= ~np.all(stored == expected, axis=1)
    return int(stale.sum()), missing
