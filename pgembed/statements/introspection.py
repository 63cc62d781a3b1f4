"""Statements that read PostgreSQL's system catalogs: what a user's table is, its columns, its keys, sizes."""

from __future__ import annotations

from psycopg import sql

# (oid, schema, name, relkind) of the relation a name resolves to, parsed as SQL would parse it.
RESOLVE_TABLE = sql.SQL(
    "SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class AS c "
    "JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)"
)

# Every live user column of a table: name, base type name, type modifier (a vector's dimension), the type as
# format_type() spells it, its pg_type category, and whether it is pgvector's `vector`. The one query of
# pg_attribute on pgembed's Python side.
TABLE_COLUMNS = sql.SQL(
    "SELECT a.attname, t.typname, a.atttypmod, format_type(a.atttypid, a.atttypmod), t.typcategory, "
    "t.typname = 'vector' AND t.typnamespace IS NOT DISTINCT FROM e.extnamespace "
    "FROM pg_attribute AS a JOIN pg_type AS t ON t.oid = a.atttypid "
    "LEFT JOIN pg_extension AS e ON e.extname = 'vector' "
    "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
)

# (column, is primary key) of every valid, non-partial, single-column unique index on a table.
UNIQUE_COLUMNS = sql.SQL(
    "SELECT a.attname, i.indisprimary FROM pg_index AS i "
    "JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
    "WHERE i.indrelid = %s AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL "
    "AND i.indexprs IS NULL AND i.indisvalid"
)

# The canonical spelling of a type name with its modifiers (format_type quotes what needs quoting), or none.
RESOLVE_TYPE = sql.SQL(
    "SELECT format_type(to_regtype(%(t)s), to_regtypemod(%(t)s)) WHERE to_regtype(%(t)s) IS NOT NULL"
)

INDEX_SIZES = sql.SQL(
    "SELECT c.relname, pg_relation_size(c.oid) FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid "
    "WHERE i.indrelid = %s::regclass"
)
TABLE_SIZE = sql.SQL("SELECT pg_table_size(%s::regclass)")

# Whether an index of that name is valid (NULL: none): an interrupted CREATE INDEX CONCURRENTLY leaves one not.
INDEX_VALID = sql.SQL(
    "SELECT i.indisvalid FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid "
    "JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s"
)

INDEX_BUILD_PROGRESS = sql.SQL(
    "SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total "
    "FROM pg_stat_progress_create_index WHERE pid = %s"
)

# -- the server -------------------------------------------------------------------------------------------
PGVECTOR_SCHEMA = sql.SQL(
    "SELECT n.nspname FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace "
    "WHERE e.extname = 'vector'")
PGVECTOR_VERSION = sql.SQL("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
PGVECTOR_AVAILABLE = sql.SQL("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
ADVISORY_XACT_LOCK = sql.SQL("SELECT pg_advisory_xact_lock(%s)")
CREATE_PGVECTOR = sql.SQL("CREATE EXTENSION IF NOT EXISTS vector")

# -- what a worker connection must carry to see what this session sees (pgembed.engine.batch.workers) ----------
# The role in force, the login, whether row-level security applies to the table for this role, and the custom
# settings its policies read (current_setting('name'), the usual way a policy is told its tenant) that this
# session has, as [name, value] pairs.
SESSION_VIEW = sql.SQL(
    "SELECT current_user, session_user, row_security_active(c.oid), "
    "ARRAY(SELECT DISTINCT ARRAY[m[1], current_setting(m[1], true)] FROM pg_policy AS p, regexp_matches("
    "coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ' ' || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), ''), "
    "$$current_setting\\('([^']+)'$$, 'g') AS m WHERE p.polrelid = c.oid AND current_setting(m[1], true) IS NOT NULL) "
    "FROM pg_class AS c WHERE c.oid = %s::regclass")
SESSION_ROLES = sql.SQL("SELECT current_user, session_user")
# Settings this session changed (SET), which a new connection has not.
SESSION_SETTINGS = sql.SQL(
    "SELECT name, setting FROM pg_settings WHERE source = 'session' AND name NOT IN ('role', 'session_authorization')")
SET_SESSION_SETTING = sql.SQL("SELECT set_config(%s, %s, false)")


def set_role(role: str) -> sql.Composed:
    return sql.SQL("SET ROLE {}").format(sql.Identifier(role))


def visible_rows(table: sql.Composable, key: sql.Composable) -> sql.Composed:
    """What a session sees of a table: its rows and a digest of their keys (compared between connections
    where row-level security decides it)."""
    return sql.SQL("SELECT count(*), coalesce(sum(hashtextextended({}::text, 0)), 0) FROM {}").format(key, table)
