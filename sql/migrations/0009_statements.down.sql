-- The older pgembed's function files write it with the result columns they know; every file is applied again
-- by the next migrate(), whichever pgembed runs it.
DROP FUNCTION IF EXISTS pgembed._search_statements(integer, jsonb, text, text[]);
DELETE FROM pgembed.function_files;
