"""Bulk ingest through binary COPY: every input validated before anything is written, then one COPY in one
transaction (or a savepoint inside the application's), so that a call writes all its rows or none. Where
row-level security applies to the role, the COPY goes to a temporary table and one INSERT takes the rows
through the policies. Codes are the database's to compute (the trigger); ingest never writes a code column."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import psycopg

from pgembed.db import copy
from pgembed.db.introspection import table_columns
from pgembed.engine import codecs
from pgembed.engine.context import CollectionContext
from pgembed.errors import DuplicateKeyError, InvalidInputError, InvalidVectorsError
from pgembed.progress import advancer, progress_bar
from pgembed.statements import rows as q
from pgembed.vectors import as_matrix

Batch = tuple[Any, Any, Mapping[str, Any] | None]  # (ids, vectors, attrs)
CHUNK_ROWS = 8192


def ingest_batches(ctx: CollectionContext, batches: Iterable[Batch], *, progress: bool = False,
                   total: int | None = None, chunk_rows: int = CHUNK_ROWS) -> int:
    """Insert (ids, vectors, attrs) batches from an iterator, for data larger than memory. One transaction for
    the whole iterator: a bad batch or a duplicate key anywhere rolls back every row of the call."""
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InvalidInputError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    iterator = iter(batches)
    first = next(iterator, None)
    if first is None:
        raise InvalidInputError("ingest got no batches")
    live = ctx.codecs()
    columns = _copy_columns(ctx, first[2], {name for c in live for name in codecs.column_names(ctx, c)})
    written = 0

    def encoded(advance: Any) -> Iterator[bytes]:
        nonlocal written
        for ids, vectors, attrs in _chain(first, iterator):
            n, data = _prepare(ctx, columns, ids, vectors, attrs)
            for start in range(0, n, chunk_rows):
                stop = min(start + chunk_rows, n)
                yield copy.encode_rows(columns, [d[start:stop] for d in data], stop - start)
                advance(stop - start)
            written += n

    names = [c.name for c in columns]
    try:
        with ctx.session.transaction(), progress_bar(f"ingest {ctx.info.name}", total, progress) as bar:
            if ctx.session.value(q.RLS_ACTIVE, (ctx.info.table.as_string(ctx.session.conn),)):
                _write_through_policies(ctx, names, encoded(advancer(bar)))
            else:
                copy.write_rows(ctx.session, q.copy_in(ctx.info, names), encoded(advancer(bar)))
    except psycopg.errors.InsufficientPrivilege as err:
        raise InvalidInputError(f"ingest into {ctx.info.name!r} rolled back: {err}") from err
    except psycopg.errors.UniqueViolation as err:
        detail = err.diag.message_detail or str(err)
        raise DuplicateKeyError(f"ingest into {ctx.info.name!r} rolled back: {detail}") from err
    except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as err:
        raise InvalidInputError(f"ingest into {ctx.info.name!r} rolled back: {err}") from err
    finally:
        ctx.forget()  # row counts and estimates moved (or a failed COPY left the caches as they were)
    return written


def _write_through_policies(ctx: CollectionContext, columns: list[str], batches: Iterator[bytes]) -> None:
    """Row-level security applies to this role, and PostgreSQL refuses COPY FROM then: the rows go to a
    temporary table first and from there through one INSERT, which the policies check (WITH CHECK)."""
    ctx.session.execute(q.create_stage(ctx.info, columns))
    copy.write_rows(ctx.session, q.copy_into_stage(columns), batches)
    ctx.session.execute(q.insert_staged(ctx.info, columns))
    ctx.session.execute(q.DROP_STAGE)  # the application's transaction may ingest again before it ends


def _chain(first: Batch, rest: Iterator[Batch]) -> Iterator[Batch]:
    yield first
    yield from rest


def _copy_columns(ctx: CollectionContext, attrs: Mapping[str, Any] | None, codes: set[str]) -> list[copy.CopyColumn]:
    if attrs is not None and not isinstance(attrs, Mapping):
        raise InvalidInputError(f"attrs maps column names to their values, got {type(attrs).__name__}")
    table = table_columns(ctx.session, ctx.info.table)
    attr_names = list(attrs.keys()) if attrs is not None else []
    for name in attr_names:
        if name in (ctx.info.key_column, ctx.info.vector_column):
            raise InvalidInputError(f"attrs name column {name!r}, which ingest writes from its ids or vectors")
    columns = []
    for name in [ctx.info.key_column, ctx.info.vector_column, *attr_names]:
        if name not in table:
            raise InvalidInputError(f"table {ctx.info.table_name!r} has no column {name!r}")
        if name in codes:
            raise InvalidInputError(f"column {name!r} holds codes computed by the database; do not write it")
        column = copy.CopyColumn(name, table[name].type_name, table[name].typmod if table[name].is_vector else -1)
        copy.check_supported(column)
        columns.append(column)
    if len(set(attr_names)) != len(attr_names):
        raise InvalidInputError(f"attrs repeat a column: {attr_names!r}")
    return columns


def _prepare(ctx: CollectionContext, columns: list[copy.CopyColumn], ids: Any, vectors: Any,
             attrs: Mapping[str, Any] | None) -> tuple[int, list[np.ndarray | list[bytes | None]]]:
    x = as_matrix(vectors, ctx.info.dim)
    n = x.shape[0]
    keys = validate_ids(ids, n)
    attr_names = [c.name for c in columns[2:]]
    given = list(attrs.keys()) if attrs is not None else []
    if given != attr_names:
        raise InvalidInputError(f"every batch must carry the same attrs {attr_names}, got {given}")
    data: list[np.ndarray | list[bytes | None]] = [copy.prepare(columns[0], keys, n), x]
    for column in columns[2:]:
        assert attrs is not None
        data.append(copy.prepare(column, attrs[column.name], n))
    return n, data


def validate_ids(ids: Any, n: int) -> np.ndarray | list[Any]:
    """Keys for n rows: the right count, no NULLs, no duplicates among them."""
    if isinstance(ids, np.ndarray) and ids.dtype != object:
        keys: np.ndarray | list[Any] = ids.reshape(-1) if ids.ndim else ids
        count = len(keys)
        if count == n and ids.dtype.kind in "iu":
            unique = np.unique(keys)
            if len(unique) != n:
                values, counts = np.unique(keys, return_counts=True)
                raise InvalidVectorsError(f"duplicate ids in input, e.g. {values[counts > 1][0]!r}")
            return keys
    else:
        keys = list(ids)
        count = len(keys)
    if count != n:
        raise InvalidVectorsError(f"got {count} ids for {n} vectors")
    as_list = list(keys)
    if any(k is None for k in as_list):
        raise InvalidVectorsError("ids contain None (NULL keys)")
    seen: set[Any] = set()
    for k in as_list:
        hashable = k.item() if isinstance(k, np.generic) else k
        if hashable in seen:
            raise InvalidVectorsError(f"duplicate ids in input, e.g. {hashable!r}")
        seen.add(hashable)
    return keys
