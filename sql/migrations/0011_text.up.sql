-- pgembed catalog, version 11: full-text search of a collection's text column, and its fusion with the vector
-- search. pgembed.text_search records which column a collection searches as text and with which text search
-- configuration; its GIN index is on the expression to_tsvector(config, column) (sql/functions/text.sql), so
-- the user's table gains no column and no row of it is rewritten, or on a generated column that stores it.
CREATE TABLE IF NOT EXISTS pgembed.text_search (
    collection_id integer     PRIMARY KEY REFERENCES pgembed.collections (id) ON DELETE CASCADE,
    column_name   text        NOT NULL,
    -- The configuration by its qualified name (regconfig's text): a reg* column other than regclass, regrole or
    -- regtype would stop pg_upgrade.
    config        text        NOT NULL,
    -- add_text_search(..., stored=True): a generated column of the user's table holding to_tsvector(config,
    -- column), which ranks a broad query's many matches without computing their tsvector again; NULL: the
    -- index is on the expression itself.
    tsvector_column text,
    index_name    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE pgembed.text_search ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS readers_of_the_table ON pgembed.text_search;
DROP POLICY IF EXISTS owners_of_the_table ON pgembed.text_search;
CREATE POLICY readers_of_the_table ON pgembed.text_search FOR SELECT
    USING (EXISTS (SELECT FROM pgembed.collections AS c WHERE c.id = collection_id));
CREATE POLICY owners_of_the_table ON pgembed.text_search FOR ALL
    USING (EXISTS (SELECT FROM pgembed.collections AS c JOIN pg_catalog.pg_class AS r
                   ON r.oid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', c.table_schema, c.table_name))
                   WHERE c.id = collection_id AND pg_catalog.pg_has_role(r.relowner, 'USAGE')));
GRANT SELECT ON pgembed.text_search TO PUBLIC;

-- A collection's relevance models (pgembed/relevance.py): the parameters of a map from a row's distance to the
-- probability that it is relevant, a function of the query (sql/functions/rerank.sql evaluates it), versioned
-- like a codec: a new fit retires the active one.
CREATE TABLE IF NOT EXISTS pgembed.relevance_models (
    id             integer          GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collection_id  integer          NOT NULL REFERENCES pgembed.collections (id) ON DELETE CASCADE,
    version        integer          NOT NULL CHECK (version >= 1),
    state          text             NOT NULL CHECK (state IN ('active', 'retired')),
    -- float8, not vector: the server computes what numpy fitted, to the same digits.
    w_a            double precision[] NOT NULL,
    c_a            double precision NOT NULL,
    w_b            double precision[] NOT NULL,
    c_b            double precision NOT NULL,
    fitted_queries integer          NOT NULL,
    fitted_pairs   integer          NOT NULL,
    created_at     timestamptz      NOT NULL DEFAULT now(),
    UNIQUE (collection_id, version),
    CHECK (cardinality(w_a) = cardinality(w_b))
);
CREATE UNIQUE INDEX IF NOT EXISTS relevance_models_one_active ON pgembed.relevance_models (collection_id)
    WHERE state = 'active';
ALTER TABLE pgembed.relevance_models ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS readers_of_the_table ON pgembed.relevance_models;
DROP POLICY IF EXISTS owners_of_the_table ON pgembed.relevance_models;
CREATE POLICY readers_of_the_table ON pgembed.relevance_models FOR SELECT
    USING (EXISTS (SELECT FROM pgembed.collections AS c WHERE c.id = collection_id));
CREATE POLICY owners_of_the_table ON pgembed.relevance_models FOR ALL
    USING (EXISTS (SELECT FROM pgembed.collections AS c JOIN pg_catalog.pg_class AS r
                   ON r.oid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', c.table_schema, c.table_name))
                   WHERE c.id = collection_id AND pg_catalog.pg_has_role(r.relowner, 'USAGE')));
GRANT SELECT ON pgembed.relevance_models TO PUBLIC;
-- Nothing of the user's (a view over pgembed.search(), say) may depend on the functions that go: named, the
-- upgrade stops.
DO $$
DECLARE
    users text;
BEGIN
    SELECT string_agg(DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid), '; ') INTO users
    FROM pg_depend AS d JOIN pg_proc AS p ON d.refclassid = 'pg_proc'::regclass AND d.refobjid = p.oid
    WHERE p.pronamespace = 'pgembed'::regnamespace
      AND p.proname IN ('search')
      AND d.deptype = 'n'
      AND NOT (d.classid = 'pg_proc'::regclass
               AND (SELECT pronamespace FROM pg_proc WHERE oid = d.objid) = 'pgembed'::regnamespace);
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'cannot upgrade pgembed''s search functions: these use them: %', users
            USING HINT = 'drop them first (and make them again after)', ERRCODE = 'dependent_objects_still_exist';
    END IF;
END $$;
-- pgembed.search() gains the text query and the fusion's knobs, and returns the fused score: CREATE OR REPLACE
-- cannot change a function's arguments or result, so the function files write it anew.
DROP FUNCTION IF EXISTS pgembed.search(text, vector, integer, jsonb, double precision, text, integer,
                                       double precision, text, text, double precision, boolean);
DELETE FROM pgembed.function_files WHERE name = 'search';
