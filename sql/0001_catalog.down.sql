-- Undo 0001. Triggers that pgembed put on user tables call pgembed.keep_codes_<id>() functions; those are
-- dropped with the collections (CASCADE removes the triggers too; the code columns stay with the user's data).
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'pgembed'::regnamespace AND p.proname LIKE 'keep\_codes\_%'
    LOOP
        EXECUTE format('DROP FUNCTION %s CASCADE', f);
    END LOOP;
END $$;
DROP FUNCTION pgembed.encode_binary(vector, vector);
DROP FUNCTION pgembed.encode_float16(vector);
DROP TABLE pgembed.indexes;
DROP TABLE pgembed.codecs;
DROP TABLE pgembed.collections;
REVOKE USAGE ON SCHEMA pgembed FROM PUBLIC;
