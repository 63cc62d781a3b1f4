"""Collections as a whole: attaching an existing table, creating a new one, describing, dropping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql

from pgembed.db import catalog, kernels
from pgembed.db.introspection import index_sizes, resolve_table, resolve_type, table_columns, table_size, unique_columns
from pgembed.db.session import Session
from pgembed.engine import codecs, indexes, rows
from pgembed.engine.context import CollectionContext
from pgembed.errors import SchemaError
from pgembed.records import CollectionInfo
from pgembed.statements import ddl
from pgembed.vocabulary import Metric, Placement

MAX_IDENTIFIER = 63  # NAMEDATALEN - 1
MAX_DIM = 16_000  # pgvector's limit for vector


def metric_of(metric: Any) -> Metric:
    try:
        return Metric(metric)
    except ValueError:
        raise SchemaError(f"unknown metric {metric!r}; use one of {', '.join(m.value for m in Metric)}") from None


def check_attachment(info: CollectionInfo, *, vector: str | None, key: str | None,
                     placement: Placement | str | None = None, metric: Metric | str | None = None) -> None:
    if metric is not None and metric_of(metric) is not info.metric:
        raise SchemaError(f"collection {info.name!r} uses metric {info.metric.value!r}, "
                          f"not {metric_of(metric).value!r}")
    if vector is not None and vector != info.vector_column:
        raise SchemaError(f"collection {info.name!r} uses vector column {info.vector_column!r}, not {vector!r}")
    if key is not None and key != info.key_column:
        raise SchemaError(f"collection {info.name!r} uses key column {info.key_column!r}, not {key!r}")
    if placement is not None and placement_of(placement) is not info.placement:
        raise SchemaError(f"collection {info.name!r} keeps its codes in placement {info.placement.value!r}, not "
                          f"{placement_of(placement).value!r}")


def placement_of(placement: Any) -> Placement:
    try:
        return Placement(placement)
    except ValueError:
        raise SchemaError(f"unknown placement {placement!r}; use one of "
                          f"{', '.join(p.value for p in Placement)}") from None


def attach_table(session: Session, name: str, table: str, *, vector: str | None, key: str | None,
                 metric: Metric | str, placement: Placement | str = Placement.TABLE) -> CollectionInfo:
    """Make an existing table a collection: its only vector column and single-column primary key unless
    named; the vector column must declare its dimension, the key must be unique on its own."""
    metric = metric_of(metric)
    found = resolve_table(session, table)
    columns = table_columns(session, sql.Identifier(found.schema, found.name))
    vectors = {c.name: c.typmod for c in columns.values() if c.is_vector}
    if vector is None:
        if len(vectors) != 1:
            found_vectors = ", ".join(vectors) or "none"
            raise SchemaError(f"table {table!r} needs vector=...: its vector columns are {found_vectors}")
        vector = next(iter(vectors))
    if vector not in vectors:
        raise SchemaError(f"table {table!r} has no column {vector!r} of type vector")
    dim = vectors[vector]
    if dim < 1:
        raise SchemaError(f"column {vector!r} has no declared dimension; declare it, e.g. "
                          f"ALTER TABLE {table} ALTER COLUMN {vector} TYPE vector(384)")
    primary, unique = unique_columns(session, found)
    if key is None:
        if primary is None:
            raise SchemaError(f"table {table!r} has no single-column primary key; pass key=<unique column>")
        key = primary
    if key not in unique:
        raise SchemaError(f"key column {key!r} of {table!r} needs a unique index (or primary key) on that column alone")
    return _insert(session, name, found.schema, found.name, key, vector, dim, metric, placement_of(placement))


def create_table(session: Session, name: str, dim: int, *, attrs: Mapping[str, str], metric: Metric | str,
                 key: str, key_type: str, vector: str, if_not_exists: bool,
                 placement: Placement | str = Placement.TABLE) -> CollectionInfo:
    """Create a table `name` (key, vector(dim), attribute columns of the given PostgreSQL types) and attach it."""
    metric = metric_of(metric)
    placement = placement_of(placement)
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_DIM:
        raise SchemaError(f"dimension must be an integer between 1 and {MAX_DIM}, got {dim!r}")
    existing = catalog.find_collection(session, name)
    if existing is not None:
        if if_not_exists:
            return existing
        raise SchemaError(f"collection {name!r} already exists")
    names = [key, vector, *attrs]
    for column in names:
        if not column or len(column.encode()) > MAX_IDENTIFIER or "\x00" in column:
            raise SchemaError(f"invalid column name {column!r}")
    duplicates = {c for c in names if names.count(c) > 1}
    if duplicates:
        raise SchemaError(f"column names used twice: {', '.join(sorted(duplicates))}")
    table = _table_identifier(name)
    statement = ddl.create_table(table, key, resolve_type(session, key_type), vector, dim,
                                 {column: resolve_type(session, type_name) for column, type_name in attrs.items()})
    try:
        session.execute(statement)
    except psycopg.errors.DuplicateTable as err:
        raise SchemaError(f"table {name!r} already exists; attach it with db.collection({name!r})") from err
    except psycopg.errors.InvalidSchemaName as err:
        raise SchemaError(f"schema of {name!r} does not exist") from err
    found = resolve_table(session, table.as_string(session.conn))
    return _insert(session, name, found.schema, found.name, key, vector, dim, metric, placement)


def _insert(session: Session, name: str, schema: str, table: str, key: str, vector: str, dim: int,
            metric: Metric, placement: Placement) -> CollectionInfo:
    try:
        info = catalog.insert_collection(session, name, schema, table, key, vector, dim, metric, placement)
    except psycopg.errors.UniqueViolation as err:
        raise SchemaError(f"{schema}.{table}.{vector} already belongs to another collection, or {name!r} is taken"
                          ) from err
    if placement is Placement.COMPANION:
        _check_companion_key(session, info)
        _create_companion(session, info)
    return info


def _check_companion_key(session: Session, info: CollectionInfo) -> None:
    """The companion's primary key mirrors the user's key: it must be NOT NULL and unique at once (a NULL key
    has no companion row; a deferred unique check lets two rows swap keys, which a row trigger cannot follow)."""
    row = session.row(ddl.KEY_FACTS, (info.table.as_string(session.conn), info.key_column))
    not_null, immediate = row if row is not None else (False, False)
    if not not_null:
        raise SchemaError(f"key column {info.key_column!r} of {info.qualified_name} may be NULL: companion placement "
                          "needs a NOT NULL key (a primary key is)")
    if not immediate:
        raise SchemaError(f"the unique index on {info.key_column!r} of {info.qualified_name} is deferrable: "
                          "companion placement needs a key checked at once")


def _create_companion(session: Session, info: CollectionInfo) -> None:
    """The companion table, empty until a codec comes (its backfill fills it), readable by the user table's
    readers."""
    key_type = table_columns(session, info.table)[info.key_column].type_name
    session.execute(ddl.create_companion(info, key_type))
    for (grantee,) in session.execute(ddl.TABLE_READERS, (info.table.as_string(session.conn),)).fetchall():
        session.execute(ddl.grant_select(info, grantee))


def _table_identifier(name: str) -> sql.Identifier:
    """'table' or 'schema.table' (names taken literally, quoted as needed) as an Identifier."""
    parts = name.split(".")
    if len(parts) > 2 or not all(parts) or any(len(p.encode()) > MAX_IDENTIFIER or "\x00" in p for p in parts):
        raise SchemaError(f"invalid table name {name!r}: use 'table' or 'schema.table'")
    return sql.Identifier(*parts)


def describe(ctx: CollectionContext) -> dict[str, Any]:
    """Everything the catalog and the server know about the collection, as JSON-ready data."""
    info = ctx.info
    sizes = index_sizes(ctx.session, info.table)
    if info.placement is Placement.COMPANION:
        sizes |= index_sizes(ctx.session, info.codes_table)
    return {
        "name": info.name,
        "table": info.qualified_name,
        "key": info.key_column,
        "vector": info.vector_column,
        "dim": info.dim,
        "metric": info.metric.value,
        "placement": info.placement.value,
        "rows": rows.count(ctx),
        "table_bytes": table_size(ctx.session, info.table),
        "companion_bytes": (table_size(ctx.session, info.codes_table)
                            if info.placement is Placement.COMPANION else None),
        "codecs": [
            {"name": c.name, "kind": c.kind, "version": c.version, "state": c.state.value, "column": c.column_name,
             "type": c.sql_type, "fitted_rows": c.fitted_rows}
            for c in ctx.codecs()
        ],
        "kernels": kernels.kernel_status(ctx.session.conn).active.value,
        "indexes": [
            {"name": i.index_name, "method": i.method.value, "opclass": i.opclass, "params": i.params,
             "where": i.predicate, "build_seconds": i.build_seconds, "bytes": sizes.get(i.index_name)}
            for i in indexes.list_indexes(ctx)
        ],
        "text_search": ({"column": t.column_name, "config": t.config, "index": t.index_name,
                         "tsvector_column": t.tsvector_column,
                         "bytes": sizes.get(t.index_name)} if (t := indexes.text_search(ctx)) is not None else None),
    }


def drop(ctx: CollectionContext, *, drop_table: bool = False) -> None:
    """Forget the collection: its trigger, code columns (or companion table), pgembed indexes and text search
    go; the table and its rows stay unless `drop_table`."""
    info = ctx.info
    companion = info.placement is Placement.COMPANION
    with ctx.session.transaction():
        if drop_table:
            ctx.session.execute(ddl.drop_table(info))
            for statement in ddl.drop_generated_functions(info):
                ctx.session.execute(statement)
        else:
            for statement in ddl.drop_trigger(info):
                ctx.session.execute(statement)
            for index in indexes.list_indexes(ctx):
                if not (companion and index.codec_id is not None):
                    ctx.session.execute(ddl.drop_index(indexes.index_schema(ctx, index), index.index_name))
            for codec in ctx.codecs(include_retired=True) if not companion else []:
                for column in codecs.column_names(ctx, codec):
                    ctx.session.execute(ddl.drop_column(info, column))
            text = indexes.text_search(ctx)
            if text is not None:  # its GIN index, and the generated tsvector column of stored=True
                ctx.session.execute(ddl.drop_index(info.table_schema, text.index_name))
                if text.tsvector_column is not None:
                    ctx.session.execute(ddl.drop_column_named(info.table, text.tsvector_column))
        if companion:
            ctx.session.execute(ddl.drop_companion(info))
        catalog.delete_collection(ctx.session, info.id)
    ctx.forget()
