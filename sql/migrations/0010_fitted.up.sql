-- pgembed catalog, version 10: the fitted parameters that the collections' generated functions (the trigger,
-- the query encoder, the query tables) compute with, kept out of their bodies. PostgreSQL shows every
-- function's body to every role that can connect (pg_proc.prosrc, pg_get_functiondef), and a codebook or a
-- set of thresholds is what a codec learnt from the table's rows. The bodies now name a parameter by its codec
-- version and digest (pgembed._fitted_vector(...) and its siblings), and its value lives here, visible to the
-- roles that may read or write the collection's table: they need it to write a row or to encode a query.
-- A downgrade keeps the table while generated functions read it (0010_fitted.down.sql): then it is kept here.
CREATE TABLE IF NOT EXISTS pgembed.fitted_parameters (
    codec_id  integer NOT NULL REFERENCES pgembed.codecs (id) ON DELETE CASCADE,
    digest    text    NOT NULL,  -- of value: a parameter shared by several encoders of a codec is kept once
    -- The collection's table, by name as pgembed.collections keeps it (an oid would not survive a dump and
    -- restore), so that the policies need no other table of the catalog, whose own policies would apply.
    table_schema name NOT NULL,
    table_name   name NOT NULL,
    -- The value, in the column of its type: stored as the type, a reader's fold is a detoast, not a parse
    -- (1.2 MB of text for pq48's codebook took ~11 ms).
    as_vector    vector,
    as_vectors   vector[],
    as_integers  integer[],
    PRIMARY KEY (codec_id, digest),
    CHECK (num_nonnulls(as_vector, as_vectors, as_integers) = 1)
);
ALTER TABLE pgembed.fitted_parameters ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS users_of_the_table ON pgembed.fitted_parameters;
DROP POLICY IF EXISTS owners_of_the_table ON pgembed.fitted_parameters;
CREATE POLICY users_of_the_table ON pgembed.fitted_parameters FOR SELECT
    USING (pg_catalog.has_table_privilege(pg_catalog.to_regclass(pg_catalog.format('%I.%I', table_schema, table_name)),
                                          'SELECT, INSERT, UPDATE'));
CREATE POLICY owners_of_the_table ON pgembed.fitted_parameters FOR ALL
    USING (EXISTS (SELECT FROM pg_catalog.pg_class AS r
                   WHERE r.oid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', table_schema, table_name))
                     AND pg_catalog.pg_has_role(r.relowner, 'USAGE')));
GRANT SELECT ON pgembed.fitted_parameters TO PUBLIC;
