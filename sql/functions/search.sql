-- Hybrid search from any SQL client, and what Python's search() asks the server for.

-- Everything a search needs but the query vector, in one round trip: the filter's WHERE clause (`clause`, or
-- `filter` in the language compiled here; neither: no filter), the rows it keeps, the plan, and the plan's
-- statements (pgembed._search_statements). `filter` also lets partial indexes match. Python caches the answer
-- per filter and knobs. `estimated_rows` and `only_index` are tune()'s: its synthetic filters' known
-- selectivity, and one index measured at a time.
CREATE OR REPLACE FUNCTION pgembed._prepare_search(
    collection_id integer, filter jsonb, clause text, k integer, recall double precision, codec text,
    ef_search integer, oversample double precision, plan text, columns text[] DEFAULT '{}',
    estimated_rows double precision DEFAULT NULL, only_index text DEFAULT NULL, refine text DEFAULT NULL,
    refine_oversample double precision DEFAULT NULL, rerank boolean DEFAULT true
) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    c pgembed.collections;
    tbl regclass;
    filtered boolean;
    estimate double precision;
    total double precision;
    chosen jsonb;
    statements record;
BEGIN
    SELECT * INTO c FROM pgembed.collections AS x WHERE x.id = collection_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no collection with id %', collection_id USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM pgembed.check_search_params(k, recall, ef_search, oversample, plan, refine, refine_oversample, rerank);
    tbl := format('%I.%I', c.table_schema, c.table_name)::regclass;
    clause := coalesce(clause, pgembed.filter_sql(tbl, filter));
    filtered := clause <> 'true';
    estimate := CASE WHEN filtered THEN coalesce(estimated_rows, pgembed.estimate_rows(tbl, clause)) END;
    total := pgembed.table_rows(tbl);
    chosen := pgembed._plan(c.id, k, recall, codec, ef_search, oversample, plan,
                            CASE WHEN filtered THEN filter END, filtered, estimate, total, only_index, refine,
                            refine_oversample, rerank);
    SELECT * INTO statements FROM pgembed._search_statements(c.id, chosen, clause, coalesce(columns, '{}'));
    -- codec_id: the codec version whose codes the plan reads, which encodes the query (a re-fit keeps the
    -- column's name, not its codec). scan_on_server: the scan is the kernels' one read of the rows.
    RETURN jsonb_build_object('clause', clause, 'plan', chosen, 'run', to_jsonb(statements.run),
                              'exact', to_jsonb(statements.exact), 'many', to_jsonb(statements.many),
                              'scan', to_jsonb(statements.scan), 'codec_id', statements.codec_id,
                              'scan_on_server', pgembed._kernels_active());
END $$;

-- The collection named `collection`, or an error saying there is none.
CREATE OR REPLACE FUNCTION pgembed._collection(collection text) RETURNS pgembed.collections
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    c pgembed.collections;
BEGIN
    SELECT * INTO c FROM pgembed.collections AS x WHERE x.name = collection;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no collection named %', quote_literal(collection) USING ERRCODE = 'undefined_object';
    END IF;
    RETURN c;
END $$;

-- The collection's active version of the codec named `codec`, or an error naming what is missing.
CREATE OR REPLACE FUNCTION pgembed._active_codec(c pgembed.collections, codec text) RETURNS pgembed.codecs
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    active pgembed.codecs;
BEGIN
    SELECT * INTO active FROM pgembed.codecs AS d WHERE d.collection_id = c.id AND d.name = codec AND d.state = 'active';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'collection % has no active codec named %', quote_literal(c.name), quote_literal(codec)
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN active;
END $$;

-- A query vector fit for the collection: not NULL, its dimension, and not all zeros under cosine.
CREATE OR REPLACE FUNCTION pgembed._check_query(c pgembed.collections, query vector) RETURNS void
    LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF query IS NULL THEN
        RAISE EXCEPTION 'query vector is NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF vector_dims(query) <> c.dim THEN
        RAISE EXCEPTION 'query has % dimensions, collection % has %', vector_dims(query), quote_literal(c.name), c.dim
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF c.metric = 'cosine' AND vector_norm(query) = 0 THEN
        RAISE EXCEPTION 'query is all zeros: cosine distance is undefined' USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

-- Before a search reads which code columns are active: the codes' table (the user's, or the companion) held in
-- ACCESS SHARE until the transaction ends. A re-fit's activation drops the replaced version's columns under
-- ACCESS EXCLUSIVE, so it waits for the search (with a bounded wait, and again after) instead of removing a
-- column the search's plan names between the plan and its statement.
CREATE OR REPLACE FUNCTION pgembed._hold_codes(c pgembed.collections) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF c.placement = 'companion' THEN
        EXECUTE format('LOCK TABLE pgembed.%I IN ACCESS SHARE MODE', 'codes_' || c.id);
    ELSE
        EXECUTE format('LOCK TABLE %I.%I IN ACCESS SHARE MODE', c.table_schema, c.table_name);
    END IF;
END $$;

-- The plan pgembed.search() (and Python's Collection.search()) takes for these arguments, as jsonb.
CREATE OR REPLACE FUNCTION pgembed.search_plan(
    collection text, query vector, k integer DEFAULT 10, filter jsonb DEFAULT NULL,
    recall double precision DEFAULT NULL, codec text DEFAULT NULL, ef_search integer DEFAULT NULL,
    oversample double precision DEFAULT NULL, plan text DEFAULT 'auto', refine text DEFAULT NULL,
    refine_oversample double precision DEFAULT NULL, rerank boolean DEFAULT true
) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    c pgembed.collections := pgembed._collection(collection);
BEGIN
    PERFORM pgembed.check_search_params(k, recall, ef_search, oversample, plan, refine, refine_oversample, rerank);
    PERFORM pgembed._check_query(c, query);
    RETURN pgembed._prepare_search(c.id, filter, NULL, k, recall, codec, ef_search, oversample, plan, '{}', NULL, NULL,
                                      refine, refine_oversample, rerank) -> 'plan';
END $$;

-- Hybrid search: the k rows of the collection nearest to `query` among those `filter` keeps, with exact
-- distances (the collection's metric), best first. Same plans and answers as Python's Collection.search();
-- keys come back as text (join with t.id::text = s.id, or cast s.id).
-- With `text`, the vector search's best fusion_depth rows and the text search's best (the collection's text
-- column, pgembed.text_query(..., text_match)) are fused by reciprocal rank (sql/functions/text.sql), and the
-- k best by the fused score come back with it, best first; without, score is NULL.
CREATE OR REPLACE FUNCTION pgembed.search(
    collection text, query vector, k integer DEFAULT 10, filter jsonb DEFAULT NULL,
    recall double precision DEFAULT NULL, codec text DEFAULT NULL, ef_search integer DEFAULT NULL,
    oversample double precision DEFAULT NULL, plan text DEFAULT 'auto', refine text DEFAULT NULL,
    refine_oversample double precision DEFAULT NULL, rerank boolean DEFAULT true, text text DEFAULT NULL,
    vector_weight double precision DEFAULT 1, text_weight double precision DEFAULT 1,
    fusion_depth integer DEFAULT NULL, text_match text DEFAULT 'websearch', diversity double precision DEFAULT NULL,
    diversity_depth integer DEFAULT NULL, min_relevance double precision DEFAULT NULL
) RETURNS TABLE (id text, distance double precision, score double precision) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    c pgembed.collections := pgembed._collection(collection);
    depth integer;
    scores double precision[];
    picks integer[];
    prepared jsonb;
    p jsonb;
    qcode text;
    ids text[];
    dists double precision[];
    saved text[];
    names constant text[] := ARRAY['hnsw.ef_search', 'hnsw.iterative_scan', 'hnsw.max_scan_tuples'];
    -- Rows of a statement in order, keys as text: counted before any is returned (the fallback needs it).
    collect constant text := 'SELECT array_agg(s.%1$I::text ORDER BY s.distance, s.%1$I), '
                             'array_agg(s.distance ORDER BY s.distance, s.%1$I) FROM (%2$s) AS s';
BEGIN
    PERFORM pgembed.check_search_params(k, recall, ef_search, oversample, plan, refine, refine_oversample, rerank);
    PERFORM pgembed._check_query(c, query);
    IF min_relevance IS NOT NULL THEN
        -- The rows of the search without the cut-off whose relevance (the collection's relevance model) is at
        -- least min_relevance: possibly fewer than k.
        IF NOT (min_relevance BETWEEN 0 AND 1) THEN
            RAISE EXCEPTION 'min_relevance must be between 0 and 1, got %', min_relevance
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        SELECT array_agg(s.id ORDER BY s.n), array_agg(s.distance ORDER BY s.n), array_agg(s.score ORDER BY s.n)
        INTO ids, dists, scores
        FROM pgembed.search(collection, query, k, filter, recall, codec, ef_search, oversample, plan, refine,
                            refine_oversample, rerank, search.text, vector_weight, text_weight, fusion_depth,
                            text_match, diversity, diversity_depth) WITH ORDINALITY AS s(id, distance, score, n);
        RETURN QUERY SELECT u.id, u.distance, u.score
                     FROM unnest(ids, dists, scores, pgembed.relevance(collection, query, coalesce(dists, '{}')))
                          WITH ORDINALITY AS u(id, distance, score, relevance, n)
                     WHERE u.relevance >= min_relevance ORDER BY u.n;
        RETURN;
    END IF;
    IF diversity IS NOT NULL THEN
        -- The search without diversity for depth rows, and MMR's choice of k among them.
        depth := pgembed._stage_depth(diversity_depth, k, 'diversity_depth');
        SELECT array_agg(s.id ORDER BY s.n), array_agg(s.distance ORDER BY s.n), array_agg(s.score ORDER BY s.n)
        INTO ids, dists, scores
        FROM pgembed.search(collection, query, depth, filter, recall, codec, ef_search, oversample, plan, refine,
                            refine_oversample, rerank, search.text, vector_weight, text_weight, fusion_depth,
                            text_match) WITH ORDINALITY AS s(id, distance, score, n);
        picks := pgembed._mmr_of_rows(c.id, query, ids, k, diversity);
        RETURN QUERY SELECT ids[u.p], dists[u.p], scores[u.p] FROM unnest(picks) WITH ORDINALITY AS u(p, n)
                     ORDER BY u.n;
        RETURN;
    END IF;
    IF search.text IS NOT NULL THEN
        PERFORM pgembed._check_fusion(vector_weight, text_weight, fusion_depth, text_match);
        depth := pgembed._stage_depth(fusion_depth, k, 'fusion_depth');
        ids := ARRAY(SELECT s.id FROM pgembed.search(collection, query, depth, filter, recall, codec, ef_search,
                                                     oversample, plan, refine, refine_oversample, rerank)
                                      WITH ORDINALITY AS s(id, distance, score, n) ORDER BY s.n);
        RETURN QUERY EXECUTE format(
            'SELECT s.%1$I::pg_catalog.text, s.distance, s.score FROM (%2$s) AS s '
            'ORDER BY s.score DESC, s.vector_rank NULLS LAST, s.text_rank NULLS LAST, s.%1$I',
            c.key_column,
            pgembed._statement_text(
                pgembed._fusion_statement(c.id, pgembed.filter_sql(format('%I.%I', c.table_schema, c.table_name)::regclass, filter),
                                          k, depth, vector_weight, text_weight, text_match),
                ARRAY['q', 'vkeys', 'text']))
            USING query, ids, search.text;
        RETURN;
    END IF;
    PERFORM pgembed._hold_codes(c);
    prepared := pgembed._prepare_search(c.id, filter, NULL, k, recall, codec, ef_search, oversample, plan, '{}', NULL, NULL,
                                      refine, refine_oversample, rerank);
    p := prepared -> 'plan';
    IF p ->> 'kind' = 'index' THEN
        IF to_regprocedure(format('pgembed.%I(text, vector)', 'query_code_' || c.id)) IS NULL THEN
            RAISE EXCEPTION 'collection % has no query encoder (its codecs predate catalog 0003): run `pgembed migrate`, which installs it',
                quote_literal(collection) USING ERRCODE = 'undefined_function';
        END IF;
        EXECUTE format('SELECT pgembed.%I($1, $2)', 'query_code_' || c.id) INTO qcode USING p ->> 'column', query;
        -- The statement sets pgvector's settings for itself, local to the transaction: put them back, or
        -- they would last until the caller's transaction ends.
        saved := ARRAY[current_setting(names[1], true), current_setting(names[2], true), current_setting(names[3], true)];
        EXECUTE format(collect, c.key_column,
                       pgembed._statement_text(ARRAY(SELECT jsonb_array_elements_text(prepared -> 'run')), ARRAY['q', 'qcode']))
            INTO ids, dists USING query, qcode;
        FOR i IN 1 .. 3 LOOP
            IF saved[i] IS NOT NULL THEN
                PERFORM set_config(names[i], saved[i], true);
            END IF;
        END LOOP;
        IF coalesce(cardinality(ids), 0) >= k THEN
            RETURN QUERY SELECT u.id, u.distance, NULL::double precision FROM unnest(ids, dists) WITH ORDINALITY AS u(id, distance, n) ORDER BY u.n;
            RETURN;
        END IF;
    END IF;
    EXECUTE format(collect, c.key_column,
                   pgembed._statement_text(ARRAY(SELECT jsonb_array_elements_text(prepared -> 'exact')), ARRAY['q']))
        INTO ids, dists USING query;
    RETURN QUERY SELECT u.id, u.distance, NULL::double precision FROM unnest(ids, dists) WITH ORDINALITY AS u(id, distance, n) ORDER BY u.n;
END $$;

-- The exact top k of each of many queries, in one read of the rows `filter` keeps (and, when `keys` is given,
-- only of the rows with those keys): what pgembed.search(..., plan => 'exact') returns for each query, with
-- the C kernels' multi-query scan where they are installed (pgembed_kernels.exact_topk) and one exact
-- statement per query elsewhere. query_no: the query's subscript in `queries`; each query's rows best first.
CREATE OR REPLACE FUNCTION pgembed.scan_topk(
    collection text, queries vector[], k integer DEFAULT 10, filter jsonb DEFAULT NULL, keys text[] DEFAULT NULL
) RETURNS TABLE (query_no integer, id text, distance double precision) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    c pgembed.collections := pgembed._collection(collection);
    clause text;
BEGIN
    PERFORM pgembed.check_search_params(k, NULL, NULL, NULL, 'exact');
    PERFORM pgembed._check_queries(c, queries);
    clause := pgembed._scan_clause(c, filter, keys);
    RETURN QUERY EXECUTE format('SELECT (s.n + $2)::integer, s.id, s.distance FROM (%s) AS s(n, id, distance)',
                                pgembed._scan_text(pgembed._prepare_search(c.id, NULL, clause, k, NULL, NULL, NULL, NULL, 'exact')))
        USING array(SELECT unnest(queries)), array_lower(queries, 1) - 1;
END $$;

-- The top k of each query among the rows of its `probes` nearest clusters of a partitioning codec (ivf<n>),
-- that `filter` keeps, by the exact distance: what a batch reads when it reads a cluster once for all the
-- queries that probe it. A query's clusters are its `probes` nearest centroids by pgvector's l2_distance (ties:
-- the lesser index), the clusters encode_ivf assigns rows by. With the C kernels, one exact_topk over the
-- centroids finds every query's clusters, and one exact_topk per probed cluster ranks its rows for its queries
-- (the rows through a B-tree on the codec's column, where there is one); the queries' lists are then merged.
-- With the twins, one statement per query. The same rows, distances and order either way: each query's best
-- first, ties by key, as search() orders. Rows are read from the user's table, under its row-level security.
CREATE OR REPLACE FUNCTION pgembed.probe_topk(
    collection text, codec text, queries vector[], k integer DEFAULT 10, probes integer DEFAULT 8,
    filter jsonb DEFAULT NULL
) RETURNS TABLE (query_no integer, id text, distance double precision) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    c pgembed.collections := pgembed._collection(collection);
    x pgembed.codecs;
    tbl regclass;
    clause text;
    centroids vector[];
    clusters integer[];
    in_cluster text;
    cluster_of text;
    flat vector[] := array(SELECT unnest(queries));  -- one dimension, subscripts from 1, as the kernels read them
    op text;
    first integer := coalesce(array_lower(queries, 1), 1);
BEGIN
    PERFORM pgembed.check_search_params(k, NULL, NULL, NULL, 'exact');
    PERFORM pgembed._check_queries(c, queries);
    x := pgembed._active_codec(c, codec);
    EXECUTE format('SELECT pgembed.%I(%L)', 'centroids_' || c.id, x.column_name) INTO centroids;
    IF centroids IS NULL THEN
        RAISE EXCEPTION 'codec % (%) is not a partitioning: probe_topk reads the clusters of an ivf<n> codec',
            quote_literal(codec), x.kind USING ERRCODE = 'feature_not_supported';
    END IF;
    IF probes IS NULL OR probes < 1 OR probes > cardinality(centroids) THEN
        RAISE EXCEPTION 'probes must be 1 to % (the clusters of codec %), got %', cardinality(centroids),
            quote_literal(codec), coalesce(probes::text, 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    tbl := format('%I.%I', c.table_schema, c.table_name)::regclass;
    clause := pgembed.filter_sql(tbl, filter);
    op := pgembed._qualified_operator(pgembed.distance_operator(c.metric));
    -- the rows of the clusters in an integer[] expression put after in_cluster (then a closing parenthesis), as
    -- the user's table's rows, and a row's cluster
    IF c.placement = 'companion' THEN
        in_cluster := format('%I IN (SELECT pgembed_codes_.%I FROM pgembed.%I AS pgembed_codes_ WHERE pgembed_codes_.%I = ANY (',
                             c.key_column, c.key_column, 'codes_' || c.id, x.column_name);
        cluster_of := format('(SELECT pgembed_codes_.%I FROM pgembed.%I AS pgembed_codes_ WHERE pgembed_codes_.%I = %s.%I)',
                             x.column_name, 'codes_' || c.id, c.key_column, tbl, c.key_column);
    ELSE
        in_cluster := format('(%I = ANY (', x.column_name);
        cluster_of := format('%I', x.column_name);
    END IF;
    IF pgembed._kernels_active() THEN
        -- every query's clusters by one exact scan of the centroids, then one read of the probed clusters' rows
        EXECUTE format('SELECT array_agg(u.id::integer ORDER BY u.n) FROM (SELECT pgembed_kernels.exact_topk(z.i - 1, z.c, $1, %s, ''l2'') AS r '
                       'FROM unnest($2) WITH ORDINALITY AS z(c, i)) AS s, unnest((s.r).id) WITH ORDINALITY AS u(id, n)', probes)
            INTO clusters USING flat, centroids;
        RETURN QUERY EXECUTE format(
            'SELECT (u.query_no + $3)::integer, u.id, u.distance FROM (SELECT pgembed_kernels.probe_topk(%1$I, %2$s, %3$I, $1, $2, %4$s, %5$L) AS r '
            'FROM %6$s WHERE (%7$s) AND %3$I IS NOT NULL AND %8$s) AS s, '
            'unnest((s.r).query_no, (s.r).id, (s.r).distance) WITH ORDINALITY AS u(query_no, id, distance, n) ORDER BY u.n',
            c.key_column, cluster_of, c.vector_column, k, c.metric, tbl, clause,
            in_cluster || 'ARRAY(SELECT DISTINCT e FROM unnest($2) AS e)))')
            USING flat, clusters, first - 1;
        RETURN;
    END IF;
    FOR i IN 1 .. cardinality(flat) LOOP
        RETURN QUERY EXECUTE format(
            'SELECT $2, m.%1$I::text, m.distance FROM (SELECT %1$I, %2$I %3$s $1 AS distance FROM %4$s '
            'WHERE (%5$s) AND %2$I IS NOT NULL AND %6$s OFFSET 0) AS m ORDER BY m.distance, m.%1$I LIMIT %7$s',
            c.key_column, c.vector_column, op, tbl, clause,
            in_cluster || format('ARRAY(SELECT z.i::integer - 1 FROM unnest($3) WITH ORDINALITY AS z(c, i) '
                                 'ORDER BY $1 %s z.c, z.i LIMIT %s)))', pgembed._qualified_operator('<->'), probes), k)
            USING flat[i], i + first - 1, centroids;
    END LOOP;
END $$;

-- The WHERE clause of a scan over the collection's rows that `filter` keeps and, when `keys` is given, only
-- those with these keys (compared as the key column's own type).
CREATE OR REPLACE FUNCTION pgembed._scan_clause(c pgembed.collections, filter jsonb, keys text[]) RETURNS text
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    tbl regclass := format('%I.%I', c.table_schema, c.table_name)::regclass;
    clause text := pgembed.filter_sql(tbl, filter);
    key_type text;
BEGIN
    IF keys IS NULL THEN
        RETURN clause;
    END IF;
    SELECT format_type(a.atttypid, a.atttypmod) INTO key_type FROM pg_attribute AS a
    WHERE a.attrelid = tbl AND a.attname = c.key_column;
    RETURN format('(%s) AND %I = ANY (%L::%s[])', clause, c.key_column, keys, key_type);
END $$;

-- A prepared search's scan statement (its queries $1, numbered from 1 in its first column).
CREATE OR REPLACE FUNCTION pgembed._scan_text(prepared jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN pgembed._statement_text(ARRAY(SELECT jsonb_array_elements_text(prepared -> 'scan')), ARRAY['qs']);

-- Every query fit for the collection (pgembed._check_query), and at least one.
CREATE OR REPLACE FUNCTION pgembed._check_queries(c pgembed.collections, queries vector[]) RETURNS void
    LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    q vector;
BEGIN
    IF coalesce(cardinality(queries), 0) = 0 THEN
        RAISE EXCEPTION 'queries is empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH q IN ARRAY queries LOOP
        PERFORM pgembed._check_query(c, q);
    END LOOP;
END $$;

-- A batch of hybrid queries, planned as pgembed.search() plans each one and answered as it would be (the same
-- rows, distances and order), with the work of the queries that share a filter done together: the filter is
-- compiled and planned once; an exact plan's queries read the matching rows once between them (the scan of
-- pgembed.scan_topk: the kernels' multi-query scan where installed); an index plan's queries run as one
-- statement, each one's candidates and re-rank in a LATERAL subquery, and a query that finds fewer than k
-- rows there takes the exact plan, as pgembed.search() does. `filters`: one for all queries, or one per query.
-- Rows come query by query in order (query_no: the query's subscript in `queries`), each query's best first.
CREATE OR REPLACE FUNCTION pgembed.search_batch(
    collection text, queries vector[], k integer DEFAULT 10, filters jsonb[] DEFAULT NULL,
    recall double precision DEFAULT NULL
) RETURNS TABLE (query_no integer, id text, distance double precision) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    c pgembed.collections := pgembed._collection(collection);
    n integer := coalesce(cardinality(queries), 0);
    g record;
    r record;
    prepared jsonb;
    qcodes text[];
    saved text[];
    names constant text[] := ARRAY['hnsw.ef_search', 'hnsw.iterative_scan', 'hnsw.max_scan_tuples'];
    -- every answer in order: (subscript of its query, key, distance); and a group's index answers
    nos integer[] := '{}';
    ids text[] := '{}';
    dists double precision[] := '{}';
    found_nos integer[];
    found_ids text[];
    found_dists double precision[];
    short integer[];
BEGIN
    IF n = 0 THEN
        RAISE EXCEPTION 'queries is empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF filters IS NOT NULL AND cardinality(filters) NOT IN (1, n) THEN
        RAISE EXCEPTION 'got % filters for % queries: give one, or one per query', cardinality(filters), n
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pgembed.check_search_params(k, recall, NULL, NULL, 'auto');
    PERFORM pgembed._check_queries(c, queries);
    PERFORM pgembed._hold_codes(c);
    FOR g IN
        SELECT u.f AS filter, array_agg(u.no ORDER BY u.no) AS nos, array_agg(u.q ORDER BY u.no) AS qs
        FROM (SELECT q, (array_lower(queries, 1) + i - 1)::integer AS no,
                     CASE WHEN filters IS NULL THEN NULL
                          WHEN cardinality(filters) = 1 THEN filters[array_lower(filters, 1)]
                          ELSE filters[array_lower(filters, 1) + i - 1] END AS f
              FROM unnest(queries) WITH ORDINALITY AS x(q, i)) AS u
        GROUP BY u.f
    LOOP
        prepared := pgembed._prepare_search(c.id, g.filter, NULL, k, recall, NULL, NULL, NULL, 'auto');
        IF prepared -> 'plan' ->> 'kind' <> 'index' THEN
            FOR r IN EXECUTE pgembed._scan_text(prepared) USING g.qs LOOP
                nos := nos || g.nos[r.query_no];
                ids := ids || r.id;
                dists := dists || r.distance;
            END LOOP;
            CONTINUE;
        END IF;
        EXECUTE format('SELECT array_agg(pgembed.%I(%L, q) ORDER BY i) FROM unnest($1) WITH ORDINALITY AS u(q, i)',
                       'query_code_' || c.id, prepared -> 'plan' ->> 'column') INTO qcodes USING g.qs;
        saved := ARRAY[current_setting(names[1], true), current_setting(names[2], true), current_setting(names[3], true)];
        found_nos := '{}';
        found_ids := '{}';
        found_dists := '{}';
        FOR r IN EXECUTE format('SELECT s.pgembed_no::integer AS query_no, s.%1$I::text AS id, s.distance FROM (%2$s) AS s '
                                'ORDER BY s.pgembed_no, s.distance, s.%1$I', c.key_column,
                                pgembed._statement_text(ARRAY(SELECT jsonb_array_elements_text(prepared -> 'many')),
                                                        ARRAY['qs', 'qcodes']))
            USING g.qs, qcodes LOOP
            found_nos := found_nos || g.nos[r.query_no];
            found_ids := found_ids || r.id;
            found_dists := found_dists || r.distance;
        END LOOP;
        FOR i IN 1 .. 3 LOOP
            IF saved[i] IS NOT NULL THEN
                PERFORM set_config(names[i], saved[i], true);
            END IF;
        END LOOP;
        -- A query that found fewer than k rows through the index takes the exact plan, as pgembed.search() does.
        short := array(SELECT x.no FROM unnest(g.nos) AS x(no)
                       LEFT JOIN (SELECT f.no, count(*) AS hits FROM unnest(found_nos) AS f(no) GROUP BY f.no) AS per_query
                           USING (no)
                       WHERE coalesce(per_query.hits, 0) < k ORDER BY x.no);
        FOR i IN 1 .. coalesce(cardinality(found_nos), 0) LOOP
            IF NOT found_nos[i] = ANY (short) THEN
                nos := nos || found_nos[i];
                ids := ids || found_ids[i];
                dists := dists || found_dists[i];
            END IF;
        END LOOP;
        FOR i IN 1 .. cardinality(g.nos) LOOP
            CONTINUE WHEN NOT g.nos[i] = ANY (short);
            FOR r IN EXECUTE format('SELECT s.%1$I::text AS id, s.distance FROM (%2$s) AS s ORDER BY s.distance, s.%1$I',
                                    c.key_column,
                                    pgembed._statement_text(ARRAY(SELECT jsonb_array_elements_text(prepared -> 'exact')),
                                                            ARRAY['q']))
                USING g.qs[i] LOOP
                nos := nos || g.nos[i];
                ids := ids || r.id;
                dists := dists || r.distance;
            END LOOP;
        END LOOP;
    END LOOP;
    RETURN QUERY SELECT a.no, a.id, a.d FROM unnest(nos, ids, dists) WITH ORDINALITY AS a(no, id, d, o) ORDER BY a.no, a.o;
END $$;
