-- Distance estimators from compact codes, for ranking candidates inside SQL (ORDER BY): a query is made once
-- into a table (float8[]), then each code costs one sum of table entries. The twins of pgembed_kernels'
-- estimators (kernels/src/estimators.c), which return the same floats for every input.
--
-- Table format (version 1), 1-based:
--   [1] tag: 1 a byte table, 2 int8 weights    [2] format version    [3] metric (1 l2, 2 ip, 3 cosine)
--   [4] n: code bytes (byte tables) or dimensions (int8)    [5..7] units u1..u3 (one integer step of each part)
--   [8..10] constants c0..c2    [11] kind of byte table (1 pq, 2 bits, 3 rabitq)
--   [12] pq: centroids; bits, rabitq: code bits
-- then the entries: a byte table, 256 a code byte; int8 weights, three runs of n (w, u, v).
-- Entries are integers (at most 2^24 in a byte table, 2^20 as weights), so their sums are exact in float8 in
-- any order; every entry a distance uses is checked to be one.

CREATE OR REPLACE FUNCTION pgembed_twins._metric_code(metric text) RETURNS integer
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN CASE metric WHEN 'l2' THEN 1 WHEN 'ip' THEN 2 WHEN 'cosine' THEN 3
        ELSE pgembed_twins._raise_metric(metric) END;
END $$;

CREATE OR REPLACE FUNCTION pgembed_twins._raise_metric(metric text) RETURNS integer
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RAISE EXCEPTION 'unknown metric "%": cosine, ip or l2', metric USING ERRCODE = 'invalid_parameter_value';
END $$;

CREATE OR REPLACE FUNCTION pgembed_twins._table_name(tag double precision, kind double precision) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE WHEN tag = 2 THEN 'sq8_query' WHEN kind = 1 THEN 'pq_lut' WHEN kind = 2 THEN 'bits_lut'
                ELSE 'rabitq_lut' END;

-- The table, subscripts from 1, checked as the kernels check it (format, version, kind, length).
CREATE OR REPLACE FUNCTION pgembed_twins._table(t double precision[], tag integer, kind integer)
    RETURNS double precision[] LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    total integer := coalesce(cardinality(t), 0);
    expected bigint;
BEGIN
    PERFORM pgembed_twins._check_array(t, 'table', false);
    IF array_ndims(t) > 1 OR array_lower(t, 1) <> 1 THEN
        t := array(SELECT unnest(t));
    END IF;
    IF total < 12 OR t[1] NOT IN (1, 2) THEN
        RAISE EXCEPTION 'the table is not one of pgembed''s query tables (pgembed.pq_lut, bits_lut, rabitq_lut, sq8_query)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF t[2] <> 1 THEN
        RAISE EXCEPTION 'the table has format version %; this pgembed_kernels reads version 1: make it again', t[2]
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF t[1] <> tag OR (tag = 1 AND t[11] <> kind) THEN
        RAISE EXCEPTION 'the table was made by pgembed.%; this function takes one made by pgembed.%',
            pgembed_twins._table_name(t[1], t[11]), pgembed_twins._table_name(tag, kind)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- int8 tables: at most 16,000 dimensions, so that every sum of entries stays below 2^53
    IF NOT (t[3] IN (1, 2, 3) AND t[4] >= 1 AND t[4] <= CASE WHEN tag = 2 THEN 16000 ELSE 1000000 END AND t[4] = round(t[4])) THEN
        RAISE EXCEPTION 'the table''s header is not valid' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF tag = 1 AND (t[12] <> round(t[12]) OR CASE WHEN kind = 1 THEN NOT (t[12] BETWEEN 1 AND 256)
                                                 ELSE t[4] <> floor((t[12] + 7) / 8) END) THEN
        RAISE EXCEPTION 'the table''s header is not valid' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    expected := 12 + (CASE WHEN tag = 1 THEN 256 ELSE 3 END) * t[4]::bigint;
    IF total <> expected THEN
        RAISE EXCEPTION 'the table has % entries; its header says %', total, expected USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN t;
END $$;

-- Entry i of a table (1-based, header included), checked to be an integer of at most `top`.
CREATE OR REPLACE FUNCTION pgembed_twins._entry(t double precision[], i bigint, top double precision)
    RETURNS double precision LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    IF NOT (abs(t[i]) <= top) OR t[i] <> round(t[i]) THEN
        RAISE EXCEPTION 'the table''s entry % is not an integer of at most %: not a table pgembed made', i, top
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN t[i];
END $$;

-- The entries of a byte table for these code bytes (0-based positions), summed.
CREATE OR REPLACE FUNCTION pgembed_twins._byte_sum(t double precision[], bytes integer[], centroids integer)
    RETURNS double precision LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    bad record;
BEGIN
    SELECT p, b INTO bad FROM unnest(bytes) WITH ORDINALITY AS u(b, p) WHERE b >= centroids ORDER BY p LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'code byte % is %: the codebook has % centroids', bad.p, bad.b, centroids
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN (SELECT sum(pgembed_twins._entry(t, 12 + (p - 1) * 256 + b + 1, 16777215) ORDER BY p)
            FROM unnest(bytes) WITH ORDINALITY AS u(b, p));
END $$;

CREATE OR REPLACE FUNCTION pgembed_twins._bytes(code bytea) RETURNS integer[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN array(SELECT get_byte(code, p) FROM generate_series(0, length(code) - 1) AS p ORDER BY p);

-- A bit string's bytes as stored (most significant bit first, the last byte padded with zeros).
CREATE OR REPLACE FUNCTION pgembed_twins._bit_bytes(code varbit) RETURNS integer[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN array(SELECT rpad(substring(code::text FROM 8 * p + 1 FOR 8), 8, '0')::bit(8)::integer
                 FROM generate_series(0, (length(code) + 7) / 8 - 1) AS p ORDER BY p);

CREATE OR REPLACE FUNCTION pgembed_twins._code_bits(code varbit, t double precision[]) RETURNS integer[]
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    IF length(code) <> t[12] THEN
        RAISE EXCEPTION 'the code has % bits; the table was made for %', length(code), t[12]
            USING ERRCODE = 'data_exception';
    END IF;
    RETURN pgembed_twins._bit_bytes(code);
END $$;

-- Scaled so the largest entry is `top`, rounded half to even (round(float8) is rint); `unit`: one step.
CREATE OR REPLACE FUNCTION pgembed_twins._quantize(e double precision[], top double precision,
                                                   OUT entries double precision[], OUT unit double precision)
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    largest double precision := (SELECT coalesce(max(abs(x)), 0) FROM unnest(e) AS x);
    scale double precision := CASE WHEN largest > 0 THEN top / largest ELSE 1 END;
BEGIN
    entries := array(SELECT round(x * scale) FROM unnest(e) WITH ORDINALITY AS u(x, i) ORDER BY i);
    unit := CASE WHEN largest > 0 THEN largest / top ELSE 1 END;
END $$;

CREATE OR REPLACE FUNCTION pgembed_twins._query_norm(q vector) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    norm double precision := sqrt((SELECT sum(x::float8 * x::float8 ORDER BY i)
                                   FROM unnest(q::real[]) WITH ORDINALITY AS u(x, i)));
BEGIN
    IF norm = 0 THEN
        RAISE EXCEPTION 'query is all zeros: cosine distance is undefined' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN norm;
END $$;

-- ---- product quantization ----------------------------------------------------------------------------
-- pq_lut: entry [m][j], in float8 summed over the sub-space's coordinates in order: |q_m - c_mj|^2 (l2),
-- -<q_m, c_mj> (ip) or -<q_m / |q|, c_mj> (cosine, which assumes unit-length vectors: the distance is
-- 1 + the sum). The codebook as pgembed.encode_pq takes it.
CREATE OR REPLACE FUNCTION pgembed_twins.pq_lut(query vector, columns vector[], norms vector[], sub_dim integer,
                                                metric text) RETURNS double precision[]
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    code integer;
    m integer;
    k integer;
    nq double precision;
    q real[] := query::real[];
    e double precision[];
    quantized record;
BEGIN
    -- in the kernel's order: the arrays, the metric, a cosine query's norm, the codebook's shape
    columns := array(SELECT unnest(columns));  -- one dimension, subscripts from 1, as the kernel reads them
    norms := array(SELECT unnest(norms));
    PERFORM pgembed_twins._check_array(columns, 'columns', false);
    PERFORM pgembed_twins._check_array(norms, 'norms', false);
    code := pgembed_twins._metric_code(metric);
    IF code = 3 THEN
        nq := pgembed_twins._query_norm(query);
    END IF;
    PERFORM pgembed_twins._check_pq(query, columns, norms, sub_dim);
    m := cardinality(norms);
    k := vector_dims(norms[1]);
    WITH terms AS (
        SELECT s, j - 1 AS j, kk,
               CASE code WHEN 1 THEN (q[s * sub_dim + kk + 1]::float8 - c::float8) * (q[s * sub_dim + kk + 1]::float8 - c::float8)
                         WHEN 2 THEN q[s * sub_dim + kk + 1]::float8 * c::float8
                         ELSE (q[s * sub_dim + kk + 1]::float8 / nq) * c::float8 END AS t
        FROM generate_series(0, m - 1) AS s, generate_series(0, sub_dim - 1) AS kk,
             unnest(columns[s * sub_dim + kk + 1]::real[]) WITH ORDINALITY AS u(c, j)),
    sums AS (SELECT s, j, sum(t ORDER BY kk) AS total FROM terms GROUP BY s, j)
    SELECT array_agg(coalesce(CASE WHEN code = 1 THEN sums.total ELSE -sums.total END, 0) ORDER BY s, j) INTO e
    FROM generate_series(0, m - 1) AS s CROSS JOIN generate_series(0, 255) AS j LEFT JOIN sums USING (s, j);
    quantized := pgembed_twins._quantize(e, 16777215);
    RETURN ARRAY[1, 1, code, m, quantized.unit, 0, 0, CASE WHEN code = 3 THEN 1 ELSE 0 END, 0, 0, 1, k]::float8[]
           || quantized.entries;
END $$;

CREATE OR REPLACE FUNCTION pgembed_twins.pq_distance(code bytea, lut double precision[]) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    t double precision[] := pgembed_twins._table(lut, 1, 1);
    s double precision;
BEGIN
    IF length(code) <> t[4] THEN
        RAISE EXCEPTION 'the code has % bytes; the table was made for %', length(code), t[4]
            USING ERRCODE = 'data_exception';
    END IF;
    s := t[5] * pgembed_twins._byte_sum(t, pgembed_twins._bytes(code), t[12]::integer);
    RETURN CASE t[3] WHEN 1 THEN sqrt(greatest(s, 0)) WHEN 3 THEN t[8] + s ELSE s END;
END $$;

-- ---- sign and thermometer bits (bq, bq2..bq4, and bits after a projection) ----------------------------
-- bits_lut: bit p of a code is about dimension p mod d of `query` (level-major); the estimate is
-- -sum_p query_(p mod d) * (bit p ? 1 : -1): it ranks by the estimated inner product with the query kept in
-- float. For codes after a projection, pass the projected query.
CREATE OR REPLACE FUNCTION pgembed_twins._signed_entries(w double precision[], nbits integer, negate boolean)
    RETURNS double precision[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT array_agg(CASE WHEN negate THEN -total ELSE total END ORDER BY p, b)
            FROM (SELECT p, b, sum(CASE WHEN (b >> (7 - t)) & 1 = 1 THEN w[p * 8 + t + 1] ELSE -w[p * 8 + t + 1] END
                                  ORDER BY t) AS total
                  FROM generate_series(0, (nbits + 7) / 8 - 1) AS p, generate_series(0, 255) AS b,
                       generate_series(0, 7) AS t
                  WHERE p * 8 + t < nbits
                  GROUP BY p, b) AS entries);

CREATE OR REPLACE FUNCTION pgembed_twins.bits_lut(query vector, nbits integer, metric text) RETURNS double precision[]
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    code integer := pgembed_twins._metric_code(metric);
    q real[] := query::real[];
    quantized record;
BEGIN
    IF nbits < 1 OR nbits > 128000 OR nbits % vector_dims(query) <> 0 THEN
        RAISE EXCEPTION 'nbits must be a positive multiple of the query''s % dimensions, at most 128000, got %',
            vector_dims(query), nbits
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    quantized := pgembed_twins._quantize(pgembed_twins._signed_entries(
        array(SELECT q[p % vector_dims(query) + 1]::float8 FROM generate_series(0, nbits - 1) AS p ORDER BY p),
        nbits, true), 16777215);
    RETURN ARRAY[1, 1, code, (nbits + 7) / 8, quantized.unit, 0, 0, 0, 0, 0, 2, nbits]::float8[] || quantized.entries;
END $$;

CREATE OR REPLACE FUNCTION pgembed_twins.bits_distance(code varbit, lut double precision[]) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    t double precision[] := pgembed_twins._table(lut, 1, 2);
BEGIN
    RETURN t[5] * pgembed_twins._byte_sum(t, pgembed_twins._code_bits(code, t), 256);
END $$;

-- ---- RaBitQ ------------------------------------------------------------------------------------------
-- rabitq_lut: `rotated` is R (query - centre), as pgembed.project(query, centre, rotation) computes it; the
-- entries sum to t = <sign(o)/sqrt(d), R (q - c)>; c0 = <c, q>, c1 = |q - c|^2, c2 = |q|. rabitq_distance
-- with the row's factors (f0 = |x - c|, f1 = <o_bar, o>): ip -(c0 + f0 t / f1); cosine 1 - (c0 + f0 t / f1)
-- / |q| (unit-length vectors); l2 sqrt(f0^2 + |q - c|^2 - 2 f0 t / f1).
CREATE OR REPLACE FUNCTION pgembed_twins.rabitq_lut(query vector, centre vector, rotated vector, metric text)
    RETURNS double precision[] LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    code integer := pgembed_twins._metric_code(metric);
    nbits integer := vector_dims(rotated);
    r real[] := rotated::real[];
    quantized record;
    sums record;
BEGIN
    PERFORM pgembed_twins._check_dims(vector_dims(query), vector_dims(centre));
    quantized := pgembed_twins._quantize(pgembed_twins._signed_entries(
        array(SELECT r[p + 1]::float8 / sqrt(nbits::float8) FROM generate_series(0, nbits - 1) AS p ORDER BY p),
        nbits, false), 16777215);
    SELECT sum(c::float8 * x::float8 ORDER BY i) AS dot, sum((x::float8 - c::float8) * (x::float8 - c::float8) ORDER BY i) AS gap
        INTO sums FROM unnest(query::real[], centre::real[]) WITH ORDINALITY AS u(x, c, i);
    RETURN ARRAY[1, 1, code, (nbits + 7) / 8, quantized.unit, 0, 0, sums.dot, sums.gap,
                 CASE WHEN code = 3 THEN pgembed_twins._query_norm(query) ELSE 0 END, 3, nbits]::float8[]
           || quantized.entries;
END $$;

CREATE OR REPLACE FUNCTION pgembed_twins.rabitq_distance(code varbit, factors vector, lut double precision[])
    RETURNS double precision LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    t double precision[] := pgembed_twins._table(lut, 1, 3);
    bytes integer[] := pgembed_twins._code_bits(code, t);
    f real[] := factors::real[];
    f0 double precision;
    f1 double precision;
    s double precision;
    estimate double precision;
BEGIN
    IF vector_dims(factors) <> 2 THEN
        RAISE EXCEPTION 'factors has % dimensions; RaBitQ''s factors are 2', vector_dims(factors)
            USING ERRCODE = 'data_exception';
    END IF;
    f0 := f[1];
    f1 := f[2];
    s := t[5] * pgembed_twins._byte_sum(t, bytes, 256);
    IF t[3] = 1 THEN
        RETURN sqrt(greatest((f0 * f0 + t[9]) - 2 * f0 * s / f1, 0));
    END IF;
    estimate := t[8] + f0 * s / f1;
    RETURN CASE WHEN t[3] = 3 THEN 1 - estimate / t[10] ELSE -estimate END;
END $$;

-- The error bound of RaBitQ's estimate of <x, q> (twice that for l2's squared distance), at eps0 standard
-- errors: eps0 |x - c| |q - c| sqrt(1 - f1^2) / f1 / sqrt(d - 1). SQL only: arithmetic on two factors.
CREATE OR REPLACE FUNCTION pgembed.rabitq_bound(factors vector, lut double precision[], eps0 double precision DEFAULT 4)
    RETURNS double precision LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT eps0 * f[1] * sqrt(lut[9]) * sqrt(greatest(1 - f[2]::float8 * f[2], 0)) / f[2] / sqrt(lut[12] - 1)
            FROM (SELECT factors::real[] AS f) AS x);

-- ---- int8 (sq8) ---------------------------------------------------------------------------------------
-- sq8_query: with x^ = lo + step * L the decoded vector, T1 = sum w L, T2 = sum u L, T3 = sum v L^2:
--   ip:     -(c0 + u1 T1),                      w = q step, c0 = <q, lo>
--   l2:     sqrt((c0 + u1 T1) + u3 T3),          w = -2 (q - lo) step, v = step^2, c0 = |q - lo|^2
--   cosine: 1 - (c0 + u1 T1) / (c2 sqrt((c1 + u2 T2) + u3 T3)),  w = q step, u = 2 lo step, v = step^2,
--           c0 = <q, lo>, c1 = |lo|^2, c2 = |q|
CREATE OR REPLACE FUNCTION pgembed_twins.sq8_query(query vector, lo vector, step vector, metric text)
    RETURNS double precision[] LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    code integer := pgembed_twins._metric_code(metric);
    n integer := vector_dims(query);
    parts record;
    w record;
    u record;
    v record;
BEGIN
    PERFORM pgembed_twins._check_dims(n, vector_dims(lo));
    PERFORM pgembed_twins._check_dims(n, vector_dims(step));
    SELECT array_agg(CASE WHEN code = 1 THEN (-2 * (x - l)) * s ELSE x * s END ORDER BY i) AS w,
           array_agg(CASE WHEN code = 3 THEN (2 * l) * s ELSE 0 END ORDER BY i) AS u,
           array_agg(CASE WHEN code = 2 THEN 0 ELSE s * s END ORDER BY i) AS v,
           sum(CASE WHEN code = 1 THEN (x - l) * (x - l) ELSE x * l END ORDER BY i) AS c0,
           CASE WHEN code = 3 THEN sum(l * l ORDER BY i) ELSE 0 END AS c1
        INTO parts
        FROM (SELECT x::float8 AS x, l::float8 AS l, s::float8 AS s, i
              FROM unnest(query::real[], lo::real[], step::real[]) WITH ORDINALITY AS e(x, l, s, i)) AS e;
    w := pgembed_twins._quantize(parts.w, 1048575);
    u := pgembed_twins._quantize(parts.u, 1048575);
    v := pgembed_twins._quantize(parts.v, 1048575);
    RETURN ARRAY[2, 1, code, n, w.unit, u.unit, v.unit, parts.c0, parts.c1,
                 CASE WHEN code = 3 THEN pgembed_twins._query_norm(query) ELSE 0 END, 0, 0]::float8[]
           || w.entries || u.entries || v.entries;
END $$;

CREATE OR REPLACE FUNCTION pgembed_twins.sq8_distance(code bytea, query double precision[]) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    t double precision[] := pgembed_twins._table(query, 2, 0);
    n integer := t[4];
    t1 double precision;
    t2 double precision;
    t3 double precision;
    first double precision;
    squared_norm double precision;
BEGIN
    IF length(code) <> n THEN
        RAISE EXCEPTION 'the code has % bytes; the table was made for % dimensions', length(code), n
            USING ERRCODE = 'data_exception';
    END IF;
    -- A run the metric does not use is never read, as in the kernel. (Not CASE around the aggregates: a
    -- generic plan evaluates their arguments whatever the CASE says.)
    SELECT sum(pgembed_twins._entry(t, 12 + p, 1048575) * b ORDER BY p) INTO t1
        FROM unnest(pgembed_twins._bytes(code)) WITH ORDINALITY AS u(b, p);
    IF t[3] = 3 THEN
        SELECT sum(pgembed_twins._entry(t, 12 + n + p, 1048575) * b ORDER BY p) INTO t2
            FROM unnest(pgembed_twins._bytes(code)) WITH ORDINALITY AS u(b, p);
    END IF;
    IF t[3] <> 2 THEN
        SELECT sum(pgembed_twins._entry(t, 12 + 2 * n + p, 1048575) * (b::float8 * b) ORDER BY p) INTO t3
            FROM unnest(pgembed_twins._bytes(code)) WITH ORDINALITY AS u(b, p);
    END IF;
    first := t[8] + t[5] * t1;
    IF t[3] = 2 THEN
        RETURN -first;
    END IF;
    IF t[3] = 1 THEN
        RETURN sqrt(greatest(first + t[7] * t3, 0));
    END IF;
    squared_norm := (t[9] + t[6] * t2) + t[7] * t3;
    RETURN CASE WHEN squared_norm > 0 THEN 1 - first / (t[10] * sqrt(squared_norm)) ELSE 'NaN'::float8 END;
END $$;

-- ---- for a collection's codec --------------------------------------------------------------------------
-- The query's table for the estimator of a collection's codec (by name, its active version), made with the
-- codec's fitted parameters by the collection's pgembed.query_table_<id> (generated with its trigger). Make
-- it once per query, not once per row:
--   SELECT id FROM docs, (SELECT pgembed.query_table('docs', 'pq48', $1) AS t) AS q
--   ORDER BY pgembed.pq_distance(embedding_pq48, q.t) LIMIT 100;
-- Estimators: pq -> pq_distance(code, t); sq8 -> sq8_distance(code, t); bq, bq2..bq4 (and after a
-- projection) -> bits_distance(code, t); rabitq -> rabitq_distance(code, <column>_factors, t).
CREATE OR REPLACE FUNCTION pgembed.query_table(collection text, codec text, query vector)
    RETURNS double precision[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    c pgembed.collections := pgembed._collection(collection);
    code_column text;
    kind text;
    t double precision[];
BEGIN
    SELECT x.column_name, x.kind INTO code_column, kind FROM pgembed._active_codec(c, codec) AS x;
    PERFORM pgembed._check_query(c, query);
    EXECUTE format('SELECT pgembed.%I(%L, $1)', 'query_table_' || c.id, code_column) INTO t USING query;
    IF t IS NULL THEN
        RAISE EXCEPTION 'codec % (%) has no distance estimator: pq, sq8, bq, bq2..bq4 and rabitq have one',
            quote_literal(codec), kind USING ERRCODE = 'feature_not_supported';
    END IF;
    RETURN t;
END $$;

-- The top k of each of many queries by a codec's distance estimator (the one a compact re-rank tier orders
-- by), in one read of the codes of the rows `filter` keeps (and only of the rows with these `keys`, when
-- given): with the C kernels, pgembed_kernels.estimate_topk over all the queries' tables at once; with the
-- twins, one statement per query,
--   SELECT key, <estimator>(code, pgembed.query_table(collection, codec, q)) FROM ... ORDER BY 2, key LIMIT k.
-- The same rows, estimates and order either way; rows without a code are not ranked. Companion codes are read
-- through the user's table, so its row-level security and privileges decide which rows are ranked.
-- With `candidates` (at least k), each query's candidates best by the estimate are then ranked by the exact
-- distance from the user's rows, and its k best of them returned with that distance (the compact tier of a
-- batch: codes read once for all the queries, the float vectors of the candidates only).
-- query_no: the query's subscript in `queries`; each query's rows best first.
CREATE OR REPLACE FUNCTION pgembed.estimate_topk(
    collection text, codec text, queries vector[], k integer DEFAULT 10, filter jsonb DEFAULT NULL,
    keys text[] DEFAULT NULL, candidates integer DEFAULT NULL
) RETURNS TABLE (query_no integer, id text, distance double precision) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    c pgembed.collections := pgembed._collection(collection);
    x record;
    key_type text;
    tbl regclass;
    clause text;
    source text;
    code text;
    key text;
    tables double precision[];
    first integer := coalesce(array_lower(queries, 1), 1);
BEGIN
    PERFORM pgembed.check_search_params(k, NULL, NULL, NULL, 'exact');
    IF candidates IS NOT NULL THEN
        IF candidates < k THEN
            RAISE EXCEPTION 'candidates must be at least k (%), got %', k, candidates
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        tbl := format('%I.%I', c.table_schema, c.table_name)::regclass;
        SELECT format_type(a.atttypid, a.atttypmod) INTO key_type FROM pg_attribute AS a
        WHERE a.attrelid = tbl AND a.attname = c.key_column;
        -- the candidates' rows by key, under the caller's rights and policies; ties by key, as search() orders
        RETURN QUERY EXECUTE format(
            'SELECT r.query_no, r.id, r.distance FROM (SELECT e.query_no, t.%1$I::text AS id, t.%2$I %3$s $3[e.query_no] AS distance, '
            'row_number() OVER (PARTITION BY e.query_no ORDER BY t.%2$I %3$s $3[e.query_no], t.%1$I) AS n '
            'FROM pgembed.estimate_topk($1, $2, $3, $4, $5, $6) AS e JOIN %4$s AS t ON t.%1$I = e.id::%5$s '
            'WHERE t.%2$I IS NOT NULL) AS r WHERE r.n <= %6$s ORDER BY r.query_no, r.n',
            c.key_column, c.vector_column, pgembed._qualified_operator(pgembed.distance_operator(c.metric)), tbl,
            key_type, k)
            USING collection, codec, queries, candidates, filter, keys;
        RETURN;
    END IF;
    PERFORM pgembed._check_queries(c, queries);
    x := pgembed._active_codec(c, codec);
    IF x.estimator IS NULL OR x.estimator = 'pgembed.rabitq_distance' THEN
        RAISE EXCEPTION 'codec % (%) has no estimator to rank by here: pq, sq8, bq and bq2..bq4 have one (RaBitQ''s needs each row''s factors: ORDER BY pgembed.rabitq_distance)',
            quote_literal(codec), x.kind USING ERRCODE = 'feature_not_supported';
    END IF;
    tbl := format('%I.%I', c.table_schema, c.table_name)::regclass;
    clause := pgembed._scan_clause(c, filter, keys);
    IF c.placement = 'companion' THEN
        -- pgembed's alias, never the user's table's own name (which a filter may qualify)
        code := format('pgembed_codes_.%I', x.column_name);
        key := format('pgembed_codes_.%I', c.key_column);
        source := format('%s AS pgembed_codes_ WHERE %s IS NOT NULL AND EXISTS (SELECT FROM %s WHERE %s.%I = %s AND (%s))',
                         format('pgembed.%I', 'codes_' || c.id), code, tbl, tbl, c.key_column, key, clause);
    ELSE
        code := format('%I', x.column_name);
        key := format('%I', c.key_column);
        source := format('%s WHERE (%s) AND %s IS NOT NULL', tbl, clause, code);
    END IF;
    IF pgembed._kernels_active() THEN
        EXECUTE format('SELECT array(SELECT pgembed.%I(%L, u.q) FROM unnest($1) WITH ORDINALITY AS u(q, n) ORDER BY u.n)',
                       'query_table_' || c.id, x.column_name) INTO tables USING queries;
        RETURN QUERY EXECUTE format(
            'SELECT (u.query_no + $2)::integer, u.id, u.distance FROM (SELECT pgembed_kernels.estimate_topk(%s, %s, $1, %s) AS r FROM %s) AS s, '
            'unnest((s.r).query_no, (s.r).id, (s.r).distance) WITH ORDINALITY AS u(query_no, id, distance, n) ORDER BY u.n',
            key, code, k, source) USING tables, first - 1;
        RETURN;
    END IF;
    FOR i IN first .. first + cardinality(queries) - 1 LOOP
        RETURN QUERY EXECUTE format(
            'SELECT $2, %1$s::text, %2$s(%3$s, $1) AS distance FROM %4$s ORDER BY distance, %1$s LIMIT %5$s',
            key, x.estimator, code, source, k)
            USING pgembed.query_table(collection, codec, queries[i]), i;
    END LOOP;
END $$;
