DROP FUNCTION pgembed.search_batch(text, vector[], integer, jsonb[], double precision);
