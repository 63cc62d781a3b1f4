-- Undo 0001, and with it every function pgembed put in its schema: the files of sql/functions/ and the ones
-- generated per collection. The triggers that call pgembed.keep_codes_<id>() go with them (CASCADE); the user's
-- tables, their rows and their code columns stay. Anything else of the user's that uses a pgembed function (a
-- view over pgembed.search(), an index on an encoder's result) stops the downgrade, named: it is not pgembed's
-- to drop.
DO $$
DECLARE
    users text;
    f text;
BEGIN
    SELECT string_agg(DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid), '; ') INTO users
    FROM pg_depend AS d JOIN pg_proc AS p ON d.refclassid = 'pg_proc'::regclass AND d.refobjid = p.oid
    WHERE p.pronamespace = 'pgembed'::regnamespace AND d.deptype = 'n'
      AND NOT (d.classid = 'pg_proc'::regclass
               AND (SELECT pronamespace FROM pg_proc WHERE oid = d.objid) = 'pgembed'::regnamespace)
      AND NOT (d.classid = 'pg_trigger'::regclass
               AND (SELECT tgname FROM pg_trigger WHERE oid = d.objid) LIKE 'pgembed\_keep\_codes\_%');
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'cannot remove pgembed''s catalog: these use its functions: %', users
            USING HINT = 'drop them first, or keep the catalog', ERRCODE = 'dependent_objects_still_exist';
    END IF;
    -- Signatures as text, all read before any goes (a FOR over a query reads it as it goes): CASCADE may drop
    -- a later one first.
    FOREACH f IN ARRAY ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'pgembed'::regnamespace) LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', f);
    END LOOP;
END $$;
DROP TABLE pgembed.indexes;
DROP TABLE pgembed.codecs;
DROP TABLE pgembed.collections;
REVOKE USAGE ON SCHEMA pgembed FROM PUBLIC;
