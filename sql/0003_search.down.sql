DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT id FROM pgembed.collections LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS pgembed.%I(text, vector)', 'query_code_' || r.id);
    END LOOP;
END $$;
DROP FUNCTION pgembed.search(text, vector, integer, jsonb, double precision, text, integer, double precision, text);
DROP FUNCTION pgembed.search_plan(text, vector, integer, jsonb, double precision, text, integer, double precision, text);
DROP FUNCTION pgembed.default_oversample(text, integer);
DROP FUNCTION pgembed.filter_includes(jsonb, jsonb);
DROP FUNCTION pgembed.search_sources(integer);
ALTER TABLE pgembed.indexes DROP COLUMN predicate;
DROP TABLE pgembed.tuning;
