"""SQLAlchemy face of pgembed: its two-stage search as a table you can join in a select(), and column types
for code columns.

    from pgembed.sqlalchemy import search_table
    hits = search_table("documents", query_vector, k=10, where={"category": "news"})
    stmt = (select(Document, hits.c.distance)
            .join(hits, cast(Document.id, Text) == hits.c.id)
            .order_by(hits.c.distance))

search_table() is pgembed.search() in SQL (same plans, same answers as Collection.search()), so it runs
wherever the statement runs: in the session's transaction, on the session's connection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Unpack

import numpy as np
import sqlalchemy as sa
from pgvector.sqlalchemy import BIT, HALFVEC, VECTOR
from sqlalchemy.dialects.postgresql import BYTEA, JSONB

from pgembed.codecs.base import vector_literal
from pgembed.errors import InvalidInputError
from pgembed.planning.filters import as_filter
from pgembed.planning.params import SearchKnobs, SearchParams
from pgembed.vectors import as_matrix

_SQL_TYPE = re.compile(r"^(vector|halfvec|bit|bytea)(?:\((\d+)\))?$")


def search_table(collection: str, query: Any, k: int = 10, *, where: Mapping[str, Any] | None = None,
                 params: SearchParams | None = None, name: str = "hits",
                 **knobs: Unpack[SearchKnobs]) -> sa.TableValuedAlias:
    """pgembed.search(...) as a table-valued FROM item with columns `id` (text) and `distance`. `where`: a
    filter dict (the server compiles it); the knobs as search() takes them."""
    q = as_matrix(query, None, what="query")
    if q.shape[0] != 1:
        raise InvalidInputError(f"search_table takes one query vector, got {q.shape[0]}")
    if where is not None and not isinstance(where, Mapping):
        raise InvalidInputError("where takes a dict in pgembed's filter language (a SQLAlchemy expression is a "
                                "WHERE of your own select)")
    p = SearchParams.of(params, **knobs)
    f = as_filter(where)
    call = sa.func.pgembed.search(
        sa.literal(collection, sa.Text),
        sa.cast(sa.literal(vector_literal(q[0]), sa.Text), VECTOR(q.shape[1])),
        sa.literal(k, sa.Integer),
        sa.cast(sa.literal(f.json, sa.Text), JSONB),
        sa.literal(p.recall, sa.Float),
        sa.literal(p.codec, sa.Text),
        sa.literal(p.ef_search, sa.Integer),
        sa.literal(p.oversample, sa.Float),
        sa.literal(p.plan.value, sa.Text),
        sa.literal(p.refine, sa.Text),
        sa.literal(p.refine_oversample, sa.Float),
        sa.literal(p.rerank, sa.Boolean),
    )
    return call.table_valued(sa.column("id", sa.Text), sa.column("distance", sa.Float), name=name)


def code_column_type(sql_type: str) -> sa.types.TypeEngine[Any]:
    """The SQLAlchemy type of a code column, from its PostgreSQL type (CodecInfo.sql_type): to declare
    pgembed's code columns in an ORM model or an Alembic migration of your own."""
    match = _SQL_TYPE.match(sql_type)
    if match is None:
        raise InvalidInputError(f"not a code column type: {sql_type!r}")
    kind, width = match.group(1), int(match.group(2)) if match.group(2) else None
    if kind == "vector":
        return VECTOR(width)
    if kind == "halfvec":
        return HALFVEC(width)
    if kind == "bit":
        return BIT(width)
    return BYTEA()


def as_vector(values: np.ndarray) -> sa.Cast[Any]:
    """A float32 vector as an SQL expression of type vector(d), exactly (shortest round-trip text)."""
    v = np.asarray(values, dtype=np.float32).reshape(-1)
    return sa.cast(sa.literal(vector_literal(v), sa.Text), VECTOR(v.shape[0]))


__all__ = ["as_vector", "code_column_type", "search_table"]
