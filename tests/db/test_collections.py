"""Attaching to the user's own tables, creating new ones, and refusing what cannot work."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

import pgembed
from pgembed.codecs.binary import bits_to_text
from pgembed.errors import SchemaError
from tests.helpers import parse_vector, table_state, unit_vectors, vector_text


def make_user_table(conn: psycopg.Connection, rows: int, dim: int = 16, name: str = "docs") -> np.ndarray:
    vectors = unit_vectors(rows, dim, seed=3)
    conn.execute(f'CREATE TABLE "{name}" (doc_id bigint PRIMARY KEY, title text, emb vector({dim}))')
    with conn.cursor() as cur:
        cur.executemany(f'INSERT INTO "{name}" VALUES (%s, %s, %s)',
                        [(i, f"title {i}", vector_text(v)) for i, v in enumerate(vectors)])
    return vectors


def test_attach_to_a_table_with_rows_backfills_codes(db: pgembed.Database, sql_conn: psycopg.Connection) -> None:
    vectors = make_user_table(sql_conn, 300)
    docs = db.collection("docs")  # vector column and key found from the table itself
    assert (docs.info.vector_column, docs.info.key_column, docs.dim) == ("emb", "doc_id", 16)
    docs.add_codec("f16", "float16")
    docs.add_codec("bq", "binary")  # fitted on the table's own rows
    assert {c.name: c.state for c in docs.codecs()} == {"f16": "active", "bq": "active"}
    assert docs.codecs()[0].fitted_rows == 300

    rows = sql_conn.execute("SELECT doc_id, emb_f16, emb_bq::text FROM docs ORDER BY doc_id").fetchall()
    assert len(rows) == 300
    expected_bits = bits_to_text(docs.codec("bq").encode(vectors), 16)
    for (key, half, bits), v, want in zip(rows, vectors, expected_bits, strict=True):
        assert np.array_equal(parse_vector(half).astype(np.float16), v.astype(np.float16)), key
        assert bits == want, key
    # The user's columns are untouched, and the collection is found again by name.
    assert sql_conn.execute("SELECT title FROM docs WHERE doc_id = 7").fetchone() == ("title 7",)
    assert db.collection("docs").info == docs.info


def test_attach_needs_a_usable_vector_and_key(db: pgembed.Database, sql_conn: psycopg.Connection) -> None:
    sql_conn.execute("CREATE TABLE two (id int PRIMARY KEY, a vector(3), b vector(3))")
    sql_conn.execute("CREATE TABLE nodim (id int PRIMARY KEY, v vector)")
    sql_conn.execute("CREATE TABLE nokey (id int, v vector(3))")
    sql_conn.execute("CREATE VIEW aview AS SELECT * FROM two")
    cases = [
        (dict(table="missing"), "does not exist"),
        (dict(table="two"), "needs vector=.*a, b"),
        (dict(table="two", vector="title"), "no column 'title' of type vector"),
        (dict(table="nodim"), "no declared dimension"),
        (dict(table="nokey"), "no single-column primary key"),
        (dict(table="nokey", key="id"), "needs a unique index"),
        (dict(table="aview", vector="a"), "not a table"),
        (dict(table="two", vector="a", metric="manhattan"), "unknown metric"),
    ]
    for kwargs, message in cases:
        with pytest.raises(SchemaError, match=message):
            db.collection(**kwargs)  # type: ignore[arg-type]
    assert db.collections() == []


HOSTILE_NAMES = ["docs; DROP TABLE victim; --", 'docs" ; DROP TABLE victim; --', "victim')); DROP TABLE victim; --"]


@pytest.mark.parametrize("hostile", [*HOSTILE_NAMES, "", "a.b.c.d"])
def test_hostile_names_never_reach_sql_as_code(db: pgembed.Database, sql_conn: psycopg.Connection,
                                              hostile: str) -> None:
    sql_conn.execute("CREATE TABLE victim (id int PRIMARY KEY, v vector(3))")
    sql_conn.execute("INSERT INTO victim VALUES (1, '[1,2,3]')")
    before = table_state(sql_conn, "victim")
    with pytest.raises(SchemaError):  # no such table: the whole string is one name
        db.collection(hostile)
    try:
        created = db.create_collection(hostile, 3)
    except SchemaError:
        created = None  # "" and "a.b.c.d" are not table names
    if created is not None:  # a table with exactly that (odd) name
        assert (created.info.table_schema, created.info.table_name) == ("public", hostile)
    assert table_state(sql_conn, "victim") == before


def test_create_collection_quotes_whatever_names_it_is_given(db: pgembed.Database,
                                                             sql_conn: psycopg.Connection) -> None:
    name = 'Straße "quoted"; DROP TABLE x'
    docs = db.create_collection(name, 4, attrs={"Kategorie ü": "text", "year": "integer", "tags": "text[]"})
    docs.add_codec("bq", "binary", fit_on=unit_vectors(10, 4))
    docs.ingest([1, 2], unit_vectors(2, 4), {"Kategorie ü": ["a", "b"], "year": np.array([2001, 2002])})
    assert sql_conn.execute('SELECT count(*) FROM "Straße ""quoted""; DROP TABLE x"').fetchone() == (2,)
    columns = sql_conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
        (name,),
    ).fetchall()
    assert columns == [("id", "bigint"), ("embedding", "USER-DEFINED"), ("Kategorie ü", "text"),
                       ("year", "integer"), ("tags", "ARRAY"), ("embedding_bq", "bit")]


@pytest.mark.parametrize("bad_type", ["integer; DROP TABLE victim", "nosuchtype", "text) ; DROP TABLE victim; --"])
def test_hostile_column_types_are_rejected(db: pgembed.Database, sql_conn: psycopg.Connection, bad_type: str) -> None:
    sql_conn.execute("CREATE TABLE victim (id int PRIMARY KEY)")
    with pytest.raises(SchemaError, match="unknown column type"):
        db.create_collection("new", 3, attrs={"a": bad_type})
    assert sql_conn.execute("SELECT to_regclass('victim') IS NOT NULL, to_regclass('new')").fetchone() == (True, None)
    assert db.collections() == []


def test_create_collection_errors(db: pgembed.Database) -> None:
    db.create_collection("docs", 8)
    with pytest.raises(SchemaError, match="already exists"):
        db.create_collection("docs", 8)
    assert db.create_collection("docs", 8, if_not_exists=True).name == "docs"
    with pytest.raises(SchemaError, match="between 1 and 16000"):
        db.create_collection("zero", 0)
    with pytest.raises(SchemaError, match="used twice"):
        db.create_collection("dup", 3, attrs={"id": "text"})
    with pytest.raises(SchemaError, match="schema of"):
        db.create_collection("nosuchschema.t", 3)


def test_drop_keeps_the_users_rows(db: pgembed.Database, sql_conn: psycopg.Connection) -> None:
    make_user_table(sql_conn, 20)
    docs = db.collection("docs")
    docs.add_codec("bq", "binary")
    docs.create_index("bq")
    docs.drop()
    assert db.collections() == []
    cols = {r[0] for r in sql_conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'docs'").fetchall()}
    assert cols == {"doc_id", "title", "emb"}
    assert sql_conn.execute("SELECT count(*) FROM docs").fetchone() == (20,)
    # With the trigger gone, writes no longer touch pgembed at all.
    sql_conn.execute("INSERT INTO docs VALUES (99, 't', %s)", (vector_text(np.full(16, 0.5)),))


def test_add_codec_errors_change_nothing(db: pgembed.Database, sql_conn: psycopg.Connection) -> None:
    from pgembed.errors import InvalidVectorsError, UnknownCodecError

    docs = db.create_collection("docs", 4)
    with pytest.raises(InvalidVectorsError, match="no vectors yet; pass fit_on"):
        docs.add_codec("bq", "binary")
    docs.add_codec("f16", "float16")
    docs.ingest([1, 2, 3], unit_vectors(3, 4))
    before = table_state(sql_conn, "docs")
    with pytest.raises(SchemaError, match="already has a codec 'f16'"):
        docs.add_codec("f16", "binary")
    with pytest.raises(SchemaError, match="invalid codec name"):
        docs.add_codec("Bad-Name", "binary")
    with pytest.raises(UnknownCodecError, match="unknown codec 'zstd'"):
        docs.add_codec("z", "zstd")
    with pytest.raises(InvalidVectorsError, match="dimension 5, expected 4"):
        docs.add_codec("bq", "binary", fit_on=np.ones((3, 5), np.float32))
    assert [c.name for c in docs.codecs()] == ["f16"]
    assert table_state(sql_conn, "docs") == before
    assert "docs_bq" not in {r[0] for r in sql_conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'docs'").fetchall()}
