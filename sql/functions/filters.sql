-- The filter language of hybrid search: a MongoDB-like jsonb filter -> the text of a WHERE clause.
--
--     {"category": "news", "year": {"$gte": 2020}, "$or": [{"lang": "en"}, {"lang": null}]}
--
-- The one compiler of the language: Python's search() sends its dict filters here (pgembed/engine/search.py)
-- and pgembed.search() calls it on the server. Several keys at one level are ANDed; a bare value means $eq,
-- null means IS NULL. Operators: $eq $ne $lt $lte $gt $gte $in $nin $between ([lo, hi], inclusive) $exists,
-- $matches (full text: the column's text search matches a websearch_to_tsquery string; sql/functions/text.sql);
-- logical $and / $or (non-empty arrays) and $not. Two-valued, as MongoDB's: comparisons with a NULL column
-- value are false, $ne and $nin are true for NULL column values, $not f is true whenever f is not true;
-- $in [] matches nothing, $nin [] everything.
--
-- The clause is built only with format('%I') for column names (looked up in pg_attribute first) and %L for
-- values, cast to the column's type as format_type() spells it. Errors: SQLSTATE 22023, naming the column
-- and the problem.

-- One value compared with column col (of type typ, typcategory cat) by operator op, as a SQL literal.
CREATE OR REPLACE FUNCTION pgembed._filter_value(col text, typ text, cat text, op text, v jsonb)
    RETURNS text LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    kind  text := jsonb_typeof(v);
    txt   text := v #>> '{}';
    place text := format('column %L (%s): %s', col, typ, op);
    msg   text;
BEGIN
    IF kind = 'null' THEN
        RAISE EXCEPTION '% needs a non-null value', place USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cat = 'N' THEN
        IF kind <> 'number' THEN
            RAISE EXCEPTION '% needs a number, got %', place, kind USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- Compared as numbers, never cast to the column's type (2.5 must not become 3 for an integer column).
        IF txt ~ '^-?[0-9]+$' AND txt::numeric BETWEEN -9223372036854775808 AND 9223372036854775807 THEN
            RETURN format('%L::bigint', txt);
        END IF;
        RETURN format('%L::numeric', txt);
    ELSIF cat = 'B' THEN
        IF kind <> 'boolean' THEN
            RAISE EXCEPTION '% needs true or false, got %', place, kind USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RETURN CASE WHEN v::boolean THEN 'true' ELSE 'false' END;
    ELSIF cat = 'S' THEN
        IF kind <> 'string' THEN
            RAISE EXCEPTION '% needs a string, got %', place, kind USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- Untyped: the column's own type (and collation) decides; a cast to varchar(n) would truncate.
        RETURN quote_literal(txt);
    ELSIF kind <> 'string' THEN
        IF cat = 'D' THEN
            RAISE EXCEPTION '% needs a date/time or an ISO 8601 string, got %', place, kind
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RAISE EXCEPTION '% needs a string (PostgreSQL casts it to %), got %', place, typ, kind
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Date/time and every other category: the server casts the string to the column's type; try it now.
    BEGIN
        EXECUTE format('SELECT %L::%s', txt, typ);
    EXCEPTION WHEN data_exception THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
        RAISE EXCEPTION '% value % is not a valid %: %', place, quote_literal(txt), typ, msg
            USING ERRCODE = 'invalid_parameter_value';
    END;
    RETURN format('%L::%s', txt, typ);
END $$;

-- One operator applied to one column (already known to exist, quoted as ident).
CREATE OR REPLACE FUNCTION pgembed._filter_operator(col text, typ text, cat text, op text, arg jsonb)
    RETURNS text LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    ident     text := format('%I', col);
    kind      text := jsonb_typeof(arg);
    items     text[] := '{}';
    with_null boolean := false;
    item      jsonb;
BEGIN
    IF op IN ('$eq', '$ne') AND kind = 'null' THEN
        RETURN ident || CASE op WHEN '$eq' THEN ' IS NULL' ELSE ' IS NOT NULL' END;
    ELSIF op = '$eq' THEN
        RETURN format('%s = %s', ident, pgembed._filter_value(col, typ, cat, op, arg));
    ELSIF op = '$ne' THEN
        RETURN format('(%s IS NULL OR %s <> %s)', ident, ident, pgembed._filter_value(col, typ, cat, op, arg));
    ELSIF op IN ('$lt', '$lte', '$gt', '$gte') THEN
        RETURN format('%s %s %s', ident,
                      CASE op WHEN '$lt' THEN '<' WHEN '$lte' THEN '<=' WHEN '$gt' THEN '>' ELSE '>=' END,
                      pgembed._filter_value(col, typ, cat, op, arg));
    ELSIF op IN ('$in', '$nin') THEN
        IF kind <> 'array' THEN
            RAISE EXCEPTION 'column %: % needs an array of values, got %', quote_literal(col), op, kind
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        FOR item IN SELECT value FROM jsonb_array_elements(arg) LOOP
            IF jsonb_typeof(item) = 'null' THEN
                with_null := true;
            ELSE
                items := items || pgembed._filter_value(col, typ, cat, op, item);
            END IF;
        END LOOP;
        IF op = '$in' THEN
            IF cardinality(items) = 0 THEN
                RETURN CASE WHEN with_null THEN ident || ' IS NULL' ELSE 'false' END;
            ELSIF with_null THEN
                RETURN format('(%s IS NULL OR %s IN (%s))', ident, ident, array_to_string(items, ', '));
            END IF;
            RETURN format('%s IN (%s)', ident, array_to_string(items, ', '));
        END IF;
        IF cardinality(items) = 0 THEN
            RETURN CASE WHEN with_null THEN ident || ' IS NOT NULL' ELSE 'true' END;
        ELSIF with_null THEN
            RETURN format('(%s IS NOT NULL AND %s NOT IN (%s))', ident, ident, array_to_string(items, ', '));
        END IF;
        RETURN format('(%s IS NULL OR %s NOT IN (%s))', ident, ident, array_to_string(items, ', '));
    ELSIF op = '$between' THEN
        IF kind <> 'array' OR jsonb_array_length(arg) <> 2 THEN
            RAISE EXCEPTION 'column %: $between needs an array [low, high], got %', quote_literal(col),
                CASE WHEN kind = 'array' THEN 'an array of ' || jsonb_array_length(arg) ELSE kind END
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RETURN format('%s BETWEEN %s AND %s', ident, pgembed._filter_value(col, typ, cat, op, arg -> 0),
                      pgembed._filter_value(col, typ, cat, op, arg -> 1));
    ELSIF op = '$exists' THEN
        IF kind <> 'boolean' THEN
            RAISE EXCEPTION 'column %: $exists needs true or false, got %', quote_literal(col), kind
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RETURN ident || CASE WHEN arg::boolean THEN ' IS NOT NULL' ELSE ' IS NULL' END;
    END IF;
    RAISE EXCEPTION 'column %: unknown operator % (use $eq, $ne, $lt, $lte, $gt, $gte, $in, $nin, $between, $exists, $matches)',
        quote_literal(col), quote_literal(op) USING ERRCODE = 'invalid_parameter_value';
END $$;

-- $matches on a text column: the collection's text search of it (its configuration and indexed expression,
-- sql/functions/text.sql) matches the query, written in websearch_to_tsquery's syntax.
CREATE OR REPLACE FUNCTION pgembed._filter_matches(tbl regclass, col text, arg jsonb)
    RETURNS text LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    searched record := pgembed._text_search_of(tbl, col);
BEGIN
    IF searched.config IS NULL THEN
        RAISE EXCEPTION 'column %: $matches needs a text search on it (add_text_search(%L))', quote_literal(col), col
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(arg) <> 'string' THEN
        RAISE EXCEPTION 'column %: $matches needs a string, got %', quote_literal(col), jsonb_typeof(arg)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN format('%s OPERATOR(pg_catalog.@@) pgembed.text_query(%L::pg_catalog.regconfig, %L, %L)',
                  searched.document, searched.config, arg #>> '{}', 'websearch');
END $$;

-- The condition on one column: a bare value ($eq), or an object of operators (ANDed).
CREATE OR REPLACE FUNCTION pgembed._filter_column(tbl regclass, col text, spec jsonb)
    RETURNS text LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    typ   text;
    cat   text;
    parts text[] := '{}';
    op    text;
    arg   jsonb;
BEGIN
    SELECT format_type(a.atttypid, a.atttypmod), t.typcategory::text INTO typ, cat
    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown column % in filter on table %', quote_literal(col), tbl
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(spec) <> 'object' THEN
        RETURN pgembed._filter_operator(col, typ, cat, '$eq', spec);
    END IF;
    IF spec = '{}'::jsonb THEN
        RAISE EXCEPTION 'column %: empty operator object', quote_literal(col) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR op, arg IN SELECT key, value FROM jsonb_each(spec) LOOP
        parts := parts || CASE WHEN op = '$matches' THEN pgembed._filter_matches(tbl, col, arg)
                               ELSE pgembed._filter_operator(col, typ, cat, op, arg) END;
    END LOOP;
    RETURN CASE WHEN cardinality(parts) = 1 THEN parts[1] ELSE '(' || array_to_string(parts, ' AND ') || ')' END;
END $$;

-- One filter object: its keys (columns, $and, $or, $not) ANDed; 'true' for {}.
CREATE OR REPLACE FUNCTION pgembed._filter_node(tbl regclass, node jsonb, depth int)
    RETURNS text LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    parts   text[] := '{}';
    subs    text[];
    key     text;
    val     jsonb;
    element jsonb;
BEGIN
    IF depth > 32 THEN
        RAISE EXCEPTION 'filter nested deeper than 32 levels of $and/$or/$not' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(node) <> 'object' THEN
        RAISE EXCEPTION 'a filter must be an object, got %', jsonb_typeof(node) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR key, val IN SELECT e.key, e.value FROM jsonb_each(node) AS e LOOP
        IF key IN ('$and', '$or') THEN
            IF jsonb_typeof(val) <> 'array' OR jsonb_array_length(val) = 0 THEN
                RAISE EXCEPTION '% needs a non-empty array of filters, got %', key, jsonb_typeof(val)
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            subs := '{}';
            FOR element IN SELECT value FROM jsonb_array_elements(val) LOOP
                IF jsonb_typeof(element) <> 'object' THEN
                    RAISE EXCEPTION '% needs an array of filter objects, got an element %', key, jsonb_typeof(element)
                        USING ERRCODE = 'invalid_parameter_value';
                END IF;
                subs := subs || pgembed._filter_node(tbl, element, depth + 1);
            END LOOP;
            parts := parts || ('(' || array_to_string(subs, CASE key WHEN '$and' THEN ' AND ' ELSE ' OR ' END) || ')');
        ELSIF key = '$not' THEN
            IF jsonb_typeof(val) <> 'object' THEN
                RAISE EXCEPTION '$not needs a filter object, got %', jsonb_typeof(val)
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            parts := parts || format('NOT coalesce(%s, false)', pgembed._filter_node(tbl, val, depth + 1));
        ELSIF left(key, 1) = '$' THEN
            RAISE EXCEPTION 'unknown operator % where a column name or $and, $or, $not is expected', quote_literal(key)
                USING ERRCODE = 'invalid_parameter_value';
        ELSE
            parts := parts || pgembed._filter_column(tbl, key, val);
        END IF;
    END LOOP;
    RETURN CASE cardinality(parts) WHEN 0 THEN 'true' WHEN 1 THEN parts[1]
                ELSE '(' || array_to_string(parts, ' AND ') || ')' END;
END $$;

-- The WHERE-clause text of a filter on table tbl (unqualified column names); 'true' for NULL or {}.
CREATE OR REPLACE FUNCTION pgembed.filter_sql(tbl regclass, filter jsonb)
    RETURNS text LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'filter_sql needs a table' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF filter IS NULL OR filter = '{}'::jsonb THEN
        RETURN 'true';
    END IF;
    RETURN pgembed._filter_node(tbl, filter, 0);
END $$;

COMMENT ON FUNCTION pgembed.filter_sql(regclass, jsonb) IS
    'WHERE-clause text of a pgembed filter (MongoDB-like jsonb) on a table';

-- Does a filter include a partial index's predicate? Each of the predicate's top-level entries must appear
-- in the filter unchanged (jsonb equality: numbers by value), so the filter implies the predicate and
-- PostgreSQL can use the index.
CREATE OR REPLACE FUNCTION pgembed.filter_includes(filter jsonb, predicate jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN jsonb_typeof(filter) = 'object' AND jsonb_typeof(predicate) = 'object'
        AND NOT EXISTS (SELECT 1 FROM jsonb_each(predicate) AS e
                        WHERE NOT (filter ? e.key) OR filter -> e.key <> e.value);
GRANT EXECUTE ON FUNCTION
    pgembed.filter_sql(regclass, jsonb),
    pgembed._filter_node(regclass, jsonb, int),
    pgembed._filter_column(regclass, text, jsonb),
    pgembed._filter_matches(regclass, text, jsonb),
    pgembed._filter_operator(text, text, text, text, jsonb),
    pgembed._filter_value(text, text, text, text, jsonb)
TO PUBLIC;
