-- pgembed catalog, version 3: tuning results (recall targets -> search knobs) and partial indexes.

-- What collection.tune(recall=...) measured: per codec (and per partial index: index_name; '' for the
-- codec's full index) and filter selectivity, the cheapest knobs that reached the recall target.
CREATE TABLE pgembed.tuning (
    collection_id   integer          NOT NULL REFERENCES pgembed.collections (id) ON DELETE CASCADE,
    codec_id        integer          NOT NULL REFERENCES pgembed.codecs (id) ON DELETE CASCADE,
    index_name      text             NOT NULL DEFAULT '',
    recall_target   double precision NOT NULL CHECK (recall_target > 0 AND recall_target <= 1),
    selectivity     double precision NOT NULL CHECK (selectivity > 0 AND selectivity <= 1),
    ef_search       integer          NOT NULL CHECK (ef_search BETWEEN 1 AND 1000),
    oversample      double precision NOT NULL CHECK (oversample >= 1),
    measured_recall double precision NOT NULL,
    queries_per_s   double precision,
    sample_queries  integer          NOT NULL,
    tuned_at        timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (collection_id, codec_id, index_name, recall_target, selectivity)
);
GRANT SELECT ON pgembed.tuning TO PUBLIC;

-- A partial index (collection.create_index(..., where=filter)) keeps its predicate, in the filter language.
ALTER TABLE pgembed.indexes ADD COLUMN predicate jsonb CHECK (jsonb_typeof(predicate) = 'object');
