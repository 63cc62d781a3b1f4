-- pgembed catalog, version 9: pgembed._search_statements also returns the codec version its index statement
-- reads (codec_id), which _prepare_search looked up a second time. CREATE OR REPLACE cannot add a result
-- column, so the function files write it anew.
DROP FUNCTION IF EXISTS pgembed._search_statements(integer, jsonb, text, text[]);
DELETE FROM pgembed.function_files WHERE name = 'statements';
