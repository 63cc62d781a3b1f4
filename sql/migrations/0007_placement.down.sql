-- Undo 0007. A collection whose codes live in a companion table cannot go back: the older catalog has no way
-- to say where its codes are. Such collections stop the downgrade, named.
DO $$
DECLARE
    names text;
BEGIN
    SELECT string_agg(quote_literal(name), ', ' ORDER BY name) INTO names
    FROM pgembed.collections WHERE placement = 'companion';
    IF names IS NOT NULL THEN
        RAISE EXCEPTION 'cannot downgrade: collection(s) % keep their codes in a companion table', names
            USING HINT = 'drop them (collection.drop()) first, or keep this catalog version',
                  ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END $$;
-- Nothing of the user's (a view over pgembed.search(), say) may depend on the functions that go.
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
        RAISE EXCEPTION 'cannot downgrade pgembed''s search functions: these use them: %', users
            USING HINT = 'drop them first, or keep this catalog version', ERRCODE = 'dependent_objects_still_exist';
    END IF;
END $$;
DROP FUNCTION IF EXISTS pgembed.search(text, vector, integer, jsonb, double precision, text, integer,
                                       double precision, text, text, double precision, boolean);
DROP FUNCTION IF EXISTS pgembed.search_plan(text, vector, integer, jsonb, double precision, text, integer,
                                            double precision, text, text, double precision, boolean);
DROP FUNCTION IF EXISTS pgembed._prepare_search(integer, jsonb, text, integer, double precision, text, integer,
                                                double precision, text, text[], double precision, text, text,
                                                double precision, boolean);
DROP FUNCTION IF EXISTS pgembed._plan(integer, integer, double precision, text, integer, double precision, text,
                                      jsonb, boolean, double precision, double precision, text, text,
                                      double precision, boolean);
DROP FUNCTION IF EXISTS pgembed.check_search_params(integer, double precision, integer, double precision, text,
                                                    text, double precision, boolean);
ALTER TABLE pgembed.codecs DROP COLUMN estimator;
ALTER TABLE pgembed.collections DROP COLUMN placement;
-- The older pgembed's migrate() writes every function file of its own again.
DELETE FROM pgembed.function_files;
