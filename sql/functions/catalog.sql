-- What the planner reads besides its inputs: where candidates can come from, and how many rows a table and a
-- filter hold. One definition each: Python reads them through pgembed._prepare_search (sql/functions/search.sql).

-- HNSW indexes on active code columns: where candidates can come from. index_rows: the index's own row count
-- estimate (what a partial index holds). Ordered as the planner breaks ties: by codec name, then index name.
CREATE OR REPLACE FUNCTION pgembed.search_sources(collection_id integer)
    RETURNS TABLE (codec_id integer, name text, column_name text, sql_type text, index_name text,
                   predicate jsonb, index_rows double precision)
    LANGUAGE sql STABLE AS $$
    SELECT x.id, x.name, x.column_name, x.sql_type, i.index_name, i.predicate,
           greatest(coalesce(r.reltuples, 0), 0)::double precision
    FROM pgembed.codecs x
    JOIN pgembed.indexes i ON i.codec_id = x.id AND i.method = 'hnsw'
    JOIN pgembed.collections c ON c.id = x.collection_id
    LEFT JOIN pg_class r ON r.oid = to_regclass(format('%I.%I',
        CASE WHEN c.placement = 'companion' THEN 'pgembed' ELSE c.table_schema END, i.index_name))
    WHERE x.collection_id = search_sources.collection_id AND x.state = 'active'
    ORDER BY x.name, i.index_name
$$;

-- The rows of a table as the planner knows them (pg_class.reltuples); a table never analysed (-1) or empty
-- by that count is counted.
CREATE OR REPLACE FUNCTION pgembed.table_rows(tbl regclass) RETURNS double precision
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    total double precision;
BEGIN
    SELECT greatest(reltuples, 0) INTO total FROM pg_class WHERE oid = tbl;
    IF coalesce(total, 0) = 0 THEN
        EXECUTE format('SELECT count(*) FROM %s', tbl) INTO total;
    END IF;
    RETURN total;
END $$;

-- PostgreSQL's own estimate of the rows a WHERE clause keeps (EXPLAIN, nothing run). The clause is SQL text
-- that runs with the caller's rights: pgembed passes only clauses it compiled (pgembed.filter_sql) or that
-- the caller's own SQLAlchemy expression rendered.
CREATE OR REPLACE FUNCTION pgembed.estimate_rows(tbl regclass, clause text) RETURNS double precision
    LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    explained jsonb;
BEGIN
    EXECUTE format('EXPLAIN (FORMAT JSON) SELECT 1 FROM %s WHERE %s', tbl, clause) INTO explained;
    RETURN (explained -> 0 -> 'Plan' ->> 'Plan Rows')::double precision;
END $$;

-- What a downgrade that drops the functions of `schemas` would take along that is not pgembed's: objects of
-- the user's (views, indexes, their own functions) that use those functions, or pgembed's functions that call
-- them. NULL when there is none.
CREATE OR REPLACE FUNCTION pgembed._outside_dependents(schemas regnamespace[]) RETURNS text
    LANGUAGE sql STABLE AS $$
    WITH doomed AS (
        SELECT p.oid FROM pg_proc AS p WHERE p.pronamespace = ANY (schemas)
        UNION
        SELECT d.objid FROM pg_depend AS d JOIN pg_proc AS p ON d.refclassid = 'pg_proc'::regclass AND d.refobjid = p.oid
        WHERE p.pronamespace = ANY (schemas) AND d.classid = 'pg_proc'::regclass
          AND (SELECT pronamespace FROM pg_proc WHERE oid = d.objid) = 'pgembed'::regnamespace)
    SELECT string_agg(DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid), '; ')
    FROM pg_depend AS d JOIN doomed ON d.refclassid = 'pg_proc'::regclass AND d.refobjid = doomed.oid
    WHERE d.deptype = 'n'
      AND NOT (d.classid = 'pg_proc'::regclass
               AND (SELECT pronamespace FROM pg_proc WHERE oid = d.objid)
                   IN ('pgembed'::regnamespace, to_regnamespace('pgembed_twins'), to_regnamespace('pgembed_kernels')))
      AND NOT (d.classid = 'pg_trigger'::regclass
               AND (SELECT tgname FROM pg_trigger WHERE oid = d.objid) LIKE 'pgembed\_keep\_codes\_%')
$$;

-- Pins `path` (pgembed.statements.search_path.pinned) on every function of pgembed's schemas whose body is
-- resolved when it runs (PL/pgSQL, and SQL with a string body), so that no caller's search_path decides which
-- operator, function or type they use. SQL-standard bodies (RETURN ...) are resolved once, at creation, and
-- keep their inlining: they are left alone. Run after every (re)application of the function files, which
-- CREATE OR REPLACE resets.
CREATE OR REPLACE FUNCTION pgembed._pin_search_paths(path text) RETURNS integer
    LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    f regprocedure;
    pinned integer := 0;
BEGIN
    FOR f IN
        SELECT p.oid FROM pg_proc AS p JOIN pg_language AS l ON l.oid = p.prolang
        WHERE p.pronamespace IN (SELECT n.oid FROM pg_namespace AS n WHERE n.nspname IN ('pgembed', 'pgembed_twins'))
          AND p.prokind = 'f' AND p.prosqlbody IS NULL AND l.lanname IN ('plpgsql', 'sql')
          AND pg_has_role(p.proowner, 'USAGE')  -- a collection's generated functions of another owner pin their own
          AND p.proconfig IS DISTINCT FROM ARRAY['search_path=' || path]
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %s', f, path);
        pinned := pinned + 1;
    END LOOP;
    RETURN pinned;
END $$;
