-- The codecs' SQL encoders (and decoders, for re-ranking), one per codec family. Each takes the codec's fitted
-- parameters as arguments; a collection's trigger (pgembed.keep_codes_<id>) calls them with those parameters
-- inlined as constants, so rows written by any client get the codes pgembed's numpy encoders compute
-- (pgembed/codecs/, tests/parity/). Re-appliable: every statement is CREATE OR REPLACE.

-- float16: pgvector's own cast, which rounds to nearest even as numpy does.
CREATE OR REPLACE FUNCTION pgembed.encode_float16(v vector) RETURNS halfvec
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN v::halfvec;

-- Binary codes: the sign of the mean-centred vector.
CREATE OR REPLACE FUNCTION pgembed.encode_binary(v vector, mean vector) RETURNS bit
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN binary_quantize(v - mean);

-- Thermometer codes (bq2..bq4): one binary_quantize per level, concatenated level-major.
CREATE OR REPLACE FUNCTION pgembed.encode_thermometer(v vector, thresholds vector[]) RETURNS varbit
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    t vector;
    code varbit := B'';
BEGIN
    FOREACH t IN ARRAY thresholds LOOP
        code := code || binary_quantize(v - t);
    END LOOP;
    RETURN code;
END $$;

-- Scalar quantization: level = clip(rint((v - lo) * inv), 0, 255), one byte a dimension.
-- round(float8) rounds half to even, as numpy's rint does.
CREATE OR REPLACE FUNCTION pgembed.encode_int8(v vector, lo vector, inv vector) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT decode(string_agg(lpad(to_hex(least(greatest(round(e::float8), 0), 255)::int), 2, '0'), ''
                                     ORDER BY i), 'hex')
            FROM unnest(((v - lo) * inv)::real[]) WITH ORDINALITY AS u(e, i));

CREATE OR REPLACE FUNCTION pgembed.decode_int8(code bytea, lo vector, step vector) RETURNS vector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN lo + (SELECT array_agg(get_byte(code, i) ORDER BY i)
                 FROM generate_series(0, length(code) - 1) AS i)::real[]::vector * step;

-- Non-uniform scalar quantization (osq): bits[i] bits for dimension i, most significant first.
CREATE OR REPLACE FUNCTION pgembed.encode_sq_bits(v vector, lo vector, inv vector, bits int[]) RETURNS varbit
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT string_agg(
                       CASE WHEN b = 0 THEN ''
                            ELSE substr(least(greatest(round(e::float8), 0), (1 << b) - 1)::int::bit(8)::text,
                                        9 - b, b) END,
                       '' ORDER BY i)::varbit
            FROM unnest(((v - lo) * inv)::real[], bits) WITH ORDINALITY AS u(e, b, i));

CREATE OR REPLACE FUNCTION pgembed.decode_sq_bits(code varbit, lo vector, step vector, bits int[]) RETURNS vector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN lo + (SELECT array_agg(CASE WHEN b = 0 THEN 0
                                       ELSE lpad(substr(code::text, (o - b + 1)::int, b), 8, '0')::bit(8)::int END
                                  ORDER BY i)
                 FROM (SELECT b, i, sum(b) OVER (ORDER BY i) AS o
                       FROM unnest(bits) WITH ORDINALITY AS u(b, i)) AS offsets)::real[]::vector * step;

-- Product quantization: for each sub-vector, the index of the nearest of its 256 centroids, found as
-- argmin_j (|c_j|^2 - 2 x.c_j) with the 256 dot products of a sub-space computed at once from the codebook's
-- columns (columns[m * sub_dim + k] holds coordinate k of sub-space m's 256 centroids; norms[m + 1] their
-- squared norms), so pgvector's elementwise operators do the arithmetic.
CREATE OR REPLACE FUNCTION pgembed.encode_pq(v vector, columns vector[], norms vector[], sub_dim int) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    x real[] := v::real[];
    scores vector;
    flat real[];
    code bytea := '\x';
BEGIN
    FOR m IN 0 .. array_length(norms, 1) - 1 LOOP
        scores := norms[m + 1];
        FOR k IN 1 .. sub_dim LOOP
            scores := scores - array_fill(2 * x[m * sub_dim + k], ARRAY[256])::vector * columns[m * sub_dim + k];
        END LOOP;
        flat := scores::real[];
        code := code || set_byte('\x00'::bytea, 0, array_position(flat, (SELECT min(e) FROM unnest(flat) AS e)) - 1);
    END LOOP;
    RETURN code;
END $$;

CREATE OR REPLACE FUNCTION pgembed.decode_pq(code bytea, codebooks vector[]) RETURNS vector
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    result vector := codebooks[get_byte(code, 0) + 1];
BEGIN
    FOR m IN 1 .. length(code) - 1 LOOP
        result := result || codebooks[m * 256 + get_byte(code, m) + 1];
    END LOOP;
    RETURN result;
END $$;

-- Linear projection: one inner product a row (pgvector's <#> is the negative inner product).
CREATE OR REPLACE FUNCTION pgembed.project(v vector, projection_rows vector[]) RETURNS vector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT array_agg(-(v <#> r) ORDER BY i) FROM unnest(projection_rows) WITH ORDINALITY AS u(r, i))::vector;

-- The same, centred first: rows @ (v - centre). What PCA, LeanVec and RaBitQ's rotation store.
CREATE OR REPLACE FUNCTION pgembed.project(v vector, centre vector, projection_rows vector[]) RETURNS vector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN pgembed.project(v - centre, projection_rows);

-- Matryoshka: the first m dimensions, renormalised.
CREATE OR REPLACE FUNCTION pgembed.encode_matryoshka(v vector, m int) RETURNS vector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN l2_normalize(subvector(v, 1, m));

-- RaBitQ correction factors: |v - centre| and <sign(o)/sqrt(d), o/|o|> for the rotated residual o.
CREATE OR REPLACE FUNCTION pgembed.rabitq_factors(v vector, centre vector, rotated vector) RETURNS vector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN ARRAY[vector_norm(v - centre),
                 CASE WHEN vector_norm(rotated) = 0 THEN 1
                      ELSE l1_distance(rotated, array_fill(0, ARRAY[vector_dims(rotated)])::vector)
                           / (sqrt(vector_dims(rotated)) * vector_norm(rotated)) END]::vector;
