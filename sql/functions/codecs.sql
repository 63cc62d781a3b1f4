-- The codecs' SQL encoders (and decoders, for re-ranking), one per codec family: the twins of pgembed's C
-- kernels (kernels/, schema pgembed_kernels), which return the same bits, bytes and floats for every input.
-- pgembed's own functions of these names (pgembed.encode_pq, ...) call the kernel where it is installed and
-- the twin elsewhere (kernels.sql, pgembed.bind_kernels()); a collection's trigger (pgembed.keep_codes_<id>)
-- calls those with the codec's fitted parameters (read by pgembed._fitted_*, at the end of this file), so rows
-- written by any client get the codes of pgembed's numpy encoders (pgembed/codecs/, tests/parity/).
--
-- The arithmetic is pgvector's elementwise float32 (-, *). pgvector raises where a result leaves float32's
-- range ("value out of range: overflow / underflow"); these twins then redo the same IEEE float32
-- arithmetic in float8 (exact: every float32 - and * is correctly rounded from float8, _f32 below), keeping
-- its infinities and zeros, so that no finite vector is ever refused. Where a twin sums with pgvector
-- (`<#>`, vector_norm, l1_distance) the kernel calls the same pgvector function; where such a sum is not
-- finite, both compute it in float8, in order, saturated to float32's range.
-- Re-appliable: every statement is CREATE OR REPLACE.

-- float8 -> the float32 it rounds to, as IEEE does: infinity past float32's range, zero below its half-ulp.
CREATE OR REPLACE FUNCTION pgembed_twins._f32(x double precision) RETURNS double precision
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE WHEN x = 'NaN'::float8 THEN x
                WHEN abs(x) >= 3.4028235677973366e38::float8 THEN sign(x) * 'Infinity'::float8
                WHEN abs(x) <= 7.006492321624085e-46::float8 THEN x * 0::float8
                ELSE x::real::float8 END;

CREATE OR REPLACE FUNCTION pgembed_twins._check_dims(a integer, b integer) RETURNS void
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    IF a <> b THEN
        RAISE EXCEPTION 'different vector dimensions % and %', a, b USING ERRCODE = 'data_exception';
    END IF;
END $$;

-- An array argument fit for a kernel: no NULL element, and (when `nonempty`) at least one.
CREATE OR REPLACE FUNCTION pgembed_twins._check_array(a anyarray, name text, nonempty boolean) RETURNS void
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF EXISTS (SELECT FROM unnest(a) AS e WHERE e IS NULL) THEN
        RAISE EXCEPTION '% must not contain NULL', name USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF nonempty AND coalesce(cardinality(a), 0) = 0 THEN
        RAISE EXCEPTION '% is empty', name USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

-- float16: pgvector's cast (round to nearest even, as numpy), saturating at +-65504 where the cast would
-- raise: no finite vector is refused.
CREATE OR REPLACE FUNCTION pgembed_twins._float16_saturated(v vector) RETURNS halfvec
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT array_agg(least(greatest(e, -65504), 65504) ORDER BY i)
            FROM unnest(v::real[]) WITH ORDINALITY AS u(e, i))::halfvec;

CREATE OR REPLACE FUNCTION pgembed_twins.encode_float16(v vector) RETURNS halfvec
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE WHEN vector_norm(v) < 65504 THEN v::halfvec ELSE pgembed_twins._float16_saturated(v) END;

-- Binary codes: bit i is v_i > t_i, the sign of v - t (binary_quantize of the difference, where it is finite).
CREATE OR REPLACE FUNCTION pgembed_twins._above(v vector, t vector) RETURNS varbit
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    PERFORM pgembed_twins._check_dims(vector_dims(v), vector_dims(t));
    RETURN (SELECT string_agg(CASE WHEN a > b THEN '1' ELSE '0' END, '' ORDER BY i)::varbit
            FROM unnest(v::real[], t::real[]) WITH ORDINALITY AS u(a, b, i));
END $$;

CREATE OR REPLACE FUNCTION pgembed_twins.encode_binary(v vector, mean vector) RETURNS bit
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE WHEN vector_norm(v) < 1e38::float8 AND vector_norm(mean) < 1e38::float8 THEN binary_quantize(v - mean)
                ELSE pgembed_twins._above(v, mean) END;

-- Thermometer codes (bq2..bq4): one binary code per level, concatenated level-major.
CREATE OR REPLACE FUNCTION pgembed_twins.encode_thermometer(v vector, thresholds vector[]) RETURNS varbit
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    t vector;
    code varbit := B'';
BEGIN
    PERFORM pgembed_twins._check_array(thresholds, 'thresholds', true);
    FOREACH t IN ARRAY thresholds LOOP
        code := code || pgembed_twins.encode_binary(v, t);
    END LOOP;
    RETURN code;
END $$;

-- Scalar quantization: level = clip(rint((v - lo) * inv), 0, top), where NaN (an infinite difference
-- times a zero scale) is the top level, as least/greatest order it. round(float8) rounds half to even.
CREATE OR REPLACE FUNCTION pgembed_twins._scaled(v vector, lo vector, inv vector) RETURNS double precision[]
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN ((v - lo) * inv)::real[]::float8[];
EXCEPTION WHEN numeric_value_out_of_range THEN
    -- the same float32 arithmetic, its infinities and zeros kept
    RETURN (SELECT array_agg(pgembed_twins._f32(pgembed_twins._f32(a::float8 - b::float8) * c::float8) ORDER BY i)
            FROM unnest(v::real[], lo::real[], inv::real[]) WITH ORDINALITY AS u(a, b, c, i));
END $$;

CREATE OR REPLACE FUNCTION pgembed_twins.encode_int8(v vector, lo vector, inv vector) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    PERFORM pgembed_twins._check_dims(vector_dims(v), vector_dims(lo));
    PERFORM pgembed_twins._check_dims(vector_dims(v), vector_dims(inv));
    RETURN (SELECT decode(string_agg(lpad(to_hex(least(greatest(round(e), 0), 255)::int), 2, '0'), '' ORDER BY i), 'hex')
            FROM unnest(pgembed_twins._scaled(v, lo, inv)) WITH ORDINALITY AS u(e, i));
END $$;

-- Non-uniform scalar quantization (osq): bits[i] bits for dimension i, most significant first.
CREATE OR REPLACE FUNCTION pgembed_twins.encode_sq_bits(v vector, lo vector, inv vector, bits integer[]) RETURNS varbit
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    wrong integer;
BEGIN
    PERFORM pgembed_twins._check_dims(vector_dims(v), vector_dims(lo));
    PERFORM pgembed_twins._check_dims(vector_dims(v), vector_dims(inv));
    PERFORM pgembed_twins._check_array(bits, 'bits', false);
    IF coalesce(cardinality(bits), 0) <> vector_dims(v) THEN
        RAISE EXCEPTION 'bits has % entries for % dimensions', coalesce(cardinality(bits), 0), vector_dims(v)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT i INTO wrong FROM unnest(bits) WITH ORDINALITY AS u(b, i) WHERE b NOT BETWEEN 0 AND 8 ORDER BY i LIMIT 1;
    IF wrong IS NOT NULL THEN
        RAISE EXCEPTION 'bits[%] is %: a dimension takes 0 to 8 bits', wrong, (SELECT b FROM unnest(bits) WITH ORDINALITY AS u(b, i) WHERE i = wrong)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN (SELECT coalesce(string_agg(
                       CASE WHEN b = 0 THEN ''
                            ELSE substr(least(greatest(round(e), 0), (1 << b) - 1)::int::bit(8)::text, 9 - b, b) END,
                       '' ORDER BY i), '')::varbit
            FROM unnest(pgembed_twins._scaled(v, lo, inv), bits) WITH ORDINALITY AS u(e, b, i));
END $$;

CREATE OR REPLACE FUNCTION pgembed_twins.decode_int8(code bytea, lo vector, step vector) RETURNS vector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN lo + (SELECT array_agg(get_byte(code, i) ORDER BY i)
                 FROM generate_series(0, length(code) - 1) AS i)::real[]::vector * step;

CREATE OR REPLACE FUNCTION pgembed_twins.decode_sq_bits(code varbit, lo vector, step vector, bits integer[]) RETURNS vector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN lo + (SELECT array_agg(CASE WHEN b = 0 THEN 0
                                       ELSE lpad(substr(code::text, (o - b + 1)::int, b), 8, '0')::bit(8)::int END
                                  ORDER BY i)
                 FROM (SELECT b, i, sum(b) OVER (ORDER BY i) AS o
                       FROM unnest(bits) WITH ORDINALITY AS u(b, i)) AS offsets)::real[]::vector * step;

-- Product quantization: for each sub-vector, the first index of the smallest of its K scores
-- |c_j|^2 - 2 x.c_j, computed at once from the codebook's columns (columns[m * sub_dim + k] holds coordinate k
-- of sub-space m's K centroids; norms[m + 1] their squared norms): a score starts at norms and loses
-- (2 x_k) * column_k for each coordinate in order, one float32 product and one float32 subtraction.
CREATE OR REPLACE FUNCTION pgembed_twins._check_pq(v vector, columns vector[], norms vector[], sub_dim integer) RETURNS void
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    m integer := coalesce(cardinality(norms), 0);
    k integer;
BEGIN
    IF sub_dim < 1 THEN
        RAISE EXCEPTION 'sub_dim must be positive, got %', sub_dim USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pgembed_twins._check_array(columns, 'columns', false);
    PERFORM pgembed_twins._check_array(norms, 'norms', true);
    IF m::bigint * sub_dim <> vector_dims(v) THEN
        RAISE EXCEPTION 'the vector has % dimensions; the codebook has % sub-spaces of %', vector_dims(v), m, sub_dim
            USING ERRCODE = 'data_exception';
    END IF;
    IF coalesce(cardinality(columns), 0) <> vector_dims(v) THEN
        RAISE EXCEPTION 'columns has % vectors; the codebook needs % (sub-spaces x sub_dim)',
            coalesce(cardinality(columns), 0), vector_dims(v) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    k := vector_dims(norms[array_lower(norms, 1)]);
    IF k > 256 THEN
        RAISE EXCEPTION 'a codebook of % centroids does not fit in one byte a sub-space', k
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pgembed_twins._check_dims(k, vector_dims(n)) FROM unnest(norms) AS n;
    PERFORM pgembed_twins._check_dims(k, vector_dims(c)) FROM unnest(columns) AS c;
END $$;

CREATE OR REPLACE FUNCTION pgembed_twins._pq_f32(x real[], columns vector[], norms vector[], sub_dim integer) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    k integer := vector_dims(norms[1]);
    scores vector;
    flat real[];
    code bytea := '\x';
BEGIN
    FOR m IN 0 .. array_length(norms, 1) - 1 LOOP
        scores := norms[m + 1];
        FOR j IN 1 .. sub_dim LOOP
            scores := scores - array_fill(2 * x[m * sub_dim + j], ARRAY[k])::vector * columns[m * sub_dim + j];
        END LOOP;
        flat := scores::real[];
        code := code || set_byte('\x00'::bytea, 0, array_position(flat, (SELECT min(e) FROM unnest(flat) AS e)) - 1);
    END LOOP;
    RETURN code;
END $$;

-- The same arithmetic in float8, rounded to float32 after each operation (_f32), infinities and NaN kept:
-- for vectors whose scores leave float32's range.
CREATE OR REPLACE FUNCTION pgembed_twins._pq_ieee(x real[], columns vector[], norms vector[], sub_dim integer) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    k integer := vector_dims(norms[1]);
    scores float8[];
    two_x float8;
    c real[];
    code bytea := '\x';
BEGIN
    FOR m IN 0 .. array_length(norms, 1) - 1 LOOP
        scores := norms[m + 1]::real[]::float8[];
        FOR j IN 1 .. sub_dim LOOP
            two_x := pgembed_twins._f32(2 * x[m * sub_dim + j]::float8);
            c := columns[m * sub_dim + j]::real[];
            FOR i IN 1 .. k LOOP
                scores[i] := pgembed_twins._f32(scores[i] - pgembed_twins._f32(two_x * c[i]::float8));
            END LOOP;
        END LOOP;
        code := code || set_byte('\x00'::bytea, 0, array_position(scores, (SELECT min(e) FROM unnest(scores) AS e)) - 1);
    END LOOP;
    RETURN code;
END $$;

CREATE OR REPLACE FUNCTION pgembed_twins.encode_pq(v vector, columns vector[], norms vector[], sub_dim integer) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    columns := array(SELECT unnest(columns));  -- one dimension, subscripts from 1, as the kernel reads them
    norms := array(SELECT unnest(norms));
    PERFORM pgembed_twins._check_pq(v, columns, norms, sub_dim);
    BEGIN
        RETURN pgembed_twins._pq_f32(v::real[], columns, norms, sub_dim);
    EXCEPTION WHEN data_exception THEN  -- out of float32's range: an elementwise product or 2 x (pgvector says
        -- "value out of range" or "infinite value not allowed"); the shape was checked above
        RETURN pgembed_twins._pq_ieee(v::real[], columns, norms, sub_dim);
    END;
END $$;

CREATE OR REPLACE FUNCTION pgembed_twins.decode_pq(code bytea, codebooks vector[]) RETURNS vector
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    result vector := codebooks[get_byte(code, 0) + 1];
BEGIN
    FOR m IN 1 .. length(code) - 1 LOOP
        result := result || codebooks[m * 256 + get_byte(code, m) + 1];
    END LOOP;
    RETURN result;
END $$;

-- IVF partitioning: the index (from 0) of the centroid nearest v by pgvector's l2_distance, the least index
-- among equal distances. Finite vectors always have one (a distance beyond float32's range is infinite, and
-- infinities tie by index).
CREATE OR REPLACE FUNCTION pgembed_twins.encode_ivf(v vector, centroids vector[]) RETURNS integer
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    PERFORM pgembed_twins._check_array(centroids, 'centroids', true);
    PERFORM pgembed_twins._check_dims(vector_dims(v), vector_dims(c))
        FROM unnest(centroids) WITH ORDINALITY AS u(c, i) ORDER BY i;
    RETURN (SELECT i - 1 FROM unnest(centroids) WITH ORDINALITY AS u(c, i) ORDER BY v <-> c, i LIMIT 1);
END $$;

-- Linear projection: one pgvector inner product a row (`<#>` is the negative inner product); where one is not
-- finite in float32 (or v - centre overflows), every y_r = sum_i (v_i - centre_i) * row_r,i in float8, in
-- order, saturated to float32's range.
CREATE OR REPLACE FUNCTION pgembed_twins._check_rows(v vector, projection_rows vector[]) RETURNS void
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    PERFORM pgembed_twins._check_array(projection_rows, 'projection_rows', true);
    PERFORM pgembed_twins._check_dims(vector_dims(v), vector_dims(r))
        FROM unnest(projection_rows) WITH ORDINALITY AS u(r, i) ORDER BY i;
    IF cardinality(projection_rows) > 16000 THEN
        RAISE EXCEPTION 'a vector result of % dimensions is out of range (1 to 16000)', cardinality(projection_rows)
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION pgembed_twins._project_f32(v vector, projection_rows vector[]) RETURNS vector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT array_agg(-(v <#> r) ORDER BY i) FROM unnest(projection_rows) WITH ORDINALITY AS u(r, i))::vector;

CREATE OR REPLACE FUNCTION pgembed_twins._project_f64(v vector, centre vector, projection_rows vector[]) RETURNS vector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (SELECT array_agg(least(greatest(s, -3.4028234663852886e38::float8), 3.4028234663852886e38::float8) ORDER BY j)
            FROM (SELECT j, sum((a::float8 - coalesce(c, 0)::float8) * b::float8 ORDER BY i) AS s
                  FROM unnest(projection_rows) WITH ORDINALITY AS r(w, j),
                       unnest(v::real[], centre::real[], w::real[]) WITH ORDINALITY AS e(a, c, b, i)
                  GROUP BY j) AS sums)::vector;

CREATE OR REPLACE FUNCTION pgembed_twins.project(v vector, projection_rows vector[]) RETURNS vector
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    PERFORM pgembed_twins._check_rows(v, projection_rows);
    BEGIN
        RETURN pgembed_twins._project_f32(v, projection_rows);
    EXCEPTION WHEN data_exception THEN  -- an inner product beyond float32's range
        RETURN pgembed_twins._project_f64(v, NULL, projection_rows);
    END;
END $$;

-- The same, centred first: rows @ (v - centre). What PCA, LeanVec and RaBitQ's rotation store.
CREATE OR REPLACE FUNCTION pgembed_twins.project(v vector, centre vector, projection_rows vector[]) RETURNS vector
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    PERFORM pgembed_twins._check_dims(vector_dims(v), vector_dims(centre));
    PERFORM pgembed_twins._check_rows(v, projection_rows);
    BEGIN
        RETURN pgembed_twins._project_f32(v - centre, projection_rows);
    EXCEPTION WHEN data_exception THEN  -- v - centre or an inner product beyond float32's range
        RETURN pgembed_twins._project_f64(v, centre, projection_rows);
    END;
END $$;

-- Matryoshka: the first m dimensions, renormalised (pgvector only: no kernel).
CREATE OR REPLACE FUNCTION pgembed_twins.encode_matryoshka(v vector, m integer) RETURNS vector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN l2_normalize(subvector(v, 1, m));

-- RaBitQ correction factors: |v - centre| and <sign(o)/sqrt(d), o/|o|> for the rotated residual o.
CREATE OR REPLACE FUNCTION pgembed_twins._rabitq_factors_f64(v vector, centre vector, rotated vector) RETURNS vector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT ARRAY[least(sqrt(d.s), 3.4028234663852886e38::float8),
                         CASE WHEN r.squares = 0 THEN 1
                              ELSE least(r.l1 / (sqrt(vector_dims(rotated)) * sqrt(r.squares)), 3.4028234663852886e38::float8) END]
            FROM (SELECT sum((a::float8 - c::float8) * (a::float8 - c::float8) ORDER BY i) AS s
                  FROM unnest(v::real[], centre::real[]) WITH ORDINALITY AS u(a, c, i)) AS d,
                 (SELECT sum(x::float8 * x::float8 ORDER BY i) AS squares, sum(abs(x::float8) ORDER BY i) AS l1
                  FROM unnest(rotated::real[]) WITH ORDINALITY AS u(x, i)) AS r)::vector;

CREATE OR REPLACE FUNCTION pgembed_twins.rabitq_factors(v vector, centre vector, rotated vector) RETURNS vector
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    PERFORM pgembed_twins._check_dims(vector_dims(v), vector_dims(centre));
    BEGIN
        RETURN ARRAY[vector_norm(v - centre),
                     CASE WHEN vector_norm(rotated) = 0 THEN 1
                          ELSE l1_distance(rotated, array_fill(0, ARRAY[vector_dims(rotated)])::vector)
                               / (sqrt(vector_dims(rotated)) * vector_norm(rotated)) END]::vector;
    EXCEPTION WHEN data_exception THEN  -- v - centre or a factor beyond float32's range
        RETURN pgembed_twins._rabitq_factors_f64(v, centre, rotated);
    END;
END $$;

-- The fitted parameters that the collections' generated functions name (pgembed.statements.encoders): a codec
-- version's (`codec`), by the digest of its text, from pgembed.fitted_parameters, whose rows a role sees when it
-- may select, insert or update the collection's table. The readers are IMMUTABLE, since a version's parameters
-- never change: the planner reads one when it plans the call that names it (once a session in a trigger),
-- never once a row. _fitted itself is VOLATILE so that it reads with a snapshot of its own: a writer whose
-- statement began before a fit committed may run the trigger the fit wrote, and must see the rows it wrote
-- with it. A transaction that keeps one snapshot (REPEATABLE READ, SERIALIZABLE) cannot: it gets a
-- serialization failure, which such a transaction is retried on.
CREATE OR REPLACE FUNCTION pgembed._fitted(codec integer, digest text) RETURNS pgembed.fitted_parameters
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE AS $$
DECLARE
    fitted pgembed.fitted_parameters;
BEGIN
    SELECT f.* INTO fitted FROM pgembed.fitted_parameters AS f
    WHERE f.codec_id = _fitted.codec AND f.digest = _fitted.digest;
    IF FOUND THEN
        RETURN fitted;
    END IF;
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'pgembed: codec version % is newer than this transaction''s snapshot, or its fitted parameters are not visible to role %',
                        codec, current_user
            USING ERRCODE = 'serialization_failure',
                  HINT = 'retry the transaction (a fit or add_codec committed since it began); a codec''s parameters are visible to the roles that may select, insert or update its collection''s table';
    END IF;
    RAISE EXCEPTION 'pgembed: the fitted parameter % of codec version % is not visible to role %', digest, codec, current_user
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'a codec''s parameters are visible to the roles that may select, insert or update its collection''s table';
END $$;

CREATE OR REPLACE FUNCTION pgembed._fitted_vector(codec integer, digest text) RETURNS vector
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN (pgembed._fitted(codec, digest)).as_vector;
END $$;

CREATE OR REPLACE FUNCTION pgembed._fitted_vectors(codec integer, digest text) RETURNS vector[]
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN (pgembed._fitted(codec, digest)).as_vectors;
END $$;

CREATE OR REPLACE FUNCTION pgembed._fitted_integers(codec integer, digest text) RETURNS integer[]
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN (pgembed._fitted(codec, digest)).as_integers;
END $$;
