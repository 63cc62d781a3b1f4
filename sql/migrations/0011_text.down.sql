-- Undo 0011. The GIN indexes add_text_search() built stay on the users' tables (they are theirs, and cost only
-- their upkeep), and so do the generated tsvector columns of stored=True; drop_text_search() before the
-- downgrade removes both. The older pgembed's function files write
-- pgembed.search() with the arguments they know, and every file is applied again by its next migrate().
-- Nothing of the user's (a view over pgembed.search(), say) may depend on the functions that go: named, the
-- downgrade stops.
DO $$
DECLARE
    users text;
BEGIN
    SELECT string_agg(DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid), '; ') INTO users
    FROM pg_depend AS d JOIN pg_proc AS p ON d.refclassid = 'pg_proc'::regclass AND d.refobjid = p.oid
    WHERE p.pronamespace = 'pgembed'::regnamespace
      AND p.proname IN ('search', '_prepare_hybrid', '_fusion_statement', 'text_query', '_text_document', '_text_search_of', '_check_fusion', 'stage_depth', '_stage_depth', 'mmr', '_mmr_of_rows', 'relevance', '_relevance')
      AND d.deptype = 'n'
      AND NOT (d.classid = 'pg_proc'::regclass
               AND (SELECT pronamespace FROM pg_proc WHERE oid = d.objid) = 'pgembed'::regnamespace);
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'cannot downgrade pgembed''s search functions: these use them: %', users
            USING HINT = 'drop them first (and make them again after)', ERRCODE = 'dependent_objects_still_exist';
    END IF;
END $$;
DROP FUNCTION IF EXISTS pgembed.search(text, vector, integer, jsonb, double precision, text, integer,
                                       double precision, text, text, double precision, boolean, text,
                                       double precision, double precision, integer, text, double precision, integer,
                                       double precision);
DROP FUNCTION IF EXISTS pgembed._prepare_hybrid(integer, jsonb, text, integer, double precision, text, integer,
                                                double precision, text, text[], text, double precision, boolean,
                                                double precision, double precision, integer, text);
DROP FUNCTION IF EXISTS pgembed._fusion_statement(integer, text, integer, integer, double precision,
                                                  double precision, text, text[]);
DROP FUNCTION IF EXISTS pgembed.text_query(regconfig, text, text);
DROP FUNCTION IF EXISTS pgembed._text_document(text, text, text);
DROP FUNCTION IF EXISTS pgembed._text_search_of(regclass, text);
DROP FUNCTION IF EXISTS pgembed._check_fusion(double precision, double precision, integer, text);
DROP FUNCTION IF EXISTS pgembed.stage_depth(integer);
DROP FUNCTION IF EXISTS pgembed._stage_depth(integer, integer, text);
DROP FUNCTION IF EXISTS pgembed._mmr_of_rows(integer, vector, anyarray, integer, double precision);
DROP FUNCTION IF EXISTS pgembed.mmr(vector, vector[], integer, double precision, text);
DROP FUNCTION IF EXISTS pgembed._filter_matches(regclass, text, jsonb);
DROP FUNCTION IF EXISTS pgembed.relevance(text, vector, double precision[]);
DROP FUNCTION IF EXISTS pgembed._relevance(integer, vector, double precision[]);
DROP TABLE IF EXISTS pgembed.relevance_models;
DROP TABLE IF EXISTS pgembed.text_search;
DELETE FROM pgembed.function_files;
