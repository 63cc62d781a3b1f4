"""Statements over pgembed's own catalog tables (sql/migrations/): collections, codecs, indexes, tuning."""

from __future__ import annotations

from psycopg import sql

CATALOG_PRESENT = sql.SQL("SELECT to_regclass('pgembed.alembic_version') IS NOT NULL")
INSTALLED_REVISION = sql.SQL("SELECT version_num FROM pgembed.alembic_version")
# Whether this role may write pgembed's schema (its functions): the catalog's owner, or a role trusted with it.
MAY_ADMINISTER = sql.SQL("SELECT has_schema_privilege('pgembed', 'CREATE')")

# -- collections ----------------------------------------------------------------------------------------
_COLLECTION_COLUMNS = sql.SQL("id, name, table_schema, table_name, key_column, vector_column, dim, metric, placement")
FIND_COLLECTION = sql.SQL("SELECT {} FROM pgembed.collections WHERE name = %s").format(_COLLECTION_COLUMNS)
LIST_COLLECTIONS = sql.SQL("SELECT {} FROM pgembed.collections ORDER BY name").format(_COLLECTION_COLUMNS)
INSERT_COLLECTION = sql.SQL(
    "INSERT INTO pgembed.collections (name, table_schema, table_name, key_column, vector_column, dim, metric, "
    "placement) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {}"
).format(_COLLECTION_COLUMNS)
DELETE_COLLECTION = sql.SQL("DELETE FROM pgembed.collections WHERE id = %s")

# -- codecs ---------------------------------------------------------------------------------------------
_CODEC_COLUMNS = sql.SQL(
    "id, collection_id, name, kind, version, state, column_name, sql_type, params, fitted_rows, estimator")
LIST_CODECS = sql.SQL(
    "SELECT {} FROM pgembed.codecs WHERE collection_id = %s AND (%s OR state <> 'retired') ORDER BY name, version"
).format(_CODEC_COLUMNS)
INSERT_CODEC = sql.SQL(
    "INSERT INTO pgembed.codecs (collection_id, name, kind, version, state, column_name, sql_type, params, "
    "fitted_rows, estimator) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {}"
).format(_CODEC_COLUMNS)
SET_CODEC_STATE = sql.SQL("UPDATE pgembed.codecs SET state = %s WHERE id = %s")
SET_CODEC_ESTIMATOR = sql.SQL(
    "UPDATE pgembed.codecs SET estimator = %s WHERE id = %s AND estimator IS DISTINCT FROM %s")
DELETE_CODEC = sql.SQL("DELETE FROM pgembed.codecs WHERE id = %s")


def store_fitted(column: str, sql_type: str) -> sql.Composed:
    """A fitted parameter's row: its value, PostgreSQL text of `sql_type`, stored in `column` as that type. The
    table's name is kept in the row, so that its policies need no other table of the catalog (migration 0010)."""
    return sql.SQL(
        "INSERT INTO pgembed.fitted_parameters (codec_id, digest, table_schema, table_name, {column}) "
        "SELECT k.id, %(digest)s, c.table_schema, c.table_name, %(value)s::{type} "
        "FROM pgembed.codecs AS k JOIN pgembed.collections AS c ON c.id = k.collection_id "
        "WHERE k.id = %(codec)s ON CONFLICT (codec_id, digest) DO NOTHING").format(
            column=sql.Identifier(column), type=sql.SQL(sql_type))


SET_CODEC_COLUMN = sql.SQL("UPDATE pgembed.codecs SET column_name = %s WHERE id = %s")

# -- indexes --------------------------------------------------------------------------------------------
LIST_INDEXES = sql.SQL(
    "SELECT id, collection_id, codec_id, index_name, method, opclass, params, build_seconds, predicate "
    "FROM pgembed.indexes WHERE collection_id = %s ORDER BY index_name"
)
INSERT_INDEX = sql.SQL(
    "INSERT INTO pgembed.indexes (collection_id, codec_id, index_name, method, opclass, params, build_seconds, "
    "predicate) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
DELETE_INDEX = sql.SQL("DELETE FROM pgembed.indexes WHERE collection_id = %s AND index_name = %s")

# -- where candidates come from, and what tune() measured ------------------------------------------------------
TEXT_SEARCH = sql.SQL(
    "SELECT column_name, config, index_name, tsvector_column FROM pgembed.text_search WHERE collection_id = %s")
INSERT_TEXT_SEARCH = sql.SQL(
    "INSERT INTO pgembed.text_search (collection_id, column_name, config, index_name, tsvector_column) "
    "VALUES (%s, %s, %s, %s, %s)")
DELETE_TEXT_SEARCH = sql.SQL("DELETE FROM pgembed.text_search WHERE collection_id = %s")
TEXT_CONFIG = sql.SQL("SELECT %s::pg_catalog.regconfig::pg_catalog.text")  # a configuration's qualified name
TEXT_DOCUMENT = sql.SQL("SELECT pgembed._text_document(%s, %s, %s)")  # the indexed expression (sql/functions/text.sql)

LIST_RELEVANCE_MODELS = sql.SQL(
    "SELECT id, version, state, fitted_queries, fitted_pairs FROM pgembed.relevance_models "
    "WHERE collection_id = %s ORDER BY version")
RETIRE_RELEVANCE_MODELS = sql.SQL(
    "UPDATE pgembed.relevance_models SET state = 'retired' WHERE collection_id = %s AND state = 'active'")
INSERT_RELEVANCE_MODEL = sql.SQL(
    "INSERT INTO pgembed.relevance_models (collection_id, version, state, w_a, c_a, w_b, c_b, fitted_queries, "
    "fitted_pairs) SELECT %(collection_id)s, coalesce(max(version), 0) + 1, 'active', %(w_a)s, %(c_a)s, %(w_b)s, "
    "%(c_b)s, %(queries)s, %(pairs)s FROM pgembed.relevance_models WHERE collection_id = %(collection_id)s "
    "RETURNING id, version, state, fitted_queries, fitted_pairs")

SEARCH_SOURCES = sql.SQL(
    "SELECT codec_id, name, column_name, sql_type, index_name, predicate, index_rows "
    "FROM pgembed.search_sources(%s)"
)
SAVE_TUNING = sql.SQL(
    "INSERT INTO pgembed.tuning (collection_id, codec_id, index_name, recall_target, selectivity, ef_search, "
    "oversample, measured_recall, queries_per_s, sample_queries) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (collection_id, codec_id, index_name, recall_target, selectivity) DO UPDATE SET "
    "ef_search = EXCLUDED.ef_search, oversample = EXCLUDED.oversample, measured_recall = EXCLUDED.measured_recall, "
    "queries_per_s = EXCLUDED.queries_per_s, sample_queries = EXCLUDED.sample_queries, tuned_at = now()"
)
FORGET_TUNING = sql.SQL(
    "DELETE FROM pgembed.tuning WHERE collection_id = %s AND codec_id = %s AND index_name = %s "
    "AND recall_target = %s AND selectivity = %s")

# -- applying function files (pgembed.db.functions) ------------------------------------------------------------
SHOW_CHECK_FUNCTION_BODIES = sql.SQL("SHOW check_function_bodies")


def set_check_function_bodies(value: str) -> sql.Composed:
    """For the rest of the transaction."""
    return sql.SQL("SELECT set_config('check_function_bodies', {}, true)").format(sql.Literal(value))


# -- before Alembic runs (migrations/env.py) --------------------------------------------------------------------
MIGRATION_LOCK = 7_340_512_081  # serialises concurrent migrators: a constant only pgembed uses
MIGRATION_SETUP = (
    sql.SQL("SELECT pg_advisory_xact_lock({})").format(sql.Literal(MIGRATION_LOCK)),
    sql.SQL("CREATE EXTENSION IF NOT EXISTS vector"),
    sql.SQL("CREATE SCHEMA IF NOT EXISTS pgembed"),
)

# -- which function files a database has (pgembed.function_files, since 0005) ---------------------------------
FUNCTION_FILES_PRESENT = sql.SQL("SELECT to_regclass('pgembed.function_files') IS NOT NULL")
FUNCTION_FILE_SUMS = sql.SQL("SELECT name, sha256 FROM pgembed.function_files")
RECORD_FUNCTION_FILE = sql.SQL(
    "INSERT INTO pgembed.function_files (name, sha256) VALUES (%s, %s) "
    "ON CONFLICT (name) DO UPDATE SET sha256 = EXCLUDED.sha256, applied_at = now()"
)

# -- pgembed's C kernels (sql/functions/kernels.sql) ------------------------------------------------------------
KERNELS_AVAILABILITY = sql.SQL(
    "SELECT (SELECT default_version FROM pg_available_extensions WHERE name = 'pgembed_kernels'), "
    "(SELECT extversion FROM pg_extension WHERE extname = 'pgembed_kernels'), pgembed.kernels_wanted(), "
    "(SELECT use_kernels FROM pgembed.kernel_choice)"
)
CREATE_KERNELS = sql.SQL("CREATE EXTENSION IF NOT EXISTS pgembed_kernels")
UPDATE_KERNELS = sql.SQL("ALTER EXTENSION pgembed_kernels UPDATE")
BIND_KERNELS = sql.SQL("SELECT pgembed.bind_kernels(%s, %s)")  # (use the kernels, record it as the choice)
KERNELS_STATUS = sql.SQL("SELECT pgembed.kernels()")
