-- Undo 0003_filters.up.sql: the filter language's functions.
DROP FUNCTION pgembed.filter_sql(regclass, jsonb);
DROP FUNCTION pgembed._filter_node(regclass, jsonb, int);
DROP FUNCTION pgembed._filter_column(regclass, text, jsonb);
DROP FUNCTION pgembed._filter_operator(text, text, text, text, jsonb);
DROP FUNCTION pgembed._filter_value(text, text, text, text, jsonb);
