-- pgembed catalog, version 3: tuning results (recall targets -> search knobs) and pgembed.search().

-- What collection.tune(recall=...) measured: per codec (and per partial index: index_name; '' for the
-- codec's full index) and filter selectivity, the cheapest knobs that reached the recall target.
CREATE TABLE pgembed.tuning (
    collection_id   integer          NOT NULL REFERENCES pgembed.collections (id) ON DELETE CASCADE,
    codec_id        integer          NOT NULL REFERENCES pgembed.codecs (id) ON DELETE CASCADE,
    index_name      text             NOT NULL DEFAULT '',
    recall_target   double precision NOT NULL CHECK (recall_target > 0 AND recall_target <= 1),
    selectivity     double precision NOT NULL CHECK (selectivity > 0 AND selectivity <= 1),
    ef_search       integer          NOT NULL CHECK (ef_search BETWEEN 1 AND 1000),
    oversample      double precision NOT NULL CHECK (oversample >= 1),
    measured_recall double precision NOT NULL,
    queries_per_s   double precision,
    sample_queries  integer          NOT NULL,
    tuned_at        timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (collection_id, codec_id, index_name, recall_target, selectivity)
);
GRANT SELECT ON pgembed.tuning TO PUBLIC;

-- A partial index (collection.create_index(..., where=filter)) keeps its predicate, in the filter language.
ALTER TABLE pgembed.indexes ADD COLUMN predicate jsonb CHECK (jsonb_typeof(predicate) = 'object');

-- HNSW indexes on active code columns: where candidates can come from (Python reads the same function).
-- index_rows: the index's own row count estimate (what a partial index holds).
CREATE FUNCTION pgembed.search_sources(collection_id integer)
    RETURNS TABLE (codec_id integer, name text, column_name text, sql_type text, index_name text,
                   predicate jsonb, index_rows double precision)
    LANGUAGE sql STABLE AS $$
    SELECT x.id, x.name, x.column_name, x.sql_type, i.index_name, i.predicate,
           greatest(coalesce(r.reltuples, 0), 0)::double precision
    FROM pgembed.codecs x
    JOIN pgembed.indexes i ON i.codec_id = x.id AND i.method = 'hnsw'
    JOIN pgembed.collections c ON c.id = x.collection_id
    LEFT JOIN pg_class r ON r.oid = to_regclass(format('%I.%I', c.table_schema, i.index_name))
    WHERE x.collection_id = search_sources.collection_id AND x.state = 'active'
    ORDER BY x.name, i.index_name
$$;

-- Does a filter include a partial index's predicate? Each of the predicate's top-level entries must appear
-- in the filter unchanged (then the filter implies the predicate, and PostgreSQL can use the index).
CREATE FUNCTION pgembed.filter_includes(filter jsonb, predicate jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN jsonb_typeof(filter) = 'object' AND jsonb_typeof(predicate) = 'object'
        AND NOT EXISTS (SELECT 1 FROM jsonb_each(predicate) AS e
                        WHERE NOT (filter ? e.key) OR filter -> e.key <> e.value);

-- The planner of pgembed/plan.py, for the same inputs: tests hold the two to the same choices. Returns
-- the plan as jsonb with Plan.describe()'s keys.
CREATE FUNCTION pgembed.search_plan(
    collection text, query vector, k integer DEFAULT 10, filter jsonb DEFAULT NULL,
    recall double precision DEFAULT NULL, codec text DEFAULT NULL, ef_search integer DEFAULT NULL,
    oversample double precision DEFAULT NULL, plan text DEFAULT 'auto'
) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    -- Constants of pgembed/plan.py.
    exact_max_rows  constant double precision := 10000;
    min_ef          constant integer := 40;
    max_ef          constant integer := 1000;
    min_scan        constant bigint := 20000;   -- max: 2^31 - 1, pgvector's limit
    scan_safety     constant double precision := 4;
    max_candidates  constant integer := 10000;
    c pgembed.collections;
    tbl regclass;
    clause text;
    filtered boolean;
    est double precision;
    total double precision;
    sel double precision := 1;
    src record;
    n_sources integer;
    n_full integer;
    part record;
    residual boolean;
    place text;
    over double precision;
    tuned_ef integer;
    tuned_over double precision;
    tuned_recall double precision;
    tuned_sel double precision;
    candidates integer;
    ef integer;
    iterative text := 'off';
    scan bigint;
    base jsonb;
    why text;
BEGIN
    SELECT * INTO c FROM pgembed.collections AS x WHERE x.name = collection;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no collection named %', quote_literal(collection) USING ERRCODE = 'undefined_object';
    END IF;
    IF k IS NULL OR k < 1 OR k > max_candidates THEN
        RAISE EXCEPTION 'k must be an integer between 1 and %, got %', max_candidates, k
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF recall IS NOT NULL AND NOT (recall > 0 AND recall <= 1) THEN
        RAISE EXCEPTION 'recall must be in (0, 1], got %', recall USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF ef_search IS NOT NULL AND NOT (ef_search BETWEEN 1 AND max_ef) THEN
        RAISE EXCEPTION 'ef_search must be an integer between 1 and %, got %', max_ef, ef_search
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF oversample IS NOT NULL AND NOT (oversample BETWEEN 1 AND 1000) THEN
        RAISE EXCEPTION 'oversample must be between 1 and 1000, got %', oversample
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF plan IS NULL OR plan NOT IN ('auto', 'exact', 'index') THEN
        RAISE EXCEPTION 'plan must be one of auto, exact, index, got %', quote_nullable(plan)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF query IS NULL THEN
        RAISE EXCEPTION 'query vector is NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF c.metric = 'cosine' AND vector_norm(query) = 0 THEN
        RAISE EXCEPTION 'query is all zeros: cosine distance is undefined' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF vector_dims(query) <> c.dim THEN
        RAISE EXCEPTION 'query has % dimensions, collection % has %', vector_dims(query), quote_literal(collection),
            c.dim USING ERRCODE = 'invalid_parameter_value';
    END IF;

    tbl := format('%I.%I', c.table_schema, c.table_name)::regclass;
    clause := pgembed.filter_sql(tbl, filter);
    filtered := clause <> 'true';
    IF filtered THEN
        EXECUTE format('EXPLAIN (FORMAT JSON) SELECT 1 FROM %s WHERE %s', tbl, clause) INTO base;
        est := (base -> 0 -> 'Plan' ->> 'Plan Rows')::double precision;
    END IF;
    SELECT greatest(reltuples, 0) INTO total FROM pg_class WHERE oid = tbl;
    IF total = 0 THEN  -- never analysed (reltuples -1): count, as pgembed/search.py does
        EXECUTE format('SELECT count(*) FROM %s', tbl) INTO total;
    END IF;
    base := jsonb_build_object('k', k, 'estimated_rows', est, 'total_rows', total, 'codec', NULL, 'column', NULL,
        'index', NULL, 'candidates', NULL, 'ef_search', NULL, 'oversample', NULL, 'iterative_scan', 'off',
        'max_scan_tuples', NULL, 'tuned', false, 'fallback', false);

    SELECT count(*) INTO n_sources FROM pgembed.search_sources(c.id) AS s
    WHERE search_plan.codec IS NULL OR s.name = search_plan.codec;
    SELECT count(*) INTO n_full FROM pgembed.search_sources(c.id) AS s
    WHERE (search_plan.codec IS NULL OR s.name = search_plan.codec) AND s.predicate IS NULL;
    -- (Run even without a filter: no row leaves every field of `part` NULL.)
    SELECT s.* INTO part FROM pgembed.search_sources(c.id) AS s
    WHERE filtered AND (search_plan.codec IS NULL OR s.name = search_plan.codec) AND s.predicate IS NOT NULL
      AND pgembed.filter_includes(filter, s.predicate)
    ORDER BY s.name, s.index_name LIMIT 1;

    IF search_plan.codec IS NOT NULL AND n_sources = 0 AND plan <> 'exact' THEN
        RAISE EXCEPTION 'codec % has no HNSW index to search: create_index(%)', quote_literal(search_plan.codec),
            quote_literal(search_plan.codec) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF plan = 'exact' THEN
        RETURN base || jsonb_build_object('kind', 'exact', 'reason', 'asked for');
    END IF;
    IF n_full = 0 AND part.index_name IS NULL THEN
        RETURN base || jsonb_build_object('kind', 'exact', 'reason', 'no code column has an HNSW index for this filter');
    END IF;
    -- A partial index whose predicate is the whole filter holds exactly the matching rows: searching it
    -- beats computing all their distances, however few they are.
    residual := part.index_name IS NOT NULL
        AND EXISTS (SELECT 1 FROM jsonb_object_keys(filter) AS f(key) WHERE NOT part.predicate ? f.key);
    IF plan = 'auto' AND filtered AND est <= exact_max_rows AND (part.index_name IS NULL OR residual) THEN
        RETURN base || jsonb_build_object('kind', 'exact',
            'reason', format('the filter matches about %s rows (<= %s)', round(est), exact_max_rows));
    END IF;
    IF part.index_name IS NOT NULL THEN
        -- The partial index holds only rows of its predicate: what is left to filter is the rest of the filter.
        IF residual AND part.index_rows > 0 THEN
            sel := least(1.0, greatest(est, 1.0) / part.index_rows);
        END IF;
        place := format('partial index %s', part.index_name);
    ELSE
        residual := filtered;
        IF filtered AND total > 0 THEN
            sel := least(1.0, greatest(est, 1.0) / total);
        END IF;
        place := 'HNSW';
    END IF;

    IF search_plan.ef_search IS NULL AND search_plan.oversample IS NULL AND recall IS NOT NULL THEN
        -- Per source, the cheapest tuned setting reaching the target at the nearest tuned selectivity;
        -- then the source whose setting measured fastest.
        SELECT s.*, t.ef_search AS t_ef, t.oversample AS t_over, t.recall_target AS t_recall, t.selectivity AS t_sel
        INTO src
        FROM pgembed.search_sources(c.id) AS s
        CROSS JOIN LATERAL (
            SELECT u.* FROM pgembed.tuning u
            WHERE u.codec_id = s.codec_id AND u.recall_target >= recall - 1e-9
              -- a partial index's own tuning when it has some, else its codec's (pgembed/search.py)
              AND u.index_name = CASE WHEN s.predicate IS NOT NULL AND EXISTS (
                      SELECT 1 FROM pgembed.tuning o WHERE o.codec_id = s.codec_id AND o.index_name = s.index_name)
                  THEN s.index_name ELSE '' END
            ORDER BY round((abs(ln(u.selectivity) - ln(sel)))::numeric, 9), u.oversample, u.ef_search
            LIMIT 1) t
        WHERE (search_plan.codec IS NULL OR s.name = search_plan.codec)
          AND CASE WHEN part.index_name IS NULL THEN s.predicate IS NULL ELSE s.index_name = part.index_name END
        ORDER BY coalesce(t.queries_per_s, 0) DESC, t.oversample, s.name
        LIMIT 1;
        IF NOT FOUND THEN
            IF plan = 'index' THEN
                RAISE EXCEPTION 'no tuning reaches recall %: run tune(recall=%) first', recall, recall
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            RETURN base || jsonb_build_object('kind', 'exact',
                'reason', format('no tuned setting reaches recall %s: the exact plan always does', recall));
        END IF;
        tuned_ef := src.t_ef;
        tuned_over := src.t_over;
        tuned_recall := src.t_recall;
        tuned_sel := src.t_sel;
    ELSE
        SELECT s.* INTO src FROM pgembed.search_sources(c.id) AS s
        WHERE (search_plan.codec IS NULL OR s.name = search_plan.codec)
          AND CASE WHEN part.index_name IS NULL THEN s.predicate IS NULL ELSE s.index_name = part.index_name END
        ORDER BY s.name, s.index_name LIMIT 1;
    END IF;

    over := coalesce(search_plan.oversample, tuned_over, pgembed.default_oversample(src.sql_type, c.dim));
    candidates := least(max_candidates, greatest(k, ceil(k * over)::integer));
    ef := least(max_ef, greatest(coalesce(search_plan.ef_search, tuned_ef, min_ef), candidates));
    IF residual OR candidates > ef THEN
        iterative := 'relaxed_order';
        scan := least(2147483647, greatest(min_scan, ceil(scan_safety * candidates / sel)::bigint));
    END IF;
    why := CASE WHEN tuned_over IS NOT NULL THEN format('tuned for recall %s at selectivity %s', tuned_recall, tuned_sel)
                WHEN search_plan.ef_search IS NOT NULL OR search_plan.oversample IS NOT NULL THEN 'knobs given'
                ELSE 'default knobs (not tuned)' END;
    RETURN base || jsonb_build_object('kind', 'index',
        'reason', format('%s %s, selectivity ~%s; %s', src.name, place, round(sel::numeric, 4), why),
        'codec', src.name, 'column', src.column_name, 'index', src.index_name, 'candidates', candidates,
        'ef_search', ef, 'oversample', over, 'iterative_scan', iterative, 'max_scan_tuples', scan,
        'tuned', tuned_over IS NOT NULL);
END $$;

-- Candidates per result when nothing was tuned (pgembed/plan.py: CoarseSource.default_oversample).
CREATE FUNCTION pgembed.default_oversample(sql_type text, dim integer) RETURNS double precision
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE
        WHEN split_part(sql_type, '(', 1) = 'bit' THEN
            CASE WHEN rtrim(split_part(sql_type, '(', 2), ')')::integer <= dim THEN 10.0
                 WHEN rtrim(split_part(sql_type, '(', 2), ')')::integer <= 2 * dim THEN 5.0
                 ELSE 3.0 END
        WHEN rtrim(split_part(sql_type, '(', 2), ')')::integer < dim THEN 4.0
        ELSE 2.0 END;

-- Hybrid search from any SQL client: the k rows of the collection nearest to `query` among those `filter`
-- keeps, with exact distances (the collection's metric), best first. Same plans, same answers as the
-- Python API's Collection.search(); keys come back as text (join with  t.id::text = s.id, or cast s.id).
CREATE FUNCTION pgembed.search(
    collection text, query vector, k integer DEFAULT 10, filter jsonb DEFAULT NULL,
    recall double precision DEFAULT NULL, codec text DEFAULT NULL, ef_search integer DEFAULT NULL,
    oversample double precision DEFAULT NULL, plan text DEFAULT 'auto'
) RETURNS TABLE (id text, distance double precision) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    p jsonb;
    c pgembed.collections;
    tbl regclass;
    clause text;
    op text;
    code_op text;
    code_type text;
    qcode text;
    ids text[];
    dists double precision[];
    saved text[];
    names constant text[] := ARRAY['hnsw.ef_search', 'hnsw.iterative_scan', 'hnsw.max_scan_tuples'];
BEGIN
    p := pgembed.search_plan(collection, query, k, filter, recall, codec, ef_search, oversample, plan);
    SELECT * INTO c FROM pgembed.collections AS x WHERE x.name = collection;
    tbl := format('%I.%I', c.table_schema, c.table_name)::regclass;
    clause := pgembed.filter_sql(tbl, filter);
    op := CASE c.metric WHEN 'cosine' THEN '<=>' WHEN 'ip' THEN '<#>' ELSE '<->' END;

    IF p ->> 'kind' = 'index' THEN
        SELECT x.sql_type INTO code_type FROM pgembed.codecs x
        WHERE x.collection_id = c.id AND x.column_name = p ->> 'column';
        code_op := CASE WHEN split_part(code_type, '(', 1) = 'bit' THEN '<~>' ELSE op END;
        IF to_regprocedure(format('pgembed.%I(text, vector)', 'query_code_' || c.id)) IS NULL THEN
            RAISE EXCEPTION 'collection % has no query encoder (its codecs predate catalog 0003): run `pgembed migrate`, which installs it',
                quote_literal(collection) USING ERRCODE = 'undefined_function';
        END IF;
        EXECUTE format('SELECT pgembed.%I($1, $2)', 'query_code_' || c.id) INTO qcode USING p ->> 'column', query;
        -- The pgvector settings are set by the statement itself, as pgembed/search.py's STATEMENT_SETTINGS
        -- does (same statement shape, same scan), then put back: set_config(..., true) would otherwise
        -- last until the caller's transaction ends.
        saved := ARRAY[current_setting(names[1], true), current_setting(names[2], true), current_setting(names[3], true)];
        EXECUTE format(
            'SELECT array_agg(key::text ORDER BY distance, key), array_agg(distance ORDER BY distance, key) FROM ('
            'SELECT %1$I AS key, %2$I %3$s $1 AS distance FROM ('
            'SELECT %1$I, %2$I FROM %4$s WHERE (SELECT set_config(''hnsw.ef_search'', $5, true) '
            '|| set_config(''hnsw.iterative_scan'', $6, true) || set_config(''hnsw.max_scan_tuples'', $7, true)) '
            'IS NOT NULL AND (%5$s) ORDER BY %6$I %7$s $2::%8$s LIMIT $3) AS candidates '
            'ORDER BY distance, key LIMIT $4) AS hits',
            c.key_column, c.vector_column, op, tbl, clause, p ->> 'column', code_op, code_type)
            INTO ids, dists
            USING query, qcode, (p ->> 'candidates')::integer, k, p ->> 'ef_search', p ->> 'iterative_scan',
                  coalesce(p ->> 'max_scan_tuples', '20000');
        FOR i IN 1 .. 3 LOOP
            IF saved[i] IS NOT NULL THEN
                PERFORM set_config(names[i], saved[i], true);
            END IF;
        END LOOP;
        IF coalesce(cardinality(ids), 0) >= k THEN
            RETURN QUERY SELECT u.id, u.distance FROM unnest(ids, dists) WITH ORDINALITY AS u(id, distance, n) ORDER BY u.n;
            RETURN;
        END IF;
    END IF;
    EXECUTE format(
        'SELECT array_agg(key::text ORDER BY distance, key), array_agg(distance ORDER BY distance, key) FROM ('
        'SELECT key, distance FROM (SELECT %1$I AS key, %2$I %3$s $1 AS distance FROM %4$s '
        'WHERE (%5$s) AND %2$I IS NOT NULL OFFSET 0) AS matching ORDER BY distance, key LIMIT $2) AS hits',
        c.key_column, c.vector_column, op, tbl, clause)
        INTO ids, dists USING query, k;
    RETURN QUERY SELECT u.id, u.distance FROM unnest(ids, dists) WITH ORDINALITY AS u(id, distance, n) ORDER BY u.n;
END $$;

GRANT EXECUTE ON FUNCTION pgembed.search_sources(integer) TO PUBLIC;
GRANT EXECUTE ON FUNCTION pgembed.search_plan(text, vector, integer, jsonb, double precision, text, integer,
    double precision, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION pgembed.search(text, vector, integer, jsonb, double precision, text, integer,
    double precision, text) TO PUBLIC;
