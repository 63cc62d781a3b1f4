"""Bulk ingest: everything validated first, one call all-or-nothing, atomic inside the app's transaction."""

from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
import psycopg
import pytest

import pgembed
from pgembed.codecs.binary import bits_to_text
from pgembed.errors import DuplicateKeyError, InvalidInputError, InvalidVectorsError
from tests.helpers import parse_vector, table_state, unit_vectors

DIM = 16


@pytest.fixture
def docs(db: pgembed.Database) -> pgembed.Collection:
    collection = db.create_collection("docs", DIM, attrs={"category": "text", "year": "integer", "score": "real"})
    collection.add_codec("f16", "float16")
    collection.add_codec("bq", "binary", fit_on=unit_vectors(100, DIM, seed=2))
    collection.ingest(np.arange(10), unit_vectors(10, DIM, seed=3),
                      {"category": ["x"] * 10, "year": np.arange(10) + 2000, "score": np.ones(10)})
    return collection


def test_rows_vectors_attrs_and_codes_arrive_exactly(docs: pgembed.Collection, sql_conn: psycopg.Connection) -> None:
    vectors = unit_vectors(1000, DIM, seed=11)
    ids = np.arange(100, 1100)
    categories = [None if i % 7 == 0 else f"cat {i % 5} é" for i in range(1000)]
    attrs = {"category": categories, "year": np.arange(1000), "score": np.linspace(0, 1, 1000)}
    assert docs.ingest(ids, vectors, attrs, chunk_rows=97) == 1000
    rows = sql_conn.execute(
        "SELECT id, embedding::text, category, year, score, embedding_bq::text FROM docs WHERE id >= 100 ORDER BY id"
    ).fetchall()
    bits = bits_to_text(docs.codec("bq").encode(vectors), DIM)
    assert len(rows) == 1000
    for i, (key, vec, category, year, score, code) in enumerate(rows):
        assert key == ids[i] and year == i and category == categories[i]
        assert np.array_equal(parse_vector(vec), vectors[i])
        assert score == pytest.approx(np.linspace(0, 1, 1000)[i], rel=1e-6)
        assert code == bits[i]


def test_iterator_of_batches(docs: pgembed.Collection) -> None:
    vectors = unit_vectors(5000, DIM, seed=12)
    batches = ((np.arange(s, s + 1000) + 10_000, vectors[s : s + 1000], None) for s in range(0, 5000, 1000))
    assert docs.ingest_batches(batches, total=5000) == 5000
    assert docs.count() == 5010


BAD_INPUTS = [
    (dict(ids=np.arange(3), vectors=np.zeros((3, DIM + 1), np.float32)), InvalidVectorsError, "dimension 17"),
    (dict(ids=np.arange(2), vectors=np.array([[np.nan] * DIM, [0.0] * DIM], np.float32)), InvalidVectorsError, "NaN"),
    (dict(ids=np.arange(2), vectors=np.array([[0.0] * DIM, [np.inf] * DIM])), InvalidVectorsError, "row 1 .*Inf"),
    (dict(ids=np.arange(2), vectors=np.ones((2, DIM), np.int32)), InvalidVectorsError, "floating point"),
    (dict(ids=[20, 21, 20], vectors=np.ones((3, DIM), np.float32)), InvalidVectorsError, "duplicate ids"),
    (dict(ids=np.array([20, 21, 20]), vectors=np.ones((3, DIM), np.float32)), InvalidVectorsError, "duplicate ids"),
    (dict(ids=[20, 21], vectors=np.ones((3, DIM), np.float32)), InvalidVectorsError, "2 ids for 3 vectors"),
    (dict(ids=[20, None], vectors=np.ones((2, DIM), np.float32)), InvalidVectorsError, "None"),
    (dict(ids=[], vectors=np.ones((0, DIM), np.float32)), InvalidVectorsError, "empty"),
    (dict(ids=[20], vectors=np.ones((1, DIM)), attrs={"nope": [1]}), InvalidInputError, "no column 'nope'"),
    (dict(ids=[20], vectors=np.ones((1, DIM)), attrs={"year": ["2001"]}), InvalidInputError, "year.*integers"),
    (dict(ids=[20], vectors=np.ones((1, DIM)), attrs={"year": [2**40]}), InvalidInputError, "out of range"),
    (dict(ids=[20], vectors=np.ones((1, DIM)), attrs={"category": [3]}), InvalidInputError, "expected str"),
    (dict(ids=[20, 21], vectors=np.ones((2, DIM)), attrs={"category": ["a"]}), InvalidInputError, "1 values for 2"),
    (dict(ids=[20], vectors=np.ones((1, DIM)), attrs={"embedding_bq": ["1"]}), InvalidInputError, "codes computed"),
    (dict(ids=["a"], vectors=np.ones((1, DIM))), InvalidInputError, "integers"),
    (dict(ids=[5], vectors=np.ones((1, DIM))), DuplicateKeyError, r"Key \(id\)=\(5\) already exists"),
    (dict(ids=[30, 31, 3], vectors=np.ones((3, DIM))), DuplicateKeyError, r"\(id\)=\(3\)"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_INPUTS)
def test_bad_input_leaves_the_table_exactly_as_it_was(docs: pgembed.Collection, sql_conn: psycopg.Connection,
                                                      kwargs: dict, error: type, message: str) -> None:
    before = table_state(sql_conn, "docs")
    with pytest.raises(error, match=message):
        docs.ingest(**kwargs)
    assert table_state(sql_conn, "docs") == before


def test_a_bad_later_batch_rolls_back_the_earlier_ones(docs: pgembed.Collection, sql_conn: psycopg.Connection) -> None:
    before = table_state(sql_conn, "docs")
    good = (np.arange(100, 200), unit_vectors(100, DIM), None)
    bad = (np.arange(200, 300), np.full((100, DIM), np.nan, np.float32), None)
    with pytest.raises(InvalidVectorsError, match="NaN"):
        docs.ingest_batches(iter([good, bad]))
    duplicate_across_batches = (np.arange(150, 160), unit_vectors(10, DIM), None)
    with pytest.raises(DuplicateKeyError):
        docs.ingest_batches(iter([good, duplicate_across_batches]))
    assert table_state(sql_conn, "docs") == before


def test_ingest_inside_the_applications_transaction(dsn: str, docs: pgembed.Collection) -> None:
    """pgembed on the app's own connection: the app's rollback undoes the ingest, its commit keeps it."""
    with psycopg.connect(dsn) as app_conn:  # autocommit off, as most applications run
        app_db = pgembed.Database(app_conn)
        app_docs = app_db.collection("docs")
        app_conn.execute("INSERT INTO docs (id, embedding) VALUES (500, %s)", (unit_vectors(1, DIM)[0],))
        app_docs.ingest(np.arange(501, 511), unit_vectors(10, DIM))
        with pytest.raises(DuplicateKeyError):  # a failed ingest rolls back to its savepoint only
            app_docs.ingest([600, 500], unit_vectors(2, DIM))
        assert app_docs.count() == 21
        app_conn.rollback()
        assert app_docs.count() == 10
        app_docs.ingest(np.arange(501, 511), unit_vectors(10, DIM))
        app_conn.commit()
    assert docs.count() == 20


def test_more_attribute_types(db: pgembed.Database, sql_conn: psycopg.Connection) -> None:
    kinds = {"flag": "boolean", "day": "date", "at": "timestamptz", "uid": "uuid", "meta": "jsonb",
             "blob": "bytea", "small": "smallint", "big": "bigint", "ratio": "double precision", "name": "varchar(20)"}
    c = db.create_collection("typed", 4, attrs=kinds)
    u = uuid.uuid4()
    c.ingest([1, 2], unit_vectors(2, 4), {
        "flag": np.array([True, False]), "day": [dt.date(2024, 2, 29), None],
        "at": np.array(["2024-01-01T12:00:00", "1999-12-31T23:59:59.5"], dtype="datetime64[us]"),
        "uid": [u, str(u)], "meta": [{"a": [1, "ü"]}, None], "blob": [b"\x00\x01", None],
        "small": np.array([-3, 7]), "big": [2**40, None], "ratio": [0.25, None], "name": ["ok", None],
    })
    sql_conn.execute("SET TIME ZONE 'UTC'")
    row = sql_conn.execute("SELECT flag, day, at, uid, meta, blob, small, big, ratio, name FROM typed WHERE id = 1"
                           ).fetchone()
    assert row == (True, dt.date(2024, 2, 29), dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC), u, {"a": [1, "ü"]},
                   b"\x00\x01", -3, 2**40, 0.25, "ok")
    row2 = sql_conn.execute("SELECT day, at, meta, big FROM typed WHERE id = 2").fetchone()
    assert row2 == (None, dt.datetime(1999, 12, 31, 23, 59, 59, 500000, tzinfo=dt.UTC), None, None)


def test_text_keys(db: pgembed.Database) -> None:
    c = db.create_collection("texty", 4, key_type="text")
    c.ingest(["a", "b'); DROP TABLE texty; --"], unit_vectors(2, 4))
    assert c.count() == 2
    with pytest.raises(DuplicateKeyError):
        c.ingest(["a"], unit_vectors(1, 4))
