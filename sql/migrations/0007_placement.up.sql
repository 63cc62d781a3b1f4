-- pgembed catalog, version 7: where a collection's codes live, each codec's estimator, and search stages.
--
-- placement 'table': code columns in the user's table (as before). 'companion': a table pgembed keeps,
-- pgembed.codes_<collection id> (key plus code columns), filled by a trigger on the user's table, so that
-- candidates come from a narrow heap and adding or re-fitting a codec never rewrites the user's rows.
ALTER TABLE pgembed.collections
    ADD COLUMN placement text NOT NULL DEFAULT 'table' CHECK (placement IN ('table', 'companion'));
-- The SQL function estimating the metric's distance from a code and a query's table (pgembed.query_table):
-- what a compact re-rank tier orders by. NULL: the codec has none (its codes are compared as vectors).
ALTER TABLE pgembed.codecs ADD COLUMN estimator text;
-- The search knobs gained the stages (refine, refine_oversample, rerank): CREATE OR REPLACE cannot change a
-- signature, so the function files write these anew. Anything of the user's that uses the old ones (a view
-- over pgembed.search()) stops the upgrade, named: it is to be dropped and made again after it.
DO $$
DECLARE
    users text;
BEGIN
    SELECT string_agg(DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid), '; ') INTO users
    FROM pg_depend AS d JOIN pg_proc AS p ON d.refclassid = 'pg_proc'::regclass AND d.refobjid = p.oid
    WHERE p.pronamespace = 'pgembed'::regnamespace
      AND p.proname IN ('search', 'search_plan', '_prepare_search', '_plan', 'check_search_params')
      AND d.deptype = 'n'
      AND NOT (d.classid = 'pg_proc'::regclass
               AND (SELECT pronamespace FROM pg_proc WHERE oid = d.objid) = 'pgembed'::regnamespace);
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'pgembed''s search functions take new arguments in catalog 0007, and these use them: %', users
            USING HINT = 'drop them, upgrade, and create them again', ERRCODE = 'dependent_objects_still_exist';
    END IF;
END $$;
DROP FUNCTION IF EXISTS pgembed.search(text, vector, integer, jsonb, double precision, text, integer,
                                       double precision, text);
DROP FUNCTION IF EXISTS pgembed.search_plan(text, vector, integer, jsonb, double precision, text, integer,
                                            double precision, text);
DROP FUNCTION IF EXISTS pgembed._prepare_search(integer, jsonb, text, integer, double precision, text, integer,
                                                double precision, text, text[], double precision, text);
DROP FUNCTION IF EXISTS pgembed._plan(integer, integer, double precision, text, integer, double precision, text,
                                      jsonb, boolean, double precision, double precision, text);
DROP FUNCTION IF EXISTS pgembed.check_search_params(integer, double precision, integer, double precision, text);
DELETE FROM pgembed.function_files WHERE name IN ('planner', 'search');
