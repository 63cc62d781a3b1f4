-- Undo 0010, but not what the collections' generated functions read. While pgembed.fitted_parameters holds
-- rows, the table stays, with its policies and readers, so that their triggers and query encoders go on working
-- under an older pgembed (which regenerates them only when its migrate() moves the catalog, or a codec
-- changes); upgraded again, 0010 keeps it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pgembed.fitted_parameters) THEN
        DROP FUNCTION IF EXISTS pgembed._fitted_vector(integer, text);
        DROP FUNCTION IF EXISTS pgembed._fitted_vectors(integer, text);
        DROP FUNCTION IF EXISTS pgembed._fitted_integers(integer, text);
        DROP FUNCTION IF EXISTS pgembed._fitted(integer, text);
        DELETE FROM pgembed.function_files WHERE name = 'codecs';
        DROP TABLE pgembed.fitted_parameters;
    END IF;
END $$;
