-- Undo 0006: the twins go, and with them pgembed's functions that call them (the older pgembed's migrate()
-- writes its own again). Anything of the user's that uses one of those stops the downgrade, named.
DO $$
DECLARE
    users text := pgembed._outside_dependents(ARRAY['pgembed_twins'::regnamespace]);
BEGIN
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'cannot remove pgembed''s SQL twins: these use them: %', users
            USING HINT = 'drop them first, or keep this catalog version', ERRCODE = 'dependent_objects_still_exist';
    END IF;
END $$;
DROP SCHEMA pgembed_twins CASCADE;
