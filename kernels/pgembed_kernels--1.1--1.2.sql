-- pgembed_kernels 1.1 -> 1.2: the IVF partitioning encoder (encode_ivf, the nearest centroid) and the scan of
-- each query's clusters (probe_topk).
\echo Use "ALTER EXTENSION pgembed_kernels UPDATE TO '1.2'" to load this file. \quit

CREATE OR REPLACE FUNCTION @extschema@.version() RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN '1.2';

CREATE FUNCTION @extschema@.encode_ivf(v vector, centroids vector[]) RETURNS integer
    AS 'MODULE_PATHNAME', 'kernel_encode_ivf' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;

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
