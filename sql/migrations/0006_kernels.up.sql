-- pgembed catalog, version 6: the SQL twins of pgembed's C kernels get a schema of their own (their functions
-- are in sql/functions/, re-applied after the migrations). pgembed's functions of the same names call the
-- kernels where the extension pgembed_kernels is installed, the twins elsewhere (pgembed.bind_kernels()).
CREATE SCHEMA pgembed_twins;
GRANT USAGE ON SCHEMA pgembed_twins TO PUBLIC;
-- Its result gained a column (the multi-query scan's statement): CREATE OR REPLACE cannot change that, so the
-- function files write it anew.
DROP FUNCTION IF EXISTS pgembed._search_statements(integer, jsonb, text, text[]);
