-- Undo 0001, and with it every function pgembed put in its schema: the files of sql/functions/ and the ones
-- generated per collection. CASCADE takes the triggers that call pgembed.keep_codes_<id>() off the user
-- tables; the tables, their rows and their code columns stay.
DO $$
DECLARE f text;
BEGIN
    -- Signatures as text, read before any goes: CASCADE may drop a later one first.
    FOR f IN SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'pgembed'::regnamespace LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', f);
    END LOOP;
END $$;
DROP TABLE pgembed.indexes;
DROP TABLE pgembed.codecs;
DROP TABLE pgembed.collections;
REVOKE USAGE ON SCHEMA pgembed FROM PUBLIC;
