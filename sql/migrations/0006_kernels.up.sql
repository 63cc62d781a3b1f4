-- pgembed catalog, version 6: the SQL twins of pgembed's C kernels get a schema of their own (their functions
-- are in sql/functions/, re-applied after the migrations). pgembed's functions of the same names call the
-- kernels where the extension pgembed_kernels is installed, the twins elsewhere (pgembed.bind_kernels()).
CREATE SCHEMA pgembed_twins;
GRANT USAGE ON SCHEMA pgembed_twins TO PUBLIC;
-- The database's choice between kernels and twins, once someone made one (pgembed.bind_kernels(use, true));
-- every migrate() binds by it (pgembed.db.kernels.ensure_kernels).
CREATE TABLE pgembed.kernel_choice (
    one         boolean     PRIMARY KEY DEFAULT true CHECK (one),
    use_kernels boolean     NOT NULL,
    chosen_at   timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT ON pgembed.kernel_choice TO PUBLIC;
-- Its result gained a column (the multi-query scan's statement): CREATE OR REPLACE cannot change that, so the
-- function files write it anew.
DROP FUNCTION IF EXISTS pgembed._search_statements(integer, jsonb, text, text[]);
DELETE FROM pgembed.function_files WHERE name = 'statements';
