"""pgembed's catalog (schema "pgembed"): which user tables are collections, their codecs and indexes.

Every identifier a user hands us (table, column, type) is resolved against the system catalogs here
before any DDL uses it, and then only through psycopg.sql.Identifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from pgembed import migrate
from pgembed.errors import CatalogError, CollectionNotFoundError, SchemaError

METRICS = ("cosine", "ip", "l2")
CODEC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
MAX_IDENTIFIER = 63  # NAMEDATALEN - 1


@dataclass(frozen=True)
class CollectionInfo:
    id: int
    name: str
    table_schema: str
    table_name: str
    key_column: str
    vector_column: str
    dim: int
    metric: str

    @property
    def table(self) -> sql.Identifier:
        return sql.Identifier(self.table_schema, self.table_name)

    @property
    def key(self) -> sql.Identifier:
        return sql.Identifier(self.key_column)

    @property
    def vector(self) -> sql.Identifier:
        return sql.Identifier(self.vector_column)


@dataclass(frozen=True)
class CodecInfo:
    id: int
    collection_id: int
    name: str
    kind: str
    version: int
    state: str
    column_name: str
    sql_type: str
    params: dict[str, Any] = field(default_factory=dict)
    fitted_rows: int | None = None


@dataclass(frozen=True)
class IndexInfo:
    id: int
    collection_id: int
    codec_id: int | None
    index_name: str
    method: str
    opclass: str
    params: dict[str, Any]
    build_seconds: float | None
    predicate: dict[str, Any] | None = None  # a partial index: the filter (dict language) its rows satisfy


# -- catalog presence -----------------------------------------------------------------------------------
def installed_revision(conn: psycopg.Connection) -> str | None:
    exists = conn.execute("SELECT to_regclass('pgembed.alembic_version') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute("SELECT version_num FROM pgembed.alembic_version").fetchone()
    return row[0] if row else None


def require_current(conn: psycopg.Connection) -> None:
    revision = installed_revision(conn)
    head = migrate.head_revision()
    if revision != head:
        state = "not installed" if revision is None else f"at revision {revision}, not {head}"
        raise CatalogError(
            f"pgembed's catalog is {state} in this database: run `pgembed migrate` (or db.migrate())"
        )


# -- collections -----------------------------------------------------------------------------------------
_COLLECTION_COLUMNS = sql.SQL(
    "id, name, table_schema, table_name, key_column, vector_column, dim, metric"
)


def find_collection(conn: psycopg.Connection, name: str) -> CollectionInfo | None:
    with conn.cursor(row_factory=class_row(CollectionInfo)) as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM pgembed.collections WHERE name = %s").format(_COLLECTION_COLUMNS), (name,)
        )
        return cur.fetchone()


def get_collection(conn: psycopg.Connection, name: str) -> CollectionInfo:
    info = find_collection(conn, name)
    if info is None:
        raise CollectionNotFoundError(f"no collection named {name!r}")
    return info


def list_collections(conn: psycopg.Connection) -> list[CollectionInfo]:
    with conn.cursor(row_factory=class_row(CollectionInfo)) as cur:
        cur.execute(sql.SQL("SELECT {} FROM pgembed.collections ORDER BY name").format(_COLLECTION_COLUMNS))
        return cur.fetchall()


def check_attachment(info: CollectionInfo, *, vector: str | None, key: str | None) -> None:
    if vector is not None and vector != info.vector_column:
        raise SchemaError(f"collection {info.name!r} uses vector column {info.vector_column!r}, not {vector!r}")
    if key is not None and key != info.key_column:
        raise SchemaError(f"collection {info.name!r} uses key column {info.key_column!r}, not {key!r}")


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise SchemaError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")


def _resolve_table(conn: psycopg.Connection, table: str) -> tuple[int, str, str]:
    """(oid, schema, name) of an existing ordinary or partitioned table; `table` is parsed as SQL would."""
    try:
        row = conn.execute(
            """SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)""",
            (table,),
        ).fetchone()
    except (psycopg.errors.DataError, psycopg.errors.SyntaxError) as err:  # empty, or too many dots
        raise SchemaError(f"invalid table name {table!r}: {err}") from err
    if row is None:
        raise SchemaError(f"table {table!r} does not exist")
    oid, schema, name, relkind = row
    if relkind not in ("r", "p"):
        raise SchemaError(f"{table!r} is not a table (relkind {relkind!r})")
    return oid, schema, name


def _vector_columns(conn: psycopg.Connection, table_oid: int) -> dict[str, int]:
    """Columns of type pgvector `vector`, with their declared dimension (-1 when undeclared)."""
    rows = conn.execute(
        """SELECT a.attname, a.atttypmod FROM pg_attribute a
           JOIN pg_type t ON t.oid = a.atttypid
           JOIN pg_extension e ON e.extname = 'vector' AND t.typnamespace = e.extnamespace
           WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped AND t.typname = 'vector'
           ORDER BY a.attnum""",
        (table_oid,),
    ).fetchall()
    return {name: typmod for name, typmod in rows}


def _unique_single_columns(conn: psycopg.Connection, table_oid: int) -> tuple[str | None, set[str]]:
    """(primary key column if single-column, every column with a non-partial single-column unique index)."""
    rows = conn.execute(
        """SELECT a.attname, i.indisprimary FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           WHERE i.indrelid = %s AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL
             AND i.indexprs IS NULL AND i.indisvalid""",
        (table_oid,),
    ).fetchall()
    primary = next((name for name, is_primary in rows if is_primary), None)
    return primary, {name for name, _ in rows}


def attach_table(
    conn: psycopg.Connection, name: str, table: str, *, vector: str | None, key: str | None, metric: str
) -> CollectionInfo:
    _check_metric(metric)
    oid, schema, relname = _resolve_table(conn, table)
    vectors = _vector_columns(conn, oid)
    if vector is None:
        if len(vectors) != 1:
            found = ", ".join(vectors) or "none"
            raise SchemaError(f"table {table!r} needs vector=...: its vector columns are {found}")
        vector = next(iter(vectors))
    if vector not in vectors:
        raise SchemaError(f"table {table!r} has no column {vector!r} of type vector")
    dim = vectors[vector]
    if dim < 1:
        raise SchemaError(
            f"column {vector!r} has no declared dimension; declare it, e.g. "
            f"ALTER TABLE {table} ALTER COLUMN {vector} TYPE vector(384)"
        )
    primary, unique = _unique_single_columns(conn, oid)
    if key is None:
        if primary is None:
            raise SchemaError(f"table {table!r} has no single-column primary key; pass key=<unique column>")
        key = primary
    if key not in unique:
        raise SchemaError(
            f"key column {key!r} of {table!r} needs a unique index (or primary key) on that column alone"
        )
    return _insert_collection(conn, name, schema, relname, key, vector, dim, metric)


def _insert_collection(
    conn: psycopg.Connection, name: str, schema: str, table: str, key: str, vector: str, dim: int, metric: str
) -> CollectionInfo:
    with conn.cursor(row_factory=class_row(CollectionInfo)) as cur:
        try:
            cur.execute(
                sql.SQL(
                    """INSERT INTO pgembed.collections
                       (name, table_schema, table_name, key_column, vector_column, dim, metric)
                       VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {}"""
                ).format(_COLLECTION_COLUMNS),
                (name, schema, table, key, vector, dim, metric),
            )
        except psycopg.errors.UniqueViolation as err:
            raise SchemaError(
                f"{schema}.{table}.{vector} already belongs to another collection, or {name!r} is taken"
            ) from err
        row = cur.fetchone()
    assert row is not None
    return row


def resolve_type(conn: psycopg.Connection, type_name: str) -> str:
    """The canonical spelling of a PostgreSQL type (format_type quotes what needs quoting), or SchemaError.

    Column types cannot be Identifiers (they carry modifiers such as varchar(20)); resolving them through
    the server first is what keeps a hostile string from ever reaching DDL.
    """
    try:
        row = conn.execute(
            "SELECT format_type(to_regtype(%s), to_regtypemod(%s)) WHERE to_regtype(%s) IS NOT NULL",
            (type_name, type_name, type_name),
        ).fetchone()
    except (psycopg.errors.SyntaxError, psycopg.errors.DataError) as err:
        raise SchemaError(f"unknown column type {type_name!r}: {err.diag.message_primary}") from err
    if row is None or row[0] is None:
        raise SchemaError(f"unknown column type {type_name!r}")
    return str(row[0])


def create_table_collection(
    conn: psycopg.Connection,
    name: str,
    dim: int,
    *,
    attrs: dict[str, str],
    metric: str,
    key: str,
    key_type: str,
    vector: str,
    if_not_exists: bool,
) -> CollectionInfo:
    _check_metric(metric)
    if not isinstance(dim, int) or not 1 <= dim <= 16000:
        raise SchemaError(f"dimension must be an integer between 1 and 16000, got {dim!r}")
    existing = find_collection(conn, name)
    if existing is not None:
        if if_not_exists:
            return existing
        raise SchemaError(f"collection {name!r} already exists")
    columns = [key, vector, *attrs]
    for column in columns:
        if not column or len(column.encode()) > MAX_IDENTIFIER or "\x00" in column:
            raise SchemaError(f"invalid column name {column!r}")
    duplicates = {c for c in columns if columns.count(c) > 1}
    if duplicates:
        raise SchemaError(f"column names used twice: {', '.join(sorted(duplicates))}")
    definitions = [
        sql.SQL("{} {} PRIMARY KEY").format(sql.Identifier(key), sql.SQL(resolve_type(conn, key_type))),
        sql.SQL("{} vector({})").format(sql.Identifier(vector), sql.Literal(dim)),
        *(
            sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(resolve_type(conn, type_name)))
            for column, type_name in attrs.items()
        ),
    ]
    table = _split_table_name(name)
    try:
        # toast_tuple_target: keep rows with codes inline up to a full page; the 2 kB default pushes a
        # 384-d vector out of line once codes sit beside it, which costs ~30% on ingest and on re-ranking.
        conn.execute(
            sql.SQL("CREATE TABLE {} ({}) WITH (toast_tuple_target = 8160)").format(
                table, sql.SQL(", ").join(definitions)
            )
        )
    except psycopg.errors.DuplicateTable as err:
        raise SchemaError(f"table {name!r} already exists; attach it with db.collection({name!r})") from err
    except psycopg.errors.InvalidSchemaName as err:
        raise SchemaError(f"schema of {name!r} does not exist") from err
    oid, schema, relname = _resolve_table(conn, table.as_string(conn))
    return _insert_collection(conn, name, schema, relname, key, vector, dim, metric)


def _split_table_name(name: str) -> sql.Identifier:
    """'table' or 'schema.table' (names taken literally, quoted as needed) as an Identifier."""
    parts = name.split(".")
    if len(parts) > 2 or not all(parts) or any(len(p.encode()) > MAX_IDENTIFIER or "\x00" in p for p in parts):
        raise SchemaError(f"invalid table name {name!r}: use 'table' or 'schema.table'")
    return sql.Identifier(*parts)


def drop_collection(conn: psycopg.Connection, collection_id: int) -> None:
    conn.execute("DELETE FROM pgembed.collections WHERE id = %s", (collection_id,))


# -- codecs ---------------------------------------------------------------------------------------------
_CODEC_COLUMNS = sql.SQL(
    "id, collection_id, name, kind, version, state, column_name, sql_type, params, fitted_rows"
)


def list_codecs(conn: psycopg.Connection, collection_id: int, *, include_retired: bool = False) -> list[CodecInfo]:
    with conn.cursor(row_factory=class_row(CodecInfo)) as cur:
        cur.execute(
            sql.SQL(
                "SELECT {} FROM pgembed.codecs WHERE collection_id = %s AND (%s OR state <> 'retired') "
                "ORDER BY name, version"
            ).format(_CODEC_COLUMNS),
            (collection_id, include_retired),
        )
        return cur.fetchall()


def insert_codec(
    conn: psycopg.Connection,
    collection_id: int,
    name: str,
    kind: str,
    *,
    version: int,
    state: str,
    column_name: str,
    sql_type: str,
    params: dict[str, Any],
    fitted_rows: int | None,
) -> CodecInfo:
    if not CODEC_NAME.match(name):
        raise SchemaError(f"invalid codec name {name!r}: lower-case letters, digits and _, starting with a letter")
    with conn.cursor(row_factory=class_row(CodecInfo)) as cur:
        cur.execute(
            sql.SQL(
                """INSERT INTO pgembed.codecs
                   (collection_id, name, kind, version, state, column_name, sql_type, params, fitted_rows)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {}"""
            ).format(_CODEC_COLUMNS),
            (collection_id, name, kind, version, state, column_name, sql_type, psycopg.types.json.Jsonb(params),
             fitted_rows),
        )
        row = cur.fetchone()
    assert row is not None
    return row


def set_codec_state(conn: psycopg.Connection, codec_id: int, state: str) -> None:
    conn.execute("UPDATE pgembed.codecs SET state = %s WHERE id = %s", (state, codec_id))


def delete_codec(conn: psycopg.Connection, codec_id: int) -> None:
    conn.execute("DELETE FROM pgembed.codecs WHERE id = %s", (codec_id,))


# -- indexes --------------------------------------------------------------------------------------------
def list_indexes(conn: psycopg.Connection, collection_id: int) -> list[IndexInfo]:
    with conn.cursor(row_factory=class_row(IndexInfo)) as cur:
        cur.execute(
            """SELECT id, collection_id, codec_id, index_name, method, opclass, params, build_seconds, predicate
               FROM pgembed.indexes WHERE collection_id = %s ORDER BY index_name""",
            (collection_id,),
        )
        return cur.fetchall()


def insert_index(
    conn: psycopg.Connection,
    collection_id: int,
    codec_id: int | None,
    index_name: str,
    method: str,
    opclass: str,
    params: dict[str, Any],
    build_seconds: float,
    predicate: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        """INSERT INTO pgembed.indexes
           (collection_id, codec_id, index_name, method, opclass, params, build_seconds, predicate)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
        (collection_id, codec_id, index_name, method, opclass, psycopg.types.json.Jsonb(params), build_seconds,
         psycopg.types.json.Jsonb(predicate) if predicate is not None else None),
    )


def delete_index(conn: psycopg.Connection, collection_id: int, index_name: str) -> None:
    conn.execute(
        "DELETE FROM pgembed.indexes WHERE collection_id = %s AND index_name = %s", (collection_id, index_name)
    )


# -- tuning ---------------------------------------------------------------------------------------------
def list_tuning(conn: psycopg.Connection, collection_id: int) -> list[tuple[int, str, Any]]:
    """(codec id, index name or '' for the codec's full index, Tuned) for every tuned setting."""
    from pgembed.plan import Tuned

    rows = conn.execute(
        """SELECT codec_id, index_name, recall_target, selectivity, ef_search, oversample, measured_recall,
                  queries_per_s
           FROM pgembed.tuning WHERE collection_id = %s ORDER BY codec_id, index_name, recall_target, selectivity""",
        (collection_id,),
    ).fetchall()
    return [(r[0], r[1], Tuned(*r[2:])) for r in rows]


def save_tuning(conn: psycopg.Connection, collection_id: int, codec_id: int, tuned: Any, sample_queries: int,
                index_name: str = "") -> None:
    conn.execute(
        """INSERT INTO pgembed.tuning (collection_id, codec_id, index_name, recall_target, selectivity, ef_search,
                                      oversample, measured_recall, queries_per_s, sample_queries)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (collection_id, codec_id, index_name, recall_target, selectivity) DO UPDATE SET
               ef_search = EXCLUDED.ef_search, oversample = EXCLUDED.oversample,
               measured_recall = EXCLUDED.measured_recall, queries_per_s = EXCLUDED.queries_per_s,
               sample_queries = EXCLUDED.sample_queries, tuned_at = now()""",
        (collection_id, codec_id, index_name, tuned.recall_target, tuned.selectivity, tuned.ef_search,
         tuned.oversample, tuned.measured_recall, tuned.queries_per_s, sample_queries),
    )
