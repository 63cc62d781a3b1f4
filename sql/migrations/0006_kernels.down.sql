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
DROP EXTENSION IF EXISTS pgembed_kernels CASCADE;
DROP SCHEMA pgembed_twins CASCADE;
-- The older pgembed's function files write it with the result columns they know.
DROP FUNCTION IF EXISTS pgembed._search_statements(integer, jsonb, text, text[]);
