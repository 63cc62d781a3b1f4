-- The stages after the candidates: diversity by maximal marginal relevance (Carbonell and Goldstein, SIGIR 1998),
-- and a relevance cut-off by a query-adaptive map of distance to relevance (pgembed/relevance.py fits it).

-- How many rows a stage before the last holds for k results, where the caller does not say: the fusion's
-- lists (sql/functions/text.sql) and the candidates diversity chooses from.
CREATE OR REPLACE FUNCTION pgembed.stage_depth(k integer) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN least(greatest(3 * k, 30), 10000);

-- A stage's depth for k results: `depth` as the caller gave it (at least k, so k rows can come back), else
-- stage_depth(k). `knob` names it in the error.
CREATE OR REPLACE FUNCTION pgembed._stage_depth(depth integer, k integer, knob text) RETURNS integer
    LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF depth IS NOT NULL AND depth < k THEN
        RAISE EXCEPTION '% must be at least k (%), got %', knob, k, depth USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN coalesce(depth, pgembed.stage_depth(k));
END $$;

-- Maximal marginal relevance: from `vectors` (candidates, best first), k chosen one at a time, each the
-- candidate that maximises lambda * sim(query, d) - (1 - lambda) * max over the chosen c of sim(d, c), where
-- sim is minus the metric's distance (for cosine that is the cosine up to a constant, which leaves the choice
-- unchanged). lambda 1 keeps the candidates' order by similarity; 0 takes the one most unlike those chosen.
-- Ties go to the earlier candidate. Returns the chosen candidates' subscripts (from 1), in the order chosen.
CREATE OR REPLACE FUNCTION pgembed.mmr(query vector, vectors vector[], k integer, lambda double precision,
                                       metric text DEFAULT 'cosine') RETURNS integer[]
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    n integer := coalesce(cardinality(vectors), 0);
    op text;
    -- Distances from a vector ($1) to every candidate ($2), in the candidates' order.
    to_all text;
    relevance double precision[];
    -- Up to matrix_max candidates, every pair's similarity in one statement (row-major, n x n): a statement a
    -- chosen candidate cost ~1 ms of PL/pgSQL each; above it, one row a chosen candidate (n x n would not fit).
    matrix_max constant integer := 256;
    similarities double precision[];
    redundancy double precision[];
    against double precision[];
    taken boolean[];
    chosen integer[] := '{}';
    best integer;
    best_score double precision;
    score double precision;
BEGIN
    IF lambda IS NULL OR NOT (lambda BETWEEN 0 AND 1) THEN
        RAISE EXCEPTION 'diversity (MMR''s lambda) must be between 0 and 1, got %', quote_nullable(lambda)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF k IS NULL OR k < 1 THEN
        RAISE EXCEPTION 'k must be at least 1, got %', quote_nullable(k) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF query IS NULL OR array_position(vectors, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'mmr needs a query and candidate vectors, not NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n = 0 THEN
        RETURN chosen;
    END IF;
    op := pgembed._qualified_operator(pgembed.distance_operator(metric));
    to_all := format('SELECT array_agg(-(u.v %s $1) ORDER BY u.i) FROM unnest($2) WITH ORDINALITY AS u(v, i)', op);
    EXECUTE to_all INTO relevance USING query, vectors;
    IF n <= matrix_max THEN
        EXECUTE format('SELECT array_agg(-(a.v %s b.v) ORDER BY a.i, b.i) FROM unnest($1) WITH ORDINALITY AS a(v, i), '
                       'unnest($1) WITH ORDINALITY AS b(v, i)', op) INTO similarities USING vectors;
    END IF;
    redundancy := array_fill(0::double precision, ARRAY[n]);
    taken := array_fill(false, ARRAY[n]);
    FOR step IN 1 .. least(k, n) LOOP
        best := NULL;
        FOR i IN 1 .. n LOOP
            CONTINUE WHEN taken[i];
            score := lambda * relevance[i] - (1 - lambda) * redundancy[i];
            IF best IS NULL OR score > best_score THEN
                best := i;
                best_score := score;
            END IF;
        END LOOP;
        chosen := chosen || best;
        taken[best] := true;
        IF similarities IS NOT NULL THEN
            against := similarities[(best - 1) * n + 1 : best * n];
        ELSE
            EXECUTE to_all INTO against USING vectors[best], vectors;
        END IF;
        FOR i IN 1 .. n LOOP
            -- The first chosen sets every candidate's redundancy; later ones raise it.
            redundancy[i] := CASE WHEN step = 1 THEN against[i] ELSE greatest(redundancy[i], against[i]) END;
        END LOOP;
    END LOOP;
    RETURN chosen;
END $$;

-- MMR over rows of collection collection_id given by their keys, best first (any array of keys: text, or the
-- key's type): their vectors are read here, so a client sends keys, not vectors. Returns the chosen keys'
-- subscripts in `keys`, in the order chosen; a row deleted since is left out of the candidates.
CREATE OR REPLACE FUNCTION pgembed._mmr_of_rows(collection_id integer, query vector, keys anyarray, k integer,
                                                lambda double precision) RETURNS integer[]
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    c pgembed.collections;
    present integer[];
    vectors vector[];
BEGIN
    SELECT * INTO c FROM pgembed.collections AS x WHERE x.id = collection_id;
    EXECUTE format('SELECT array_agg(s.n::pg_catalog.int4 ORDER BY s.n), array_agg(t.%1$I ORDER BY s.n) '
                   'FROM unnest($1) WITH ORDINALITY AS s(id, n) JOIN %2$I.%3$I AS t ON t.%4$I = s.id::%5$s',
                   c.vector_column, c.table_schema, c.table_name, c.key_column,
                   (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute AS a
                    WHERE a.attrelid = format('%I.%I', c.table_schema, c.table_name)::regclass
                      AND a.attname = c.key_column))
        INTO present, vectors USING keys;
    RETURN ARRAY(SELECT present[u.p] FROM unnest(pgembed.mmr(query, vectors, k, lambda, c.metric))
                 WITH ORDINALITY AS u(p, n) ORDER BY u.n);
END $$;

-- The relevance of rows at `distances` from `query` under relevance model model_id (pgembed/relevance.py, which
-- evaluates the same formula): sigmoid(b - a * d), a = softplus(w_a . q + c_a), b = w_b . q + c_b, z clamped
-- to [-60, 60].
CREATE OR REPLACE FUNCTION pgembed._relevance(model_id integer, query vector, distances double precision[])
    RETURNS double precision[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    m pgembed.relevance_models;
    u double precision;
    a double precision;
    b double precision;
BEGIN
    SELECT * INTO m FROM pgembed.relevance_models AS x WHERE x.id = model_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no relevance model with id %', model_id USING ERRCODE = 'undefined_object';
    END IF;
    IF query IS NULL OR vector_dims(query) <> cardinality(m.w_a) THEN
        RAISE EXCEPTION 'relevance model % takes queries of % dimensions, got %', model_id, cardinality(m.w_a),
            coalesce(vector_dims(query)::text, 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT sum(t.x * t.wa), sum(t.x * t.wb) INTO u, b
    FROM unnest(query::real[]::double precision[], m.w_a, m.w_b) AS t(x, wa, wb);
    u := u + m.c_a;
    a := CASE WHEN u > 30 THEN u ELSE ln(1 + exp(u)) END;
    b := b + m.c_b;
    RETURN ARRAY(SELECT 1 / (1 + exp(-greatest(-60, least(60, b - a * r.d))))
                 FROM unnest(distances) WITH ORDINALITY AS r(d, n) ORDER BY r.n);
END $$;

-- The relevance of rows at `distances` from `query`, by the collection's active relevance model.
CREATE OR REPLACE FUNCTION pgembed.relevance(collection text, query vector, distances double precision[])
    RETURNS double precision[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    c pgembed.collections := pgembed._collection(collection);
    model_id integer;
BEGIN
    SELECT x.id INTO model_id FROM pgembed.relevance_models AS x WHERE x.collection_id = c.id AND x.state = 'active';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'collection % has no relevance model: fit one first (fit_relevance)', quote_literal(collection)
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN pgembed._relevance(model_id, query, distances);
END $$;
