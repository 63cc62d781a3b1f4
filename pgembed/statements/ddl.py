"""DDL on the user's table: a new collection's table, code columns, the trigger that keeps codes in step,
the query encoder, and pgvector indexes.

Each collection gets one trigger function, pgembed.keep_codes_<collection id>(), generated from its codecs'
SQL encoders, which name their fitted parameters (pgembed.statements.encoders). A BEFORE INSERT OR UPDATE
trigger calls it, so whoever writes a row (pgembed, psql, another application) gets the codes pgembed's numpy
encoders compute, and a client that writes a code column directly has it overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from pgembed.codecs import SqlExpr
from pgembed.codecs.base import Fitted
from pgembed.records import CollectionInfo
from pgembed.statements.compose import after_key, literal_clause
from pgembed.statements.encoders import render, render_fitted


@dataclass(frozen=True)
class CodeTarget:
    """A column the trigger assigns, and the encoder that computes it from the vector."""

    column: str
    encoder: SqlExpr
    codec_id: int  # the codec version whose parameters the encoder names

    def rendered(self, source: sql.Composable) -> sql.Composable:
        """The encoder as a generated function's body names it."""
        return render(self.encoder, source, stored_for=self.codec_id)


@dataclass(frozen=True)
class CentroidsTarget:
    """A partitioning codec's column and its centroids (pgembed.codecs.base.Codec.sql_centroids)."""

    column: str
    centroids: Fitted
    codec_id: int  # the codec version whose parameters they are


def trigger_function(info: CollectionInfo) -> sql.Identifier:
    return sql.Identifier("pgembed", f"keep_codes_{info.id}")


def query_encoder(info: CollectionInfo) -> sql.Identifier:
    return sql.Identifier("pgembed", f"query_code_{info.id}")


def query_tables(info: CollectionInfo) -> sql.Identifier:
    return sql.Identifier("pgembed", f"query_table_{info.id}")


def partition_centroids(info: CollectionInfo) -> sql.Identifier:
    return sql.Identifier("pgembed", f"centroids_{info.id}")


def trigger_name(info: CollectionInfo) -> sql.Identifier:
    return sql.Identifier(f"pgembed_keep_codes_{info.id}")


def truncate_trigger_name(info: CollectionInfo) -> sql.Identifier:
    return sql.Identifier(f"pgembed_keep_codes_{info.id}_truncate")


def create_table(table: sql.Identifier, key: str, key_type: str, vector: str, dim: int,
                 attrs: Mapping[str, str]) -> sql.Composed:
    """A collection's own table. Types are format_type() spellings the server resolved, never user text.
    toast_tuple_target keeps rows with codes inline up to a full page: the 2 kB default pushes a 384-d vector
    out of line once codes sit beside it, which costs ~30% on ingest and on re-ranking."""
    definitions = [
        sql.SQL("{} {} PRIMARY KEY").format(sql.Identifier(key), sql.SQL(key_type)),
        sql.SQL("{} vector({})").format(sql.Identifier(vector), sql.Literal(dim)),
        *(sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(type_name)) for column, type_name in attrs.items()),
    ]
    return sql.SQL("CREATE TABLE {} ({}) WITH (toast_tuple_target = 8160)").format(
        table, sql.SQL(", ").join(definitions))


def drop_table(info: CollectionInfo) -> sql.Composed:
    return sql.SQL("DROP TABLE {}").format(info.table)


def add_column(info: CollectionInfo, column: str, sql_type: str) -> sql.Composed:
    """A code column, in the table of codes (the user's, or the companion)."""
    # sql_type comes from a Codec (e.g. "bit(384)"), never from user input.
    return sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(info.codes_table, sql.Identifier(column),
                                                              sql.SQL(sql_type))


def drop_column(info: CollectionInfo, column: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(info.codes_table, sql.Identifier(column))


def rename_column(info: CollectionInfo, column: str, to: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(info.codes_table, sql.Identifier(column),
                                                                   sql.Identifier(to))


# -- the companion table ---------------------------------------------------------------------------------------
def create_companion(info: CollectionInfo, key_type: str) -> sql.Composed:
    """pgembed.codes_<id>: the key (the user's key column's name and type, format_type() spelling) and, as
    codecs come, their code columns."""
    return sql.SQL("CREATE TABLE {} ({} {} PRIMARY KEY)").format(info.codes_table, info.key, sql.SQL(key_type))


def missing_codes(info: CollectionInfo, columns: Sequence[str]) -> sql.Composed:
    """The user's rows with a vector whose companion row is missing or lacks one of `columns`."""
    lacking = sql.SQL(" OR ").join(sql.SQL("c.{} IS NULL").format(sql.Identifier(x)) for x in columns)
    return sql.SQL(
        "SELECT count(*) FROM {t} AS t LEFT JOIN {codes} AS c ON c.{k} = t.{k} WHERE t.{v} IS NOT NULL "
        "AND (c.{k} IS NULL OR {lacking})").format(t=info.table, codes=info.codes_table, k=info.key, v=info.vector,
                                                   lacking=lacking)


def lock_for_codes(info: CollectionInfo) -> sql.Composed:
    """The user's table before the companion: writers take them in that order too (their trigger writes the
    companion), so DDL on both cannot deadlock with them."""
    return sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(info.table)


def truncate_companion(info: CollectionInfo) -> sql.Composed:
    return sql.SQL("TRUNCATE {}").format(info.codes_table)


def drop_companion(info: CollectionInfo) -> sql.Composed:
    return sql.SQL("DROP TABLE IF EXISTS {}").format(info.codes_table)


def grant_select(info: CollectionInfo, grantee: str) -> sql.Composed:
    """Readers of the user's table read the codes too (search runs with the caller's rights)."""
    role = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
    return sql.SQL("GRANT SELECT ON {} TO {}").format(info.codes_table, role)


KEY_FACTS = sql.SQL(
    "SELECT a.attnotnull, EXISTS (SELECT 1 FROM pg_index AS i WHERE i.indrelid = a.attrelid AND i.indisunique "
    "AND i.indimmediate AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL) "
    "FROM pg_attribute AS a WHERE a.attrelid = %s::regclass AND a.attname = %s")
TABLE_READERS = sql.SQL(
    "SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END "
    "FROM pg_class AS c, aclexplode(c.relacl) AS a "
    "WHERE c.oid = %s::regclass AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner")


def install_companion_trigger(info: CollectionInfo, targets: Sequence[CodeTarget],
                              pinned_path: str) -> list[sql.Composed]:
    """The statements that (re)generate the trigger keeping the companion table in step: every insert,
    update of the key or the vector, delete and truncate of the user's table, in the same transaction.

    SECURITY DEFINER, so that writers of the user's table need no right on the companion, which nobody but
    its owner writes: EXECUTE is revoked from PUBLIC (no one can attach it to a table of their own) and it
    refuses to run for any table but the collection's. Its search_path is pinned (`pinned_path`,
    pgembed.statements.search_path), so a caller's own schemas never come in its way (pgvector's schema, often
    public, must then not be writable by roles you do not trust, as for every use of pgvector)."""
    source = sql.SQL("NEW.{}").format(info.vector)
    columns = [sql.Identifier(t.column) for t in targets]
    values = [t.rendered(source) for t in targets]
    upsert = sql.SQL(
        "INSERT INTO {codes} ({k}, {cols}) VALUES (NEW.{k}, {vals}) ON CONFLICT ({k}) DO UPDATE SET {sets};"
    ).format(codes=info.codes_table, k=info.key, cols=sql.SQL(", ").join(columns),
             vals=sql.SQL(", ").join(values),
             sets=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=c) for c in columns))
    body = sql.SQL(
        "BEGIN "
        "IF TG_TABLE_SCHEMA <> {schema} OR TG_TABLE_NAME <> {name} THEN "
        "RAISE EXCEPTION 'pgembed: % keeps the codes of %, not of %.%', TG_NAME, {table_text}, TG_TABLE_SCHEMA, "
        "TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege'; END IF; "
        "IF TG_OP = 'TRUNCATE' THEN TRUNCATE {codes}; RETURN NULL; END IF; "
        "IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND (NEW.{k} IS DISTINCT FROM OLD.{k} OR NEW.{v} IS NULL)) THEN "
        "DELETE FROM {codes} WHERE {k} = OLD.{k}; END IF; "
        "IF TG_OP = 'DELETE' OR NEW.{v} IS NULL THEN RETURN NULL; END IF; "
        "IF TG_OP = 'UPDATE' AND NEW.{k} IS NOT DISTINCT FROM OLD.{k} "
        "AND NEW.{v}::text IS NOT DISTINCT FROM OLD.{v}::text THEN RETURN NULL; END IF; "
        "{upsert} RETURN NULL; END"
    ).format(codes=info.codes_table, k=info.key, v=info.vector, upsert=upsert, schema=sql.Literal(info.table_schema),
             name=sql.Literal(info.table_name), table_text=sql.Literal(info.qualified_name))
    return [
        sql.SQL("CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
                "SET search_path = {} AS {}").format(trigger_function(info), sql.SQL(pinned_path), BodyLiteral(body)),
        # Run with its owner's rights: nobody else may attach it to a table of theirs (PostgreSQL checks EXECUTE
        # when a trigger is created, not when it fires, so the table's writers need none).
        sql.SQL("REVOKE EXECUTE ON FUNCTION {}() FROM PUBLIC").format(trigger_function(info)),
        sql.SQL("CREATE OR REPLACE TRIGGER {} AFTER INSERT OR DELETE OR UPDATE OF {}, {} ON {} FOR EACH ROW "
                "EXECUTE FUNCTION {}()").format(trigger_name(info), info.key, info.vector, info.table,
                                                trigger_function(info)),
        sql.SQL("CREATE OR REPLACE TRIGGER {} AFTER TRUNCATE ON {} FOR EACH STATEMENT EXECUTE FUNCTION {}()").format(
            truncate_trigger_name(info), info.table, trigger_function(info)),
    ]


def fill_companion_batch(info: CollectionInfo, all_targets: Sequence[CodeTarget], building: Sequence[CodeTarget],
                         key_type: str, *, first: bool) -> sql.Composed:
    """The rows of the user's table with keys in (%(after)s, bound] (`first`: up to bound), bound being the
    %(rows)s-th key after it (none: to the end), among the rows whose companion row is missing or lacks a
    building code (those the trigger wrote since the codecs began building are complete): their companion rows
    get the building codecs' codes, and a row missing there gets every code.

    The range is fixed before the rows are locked FOR SHARE, so a row whose key another transaction moves
    meanwhile cannot make a batch skip keys (that write's trigger encodes it). A row another transaction has
    locked is skipped, not waited for: a later pass takes it, so the batch never deadlocks with writers. A
    concurrent delete or change of the vector waits for this batch, and its trigger then has the last word.
    Returns the bound (NULL: the last batch) and the rows done."""
    source = sql.SQL("pgembed_batch.{}").format(info.vector)
    complete = sql.SQL(" AND ").join(sql.SQL("pgembed_codes.{} IS NOT NULL").format(sql.Identifier(b.column))
                                     for b in building)
    # The key range on the companion too: without it the anti-join reads the companion from its first key.
    after = sql.SQL("{} AND NOT EXISTS (SELECT 1 FROM {} AS pgembed_codes WHERE pgembed_codes.{} = {}.{} "
                    "AND {} AND {})").format(
        after_key(info.key, key_type, first), info.codes_table, info.key, info.table, info.key, complete,
        after_key(sql.SQL("pgembed_codes.{}").format(info.key), key_type, first))
    return sql.SQL(
        "WITH pgembed_bound AS (SELECT (SELECT {k} FROM {t} WHERE {after} ORDER BY {k} OFFSET %(rows)s - 1 LIMIT 1) "
        "AS bound), "
        # The upper end as one value (the last key when the bound is NULL): `bound IS NULL OR key <= bound`
        # is no index condition, and every batch would read the table to its end.
        "pgembed_batch AS (SELECT {k}, {v} FROM {t} WHERE {v} IS NOT NULL AND {after} "
        "AND {k} <= (SELECT coalesce(bound, (SELECT {k} FROM {t} ORDER BY {k} DESC LIMIT 1)) FROM pgembed_bound) "
        "FOR SHARE SKIP LOCKED), "
        "pgembed_updated AS (UPDATE {codes} AS pgembed_codes SET {sets} FROM pgembed_batch "
        "WHERE pgembed_codes.{k} = pgembed_batch.{k}), "
        "pgembed_inserted AS (INSERT INTO {codes} ({k}, {cols}) SELECT pgembed_batch.{k}, {vals} FROM pgembed_batch "
        "WHERE NOT EXISTS (SELECT 1 FROM {codes} AS pgembed_codes WHERE pgembed_codes.{k} = pgembed_batch.{k}) "
        "ON CONFLICT ({k}) DO NOTHING) "
        "SELECT (SELECT bound FROM pgembed_bound), (SELECT count(*) FROM pgembed_batch)"
    ).format(
        k=info.key, v=info.vector, t=info.table, after=after, codes=info.codes_table,
        sets=sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(b.column), render(b.encoder, source))
                                for b in building),
        cols=sql.SQL(", ").join(sql.Identifier(a.column) for a in all_targets),
        vals=sql.SQL(", ").join(render(a.encoder, source) for a in all_targets),
    )


def install_trigger(info: CollectionInfo, targets: Sequence[CodeTarget], pinned_path: str) -> list[sql.Composed]:
    """The statements that (re)generate the trigger function and the trigger for exactly these columns. The
    function runs under `pinned_path` (pgembed.statements.search_path), whoever writes the row.

    An UPDATE that leaves the vector as it was recomputes only the code columns that are missing or that the
    statement changed: a backfill then costs one encoder, not all of them. Values are compared as text, i.e.
    exactly: pgvector's = holds -0.0 equal to 0.0, but their codes differ in the sign bit."""
    source = sql.SQL("NEW.{}").format(info.vector)
    encoded = [(sql.Identifier(t.column), t.rendered(source)) for t in targets]
    assign = sql.SQL(" ").join(sql.SQL("NEW.{} := {};").format(c, e) for c, e in encoded)
    clear = sql.SQL(" ").join(sql.SQL("NEW.{} := NULL;").format(c) for c, _ in encoded)
    repair = sql.SQL(" ").join(
        sql.SQL("IF NEW.{c} IS NULL OR NEW.{c}::text IS DISTINCT FROM OLD.{c}::text THEN NEW.{c} := {e}; END IF;")
        .format(c=c, e=e) for c, e in encoded
    )
    body = sql.SQL(
        "BEGIN IF NEW.{v} IS NULL THEN {clear} ELSIF TG_OP = 'INSERT' THEN {assign} "
        "ELSIF NEW.{v}::text IS DISTINCT FROM OLD.{v}::text THEN {assign} ELSE {repair} END IF; RETURN NEW; END"
    ).format(v=info.vector, clear=clear, assign=assign, repair=repair)
    watched = sql.SQL(", ").join(sql.Identifier(c) for c in [info.vector_column, *(t.column for t in targets)])
    return [
        sql.SQL("CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql SET search_path = {} AS {}").format(
            trigger_function(info), sql.SQL(pinned_path), BodyLiteral(body)),
        sql.SQL("CREATE OR REPLACE TRIGGER {} BEFORE INSERT OR UPDATE OF {} ON {} FOR EACH ROW EXECUTE FUNCTION {}()")
        .format(trigger_name(info), watched, info.table, trigger_function(info)),
    ]


class BodyLiteral(sql.Composable):
    """A function body as a string literal: the body rendered (with the connection's context) and quoted."""

    def __init__(self, body: sql.Composable) -> None:
        super().__init__(body)

    def as_bytes(self, context: Any = None) -> bytes:
        return sql.Literal(self._obj.as_string(context)).as_bytes(context)


def install_query_encoder(info: CollectionInfo, targets: Sequence[CodeTarget]) -> sql.Composed:
    """pgembed.query_code_<id>(column, v): the code of a query vector for a code column, as text, with the
    same encoder (and parameters) as the trigger: what pgembed.search() compares the index against."""
    cases = sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN ({})::text").format(sql.Literal(t.column), t.rendered(sql.SQL("v")))
        for t in targets
    )
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION {}(code_column text, v vector) RETURNS text "
        "LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN CASE code_column {} END"
    ).format(query_encoder(info), cases)


def install_query_tables(info: CollectionInfo, targets: Sequence[CodeTarget]) -> sql.Composed:
    """pgembed.query_table_<id>(column, v): a query's table for the distance estimator of a code column's
    codec (its `encoder` here: the codec's sql_query_table), NULL for a codec that has none; what
    pgembed.query_table() answers."""
    cases = sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(sql.Literal(t.column), t.rendered(sql.SQL("v"))) for t in targets)
    body = sql.SQL("CASE code_column {} END").format(cases) if targets else sql.SQL("NULL::double precision[]")
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION {}(code_column text, v vector) RETURNS double precision[] "
        "LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN {}"
    ).format(query_tables(info), body)


def install_partition_centroids(info: CollectionInfo, targets: Sequence[CentroidsTarget]) -> sql.Composed:
    """pgembed.centroids_<id>(column): the centroids of a partitioning codec's column (read with the fitted
    parameters' rights), NULL for any other column; what pgembed.probe_topk() probes."""
    cases = sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(sql.Literal(t.column), render_fitted(t.centroids, t.codec_id))
        for t in targets)
    body = sql.SQL("CASE code_column {} END").format(cases) if targets else sql.SQL("NULL::vector[]")
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION {}(code_column text) RETURNS vector[] "
        "LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN {}"
    ).format(partition_centroids(info), body)


def drop_trigger(info: CollectionInfo) -> list[sql.Composed]:
    return [
        sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(trigger_name(info), info.table),
        sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(truncate_trigger_name(info), info.table),
        sql.SQL("DROP FUNCTION IF EXISTS {}()").format(trigger_function(info)),
        sql.SQL("DROP FUNCTION IF EXISTS {}(text, vector)").format(query_encoder(info)),
        sql.SQL("DROP FUNCTION IF EXISTS {}(text, vector)").format(query_tables(info)),
        sql.SQL("DROP FUNCTION IF EXISTS {}(text)").format(partition_centroids(info)),
    ]


def drop_generated_functions(info: CollectionInfo) -> list[sql.Composed]:
    """The collection's generated functions, once its table (and with it the trigger) is gone."""
    return drop_trigger(info)[2:]


def cluster_index_name(codec_id: int) -> str:
    return f"pgembed_clusters_{codec_id}"


def create_cluster_index(info: CollectionInfo, codec_id: int, column: str, *, concurrently: bool) -> sql.Composed:
    """The B-tree on a partitioning codec version's column, by which a batch reads a cluster's rows; it goes with
    the column (a retired version's is dropped with it)."""
    return sql.SQL("CREATE INDEX {} IF NOT EXISTS {} ON {} ({})").format(
        sql.SQL("CONCURRENTLY") if concurrently else sql.SQL(""), sql.Identifier(cluster_index_name(codec_id)),
        info.codes_table, sql.Identifier(column))


def create_index(table: sql.Identifier, *, name: str, column: str, method: str, opclass: str, opclass_schema: str,
                 with_params: Mapping[str, int], concurrently: bool, where: str | None) -> sql.Composed:
    """CREATE INDEX ... USING hnsw|ivfflat; `where`: a partial index's compiled predicate. Executed without
    parameters (the predicate's literals may hold '%'). The operator class is named by its schema
    (pgvector's): no schema of the caller's search_path can put one of its own in its place."""
    options = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(k), sql.Literal(int(v))) for k, v in with_params.items()
    )
    return sql.SQL("CREATE INDEX {conc} {name} ON {table} USING {method} ({column} {opclass}){with_}{where}").format(
        conc=sql.SQL("CONCURRENTLY") if concurrently else sql.SQL(""),
        name=sql.Identifier(name),
        table=table,
        method=sql.Identifier(method),
        column=sql.Identifier(column),
        opclass=sql.Identifier(opclass_schema, opclass),
        with_=sql.SQL(" WITH ({})").format(options) if with_params else sql.SQL(""),
        where=sql.SQL(" WHERE {}").format(literal_clause(where)) if where is not None else sql.SQL(""),
    )


def create_text_index(table: sql.Identifier, *, name: str, document: str, concurrently: bool) -> sql.Composed:
    """CREATE INDEX ... USING gin on a text column's indexed expression, as the server writes it
    (pgembed._text_document: the one text that statements search, so PostgreSQL matches the two)."""
    return sql.SQL("CREATE INDEX {conc} {name} ON {table} USING gin (({document}))").format(
        conc=sql.SQL("CONCURRENTLY") if concurrently else sql.SQL(""), name=sql.Identifier(name), table=table,
        document=sql.SQL(document))


def add_tsvector_column(table: sql.Identifier, column: str, expression: str) -> sql.Composed:
    """A stored generated column of a text column's tsvector (`expression`: pgembed._text_document's)."""
    return sql.SQL("ALTER TABLE {} ADD COLUMN {} pg_catalog.tsvector GENERATED ALWAYS AS ({}) STORED").format(
        table, sql.Identifier(column), sql.SQL(expression))


def drop_column_named(table: sql.Identifier, column: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(table, sql.Identifier(column))


def drop_index(schema: str, index_name: str, *, concurrently: bool = False) -> sql.Composed:
    return sql.SQL("DROP INDEX {}IF EXISTS {}").format(sql.SQL("CONCURRENTLY " if concurrently else ""),
                                                       sql.Identifier(schema, index_name))
