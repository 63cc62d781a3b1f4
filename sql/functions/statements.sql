-- The statements that run a plan: the one definition of their text. pgembed.search() executes them here;
-- Python gets them from pgembed._prepare_search and executes them with its own binary parameters.
--
-- A statement comes as text[] of pieces: SQL text at odd positions (1, 3, ...), the name of a parameter at
-- even ones, so that each face puts its own placeholders in ($1 here, psycopg's %(name)s in Python) and
-- nothing inside the SQL text can be mistaken for one. Parameters: q (the query vector), qcode (its code, of
-- the plan's code column type); for many queries at once, qs (vector[]) and qcodes (code type[]).
--
--   exact: SELECT key, distance FROM (
--              SELECT key, vector <=> $q AS distance FROM t WHERE <filter> AND vector IS NOT NULL
--              OFFSET 0) AS matching ORDER BY distance, key LIMIT k
--          OFFSET 0 keeps the subquery from being merged, so no HNSW index can serve the ORDER BY and
--          PostgreSQL computes every matching row's distance once (through a B-tree when the filter has one).
--   index: SELECT key, vector <=> $q AS distance FROM (
--              SELECT key, vector FROM t WHERE <settings> AND <filter> ORDER BY code <~> $qcode LIMIT n
--          ) AS candidates ORDER BY distance, key LIMIT k
--          <settings>: pgvector's hnsw.* for this scan, set by the statement itself. An uncorrelated scalar
--          subquery in the candidates' WHERE becomes an InitPlan behind a one-time filter, which PostgreSQL
--          evaluates before it asks the index for its first tuple, and pgvector reads hnsw.* then. Local to
--          the transaction: the caller runs it alone in autocommit, or inside a savepoint rolled back after.
--          It checks first that the plan's codec version is still the active one, else raises
--          (pgembed._codec_in_force).
--   many:  SELECT qs.no, c.key, c.distance FROM unnest($qs, $qcodes) WITH ORDINALITY AS qs(q, qcode, no)
--          CROSS JOIN LATERAL (<index, with qs.q and qs.qcode>) AS c ORDER BY qs.no, c.distance, c.key
--          (index plans only: each query's candidates and re-rank, one statement for all of them.)
--   scan:  the exact plan for many queries in one read of the rows the filter keeps: with the kernels,
--          SELECT pgembed_kernels.exact_topk(key, vector, $qs, k, metric) FROM t WHERE <filter> AND ...;
--          with the twins, <exact, with qs.q> in a LATERAL subquery per query. Same rows, distances and
--          order as `exact` run once per query.
-- k and n are literals, not parameters: a prepared statement's generic plan, not knowing the LIMIT, may pick
-- a worse plan (measured: 3x slower).
-- The statements run in the caller's session, under its search_path: pgvector's operators and types are named
-- by their schema (OPERATOR(public.<=>), public.vector), pg_catalog's by theirs, pgembed's by pgembed, so no
-- schema of the caller's path can put its own in their place (pgembed.statements.search_path).

-- The statements of a plan (pgembed._plan's jsonb) over a compiled WHERE clause, returning `columns` of the
-- table after key and distance. `run`: the plan's statement; `exact`: the exact plan's (the fallback of an
-- index plan that finds fewer than k rows); `many`: run for an array of queries (index plans only);
-- `codec_id`: the codec version whose codes an index plan reads (which encodes the query; NULL for exact).
CREATE OR REPLACE FUNCTION pgembed._search_statements(
    collection_id integer, plan jsonb, clause text, columns text[] DEFAULT '{}',
    OUT run text[], OUT exact text[], OUT many text[], OUT scan text[], OUT codec_id integer)
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    c pgembed.collections;
    tbl text;
    key text;
    v text;
    op text;
    extra text;
    -- The columns beside the vector in a subquery that selects the vector already (asked for, it is there once).
    inner_extra text;
    k integer := (plan ->> 'k')::integer;
    code text;
    code_type text;
    code_op text;
    vector_array constant text := pgembed._qualified_type('vector') || '[]';
    settings text;
    candidates text;
    queries text;
    companion boolean;
    refine_col text;
    rerank boolean;
    codes text;
    stage text[];
    estimate text;
    body text[];
    kept_columns text;
    codes_alias text;
    kept text;
BEGIN
    SELECT * INTO c FROM pgembed.collections AS x WHERE x.id = collection_id;
    tbl := format('%I.%I', c.table_schema, c.table_name);
    key := format('%I', c.key_column);
    v := format('%I', c.vector_column);
    op := pgembed._qualified_operator(pgembed.distance_operator(c.metric));
    extra := pgembed._column_list(tbl::regclass, columns);
    inner_extra := pgembed._column_list(tbl::regclass, array_remove(columns, c.vector_column));

    exact := ARRAY[format('SELECT %s, distance%s FROM (SELECT %s, %s %s ', key, extra, key, v, op), 'q',
                   format(' AS distance%s FROM %s WHERE (%s) AND %s IS NOT NULL OFFSET 0) AS matching '
                          'ORDER BY distance, %s LIMIT %s', extra, tbl, clause, v, key, k)];
    -- The queries' relation and its columns carry pgembed_ names (the relation's changes if the table itself
    -- is so named); every column of the table is found in the subqueries' own FROM first, so a filter or a
    -- key never resolves to them.
    queries := CASE WHEN c.table_name = 'pgembed_queries' THEN 'pgembed_queries_' ELSE 'pgembed_queries' END;
    IF pgembed._kernels_active() THEN
        scan := ARRAY[format('SELECT u.query_no, u.id, u.distance FROM (SELECT pgembed_kernels.exact_topk(%s, %s, ',
                             key, v), 'qs',
                      format('::%s, %s, %L) AS r FROM %s WHERE (%s) AND %s IS NOT NULL) AS %s, '
                             'unnest((%s.r).query_no, (%s.r).id, (%s.r).distance) WITH ORDINALITY AS u(query_no, id, distance, n) '
                             'ORDER BY u.n', vector_array, k, c.metric, tbl, clause, v, queries, queries, queries, queries)];
    ELSE
        scan := ARRAY[format('SELECT %s.pgembed_no::integer AS query_no, c.%s::text AS id, c.distance FROM unnest(', queries, key), 'qs',
                      format('::%8$s) WITH ORDINALITY AS %1$s(pgembed_q, pgembed_no) CROSS JOIN LATERAL ('
                             'SELECT %2$s, distance FROM (SELECT %2$s, %3$s %4$s %1$s.pgembed_q AS distance FROM %5$s '
                             'WHERE (%6$s) AND %3$s IS NOT NULL OFFSET 0) AS matching ORDER BY distance, %2$s LIMIT %7$s) AS c '
                             'ORDER BY %1$s.pgembed_no, c.distance, c.%2$s',
                             queries, key, v, op, tbl, clause, k, vector_array)];
    END IF;
    IF plan ->> 'kind' <> 'index' THEN
        run := exact;
        RETURN;
    END IF;

    code := format('%I', plan ->> 'column');
    SELECT x.id, x.sql_type INTO codec_id, code_type FROM pgembed.codecs AS x
    WHERE x.collection_id = c.id AND x.column_name = plan ->> 'column' AND x.state = 'active';
    IF NOT FOUND THEN
        PERFORM pgembed._codec_in_force(NULL, plan ->> 'column');
    END IF;
    code_op := CASE WHEN split_part(code_type, '(', 1) = 'bit' THEN pgembed._qualified_operator('<~>') ELSE op END;
    code_type := pgembed._qualified_type(code_type);
    -- _codec_in_force's test inline, in the InitPlan that sets hnsw.*: a call of it (PL/pgSQL, its pinned
    -- search_path set and reset around it) cost 5% of an index query; it is called only to raise its error.
    settings := format('(SELECT CASE WHEN EXISTS (SELECT FROM pgembed.codecs AS x WHERE x.id OPERATOR(pg_catalog.=) %s '
                       'AND x.state OPERATOR(pg_catalog.=) ''active'') '
                       'THEN pg_catalog.set_config(''hnsw.ef_search'', %L, true) '
                       'OPERATOR(pg_catalog.||) pg_catalog.set_config(''hnsw.iterative_scan'', %L, true) '
                       'OPERATOR(pg_catalog.||) pg_catalog.set_config(''hnsw.max_scan_tuples'', %L, true) '
                       'ELSE pgembed._codec_in_force(NULL, %L)::pg_catalog.text END) IS NOT NULL',
                       codec_id, plan ->> 'ef_search', plan ->> 'iterative_scan',
                       coalesce(plan ->> 'max_scan_tuples', (SELECT l.min_scan_tuples::text FROM pgembed.planner_limits() AS l)),
                       plan ->> 'column');
    companion := plan ->> 'placement' = 'companion';
    refine_col := plan ->> 'refine_column';
    rerank := coalesce((plan ->> 'rerank')::boolean, true);
    IF NOT companion AND refine_col IS NULL AND rerank THEN
        -- The codes beside the vector: each candidate's heap row carries both.
        candidates := format('FROM %s WHERE %s AND (%s) ORDER BY %s %s ', tbl, settings, clause, code, code_op);
        body := ARRAY[format('SELECT %s, %s %s ', key, v, op), 'q',
                      format(' AS distance%s FROM (SELECT %s, %s%s %s', extra, key, v, inner_extra, candidates), 'qcode',
                      format('::%s LIMIT %s) AS candidates ORDER BY distance, %s LIMIT %s',
                             code_type, plan ->> 'candidates', key, k)];
    ELSE
        -- Stages: coarse candidates (pgembed_key, the refine tier's codes, the coarse estimate), then the refine
        -- tier's best (its estimate), then the exact distance from the user's heap, or the last estimate.
        IF companion THEN
            codes := format('pgembed.%I', 'codes_' || c.id);
            -- Aliases of pgembed's relations, never the user's table's own name (which a filter may qualify).
            codes_alias := CASE WHEN c.table_name = 'pgembed_codes' THEN 'pgembed_codes_' ELSE 'pgembed_codes' END;
            kept := CASE WHEN c.table_name = 'pgembed_kept' THEN 'pgembed_kept_' ELSE 'pgembed_kept' END;
            stage := ARRAY[format('SELECT %1$s.%2$s AS pgembed_key%3$s, %1$s.%4$s %5$s ', codes_alias, key,
                                  CASE WHEN refine_col IS NOT NULL THEN format(', %s.%I AS pgembed_refine', codes_alias, refine_col) ELSE '' END,
                                  code, code_op), 'qcode',
                           format('::%s AS pgembed_estimate FROM %s AS %s WHERE %s AND %s ORDER BY %s.%s %s ',
                                  code_type, codes, codes_alias, settings,
                                  CASE WHEN clause = 'true' THEN 'true'
                                       ELSE format('EXISTS (SELECT 1 FROM %1$s WHERE %1$s.%2$s = %4$s.%2$s AND (%3$s))',
                                                   tbl, key, clause, codes_alias) END,
                                  codes_alias, code, code_op), 'qcode',
                           format('::%s LIMIT %s', code_type, plan ->> 'candidates')];
        ELSE
            stage := ARRAY[format('SELECT %1$s AS pgembed_key, %2$s%3$s%4$s, %5$s %6$s ', key, v, inner_extra,
                                  CASE WHEN refine_col IS NOT NULL THEN format(', %I AS pgembed_refine', refine_col) ELSE '' END,
                                  code, code_op), 'qcode',
                           format('::%s AS pgembed_estimate FROM %s WHERE %s AND (%s) ORDER BY %s %s ',
                                  code_type, tbl, settings, clause, code, code_op), 'qcode',
                           format('::%s LIMIT %s', code_type, plan ->> 'candidates')];
        END IF;
        IF refine_col IS NOT NULL THEN
            -- The query's table for the estimator (or its code, for codes compared as vectors) once per query.
            estimate := CASE WHEN plan ->> 'refine_estimator' IS NOT NULL
                             THEN format('%s(pgembed_coarse.pgembed_refine, pgembed_query.pgembed_table)', plan ->> 'refine_estimator')
                             ELSE format('pgembed_coarse.pgembed_refine %s pgembed_query.pgembed_table', op) END;
            stage := pgembed._wrap(
                         format('SELECT pgembed_coarse.pgembed_key%s, %s AS pgembed_estimate FROM (',
                                CASE WHEN companion THEN '' ELSE
                                    (SELECT string_agg(format(', pgembed_coarse.%I', u.name), '' ORDER BY u.n)
                                     FROM unnest(ARRAY[c.vector_column] || array_remove(columns, c.vector_column))
                                          WITH ORDINALITY AS u(name, n)) END,
                                estimate),
                         stage,
                         format(') AS pgembed_coarse, (SELECT pgembed.%I(%L, ',
                                CASE WHEN plan ->> 'refine_estimator' IS NOT NULL THEN 'query_table_' ELSE 'query_code_' END || c.id,
                                refine_col))
                     || ARRAY['q', format(')%s AS pgembed_table) AS pgembed_query ORDER BY pgembed_estimate, pgembed_coarse.pgembed_key LIMIT %s',
                                          CASE WHEN plan ->> 'refine_estimator' IS NOT NULL THEN ''
                                               ELSE '::' || pgembed._qualified_type(plan ->> 'refine_type') END,
                                          plan ->> 'refine_candidates')];
        END IF;
        kept_columns := (SELECT coalesce(string_agg(format(', pgembed_kept.%I', u.name), '' ORDER BY u.n), '')
                         FROM unnest(columns) WITH ORDINALITY AS u(name, n));
        IF companion AND rerank THEN
            -- The user's rows of the kept keys in one scan, best by the exact distance.
            body := ARRAY[format('SELECT %s, %s %s ', key, v, op), 'q']
                    || pgembed._wrap(format(' AS distance%s FROM %s WHERE %s = ANY (ARRAY(SELECT pgembed_kept.pgembed_key FROM (',
                                            extra, tbl, key),
                                     stage,
                                     format(') AS pgembed_kept)) AND (%s) AND %s IS NOT NULL ORDER BY distance, %s LIMIT %s',
                                            clause, v, key, k));
        ELSIF companion THEN
            -- The user's rows of the best keys by the last estimate: the rows the caller may see, and their columns.
            -- The stages are a CTE read by subqueries only, so the filter's and the key's names resolve to the
            -- user's table alone.
            body := pgembed._wrap(format('WITH %s AS (', kept), stage,
                                  format(') SELECT %1$s, (SELECT %2$s.pgembed_estimate FROM %2$s WHERE %2$s.pgembed_key = %3$s.%1$s) '
                                         'AS distance%4$s FROM %3$s WHERE %1$s = ANY (ARRAY(SELECT %2$s.pgembed_key FROM %2$s)) '
                                         'AND (%5$s) AND %6$s IS NOT NULL ORDER BY distance, %1$s LIMIT %7$s',
                                         key, kept, tbl, extra, clause, v, k));
        ELSIF rerank THEN
            body := ARRAY[format('SELECT pgembed_kept.pgembed_key AS %s, pgembed_kept.%s %s ', key, v, op), 'q']
                    || pgembed._wrap(format(' AS distance%s FROM (', kept_columns), stage,
                                     format(') AS pgembed_kept ORDER BY distance, pgembed_kept.pgembed_key LIMIT %s', k));
        ELSE
            body := pgembed._wrap(format('SELECT pgembed_kept.pgembed_key AS %s, pgembed_kept.pgembed_estimate AS distance%s FROM (',
                                         key, kept_columns),
                                  stage,
                                  format(') AS pgembed_kept ORDER BY distance, pgembed_kept.pgembed_key LIMIT %s', k));
        END IF;
    END IF;
    run := body;
    many := ARRAY[format('SELECT %s.pgembed_no, c.%s, c.distance FROM unnest(', queries, key), 'qs',
                  format('::%s, ', vector_array), 'qcodes',
                  format('::%1$s[]) WITH ORDINALITY AS %2$s(pgembed_q, pgembed_qcode, pgembed_no) CROSS JOIN LATERAL (%3$s) AS c '
                         'ORDER BY %2$s.pgembed_no, c.distance, c.%4$s',
                         code_type, queries,
                         pgembed._pieces_text(body, ARRAY['q', 'qcode'],
                                              ARRAY[queries || '.pgembed_q', queries || '.pgembed_qcode']), key)];
END $$;

-- ", a, b" for columns a and b of table tbl (each qualified by `alias` when given), to follow a statement's key
-- and distance; an error naming the columns the table does not have.
CREATE OR REPLACE FUNCTION pgembed._column_list(tbl regclass, columns text[], alias text DEFAULT NULL) RETURNS text
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    missing text[];
BEGIN
    SELECT array_agg(u.name ORDER BY u.n) INTO missing FROM unnest(columns) WITH ORDINALITY AS u(name, n)
    WHERE NOT EXISTS (SELECT 1 FROM pg_attribute AS a WHERE a.attrelid = tbl AND a.attname = u.name
                      AND a.attnum > 0 AND NOT a.attisdropped);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'table % has no column(s) %', tbl, array_to_string(missing, ', ')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN (SELECT coalesce(string_agg(', ' || CASE WHEN alias IS NULL THEN '' ELSE alias || '.' END
                                       || format('%I', u.name), '' ORDER BY u.n), '')
            FROM unnest(columns) WITH ORDINALITY AS u(name, n));
END $$;

-- True while the codec version codec_id is active, else an ERROR (undefined_column, as for a column that is
-- gone): a plan's index statement checks it once per execution, because a re-fit gives the new version the
-- old one's column names, so a plan cached by a client before it would read the new codes with a query encoded
-- for the old ones. The client plans again on this error (pgembed.engine.search.STALE_PLAN). The statement
-- writes this test inline (_search_statements' settings: keep the two alike) and calls this only to raise.
CREATE OR REPLACE FUNCTION pgembed._codec_in_force(codec_id integer, column_name text) RETURNS boolean
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF codec_id IS NOT NULL AND EXISTS (SELECT 1 FROM pgembed.codecs AS x WHERE x.id = codec_id AND x.state = 'active') THEN
        RETURN true;
    END IF;
    RAISE EXCEPTION 'the codes in column % are no longer those this plan was made for (a re-fit or drop since): plan again',
        quote_ident(column_name) USING ERRCODE = 'undefined_column';
END $$;

-- A statement's pieces joined into text for EXECUTE, each parameter named in `parameters` becoming $n (its
-- position there).
CREATE OR REPLACE FUNCTION pgembed._statement_text(pieces text[], parameters text[]) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT string_agg(CASE WHEN u.n % 2 = 1 THEN u.piece
                                   ELSE '$' || array_position(parameters, u.piece) END, '' ORDER BY u.n)
            FROM unnest(pieces) WITH ORDINALITY AS u(piece, n));

-- A statement's pieces joined into text with each parameter named in `names` replaced by the SQL expression at
-- the same position in `exprs` (a query's columns inside a LATERAL subquery, for many queries at once).
CREATE OR REPLACE FUNCTION pgembed._pieces_text(pieces text[], names text[], exprs text[]) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT string_agg(CASE WHEN u.n % 2 = 1 THEN u.piece
                                   ELSE '(' || exprs[array_position(names, u.piece)] || ')' END, '' ORDER BY u.n)
            FROM unnest(pieces) WITH ORDINALITY AS u(piece, n));

-- `pieces` (text, parameter, text, ...) with `prefix` joined to its first text and `suffix` to its last.
CREATE OR REPLACE FUNCTION pgembed._wrap(prefix text, pieces text[], suffix text) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE WHEN cardinality(pieces) = 1 THEN ARRAY[prefix || pieces[1] || suffix]
                ELSE ARRAY[prefix || pieces[1]] || pieces[2:cardinality(pieces) - 1]
                     || ARRAY[pieces[cardinality(pieces)] || suffix] END;

-- pgvector's schema (where CREATE EXTENSION vector put it).
CREATE OR REPLACE FUNCTION pgembed._vector_schema() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN (SELECT n.nspname::text FROM pg_catalog.pg_extension AS e
            JOIN pg_catalog.pg_namespace AS n ON n.oid = e.extnamespace WHERE e.extname = 'vector');

-- pgvector's operator `op` (<=>, <~>, ...) named by its schema: OPERATOR(public.<=>).
CREATE OR REPLACE FUNCTION pgembed._qualified_operator(op text) RETURNS text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    RETURN format('OPERATOR(%I.%s)', pgembed._vector_schema(), op);

-- A code or vector type as pgembed writes it (vector(384), halfvec(384), bit(768), bytea) named by its schema:
-- pgvector's types by pgvector's, the others by pg_catalog.
CREATE OR REPLACE FUNCTION pgembed._qualified_type(sql_type text) RETURNS text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    RETURN CASE WHEN split_part(sql_type, '(', 1) IN ('vector', 'halfvec', 'sparsevec')
                THEN format('%I.%s', pgembed._vector_schema(), sql_type)
                ELSE 'pg_catalog.' || sql_type END;
