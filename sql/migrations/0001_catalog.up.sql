-- pgembed catalog, version 1: collections, their codecs, their indexes.
-- Applied by migrations/versions/0001_catalog.py inside the schema "pgembed" (created by env.py). Functions
-- are not here: they live in sql/functions/, re-applied by the migrations that change them.

GRANT USAGE ON SCHEMA pgembed TO PUBLIC;

-- A collection is a user table with a vector column that pgembed knows about.
CREATE TABLE pgembed.collections (
    id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text        NOT NULL UNIQUE,
    table_schema  text        NOT NULL,
    table_name    text        NOT NULL,
    key_column    text        NOT NULL,
    vector_column text        NOT NULL,
    dim           integer     NOT NULL CHECK (dim BETWEEN 1 AND 16000),
    metric        text        NOT NULL CHECK (metric IN ('cosine', 'ip', 'l2')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (table_schema, table_name, vector_column)
);

-- A codec of a collection: its fitted parameters and the column its codes live in.
-- state: 'building' while codes are being written, 'active' when readers may use it, 'retired' after a re-fit.
CREATE TABLE pgembed.codecs (
    id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collection_id integer     NOT NULL REFERENCES pgembed.collections (id) ON DELETE CASCADE,
    name          text        NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,30}$'),
    kind          text        NOT NULL,
    version       integer     NOT NULL DEFAULT 1 CHECK (version >= 1),
    state         text        NOT NULL CHECK (state IN ('building', 'active', 'retired')),
    column_name   text        NOT NULL,
    sql_type      text        NOT NULL,
    params        jsonb       NOT NULL DEFAULT '{}',
    fitted_rows   bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (collection_id, name, version)
);
CREATE UNIQUE INDEX codecs_one_active ON pgembed.codecs (collection_id, name) WHERE state = 'active';

-- A pgvector index pgembed built, on a code column (codec_id set) or on the source vector (codec_id null).
CREATE TABLE pgembed.indexes (
    id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collection_id integer     NOT NULL REFERENCES pgembed.collections (id) ON DELETE CASCADE,
    codec_id      integer     REFERENCES pgembed.codecs (id) ON DELETE CASCADE,
    index_name    text        NOT NULL,
    method        text        NOT NULL CHECK (method IN ('hnsw', 'ivfflat')),
    opclass       text        NOT NULL,
    params        jsonb       NOT NULL DEFAULT '{}',
    build_seconds double precision,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (collection_id, index_name)
);

GRANT SELECT ON pgembed.collections, pgembed.codecs, pgembed.indexes TO PUBLIC;
