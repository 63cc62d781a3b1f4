-- pgembed_kernels 1.0 -> 1.1: the multi-query scan by estimated distance (estimate_topk).
\echo Use "ALTER EXTENSION pgembed_kernels UPDATE TO '1.1'" to load this file. \quit

CREATE OR REPLACE FUNCTION @extschema@.version() RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN '1.1';

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
