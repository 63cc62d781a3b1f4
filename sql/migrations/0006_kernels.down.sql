-- Undo 0006: the twins and the kernels go, and with them pgembed's functions that call them (the older
-- pgembed's migrate() writes its own again). Anything of the user's that uses one of those stops the
-- downgrade, named.
DO $$
DECLARE
    users text := pgembed._outside_dependents(
        array_remove(ARRAY['pgembed_twins'::regnamespace, to_regnamespace('pgembed_kernels')], NULL));
BEGIN
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'cannot remove pgembed''s kernels and SQL twins: these use them: %', users
            USING HINT = 'drop them first, or keep this catalog version', ERRCODE = 'dependent_objects_still_exist';
    END IF;
END $$;
-- pgembed's functions that call a kernel or a twin become PL/pgSQL calls of the twin (which records no
-- dependency), so that what depends on them, the collections' generated query encoders, stays; the older
-- pgembed's migrate() then replaces them in place with its own encoders of the same signatures.
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN
        SELECT p.proname, pg_get_function_arguments(p.oid) AS args, pg_get_function_result(p.oid) AS result,
               CASE p.provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END AS volatility,
               CASE WHEN p.proisstrict THEN 'STRICT' ELSE 'CALLED ON NULL INPUT' END AS strictness,
               (SELECT string_agg(quote_ident(n), ', ' ORDER BY i)
                FROM unnest(p.proargnames) WITH ORDINALITY AS a(n, i)) AS names
        FROM pg_proc AS p
        WHERE p.pronamespace = 'pgembed_twins'::regnamespace AND p.prokind = 'f' AND left(p.proname, 1) <> '_'
          AND to_regprocedure(format('pgembed.%I(%s)', p.proname, oidvectortypes(p.proargtypes))) IS NOT NULL
    LOOP
        EXECUTE format('CREATE OR REPLACE FUNCTION pgembed.%I(%s) RETURNS %s LANGUAGE plpgsql %s %s AS %L',
                       f.proname, f.args, f.result, f.volatility, f.strictness,
                       format('BEGIN RETURN pgembed_twins.%I(%s); END', f.proname, f.names));
    END LOOP;
END $$;
DROP TABLE pgembed.kernel_choice;
DROP EXTENSION IF EXISTS pgembed_kernels CASCADE;
DROP SCHEMA pgembed_twins CASCADE;
-- The older pgembed's function files write it with the result columns they know; every file is applied again
-- by the next migrate(), whichever pgembed runs it.
DROP FUNCTION IF EXISTS pgembed._search_statements(integer, jsonb, text, text[]);
DELETE FROM pgembed.function_files;
