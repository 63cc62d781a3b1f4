"""A collection's codecs over their life: added, fitted, backfilled, activated, re-fitted as a new version
while readers keep the old one, dropped; and the trigger that keeps every code column in step with the vector.

Re-fitting without stopping readers: fit() makes version n+1 of every trainable codec, in columns of its own
(`embedding_bq_v2`), added nullable (no table rewrite) and kept in step by the regenerated trigger from that
moment; the batched backfill fills them while readers keep version n (the catalog's active row). When a
version is complete, its predecessor's indexes are rebuilt on the new column, and one transaction retires
version n, activates n+1, regenerates the trigger, drops version n's columns (with their indexes) and gives
version n+1's columns their names: between re-fits a codec's columns are always `embedding_bq`.

Where the columns are depends on the collection's placement. TABLE: in the user's table, which a BEFORE
trigger fills and a backfill rewrites row by row. COMPANION: in pgembed.codes_<id> (key plus codes), which an
AFTER trigger on the user's table keeps (insert, update of key or vector, delete, truncate) and a backfill
fills by key ranges, reading the user's rows FOR SHARE and never writing them: adding or re-fitting a codec
leaves the user's table, its size and its columns as they were.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import numpy as np
import psycopg
from psycopg import sql

from pgembed.codecs import SOURCE, Codec, load_codec, make_codec
from pgembed.codecs.spec import codec_spec_of
from pgembed.db import catalog, locks
from pgembed.db.introspection import table_columns
from pgembed.engine import indexes
from pgembed.engine.context import CollectionContext
from pgembed.engine.rows import sample_rows
from pgembed.errors import InvalidInputError, InvalidVectorsError, LockBusyError, SchemaError
from pgembed.progress import advancer, progress_bar
from pgembed.records import CodecInfo, CollectionInfo
from pgembed.statements import ddl, encoders
from pgembed.statements import rows as q
from pgembed.statements.introspection import SESSION_ROLES
from pgembed.vectors import as_matrix
from pgembed.vocabulary import CodecState, Placement

CODEC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")  # the catalog's CHECK on pgembed.codecs.name
MAX_IDENTIFIER = 63  # NAMEDATALEN - 1
BACKFILL_ROWS = 20_000  # the most keys a backfill batch re-encodes: a large table is not locked whole
BATCH_SECONDS = 0.2  # what a backfill batch aims to take (pgembed.engine.codecs._BatchSizer)
MIN_BATCH_ROWS = 64


def code_column_name(info: CollectionInfo, codec_name: str, version: int = 1) -> str:
    suffix = f"_{codec_name}" if version == 1 else f"_{codec_name}_v{version}"
    name = info.vector_column + suffix
    if len(name.encode()) > MAX_IDENTIFIER:
        digest = hashlib.sha1(info.vector_column.encode()).hexdigest()[:8]
        name = f"pgembed_{digest}{suffix}"
    return name


def code_columns(main_column: str, codec: Codec) -> list[tuple[str, str]]:
    """(column, SQL type) of every column a codec's codes occupy: the main one, then its extras."""
    columns = [(main_column, codec.sql_type())]
    for extra in codec.extra_columns():
        name = main_column + extra.suffix
        if len(name.encode()) > MAX_IDENTIFIER:
            raise SchemaError(f"column name {name!r} is longer than PostgreSQL allows; pick a shorter codec name")
        columns.append((name, extra.sql_type))
    return columns


def column_names(ctx: CollectionContext, info: CodecInfo) -> list[str]:
    """Every column a codec version occupies (main, then extras): known from its spec alone."""
    return [name for name, _ in code_columns(info.column_name, make_codec(info.kind, ctx.info.dim))]


def load(ctx: CollectionContext, info: CodecInfo) -> Codec:
    return load_codec(info.kind, ctx.info.dim, info.params)


# -- adding, fitting, dropping -------------------------------------------------------------------------------
def add_codec(ctx: CollectionContext, name: str, spec: Any, *, fit_on: np.ndarray | None = None,
              fit_queries: np.ndarray | None = None, sample: int = 50_000, progress: bool = False,
              backfill_now: bool = True) -> CodecInfo:
    codec = make_codec(codec_spec_of(spec), ctx.info.dim)
    if not CODEC_NAME.match(name):
        raise SchemaError(f"invalid codec name {name!r}: lower-case letters, digits and _, starting with a letter")
    if any(c.name == name for c in ctx.codecs()):
        building = any(c.name == name and c.state is CodecState.BUILDING for c in ctx.codecs())
        raise SchemaError(f"collection {ctx.info.name!r} already has a codec {name!r}" + (
            ", still building (an add_codec() or fit() was interrupted, or ran with backfill=False): call "
            "backfill() to finish it" if building else ""))
    require_every_row(ctx, "add_codec()")
    fitted_rows = None
    if codec.trainable:
        data = training_data(ctx, fit_on, sample)
        codec.fit(data, fit_queries)
        fitted_rows = int(data.shape[0])
    column = code_column_name(ctx.info, name)

    def create() -> None:
        _lock_for_codes(ctx)
        catalog.insert_codec(ctx.session, ctx.info.id, name, codec.spec, version=1, state=CodecState.BUILDING,
                             column_name=column, sql_type=codec.sql_type(), params=codec.params(),
                             fitted_rows=fitted_rows, estimator=codec.estimator)
        for column_name, sql_type in code_columns(column, codec):
            _add_column(ctx, column_name, sql_type)
        install_trigger(ctx)

    _change(ctx, create, f"add_codec({name!r})", "call add_codec() again")
    if not backfill_now:
        return next(c for c in ctx.codecs() if c.name == name)
    _fill(ctx, progress=progress)
    return ctx.active_codec(name)


def require_every_row(ctx: CollectionContext, operation: str,
                      because: str = "every row needs its codes") -> None:
    """Codes are filled from every row of the table (and tune() measures for every reader): refused, before
    anything is changed, where row-level security would hide some of them from this role (its policies under
    FORCE ROW LEVEL SECURITY, or a role that does not own the table), which would leave their codes missing.
    With row_security off, PostgreSQL raises instead of filtering."""
    try:
        with ctx.session.transaction():
            ctx.session.execute(q.ROW_SECURITY_OFF)
            ctx.session.execute(q.probe(ctx.info))
    except psycopg.errors.InsufficientPrivilege as err:
        role = ctx.session.value(SESSION_ROLES)
        raise SchemaError(
            f"{operation} on {ctx.info.qualified_name}: row-level security hides rows of it from role {role!r} "
            f"({err.diag.message_primary}), and {because}; run it as a role that bypasses the "
            "policies (the table's owner without FORCE ROW LEVEL SECURITY, or a role WITH BYPASSRLS)") from err


def _change(ctx: CollectionContext, work: Callable[[], None], what: str, finish: str) -> None:
    """A change of codecs, columns and trigger in one transaction whose lock waits are bounded (a DDL queued
    behind a long reader would stall every writer behind it): retried whole on a timeout or deadlock."""
    locks.bounded(ctx.session, work, what=f"{what} on {ctx.info.qualified_name}", finish=finish,
                  on_retry=ctx.forget)


def _lock_for_codes(ctx: CollectionContext) -> None:
    if ctx.info.placement is Placement.COMPANION:
        ctx.session.execute(ddl.lock_for_codes(ctx.info))


def _add_column(ctx: CollectionContext, column: str, sql_type: str) -> None:
    if column in table_columns(ctx.session, ctx.info.codes_table):
        table = ctx.info.codes_table.as_string(ctx.session.conn)
        raise SchemaError(f"table {table} already has a column {column!r}; pick another codec name")
    ctx.session.execute(ddl.add_column(ctx.info, column, sql_type))
    ctx.forget()


def drop_codec(ctx: CollectionContext, name: str) -> None:
    info = ctx.active_codec(name)
    columns = column_names(ctx, info)

    def drop() -> None:
        _lock_for_codes(ctx)
        catalog.delete_codec(ctx.session, info.id)
        install_trigger(ctx)
        for column in columns:
            ctx.session.execute(ddl.drop_column(ctx.info, column))
        if ctx.info.placement is Placement.COMPANION and not ctx.codecs():
            # No trigger keeps the companion from here on: its keys would go stale. The next codec fills it anew.
            ctx.session.execute(ddl.truncate_companion(ctx.info))

    _change(ctx, drop, f"drop_codec({name!r})", "call drop_codec() again")
    ctx.forget()


def fit(ctx: CollectionContext, *, sample: int = 50_000, fit_on: np.ndarray | None = None,
        fit_queries: np.ndarray | None = None, progress: bool = False, backfill_now: bool = True) -> int:
    """Re-fit every trainable codec as a new version (see the module docstring). Returns the rows encoded."""
    codecs = ctx.codecs()
    if any(c.state is CodecState.BUILDING for c in codecs):
        raise SchemaError(f"collection {ctx.info.name!r} has codec versions still building: call backfill()")
    trainable = [c for c in codecs if c.state is CodecState.ACTIVE and make_codec(c.kind, ctx.info.dim).trainable]
    if not trainable:
        return 0
    require_every_row(ctx, "fit()")
    data = training_data(ctx, fit_on, sample)
    fitted = [(info, make_codec(info.kind, ctx.info.dim).fit(data, fit_queries)) for info in trainable]

    def create() -> None:
        _lock_for_codes(ctx)
        for info, codec in fitted:
            column = code_column_name(ctx.info, info.name, info.version + 1)
            catalog.insert_codec(ctx.session, ctx.info.id, info.name, codec.spec, version=info.version + 1,
                                 state=CodecState.BUILDING, column_name=column, sql_type=codec.sql_type(),
                                 params=codec.params(), fitted_rows=int(data.shape[0]),
                                 estimator=codec.estimator)
            for column_name, sql_type in code_columns(column, codec):
                _add_column(ctx, column_name, sql_type)
        install_trigger(ctx)

    _change(ctx, create, "fit()", "call fit() again")
    return _fill(ctx, progress=progress) if backfill_now else 0


def training_data(ctx: CollectionContext, fit_on: np.ndarray | None, sample: int) -> np.ndarray:
    data = as_matrix(fit_on, ctx.info.dim, what="fit_on") if fit_on is not None else sample_rows(ctx, sample)[1]
    if data.shape[0] == 0:
        raise InvalidVectorsError(f"cannot fit codecs of collection {ctx.info.name!r}: it has no vectors yet; "
                                  "pass fit_on=")
    return data


# -- backfill and activation -----------------------------------------------------------------------------------
def backfill(ctx: CollectionContext, *, progress: bool = False, batch_rows: int = BACKFILL_ROWS) -> int:
    """Compute missing codes of every codec version still building, then make each the active one (retiring
    the version it replaces, in one transaction). Batches commit on their own unless the caller's transaction
    is open; an interrupted backfill resumes where it stopped (a companion's walks its keys again, re-encoding
    rows already done: the same codes). Returns the rows encoded."""
    require_every_row(ctx, "backfill()")
    return _fill(ctx, progress=progress, batch_rows=batch_rows)


def _fill(ctx: CollectionContext, *, progress: bool, batch_rows: int = BACKFILL_ROWS) -> int:
    """backfill() once add_codec() or fit() have checked that every row is visible."""
    if ctx.info.placement is Placement.COMPANION:
        return _fill_companion(ctx, progress=progress, batch_rows=batch_rows)
    total = 0
    for info in [c for c in ctx.codecs() if c.state is CodecState.BUILDING]:
        todo = int(ctx.session.value(q.count_missing_codes(ctx.info, info.column_name)))
        statements = {first: q.backfill_batch(ctx.info, info.column_name, ctx.key_type(), first=first)
                      for first in (True, False)}

        def batch(after: Any, rows: int, statements: dict[bool, sql.Composed] = statements) -> tuple[int, Any]:
            done, last = _one_row(ctx, statements[after is None], {"after": after, "rows": rows})
            return int(done), last if done == rows else None  # fewer than asked for: the pass reached the end

        def missing(column: str = info.column_name) -> int:
            return int(ctx.session.value(q.count_missing_codes(ctx.info, column)))

        with progress_bar(f"codes {info.name} v{info.version}", todo, progress) as bar:
            total += _walk(ctx, batch, missing, batch_rows, advancer(bar), f"the backfill of codec {info.name!r}")
        _activate(ctx, info)
    return total


def _fill_companion(ctx: CollectionContext, *, progress: bool, batch_rows: int) -> int:
    """Passes over the user's rows in key order fill every building codec's columns in the companion (and
    insert a row missing there with all its codes); then each building version becomes the active one."""
    building = [c for c in ctx.codecs() if c.state is CodecState.BUILDING]
    if not building:
        return 0
    assigned = _targets(ctx).assigned
    ids = {c.id for c in building}
    building_columns = {column for info in building for column in column_names(ctx, info)}
    building_targets = [t for t in assigned if t.column in building_columns]
    statements = {first: ddl.fill_companion_batch(ctx.info, assigned, building_targets, ctx.key_type(), first=first)
                  for first in (True, False)}

    def batch(after: Any, rows: int) -> tuple[int, Any]:
        bound, done = _one_row(ctx, statements[after is None], {"after": after, "rows": rows})
        return int(done), bound

    def missing() -> int:
        return int(ctx.session.value(ddl.missing_codes(ctx.info, [t.column for t in building_targets])))

    todo = int(ctx.session.value(q.count_vectors(ctx.info)))
    with progress_bar(f"codes {', '.join(f'{c.name} v{c.version}' for c in building)}", todo, progress) as bar:
        total = _walk(ctx, batch, missing, batch_rows, advancer(bar), "the companion's backfill")
    for info in [c for c in ctx.codecs() if c.id in ids]:
        _activate(ctx, info)
    return total


def _one_row(ctx: CollectionContext, statement: sql.Composed, params: dict[str, Any]) -> tuple[Any, ...]:
    # The encoders run in this session: under the pinned search_path, as in the trigger.
    with ctx.session.pinned_search_path():
        row = ctx.session.row(statement, params)
    assert row is not None
    return row


class _BatchSizer:
    """Rows per batch such that one takes about BATCH_SECONDS: how long a writer may wait for a row a batch
    holds. Starts small, grows at most 2x a batch, never past the caller's `batch_rows`, and never shrinks
    below MIN_BATCH_ROWS: when a batch's fixed cost alone (its statement, a loaded server) exceeds
    BATCH_SECONDS, shrinking further only makes the backfill slower (it fell to a row a batch under load)."""

    def __init__(self, most: int) -> None:
        if most < 1:
            raise InvalidInputError(f"batch_rows must be at least 1, got {most}")
        self.most = most
        self.rows = min(most, 256)

    def took(self, rows: int, seconds: float) -> None:
        if rows == self.rows:
            wanted = rows * BATCH_SECONDS / max(seconds, 1e-3)
            self.rows = max(min(self.most, MIN_BATCH_ROWS), min(self.most, int(min(wanted, 2 * rows))))


def _walk(ctx: CollectionContext, batch: Callable[[Any, int], tuple[int, Any]], missing: Callable[[], int],
          batch_rows: int, on_batch: Callable[[int], None], what: str) -> int:
    """Passes of batches in key order over the rows lacking codes, until none does (a later pass takes the rows
    an earlier one skipped because another transaction held them). `batch(after, rows)` returns the rows done
    and the key to go on after (None: the pass is over). Each batch is its
    own transaction with bounded lock waits (pgembed.db.locks) unless the caller's transaction is open."""
    sizer = _BatchSizer(batch_rows)
    finish = "call backfill() to finish it"
    total, stalled_since = 0, None
    while True:
        after: Any = None
        while True:
            started = time.perf_counter()
            done, after = locks.bounded(ctx.session, partial(batch, after, sizer.rows), what=what,
                                        finish=finish)
            sizer.took(done, time.perf_counter() - started)
            if done:
                total += done
                on_batch(done)
                stalled_since = None
            if after is None:
                break
        left = missing()
        if not left:
            return total
        # Rows still held by other transactions: wait for them, without holding any lock of ours.
        stalled_since = stalled_since or time.monotonic()
        if time.monotonic() - stalled_since > locks.GIVE_UP_AFTER:
            raise LockBusyError(f"{what}: {left} rows of {ctx.info.qualified_name} stayed locked by other "
                                f"transactions for {locks.GIVE_UP_AFTER:.0f} s and still lack codes; {finish}")
        time.sleep(0.1)


def _activate(ctx: CollectionContext, info: CodecInfo) -> None:
    previous = next((c for c in ctx.codecs() if c.name == info.name and c.state is CodecState.ACTIVE), None)
    # Readers keep the previous version's index until the switch: build the new version's first.
    rebuilt = [i for i in indexes.list_indexes(ctx) if previous is not None and i.codec_id == previous.id]
    # Concurrently where it can (writers go on meanwhile); an index left from an interrupted activation is
    # kept if complete, rebuilt if not (pgembed.engine.indexes.build).
    built = [(i.method, i.predicate) for i in indexes.list_indexes(ctx) if i.codec_id == info.id]
    for index in rebuilt:
        if (index.method, index.predicate) not in built:
            indexes.build(ctx, info.id, info.column_name, index.method, index.params,
                          concurrently=ctx.session.idle_autocommit, progress=False, predicate=index.predicate)
    if load(ctx, info).lists is not None:  # a partitioning: its clusters are read by a B-tree
        indexes.build_cluster_index(ctx, info.id, info.column_name)

    def switch() -> None:
        _lock_for_codes(ctx)
        if previous is not None:
            catalog.set_codec_state(ctx.session, previous.id, CodecState.RETIRED)
            for index in rebuilt:
                catalog.delete_index(ctx.session, ctx.info.id, index.index_name)
        catalog.set_codec_state(ctx.session, info.id, CodecState.ACTIVE)
        install_trigger(ctx)  # first: the generated functions depend on the columns they name
        if previous is not None:
            for column in column_names(ctx, previous):
                ctx.session.execute(ddl.drop_column(ctx.info, column))  # its indexes go with it
            _take_names(ctx, info, previous)

    _change(ctx, switch, f"the activation of codec {info.name!r} v{info.version}", "call backfill() to finish it")
    ctx.forget()


def _take_names(ctx: CollectionContext, info: CodecInfo, previous: CodecInfo) -> None:
    """The activated version's columns renamed to its predecessor's (dropped just before): a codec's columns keep
    their names across re-fits, so an application's SQL that names them goes on working. Plans made before
    name the same columns but carry the old version's id, which their statements check (pgembed._codec_in_force)."""
    for column, name in zip(column_names(ctx, info), column_names(ctx, previous), strict=True):
        ctx.session.execute(ddl.rename_column(ctx.info, column, name))
    catalog.set_codec_column(ctx.session, info.id, previous.column_name)
    install_trigger(ctx)  # the generated functions name the columns' texts too (the query encoder's dispatch)


# -- the trigger -------------------------------------------------------------------------------------------------
def _codec_targets(ctx: CollectionContext, info: CodecInfo) -> tuple[list[ddl.CodeTarget], ddl.CodeTarget,
                                                                       ddl.CodeTarget | None,
                                                                       ddl.CentroidsTarget | None]:
    """A codec version's columns with their encoders (main first), its query encoder, its query table's, and
    its centroids (a partitioning codec's)."""
    codec = load(ctx, info)
    main = ddl.CodeTarget(info.column_name, codec.sql_encoder(), info.id)
    table = codec.sql_query_table(SOURCE, ctx.info.metric.value)
    centroids = codec.sql_centroids()
    columns = [main, *(ddl.CodeTarget(info.column_name + e.suffix, codec.sql_extra_encoder(e.suffix), info.id)
                       for e in codec.extra_columns())]
    return (columns, main, ddl.CodeTarget(info.column_name, table, info.id) if table is not None else None,
            ddl.CentroidsTarget(info.column_name, centroids, info.id) if centroids is not None else None)


class _Targets(NamedTuple):
    assigned: list[ddl.CodeTarget]  # every column of every building or active codec
    queried: list[ddl.CodeTarget]  # their query encoders
    tables: list[ddl.CodeTarget]  # their query tables'
    centroids: list[ddl.CentroidsTarget]  # the partitioning codecs' centroids


def _targets(ctx: CollectionContext) -> _Targets:
    targets = _Targets([], [], [], [])
    for info in ctx.codecs():
        columns, main, table, centroids = _codec_targets(ctx, info)
        targets.assigned.extend(columns)
        targets.queried.append(main)
        if table is not None:
            targets.tables.append(table)
        if centroids is not None:
            targets.centroids.append(centroids)
    return targets


def install_trigger(ctx: CollectionContext) -> None:
    """(Re)generate the collection's trigger (every column of every building or active codec) and its query
    encoder (their main columns) from the catalog; no codec left removes them."""
    assigned, queried, tables, centroids = _targets(ctx)
    generated = [ddl.install_query_encoder(ctx.info, queried), ddl.install_query_tables(ctx.info, tables),
                 ddl.install_partition_centroids(ctx.info, centroids)]
    if not assigned:
        statements = ddl.drop_trigger(ctx.info)
    elif ctx.info.placement is Placement.COMPANION:
        statements = [*ddl.install_companion_trigger(ctx.info, assigned, ctx.session.pinned_path), *generated]
    else:
        statements = [*ddl.install_trigger(ctx.info, assigned, ctx.session.pinned_path), *generated]
    # What the generated SQL-standard functions name is bound now, under the pinned search_path.
    with ctx.session.pinned_search_path():
        # The parameters the generated functions name, before them (a trigger may fire in this transaction).
        for target in [*assigned, *queried, *tables]:
            for parameter in encoders.fitted_parameters(target.encoder):
                catalog.store_fitted(ctx.session, target.codec_id, encoders.digest(parameter), parameter)
        for partition in centroids:
            catalog.store_fitted(ctx.session, partition.codec_id, encoders.digest(partition.centroids),
                                 partition.centroids)
        for statement in statements:
            ctx.session.execute(statement)
    ctx.forget()


def reinstall_trigger(ctx: CollectionContext) -> None:
    """Regenerate the trigger and the query encoder, and record each codec's estimator (what migrate() does for
    every collection after an upgrade)."""
    with ctx.session.transaction():
        for info in ctx.codecs():
            catalog.set_codec_estimator(ctx.session, info.id, load(ctx, info).estimator)
        install_trigger(ctx)
