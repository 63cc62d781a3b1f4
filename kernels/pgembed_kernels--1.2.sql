-- pgembed_kernels 1.2. Each function's twin, with the same arguments and the same result for every input,
-- is the function of the same name in schema pgembed_twins (pgembed's sql/functions/); pgembed.bind_kernels()
-- points pgembed's own functions at one or the other.
\echo Use "CREATE EXTENSION pgembed_kernels" to load this file. \quit

GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;

CREATE FUNCTION @extschema@.version() RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN '1.2';

-- encoders
CREATE FUNCTION @extschema@.encode_float16(v vector) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'kernel_encode_float16' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.encode_binary(v vector, mean vector) RETURNS bit
    AS 'MODULE_PATHNAME', 'kernel_encode_binary' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.encode_thermometer(v vector, thresholds vector[]) RETURNS varbit
    AS 'MODULE_PATHNAME', 'kernel_encode_thermometer' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.encode_int8(v vector, lo vector, inv vector) RETURNS bytea
    AS 'MODULE_PATHNAME', 'kernel_encode_int8' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.encode_sq_bits(v vector, lo vector, inv vector, bits integer[]) RETURNS varbit
    AS 'MODULE_PATHNAME', 'kernel_encode_sq_bits' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.encode_pq(v vector, columns vector[], norms vector[], sub_dim integer) RETURNS bytea
    AS 'MODULE_PATHNAME', 'kernel_encode_pq' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.encode_ivf(v vector, centroids vector[]) RETURNS integer
    AS 'MODULE_PATHNAME', 'kernel_encode_ivf' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.project(v vector, projection_rows vector[]) RETURNS vector
    AS 'MODULE_PATHNAME', 'kernel_project' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.project(v vector, centre vector, projection_rows vector[]) RETURNS vector
    AS 'MODULE_PATHNAME', 'kernel_project_centred' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.rabitq_factors(v vector, centre vector, rotated vector) RETURNS vector
    AS 'MODULE_PATHNAME', 'kernel_rabitq_factors' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;

-- distance estimators: a query made once into a table, then one distance a code
CREATE FUNCTION @extschema@.pq_lut(query vector, columns vector[], norms vector[], sub_dim integer, metric text)
    RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'kernel_pq_lut' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.pq_distance(code bytea, lut double precision[]) RETURNS double precision
    AS 'MODULE_PATHNAME', 'kernel_pq_distance' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.bits_lut(query vector, nbits integer, metric text) RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'kernel_bits_lut' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.bits_distance(code bit varying, lut double precision[]) RETURNS double precision
    AS 'MODULE_PATHNAME', 'kernel_bits_distance' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.rabitq_lut(query vector, centre vector, rotated vector, metric text)
    RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'kernel_rabitq_lut' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.rabitq_distance(code bit varying, factors vector, lut double precision[])
    RETURNS double precision
    AS 'MODULE_PATHNAME', 'kernel_rabitq_distance' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.sq8_query(query vector, lo vector, step vector, metric text)
    RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'kernel_sq8_query' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.sq8_distance(code bytea, query double precision[]) RETURNS double precision
    AS 'MODULE_PATHNAME', 'kernel_sq8_distance' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;

-- the multi-query exact scan (its twin: pgembed.scan_topk's per-query statement)
CREATE TYPE @extschema@.topk_rows AS (query_no integer[], id text[], distance double precision[]);
CREATE FUNCTION @extschema@.exact_topk_step(internal, anyelement, vector, vector[], integer, text)
    RETURNS internal AS 'MODULE_PATHNAME', 'kernel_exact_topk_step' LANGUAGE c PARALLEL SAFE;
CREATE FUNCTION @extschema@.exact_topk_final(internal) RETURNS @extschema@.topk_rows
    AS 'MODULE_PATHNAME', 'kernel_exact_topk_final' LANGUAGE c PARALLEL SAFE;
CREATE AGGREGATE @extschema@.exact_topk(key anyelement, vec vector, queries vector[], k integer, metric text) (
    SFUNC = @extschema@.exact_topk_step,
    STYPE = internal,
    FINALFUNC = @extschema@.exact_topk_final,
    FINALFUNC_MODIFY = read_write
);

-- the multi-query exact scan of each query's clusters (its twin: pgembed.probe_topk's per-query statement)
CREATE FUNCTION @extschema@.probe_topk_step(internal, anyelement, integer, vector, vector[], integer[], integer, text)
    RETURNS internal AS 'MODULE_PATHNAME', 'kernel_probe_topk_step' LANGUAGE c PARALLEL SAFE;
CREATE FUNCTION @extschema@.probe_topk_final(internal) RETURNS @extschema@.topk_rows
    AS 'MODULE_PATHNAME', 'kernel_probe_topk_final' LANGUAGE c PARALLEL SAFE;
CREATE AGGREGATE @extschema@.probe_topk(key anyelement, cluster integer, vec vector, queries vector[],
                                        probes integer[], k integer, metric text) (
    SFUNC = @extschema@.probe_topk_step,
    STYPE = internal,
    FINALFUNC = @extschema@.probe_topk_final,
    FINALFUNC_MODIFY = read_write
);

-- the multi-query scan by estimated distance (its twin: pgembed.estimate_topk's per-query statement)
CREATE FUNCTION @extschema@.estimate_topk_step(internal, anyelement, bytea, double precision[], integer)
    RETURNS internal AS 'MODULE_PATHNAME', 'kernel_estimate_topk_step' LANGUAGE c PARALLEL SAFE;
CREATE FUNCTION @extschema@.estimate_topk_step(internal, anyelement, varbit, double precision[], integer)
    RETURNS internal AS 'MODULE_PATHNAME', 'kernel_estimate_topk_step' LANGUAGE c PARALLEL SAFE;
CREATE FUNCTION @extschema@.estimate_topk_final(internal) RETURNS @extschema@.topk_rows
    AS 'MODULE_PATHNAME', 'kernel_estimate_topk_final' LANGUAGE c PARALLEL SAFE;
CREATE AGGREGATE @extschema@.estimate_topk(key anyelement, code bytea, tables double precision[], k integer) (
    SFUNC = @extschema@.estimate_topk_step,
    STYPE = internal,
    FINALFUNC = @extschema@.estimate_topk_final,
    FINALFUNC_MODIFY = read_write
);
CREATE AGGREGATE @extschema@.estimate_topk(key anyelement, code varbit, tables double precision[], k integer) (
    SFUNC = @extschema@.estimate_topk_step,
    STYPE = internal,
    FINALFUNC = @extschema@.estimate_topk_final,
    FINALFUNC_MODIFY = read_write
);
