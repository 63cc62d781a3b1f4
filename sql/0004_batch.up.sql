-- pgembed catalog, version 4: a batch of hybrid queries from SQL.
--
-- Each query goes through pgembed.search(): same plans, same answers, one query at a time. The Python API's
-- scan-and-multiply plan (one read of a group's rows, one matrix product for all its queries) has no
-- counterpart here: SQL has no matrix product.
CREATE FUNCTION pgembed.search_batch(
    collection text, queries vector[], k integer DEFAULT 10, filters jsonb[] DEFAULT NULL,
    recall double precision DEFAULT NULL
) RETURNS TABLE (query_no integer, id text, distance double precision) LANGUAGE plpgsql VOLATILE AS $$
-- query_no: the query's subscript in `queries` (1-based for ordinary arrays).
DECLARE
    n integer := coalesce(cardinality(queries), 0);
    i integer;
BEGIN
    IF n = 0 THEN
        RAISE EXCEPTION 'queries is empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF filters IS NOT NULL AND cardinality(filters) NOT IN (1, n) THEN
        RAISE EXCEPTION 'got % filters for % queries: give one, or one per query', cardinality(filters), n
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR i IN SELECT generate_subscripts(queries, 1) LOOP
        RETURN QUERY SELECT i, s.id, s.distance
            FROM pgembed.search(collection, queries[i], k,
                                CASE WHEN filters IS NULL THEN NULL
                                     WHEN cardinality(filters) = 1 THEN filters[array_lower(filters, 1)]
                                     ELSE filters[array_lower(filters, 1) + i - array_lower(queries, 1)] END,
                                recall) AS s;
    END LOOP;
END $$;

GRANT EXECUTE ON FUNCTION pgembed.search_batch(text, vector[], integer, jsonb[], double precision) TO PUBLIC;
