-- pgembed catalog, version 5: the functions of sql/functions/ are re-applied by `migrate()` whenever their text
-- changes; this table records what each file was when it was last applied (pgembed/db/functions.py).
CREATE TABLE pgembed.function_files (
    name       text        PRIMARY KEY,
    sha256     text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
-- Every role that may search may see that the catalog is current.
GRANT SELECT ON pgembed.function_files, pgembed.alembic_version TO PUBLIC;
