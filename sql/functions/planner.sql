-- The planner of hybrid search: for one query's filter and knobs, exact distances on the rows that match, or
-- coarse candidates from a code column's HNSW index re-ranked exactly, and with which pgvector settings.
-- The one definition of these rules and of their thresholds: Python's search() and search_batch() ask
-- pgembed._prepare_search (sql/functions/search.sql), which calls pgembed._plan, and cache its answer.
--
-- 1. plan 'exact', or no code column with an HNSW index usable for the filter: exact.
-- 2. A filter whose estimated rows are at most exact_max_rows: exact. Computing every matching row's
--    distance is cheaper than an index scan that skips the rows the filter rejects, and it is exact. Unless
--    a partial index's predicate is the whole filter: that index holds exactly the matching rows (rule 3).
-- 3. Otherwise the index plan on one code column: through a partial HNSW index when the filter includes its
--    predicate (pgembed.filter_includes), else through the column's full index. Knobs, by precedence: the
--    caller's ef_search / oversample; for a recall target, the cheapest setting tune() measured to reach it
--    at the nearest tuned selectivity (none: exact, which always does); else defaults by codec. With a
--    filter left to check during the scan, pgvector's iterative scan is on, and may visit scan_safety times
--    the tuples the filter's selectivity says the candidates need.
-- 4. (At execution.) An index plan that returns fewer than k rows is answered again by the exact plan, so k
--    rows come back whenever k rows match.

-- The planner's thresholds and pgvector's limits.
CREATE OR REPLACE FUNCTION pgembed.planner_limits(
    OUT exact_max_rows double precision,  -- docs/benchmarks.md, "Hybrid search": at ~10k rows exact still wins
    OUT min_ef_search integer,            -- pgvector's default; below it HNSW's own recall drops fast
    OUT max_ef_search integer,            -- pgvector's limit
    OUT min_scan_tuples bigint,           -- pgvector's default hnsw.max_scan_tuples
    OUT max_scan_tuples bigint,           -- the largest value pgvector accepts
    OUT scan_safety double precision,
    OUT max_candidates integer,           -- the largest k, and the most candidates a plan fetches
    OUT max_oversample double precision)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 10000::double precision, 40, 1000, 20000::bigint, 2147483647::bigint, 4::double precision, 10000,
           1000::double precision
$$;

-- The search knobs' ranges: an error naming the knob (SQLSTATE 22023) for anything outside them.
CREATE OR REPLACE FUNCTION pgembed.check_search_params(
    k integer, recall double precision, ef_search integer, oversample double precision, plan text,
    refine text DEFAULT NULL, refine_oversample double precision DEFAULT NULL, rerank boolean DEFAULT true)
    RETURNS void LANGUAGE plpgsql STABLE AS $$
DECLARE
    lim record;
BEGIN
    SELECT * INTO lim FROM pgembed.planner_limits();
    IF k IS NULL OR k < 1 OR k > lim.max_candidates THEN
        RAISE EXCEPTION 'k must be an integer between 1 and %, got %', lim.max_candidates, coalesce(k::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF recall IS NOT NULL AND NOT (recall > 0 AND recall <= 1) THEN
        RAISE EXCEPTION 'recall must be in (0, 1], got %', recall USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF ef_search IS NOT NULL AND NOT (ef_search BETWEEN 1 AND lim.max_ef_search) THEN
        RAISE EXCEPTION 'ef_search must be an integer between 1 and %, got %', lim.max_ef_search, ef_search
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF oversample IS NOT NULL AND NOT (oversample BETWEEN 1 AND lim.max_oversample) THEN
        RAISE EXCEPTION 'oversample must be between 1 and %, got %', lim.max_oversample, oversample
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF plan IS NULL OR NOT plan = ANY (pgembed.plan_kinds()) THEN
        RAISE EXCEPTION 'plan must be one of %, got %', array_to_string(pgembed.plan_kinds(), ', '), quote_nullable(plan)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF refine_oversample IS NOT NULL AND NOT (refine_oversample BETWEEN 1 AND lim.max_oversample) THEN
        RAISE EXCEPTION 'refine_oversample must be between 1 and %, got %', lim.max_oversample, refine_oversample
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF refine_oversample IS NOT NULL AND refine IS NULL THEN
        RAISE EXCEPTION 'refine_oversample needs refine, the codec whose codes re-rank the candidates'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF rerank IS NULL THEN
        RAISE EXCEPTION 'rerank must be true or false, got NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

-- Candidates per result when nothing was tuned: coarser codes need more (docs/benchmarks.md). Bit codes of at
-- most 1 bit a dimension: 10; 2 bits: 5; more: 3; a projection to fewer dimensions: 4; float16: 2.
CREATE OR REPLACE FUNCTION pgembed.default_oversample(sql_type text, dim integer) RETURNS double precision
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE
        WHEN split_part(sql_type, '(', 1) = 'bit' THEN
            CASE WHEN rtrim(split_part(sql_type, '(', 2), ')')::integer <= dim THEN 10.0
                 WHEN rtrim(split_part(sql_type, '(', 2), ')')::integer <= 2 * dim THEN 5.0
                 ELSE 3.0 END
        WHEN rtrim(split_part(sql_type, '(', 2), ')')::integer < dim THEN 4.0
        ELSE 2.0 END;

-- The plan, as jsonb (Python: pgembed.planning.plans.Plan). `filter`: the filter in the language when it is
-- one (partial indexes match on it); `filtered`: whether any filter applies (a SQL clause has no jsonb);
-- `estimated_rows` / `total_rows`: the rows the filter keeps and the table holds. `only_index`: plan on that
-- HNSW index alone (tune() measures one index at a time).
CREATE OR REPLACE FUNCTION pgembed._plan(
    collection_id integer, k integer, recall double precision, codec text, ef_search integer,
    oversample double precision, plan text, filter jsonb, filtered boolean, estimated_rows double precision,
    total_rows double precision, only_index text DEFAULT NULL, refine text DEFAULT NULL,
    refine_oversample double precision DEFAULT NULL, rerank boolean DEFAULT true
) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    lim record;
    dim integer;
    n_sources integer;
    n_full integer;
    part record;
    src record;
    residual boolean;
    sel double precision := 1;
    place text;
    tuned_ef integer;
    tuned_over double precision;
    tuned_recall double precision;
    tuned_sel double precision;
    over double precision;
    candidates integer;
    ef integer;
    iterative text := 'off';
    scan bigint;
    base jsonb;
    why text;
    placement text;
    tier record;
    kept integer;
BEGIN
    PERFORM pgembed.check_search_params(k, recall, ef_search, oversample, plan, refine, refine_oversample, rerank);
    SELECT * INTO lim FROM pgembed.planner_limits();
    SELECT c.dim, c.placement INTO dim, placement FROM pgembed.collections AS c WHERE c.id = _plan.collection_id;
    base := jsonb_build_object('k', k, 'placement', placement, 'refine', NULL, 'refine_column', NULL,
        'refine_type', NULL, 'refine_estimator', NULL, 'refine_candidates', NULL, 'rerank', true,
        'estimated_rows', CASE WHEN filtered THEN estimated_rows END,
        'total_rows', total_rows, 'codec', NULL, 'column', NULL, 'index', NULL, 'candidates', NULL,
        'ef_search', NULL, 'oversample', NULL, 'iterative_scan', 'off', 'max_scan_tuples', NULL, 'tuned', false,
        'fallback', false);

    SELECT count(*), count(*) FILTER (WHERE s.predicate IS NULL) INTO n_sources, n_full
    FROM pgembed.search_sources(_plan.collection_id) AS s
    WHERE (_plan.codec IS NULL OR s.name = _plan.codec) AND (only_index IS NULL OR s.index_name = only_index);
    -- The first partial index whose predicate the filter includes. (Run even without a filter: no row
    -- leaves every field of `part` NULL.)
    SELECT s.* INTO part FROM pgembed.search_sources(_plan.collection_id) AS s
    WHERE filtered AND (_plan.codec IS NULL OR s.name = _plan.codec) AND (only_index IS NULL OR s.index_name = only_index)
      AND s.predicate IS NOT NULL AND pgembed.filter_includes(filter, s.predicate)
    ORDER BY s.name, s.index_name LIMIT 1;

    IF _plan.codec IS NOT NULL AND n_sources = 0 AND plan <> 'exact'
       AND NOT EXISTS (SELECT 1 FROM pgembed.codecs AS d WHERE d.collection_id = _plan.collection_id
                       AND d.name = _plan.codec AND d.state = 'active')
       AND EXISTS (SELECT 1 FROM pgembed.codecs AS d WHERE d.collection_id = _plan.collection_id
                   AND d.name = _plan.codec AND d.state = 'building') THEN
        RAISE EXCEPTION 'codec % is still building (its add_codec() was interrupted, or ran with backfill => false): '
            'call backfill() to finish it', quote_literal(_plan.codec) USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF _plan.codec IS NOT NULL AND n_sources = 0 AND plan <> 'exact' THEN
        RAISE EXCEPTION 'codec % has no HNSW index to search: create_index(%)', quote_literal(_plan.codec),
            quote_literal(_plan.codec) USING ERRCODE = 'object_not_in_prerequisite_state';
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
    IF plan = 'auto' AND filtered AND estimated_rows <= lim.exact_max_rows AND (part.index_name IS NULL OR residual) THEN
        RETURN base || jsonb_build_object('kind', 'exact',
            'reason', format('the filter matches about %s rows (<= %s)', round(estimated_rows), lim.exact_max_rows));
    END IF;
    IF part.index_name IS NOT NULL THEN
        -- The partial index holds only rows of its predicate: what is left to filter is the rest of the filter.
        IF residual AND part.index_rows > 0 THEN
            sel := least(1.0, greatest(estimated_rows, 1.0) / part.index_rows);
        END IF;
        place := format('partial index %s', part.index_name);
    ELSE
        residual := filtered;
        IF filtered AND total_rows > 0 THEN
            sel := least(1.0, greatest(estimated_rows, 1.0) / total_rows);
        END IF;
        place := 'HNSW';
    END IF;

    IF _plan.ef_search IS NULL AND _plan.oversample IS NULL AND recall IS NOT NULL THEN
        -- Per source, the cheapest tuned setting reaching the target (a partial index's own tuning when it has
        -- some, else its codec's); then the source whose setting measured fastest. A setting serves only what
        -- it was measured on: an unfiltered search the unfiltered tuning; a filtered one the tuning of the
        -- nearest selectivity at or below its own (a stronger filter, which needs more candidates, not fewer).
        -- Anything else takes the exact plan: a knob tuned for another selectivity promises nothing here.
        SELECT s.*, t.ef_search AS t_ef, t.oversample AS t_over, t.recall_target AS t_recall, t.selectivity AS t_sel
        INTO src
        FROM pgembed.search_sources(_plan.collection_id) AS s
        CROSS JOIN LATERAL (
            SELECT u.* FROM pgembed.tuning AS u
            WHERE u.codec_id = s.codec_id AND u.recall_target >= recall - 1e-9
              AND u.index_name = CASE WHEN s.predicate IS NOT NULL AND EXISTS (
                      SELECT 1 FROM pgembed.tuning AS o WHERE o.codec_id = s.codec_id AND o.index_name = s.index_name)
                  THEN s.index_name ELSE '' END
              AND CASE WHEN sel >= 1 - 1e-9 THEN u.selectivity >= 1 - 1e-9
                       ELSE u.selectivity < 1 - 1e-9 AND u.selectivity <= sel + 1e-9 END
            ORDER BY u.selectivity DESC, u.oversample, u.ef_search
            LIMIT 1) AS t
        WHERE (_plan.codec IS NULL OR s.name = _plan.codec) AND (only_index IS NULL OR s.index_name = only_index)
          AND CASE WHEN part.index_name IS NULL THEN s.predicate IS NULL ELSE s.index_name = part.index_name END
        ORDER BY coalesce(t.queries_per_s, 0) DESC, t.oversample, s.name
        LIMIT 1;
        IF NOT FOUND THEN
            IF plan = 'index' THEN
                RAISE EXCEPTION 'no tuning reaches recall %: run tune(recall=%) first', recall, recall
                    USING ERRCODE = 'object_not_in_prerequisite_state';
            END IF;
            RETURN base || jsonb_build_object('kind', 'exact',
                'reason', format('no setting tuned at this selectivity (%s) or a stronger filter reaches recall '
                                 '%s: the exact plan always does', round(sel::numeric, 4), recall));
        END IF;
        tuned_ef := src.t_ef;
        tuned_over := src.t_over;
        tuned_recall := src.t_recall;
        tuned_sel := src.t_sel;
    ELSE
        SELECT s.* INTO src FROM pgembed.search_sources(_plan.collection_id) AS s
        WHERE (_plan.codec IS NULL OR s.name = _plan.codec) AND (only_index IS NULL OR s.index_name = only_index)
          AND CASE WHEN part.index_name IS NULL THEN s.predicate IS NULL ELSE s.index_name = part.index_name END
        ORDER BY s.name, s.index_name LIMIT 1;
    END IF;

    over := coalesce(_plan.oversample, tuned_over, pgembed.default_oversample(src.sql_type, dim));
    candidates := least(lim.max_candidates, greatest(k, ceil(k * over)::integer));
    ef := least(lim.max_ef_search, greatest(coalesce(_plan.ef_search, tuned_ef, lim.min_ef_search), candidates));
    IF residual OR candidates > ef THEN
        iterative := 'relaxed_order';
        scan := least(lim.max_scan_tuples, greatest(lim.min_scan_tuples, ceil(lim.scan_safety * candidates / sel)::bigint));
    END IF;
    -- The stages after the coarse codes: a compact tier keeps refine_candidates of them by its own codes (its
    -- estimator, or its vectors' distance), and the exact re-rank, unless asked not to, orders what is left
    -- by the true distance.
    IF refine IS NOT NULL THEN
        SELECT x.column_name, x.sql_type, x.estimator INTO tier FROM pgembed.codecs AS x
        WHERE x.collection_id = _plan.collection_id AND x.name = refine AND x.state = 'active';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'refine: collection has no active codec %', quote_literal(refine)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF (tier.estimator IS NULL AND split_part(tier.sql_type, '(', 1) NOT IN ('vector', 'halfvec'))
           OR tier.estimator = 'pgembed.rabitq_distance' THEN  -- RaBitQ's also needs its factors' column
            RAISE EXCEPTION 'refine: codec % has no distance estimator to re-rank with', quote_literal(refine)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        kept := least(candidates, greatest(k, ceil(k * coalesce(refine_oversample, CASE WHEN rerank THEN 2 ELSE 1 END))::integer));
        base := base || jsonb_build_object('refine', refine, 'refine_column', tier.column_name,
            'refine_type', tier.sql_type, 'refine_estimator', tier.estimator, 'refine_candidates', kept);
    END IF;
    base := base || jsonb_build_object('rerank', rerank);
    why := CASE WHEN tuned_over IS NOT NULL THEN format('tuned for recall %s at selectivity %s', tuned_recall, tuned_sel)
                WHEN _plan.ef_search IS NOT NULL OR _plan.oversample IS NOT NULL THEN 'knobs given'
                ELSE 'default knobs (not tuned)' END;
    RETURN base || jsonb_build_object('kind', 'index',
        'reason', format('%s %s, selectivity ~%s; %s', src.name, place, round(sel::numeric, 4), why),
        'codec', src.name, 'column', src.column_name, 'index', src.index_name, 'candidates', candidates,
        'ef_search', ef, 'oversample', over, 'iterative_scan', iterative, 'max_scan_tuples', scan,
        'tuned', tuned_over IS NOT NULL);
END $$;
