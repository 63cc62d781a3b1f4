-- Full-text search of a collection's text column, and hybrid search: the vector search's list and the text
-- search's list fused by reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009).
--
-- The text is searched with PostgreSQL's own full text search. A collection's text column is indexed by GIN on
-- the expression pgembed._text_document() writes, to_tsvector(<config>, <column>): the database keeps the
-- index in step whoever writes a row, and the user's table gains no column and has no row rewritten. Ranking
-- then computes each match's tsvector again (~30 us for a passage of 60 words), which a query matching
-- thousands of rows feels; add_text_search(..., stored=True) keeps it in a generated column instead (the
-- table is rewritten once), and ranking reads it.
-- ANALYZE gathers the expression's lexeme statistics, so the planner estimates a text filter's rows
-- ({"column": {"$matches": "..."}}, sql/functions/filters.sql) as it does any other.
--
-- Fusion: a row's score is the sum over the two lists of weight / (60 + its rank there), ranks from 1; a row
-- missing from a list gets nothing from it. 60 is the constant of the paper, which it found robust across
-- collections. Each list holds at most `depth` rows; ties are broken by the vector rank, then the text rank,
-- then the key, so a text weight of 0 orders by the vector list alone.

-- A collection's text search of column col of table tbl: its configuration and what its index is on
-- (_text_document); NULLs where none searches that column.
CREATE OR REPLACE FUNCTION pgembed._text_search_of(tbl regclass, col text, OUT config text, OUT document text)
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT t.config, pgembed._text_document(t.config, t.column_name, t.tsvector_column) INTO config, document
    FROM pgembed.text_search AS t JOIN pgembed.collections AS c ON c.id = t.collection_id
    WHERE pg_catalog.to_regclass(pg_catalog.format('%I.%I', c.table_schema, c.table_name)) = tbl
      AND t.column_name = col
    ORDER BY t.collection_id LIMIT 1;
END $$;

-- What a text column's GIN index is on, and so what every statement searches, as this same text (PostgreSQL
-- matches an expression index only with the same expression): the stored tsvector column, or the expression
-- to_tsvector(config, col), which is also the stored column's generation expression.
CREATE OR REPLACE FUNCTION pgembed._text_document(config text, col text, tsvector_column text DEFAULT NULL)
    RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN tsvector_column IS NOT NULL THEN pg_catalog.format('%I', tsvector_column)
                ELSE pg_catalog.format('pg_catalog.to_tsvector(%L::pg_catalog.regconfig, %I)', config, col) END;

-- A text query as a tsquery. match 'websearch': websearch_to_tsquery's syntax (every word, "a phrase", or,
-- -word); 'any': any of the query's words (their lexemes ORed), for queries written as prose.
CREATE OR REPLACE FUNCTION pgembed.text_query(config regconfig, query text, match text DEFAULT 'websearch')
    RETURNS tsquery LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    lexemes text;
BEGIN
    IF query IS NULL THEN
        RAISE EXCEPTION 'text query is NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF match = 'websearch' THEN
        RETURN pg_catalog.websearch_to_tsquery(config, query);
    ELSIF match = 'any' THEN
        -- Each lexeme quoted as tsquery's input reads it: in single quotes, quotes and backslashes doubled.
        SELECT pg_catalog.string_agg('''' || replace(replace(l, '\', '\\'), '''', '''''') || '''', ' | ' ORDER BY l)
        INTO lexemes FROM unnest(pg_catalog.tsvector_to_array(pg_catalog.to_tsvector(config, query))) AS l;
        RETURN coalesce(lexemes, '')::tsquery;
    END IF;
    RAISE EXCEPTION 'text_match must be websearch or any, got %', quote_nullable(match)
        USING ERRCODE = 'invalid_parameter_value';
END $$;

-- The fusion's knobs in their ranges.
CREATE OR REPLACE FUNCTION pgembed._check_fusion(vector_weight double precision, text_weight double precision,
                                                 depth integer, match text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF vector_weight IS NULL OR text_weight IS NULL OR NOT (vector_weight >= 0 AND vector_weight < 'infinity')
       OR NOT (text_weight >= 0 AND text_weight < 'infinity') THEN
        RAISE EXCEPTION 'fusion weights must be finite and >= 0, got vector % and text %',
            quote_nullable(vector_weight), quote_nullable(text_weight) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF vector_weight = 0 AND text_weight = 0 THEN
        RAISE EXCEPTION 'fusion weights are both 0: give the vector list or the text list a weight'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF depth IS NOT NULL AND depth NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'fusion_depth must be between 1 and 10000, got %', depth USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF match IS NULL OR match NOT IN ('websearch', 'any') THEN
        RAISE EXCEPTION 'text_match must be websearch or any, got %', quote_nullable(match)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

-- The statement that fuses a vector search's keys (parameter vkeys, best first, `depth` of them) with the text
-- search's best `depth` rows for parameter `text` among those the clause keeps, and returns the best k: key,
-- the exact distance to parameter q, the fused score, the row's rank in each list (NULL where it is not in
-- it), then `columns`. Pieces as sql/functions/statements.sql writes them.
CREATE OR REPLACE FUNCTION pgembed._fusion_statement(
    collection_id integer, clause text, k integer, depth integer, vector_weight double precision,
    text_weight double precision, match text, columns text[] DEFAULT '{}'
) RETURNS text[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    c pgembed.collections;
    config text;
    text_column text;
    stored text;
    tbl text;
    key text;
    key_type text;
    doc text;
    extra text;
BEGIN
    SELECT * INTO c FROM pgembed.collections AS x WHERE x.id = collection_id;
    SELECT t.config, t.column_name, t.tsvector_column INTO config, text_column, stored
    FROM pgembed.text_search AS t WHERE t.collection_id = c.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'collection % has no text search: add_text_search(column) first', quote_literal(c.name)
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    PERFORM pgembed._check_fusion(vector_weight, text_weight, depth, match);
    tbl := format('%I.%I', c.table_schema, c.table_name);
    key := format('%I', c.key_column);
    SELECT format_type(a.atttypid, a.atttypmod) INTO key_type FROM pg_attribute AS a
    WHERE a.attrelid = tbl::regclass AND a.attname = c.key_column;
    doc := pgembed._text_document(config, text_column, stored);
    extra := pgembed._column_list(tbl::regclass, columns, 'pgembed_row');
    RETURN ARRAY[
        format('SELECT pgembed_row.%1$s, pgembed_row.%2$I %3$s ', key, c.vector_column,
               pgembed._qualified_operator(pgembed.distance_operator(c.metric))), 'q',
        format(' AS distance, pgembed_fused.score, pgembed_fused.vector_rank, pgembed_fused.text_rank%1$s FROM ('
               'SELECT coalesce(pgembed_v.key, pgembed_t.key) AS key, '
               'coalesce(%2$s::float8 / (60 + pgembed_v.n), 0) + coalesce(%3$s::float8 / (60 + pgembed_t.n), 0) AS score, '
               'pgembed_v.n AS vector_rank, pgembed_t.n AS text_rank '
               'FROM (SELECT u.key, u.n FROM unnest(', extra, vector_weight, text_weight), 'vkeys',
        format('::%1$s[]) WITH ORDINALITY AS u(key, n) WHERE u.n <= %2$s) AS pgembed_v FULL JOIN ('
               'SELECT m.key, row_number() OVER (ORDER BY m.rank DESC, m.key) AS n FROM ('
               'SELECT %3$s AS key, pg_catalog.ts_rank_cd(%4$s, pgembed_text.pgembed_tsquery) AS rank '
               'FROM %5$s, (SELECT pgembed.text_query(%6$L, ', key_type, depth, key, doc, tbl, config), 'text',
        format('::pg_catalog.text, %1$L) AS pgembed_tsquery) AS pgembed_text '
               'WHERE %2$s OPERATOR(pg_catalog.@@) pgembed_text.pgembed_tsquery AND (%3$s) AND %4$I IS NOT NULL '
               'ORDER BY rank DESC, %5$s LIMIT %6$s) AS m) AS pgembed_t ON pgembed_t.key = pgembed_v.key '
               'ORDER BY score DESC, vector_rank NULLS LAST, text_rank NULLS LAST, key LIMIT %7$s) AS pgembed_fused '
               'JOIN %8$s AS pgembed_row ON pgembed_row.%5$s = pgembed_fused.key '
               'ORDER BY pgembed_fused.score DESC, pgembed_fused.vector_rank NULLS LAST, pgembed_fused.text_rank NULLS LAST, '
               'pgembed_fused.key',
               match, doc, clause, c.vector_column, key, depth, k, tbl)];
END $$;

-- Everything a hybrid search needs but the query vector and text, in one round trip (Python caches it): the
-- vector search's prepared answer for `depth` rows (pgembed._prepare_search) and the fusion's statement.
CREATE OR REPLACE FUNCTION pgembed._prepare_hybrid(
    collection_id integer, filter jsonb, clause text, k integer, recall double precision, codec text,
    ef_search integer, oversample double precision, plan text, columns text[], refine text,
    refine_oversample double precision, rerank boolean, vector_weight double precision,
    text_weight double precision, depth integer, match text
) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    vector_leg jsonb;
BEGIN
    PERFORM pgembed.check_search_params(k, recall, ef_search, oversample, plan, refine, refine_oversample, rerank);
    PERFORM pgembed._check_fusion(vector_weight, text_weight, depth, match);
    depth := pgembed._stage_depth(depth, k, 'fusion_depth');
    vector_leg := pgembed._prepare_search(collection_id, filter, clause, depth, recall, codec, ef_search, oversample,
                                          plan, '{}', NULL, NULL, refine, refine_oversample, rerank);
    RETURN jsonb_build_object(
        'vector', vector_leg, 'depth', depth,
        'fusion', to_jsonb(pgembed._fusion_statement(collection_id, vector_leg ->> 'clause', k, depth, vector_weight,
                                                     text_weight, match, coalesce(columns, '{}'))));
END $$;
