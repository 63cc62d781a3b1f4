-- Query encoders go; partial indexes go too (a catalog without predicates would take them for full ones).
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT id FROM pgembed.collections LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS pgembed.%I(text, vector)', 'query_code_' || r.id);
    END LOOP;
    FOR r IN SELECT c.table_schema, i.index_name FROM pgembed.indexes i
             JOIN pgembed.collections c ON c.id = i.collection_id WHERE i.predicate IS NOT NULL LOOP
        EXECUTE format('DROP INDEX IF EXISTS %I.%I', r.table_schema, r.index_name);
    END LOOP;
    DELETE FROM pgembed.indexes WHERE predicate IS NOT NULL;
END $$;
ALTER TABLE pgembed.indexes DROP COLUMN predicate;
DROP TABLE pgembed.tuning;
