-- pgembed catalog, version 8: a role sees the catalog rows of the tables it may read, and no others. A
-- collection's row, its codecs (their fitted parameters), indexes and tuning are visible where
-- has_table_privilege(<its table>, 'SELECT') holds for the role asking; the catalog's owner (who migrates)
-- sees them all, as the owner of a table with row-level security does. Which revision and function files the
-- database has, and its kernel choice, stay readable by every role (granted in 0005, 0006).
-- A role the catalog's owner lets write the catalog (GRANT INSERT, UPDATE, DELETE on its tables, USAGE on
-- its sequences and CREATE on schema pgembed, where the generated functions go: README, "Roles") writes only
-- the rows of collections whose tables it owns.
ALTER TABLE pgembed.collections ENABLE ROW LEVEL SECURITY;
CREATE POLICY readers_of_the_table ON pgembed.collections FOR SELECT
    USING (pg_catalog.has_table_privilege(pg_catalog.to_regclass(pg_catalog.format('%I.%I', table_schema, table_name)),
                                          'SELECT'));
ALTER TABLE pgembed.codecs ENABLE ROW LEVEL SECURITY;
CREATE POLICY readers_of_the_table ON pgembed.codecs FOR SELECT
    USING (EXISTS (SELECT FROM pgembed.collections AS c WHERE c.id = collection_id));
ALTER TABLE pgembed.indexes ENABLE ROW LEVEL SECURITY;
CREATE POLICY readers_of_the_table ON pgembed.indexes FOR SELECT
    USING (EXISTS (SELECT FROM pgembed.collections AS c WHERE c.id = collection_id));
ALTER TABLE pgembed.tuning ENABLE ROW LEVEL SECURITY;
CREATE POLICY readers_of_the_table ON pgembed.tuning FOR SELECT
    USING (EXISTS (SELECT FROM pgembed.collections AS c WHERE c.id = collection_id));

-- Writers of the catalog: the rows of the tables they own (a FOR ALL policy's USING checks new rows too).
CREATE POLICY owners_of_the_table ON pgembed.collections FOR ALL
    USING (EXISTS (SELECT FROM pg_catalog.pg_class AS r
                   WHERE r.oid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', table_schema, table_name))
                     AND pg_catalog.pg_has_role(r.relowner, 'USAGE')));
CREATE POLICY owners_of_the_table ON pgembed.codecs FOR ALL
    USING (EXISTS (SELECT FROM pgembed.collections AS c JOIN pg_catalog.pg_class AS r
                   ON r.oid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', c.table_schema, c.table_name))
                   WHERE c.id = collection_id AND pg_catalog.pg_has_role(r.relowner, 'USAGE')));
CREATE POLICY owners_of_the_table ON pgembed.indexes FOR ALL
    USING (EXISTS (SELECT FROM pgembed.collections AS c JOIN pg_catalog.pg_class AS r
                   ON r.oid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', c.table_schema, c.table_name))
                   WHERE c.id = collection_id AND pg_catalog.pg_has_role(r.relowner, 'USAGE')));
CREATE POLICY owners_of_the_table ON pgembed.tuning FOR ALL
    USING (EXISTS (SELECT FROM pgembed.collections AS c JOIN pg_catalog.pg_class AS r
                   ON r.oid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', c.table_schema, c.table_name))
                   WHERE c.id = collection_id AND pg_catalog.pg_has_role(r.relowner, 'USAGE')));
