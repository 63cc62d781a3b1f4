-- Which implementation pgembed's own functions run: the C kernels (extension pgembed_kernels, kernels/) where
-- they are installed in this database at the version this pgembed wants, the SQL twins (schema
-- pgembed_twins) elsewhere. Both give the same result for every input, so the choice changes speed only.
--
-- pgembed.encode_pq(...), pgembed.pq_distance(...) and every other public function of pgembed_twins are
-- generated wrappers: SQL functions whose body is one call, which the planner inlines, so a trigger or a
-- query pays nothing for the indirection. pgembed.bind_kernels() (re)generates them; migrate() calls it.

CREATE OR REPLACE FUNCTION pgembed.kernels_wanted() RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN '1.2';

-- Point every public twin's pgembed namesake at the kernel of the same signature (when `use_kernels` and the
-- wanted version is installed) or at the twin. `remember`: record this as the database's choice
-- (pgembed.kernel_choice), which every migrate() then binds by. Returns what pgembed.kernels() reports active.
CREATE OR REPLACE FUNCTION pgembed.bind_kernels(use_kernels boolean DEFAULT true, remember boolean DEFAULT true)
    RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    installed text := (SELECT extversion FROM pg_extension WHERE extname = 'pgembed_kernels');
    kernels boolean := use_kernels AND installed IS NOT DISTINCT FROM pgembed.kernels_wanted();
    f record;
    target text;
BEGIN
    FOR f IN
        SELECT p.oid, p.proname, pg_get_function_arguments(p.oid) AS args,
               oidvectortypes(p.proargtypes) AS identity, pg_get_function_result(p.oid) AS result,
               CASE p.provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END AS volatility,
               CASE WHEN p.proisstrict THEN 'STRICT' ELSE 'CALLED ON NULL INPUT' END AS strictness,
               CASE p.proparallel WHEN 's' THEN 'SAFE' WHEN 'r' THEN 'RESTRICTED' ELSE 'UNSAFE' END AS parallel,
               (SELECT string_agg(quote_ident(n), ', ' ORDER BY i)
                FROM unnest(p.proargnames) WITH ORDINALITY AS a(n, i)) AS names
        FROM pg_proc AS p
        WHERE p.pronamespace = 'pgembed_twins'::regnamespace AND p.prokind = 'f' AND left(p.proname, 1) <> '_'
        ORDER BY p.proname, p.oid
    LOOP
        target := 'pgembed_twins';
        IF kernels AND to_regprocedure(format('pgembed_kernels.%I(%s)', f.proname, f.identity)) IS NOT NULL THEN
            target := 'pgembed_kernels';
        END IF;
        EXECUTE format('CREATE OR REPLACE FUNCTION pgembed.%I(%s) RETURNS %s LANGUAGE sql %s %s PARALLEL %s RETURN %I.%I(%s)',
                       f.proname, f.args, f.result, f.volatility, f.strictness, f.parallel, target, f.proname, f.names);
    END LOOP;
    IF remember THEN
        INSERT INTO pgembed.kernel_choice AS k (use_kernels) VALUES (bind_kernels.use_kernels)
        ON CONFLICT (one) DO UPDATE SET use_kernels = excluded.use_kernels, chosen_at = now();
    END IF;
    RETURN (pgembed.kernels()) ->> 'active';
END $$;

-- The functions of pgembed that run a kernel now (their wrappers' bodies call pgembed_kernels).
CREATE OR REPLACE FUNCTION pgembed._kernel_bound_functions() RETURNS text[]
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN array(SELECT DISTINCT 'pgembed.' || regexp_replace(w.oid::regprocedure::text, '^pgembed\.', '')  -- whatever the search_path
                 FROM pg_depend AS d JOIN pg_proc AS w ON d.classid = 'pg_proc'::regclass AND w.oid = d.objid
                      JOIN pg_proc AS k ON d.refclassid = 'pg_proc'::regclass AND k.oid = d.refobjid
                 WHERE w.pronamespace = 'pgembed'::regnamespace AND k.pronamespace = to_regnamespace('pgembed_kernels')
                 ORDER BY 1);

-- What runs, and why: {"active": "kernels" | "twins", "installed", "available", "wanted", "reason",
-- "functions": the pgembed functions bound to a kernel}.
CREATE OR REPLACE FUNCTION pgembed.kernels() RETURNS jsonb
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    installed text := (SELECT extversion FROM pg_extension WHERE extname = 'pgembed_kernels');
    available text := (SELECT default_version FROM pg_available_extensions WHERE name = 'pgembed_kernels');
    bound text[] := pgembed._kernel_bound_functions();
BEGIN
    RETURN jsonb_build_object(
        'active', CASE WHEN cardinality(bound) > 0 THEN 'kernels' ELSE 'twins' END,
        'installed', installed, 'available', available, 'wanted', pgembed.kernels_wanted(),
        'functions', to_jsonb(bound),
        'reason', CASE
            WHEN cardinality(bound) > 0 THEN 'pgembed_kernels ' || installed || ' is installed and bound'
            WHEN installed IS NOT NULL AND installed <> pgembed.kernels_wanted() THEN
                format('pgembed_kernels %s is installed; this pgembed wants %s: ALTER EXTENSION pgembed_kernels UPDATE, then SELECT pgembed.bind_kernels()',
                       installed, pgembed.kernels_wanted())
            WHEN installed IS NOT NULL AND (SELECT NOT k.use_kernels FROM pgembed.kernel_choice AS k) THEN
                'pgembed_kernels is installed but this database chose the twins (pgembed.bind_kernels(false)); pgembed kernels enable, or SELECT pgembed.bind_kernels(true), binds the kernels'
            WHEN installed IS NOT NULL THEN
                'pgembed_kernels is installed but the twins are bound (PGEMBED_KERNELS=off at the last migrate): SELECT pgembed.bind_kernels(true) binds the kernels'
            WHEN available IS NOT NULL THEN
                'pgembed_kernels is available on this server but not installed in this database: CREATE EXTENSION pgembed_kernels (pgembed migrate does it where the role may)'
            ELSE 'pgembed_kernels is not installed on this server (pgembed kernels install): the SQL twins run' END);
END $$;

-- Whether pgembed's functions run the kernels now (what every search's scan statement branches on).
-- bind_kernels() binds them all or none, so one wrapper tells: an index lookup in pg_depend, where listing
-- them all (_kernel_bound_functions) scans it, ten times the cost on every search().
CREATE OR REPLACE FUNCTION pgembed._kernels_active() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN EXISTS (SELECT FROM pg_depend AS d JOIN pg_proc AS k ON k.oid = d.refobjid
                   WHERE d.classid = 'pg_proc'::regclass
                     AND d.objid = to_regprocedure('pgembed.encode_float16(vector)')
                     AND d.refclassid = 'pg_proc'::regclass
                     AND k.pronamespace = to_regnamespace('pgembed_kernels'));
