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
DROP FUNCTION pgembed.search(text, vector, integer, jsonb, double precision, text, integer, double precision, text);
DROP FUNCTION pgembed.search_plan(text, vector, integer, jsonb, double precision, text, integer, double precision, text);
DROP FUNCTION pgembed.default_oversample(text, integer);
DROP FUNCTION pgembed.filter_includes(jsonb, jsonb);
DROP FUNCTION pgembed.search_sources(integer);
ALTER TABLE pgembed.indexes DROP COLUMN predicate;
DROP TABLE pgembed.tuning;
