"""Companion placement: a collection's codes in pgembed.codes_<id>, kept in step with the user's table by its
trigger whoever writes a row, filled without rewriting the user's rows; and the search stages over them."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from psycopg import sql

import pgembed
from pgembed.codecs.binary import bits_to_text
from pgembed.errors import InvalidInputError, SchemaError
from tests.helpers import unit_vectors, vector_text

DIM = 24
ROWS = 300


def companion(c: pgembed.Collection) -> sql.Identifier:
    return sql.Identifier("pgembed", f"codes_{c.info.id}")


def codes_of(conn: psycopg.Connection, c: pgembed.Collection) -> dict[int, tuple[str, str]]:
    rows = conn.execute(sql.SQL("SELECT id, embedding_bq2::text, embedding_f16::text FROM {}").format(companion(c)))
    return {int(k): (bits, half) for k, bits, half in rows.fetchall()}


def expected(c: pgembed.Collection, v: np.ndarray) -> tuple[str, str]:
    bits = bits_to_text(c.codec("bq2").encode(v[None]), 2 * DIM)[0]
    half = c.codec("f16").encode(v[None]).astype(np.float32)[0]
    return bits, "[" + ",".join(repr(float(x)) for x in half) + "]"


def assert_in_step(conn: psycopg.Connection, c: pgembed.Collection) -> None:
    """Every row with a vector has exactly the codes its vector gives, and no other key has a companion row."""
    vectors = {int(k): np.array(v, dtype=np.float32) for k, v in conn.execute(
        "SELECT id, embedding::real[] FROM docs WHERE embedding IS NOT NULL").fetchall()}
    stored = codes_of(conn, c)
    assert set(stored) == set(vectors)
    for key, v in vectors.items():
        bits, half = expected(c, v)
        assert stored[key][0] == bits
        assert np.array_equal(np.array(stored[key][1].strip("[]").split(","), dtype=np.float32),
                              np.array(half.strip("[]").split(","), dtype=np.float32))


@pytest.fixture
def docs(db: pgembed.Database) -> pgembed.Collection:
    c = db.create_collection("docs", DIM, attrs={"cat": "text"}, placement="companion")
    x = unit_vectors(ROWS, DIM, seed=3)
    c.ingest(np.arange(ROWS), x, {"cat": ["a" if i % 4 else "b" for i in range(ROWS)]})
    return c


def test_adding_codecs_never_rewrites_the_users_table(docs: pgembed.Collection, sql_conn: psycopg.Connection
                                                      ) -> None:
    before = sql_conn.execute("SELECT pg_relation_filenode('docs'), pg_relation_size('docs'), "
                              "(SELECT array_agg(attname ORDER BY attnum) FROM pg_attribute "
                              "WHERE attrelid = 'docs'::regclass AND attnum > 0 AND NOT attisdropped)").fetchone()
    xmins = sql_conn.execute("SELECT array_agg(xmin::text::bigint ORDER BY id) FROM docs").fetchone()
    docs.add_codec("bq2", "bq2")
    docs.add_codec("f16", "f16")
    docs.fit()  # a re-fit too: new versions in the companion only
    after = sql_conn.execute("SELECT pg_relation_filenode('docs'), pg_relation_size('docs'), "
                             "(SELECT array_agg(attname ORDER BY attnum) FROM pg_attribute "
                             "WHERE attrelid = 'docs'::regclass AND attnum > 0 AND NOT attisdropped)").fetchone()
    assert after == before
    assert sql_conn.execute("SELECT array_agg(xmin::text::bigint ORDER BY id) FROM docs").fetchone() == xmins
    bq2 = next(c for c in docs.codecs() if c.name == "bq2")
    assert bq2.version == 2 and bq2.column_name == "embedding_bq2"  # the names a codec's columns keep
    rows = sql_conn.execute(sql.SQL("SELECT count(*), count(embedding_bq2), count(embedding_f16) FROM {}")
                            .format(companion(docs))).fetchone()
    assert rows == (ROWS, ROWS, ROWS)


def test_every_write_keeps_the_companion_in_step(docs: pgembed.Collection, sql_conn: psycopg.Connection) -> None:
    docs.add_codec("bq2", "bq2")
    docs.add_codec("f16", "f16")
    assert_in_step(sql_conn, docs)
    v1, v2 = unit_vectors(2, DIM, seed=9)
    sql_conn.execute("INSERT INTO docs (id, embedding, cat) VALUES (1000, %s, 'a')", (vector_text(v1),))
    sql_conn.execute("UPDATE docs SET embedding = %s WHERE id = 5", (vector_text(v2),))
    sql_conn.execute("UPDATE docs SET cat = 'z' WHERE id = 6")  # not the vector: codes stay
    sql_conn.execute("UPDATE docs SET id = 2000 WHERE id = 7")  # the key moves
    sql_conn.execute("UPDATE docs SET embedding = NULL WHERE id = 8")  # no vector, no codes
    sql_conn.execute("DELETE FROM docs WHERE id IN (9, 10)")
    sql_conn.execute("INSERT INTO docs (id, embedding) VALUES (3000, NULL)")
    with sql_conn.transaction():  # rolled back: neither table changes
        sql_conn.execute("DELETE FROM docs WHERE id = 11")
        sql_conn.execute("UPDATE docs SET embedding = %s WHERE id = 12", (vector_text(v1),))
        raise psycopg.Rollback()
    assert_in_step(sql_conn, docs)
    sql_conn.execute("TRUNCATE docs")
    assert codes_of(sql_conn, docs) == {}


def test_writers_need_no_right_on_the_companion_and_cannot_write_it(
        docs: pgembed.Collection, sql_conn: psycopg.Connection) -> None:
    docs.add_codec("bq2", "bq2")
    docs.add_codec("f16", "f16")
    sql_conn.execute("CREATE ROLE pgembed_writer")
    sql_conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON docs TO pgembed_writer")
    v = unit_vectors(1, DIM, seed=5)[0]
    with sql_conn.transaction():
        sql_conn.execute("SET LOCAL ROLE pgembed_writer")
        sql_conn.execute("INSERT INTO docs (id, embedding) VALUES (4000, %s)", (vector_text(v),))
        sql_conn.execute("UPDATE docs SET embedding = %s WHERE id = 1", (vector_text(v),))
    assert_in_step(sql_conn, docs)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), sql_conn.transaction():
        sql_conn.execute("SET LOCAL ROLE pgembed_writer")
        sql_conn.execute(sql.SQL("UPDATE {} SET embedding_bq2 = NULL").format(companion(docs)))


def test_readers_of_the_table_read_the_companion(db: pgembed.Database, sql_conn: psycopg.Connection) -> None:
    sql_conn.execute("CREATE TABLE shared (id bigint PRIMARY KEY, embedding vector(24))")
    sql_conn.execute("CREATE ROLE pgembed_reader")
    sql_conn.execute("GRANT SELECT ON shared TO pgembed_reader")
    c = db.collection("shared", placement="companion")
    c.ingest(np.arange(50), unit_vectors(50, DIM, seed=2))
    c.add_codec("bq2", "bq2")
    c.create_index("bq2")
    q = unit_vectors(1, DIM, seed=8)[0]
    with sql_conn.transaction():
        sql_conn.execute("SET LOCAL ROLE pgembed_reader")
        hits = sql_conn.execute("SELECT id FROM pgembed.search('shared', %s::vector, 5, plan => 'index')",
                                (vector_text(q),)).fetchall()
    assert len(hits) == 5


def test_drop_removes_the_companion(docs: pgembed.Collection, db: pgembed.Database) -> None:
    docs.add_codec("bq2", "bq2")
    docs.create_index("bq2")
    name = f"pgembed.codes_{docs.info.id}"
    docs.drop()
    assert db.value("SELECT to_regclass(%s)", (name,)) is None
    assert db.value("SELECT count(*) FROM docs") == ROWS  # the user's rows stay


def test_a_partial_index_on_companion_codes_is_refused(docs: pgembed.Collection) -> None:
    docs.add_codec("bq2", "bq2")
    with pytest.raises(SchemaError, match="companion"):
        docs.create_index("bq2", where={"cat": "a"})


# -- search stages ----------------------------------------------------------------------------------------------
STAGES = [{}, {"rerank": False}, {"refine": "sq8"}, {"refine": "sq8", "rerank": False},
          {"refine": "f16", "rerank": False}, {"refine": "bq2", "refine_oversample": 3.0}]


@pytest.fixture
def pair(db: pgembed.Database) -> tuple[pgembed.Collection, pgembed.Collection]:
    """The same rows and codecs in both placements."""
    x = unit_vectors(ROWS, DIM, seed=4)
    out = []
    for name, placement in (("in_table", "table"), ("beside", "companion")):
        c = db.create_collection(name, DIM, attrs={"cat": "text"}, placement=placement)
        c.ingest(np.arange(ROWS), x, {"cat": ["a" if i % 4 else "b" for i in range(ROWS)]})
        for codec in ("bq2", "sq8", "f16"):
            c.add_codec(codec, codec, fit_on=x)
        c.create_index("bq2", ef_construction=200)
        out.append(c)
    return out[0], out[1]


@pytest.mark.parametrize("stages", STAGES)
def test_stages_give_the_same_answers_in_both_placements(pair: tuple[pgembed.Collection, pgembed.Collection],
                                                         stages: dict) -> None:
    """With every row a candidate (the graph of 300 rows at ef_search 300), the stages see the same rows in
    both placements, so their answers agree; the exact re-rank of all of them gives the exact plan's, and
    without it the distances are estimates."""
    in_table, beside = pair
    for q in unit_vectors(5, DIM, seed=11):
        knobs = {"plan": "index", "oversample": ROWS / 10, "ef_search": ROWS, **stages}
        a = in_table.search(q, 10, **knobs)
        b = beside.search(q, 10, **knobs)
        assert a.plan.kind == b.plan.kind == "index"
        assert np.array_equal(a.ids, b.ids)
        assert np.allclose(a.distances, b.distances, rtol=0, atol=1e-12)
        if stages.get("rerank", True) and "refine" not in stages:
            exact = beside.search(q, 10, plan="exact")
            assert np.array_equal(b.ids, exact.ids)
        elif not stages.get("rerank", True):
            assert not np.allclose(b.distances, beside.search(q, 10, plan="exact").distances)


def test_a_stage_keeps_its_best_by_its_own_estimate(pair: tuple[pgembed.Collection, pgembed.Collection],
                                                    db: pgembed.Database) -> None:
    _, beside = pair
    q = unit_vectors(1, DIM, seed=12)[0]
    r = beside.search(q, 10, plan="index", oversample=30, ef_search=ROWS, refine="sq8", rerank=False)
    want = db.execute(sql.SQL("SELECT id, pgembed.sq8_distance(embedding_sq8, pgembed.query_table('beside', 'sq8', "
                              "%s::vector)) AS d FROM {} ORDER BY d, id LIMIT 10").format(companion(beside)),
                      (vector_text(q),)).fetchall()
    assert r.ids.tolist() == [k for k, _ in want]
    assert np.allclose(r.distances, [d for _, d in want], rtol=0, atol=0)
    assert r.plan.refine == "sq8" and r.plan.refine_candidates == 10 and r.plan.rerank is False


def test_sql_search_takes_the_stages(pair: tuple[pgembed.Collection, pgembed.Collection],
                                     db: pgembed.Database) -> None:
    _, beside = pair
    q = unit_vectors(1, DIM, seed=13)[0]
    r = beside.search(q, 10, plan="index", refine="sq8", refine_oversample=3)
    rows = db.execute("SELECT id::bigint, distance FROM pgembed.search('beside', %s::vector, 10, plan => 'index', "
                      "refine => 'sq8', refine_oversample => 3)", (vector_text(q),)).fetchall()
    assert [k for k, _ in rows] == r.ids.tolist()
    plan = db.value("SELECT pgembed.search_plan('beside', %s::vector, 10, plan => 'index', refine => 'sq8')",
                    (vector_text(q),))
    assert plan["refine_candidates"] == 20 and plan["placement"] == "companion"


def test_filtered_index_plans_keep_only_matching_rows(pair: tuple[pgembed.Collection, pgembed.Collection]) -> None:
    _, beside = pair
    for q in unit_vectors(3, DIM, seed=14):
        r = beside.search(q, 10, where={"cat": "b"}, plan="index", refine="sq8", columns=["cat"])
        assert len(r.ids) == 10 and r.plan.kind == "index"
        assert {row["cat"] for row in r.rows} == {"b"}


def test_bad_stages_are_refused_by_name(pair: tuple[pgembed.Collection, pgembed.Collection]) -> None:
    _, beside = pair
    q = unit_vectors(1, DIM, seed=15)[0]
    with pytest.raises(InvalidInputError, match="no active codec 'nope'"):
        beside.search(q, 10, plan="index", refine="nope")
    with pytest.raises(InvalidInputError, match="refine_oversample must be between"):
        beside.search(q, 10, plan="index", refine="sq8", refine_oversample=0.5)
    with pytest.raises(InvalidInputError, match="refine_oversample needs refine"):
        beside.search(q, 10, plan="index", refine_oversample=2)
    with pytest.raises(InvalidInputError, match="rerank must be True or False"):
        beside.search(q, 10, rerank="no")  # type: ignore[arg-type]


def test_codecs_added_without_backfill_are_encoded_in_one_pass(docs: pgembed.Collection,
                                                                sql_conn: psycopg.Connection) -> None:
    building = docs.add_codec("bq2", "bq2", backfill=False)
    docs.add_codec("f16", "f16", backfill=False)
    assert building.state == "building" and [c.name for c in docs.codecs() if c.state == "active"] == []
    v = unit_vectors(1, DIM, seed=6)[0]
    sql_conn.execute("INSERT INTO docs (id, embedding) VALUES (5000, %s)", (vector_text(v),))  # kept meanwhile
    assert docs.backfill() == ROWS  # row 5000's codes came from the trigger: the backfill leaves it be
    assert {c.name for c in docs.codecs() if c.state == "active"} == {"bq2", "f16"}
    assert_in_step(sql_conn, docs)


def test_dropping_the_last_codec_leaves_no_stale_keys(docs: pgembed.Collection, sql_conn: psycopg.Connection) -> None:
    docs.add_codec("bq2", "bq2")
    docs.drop_codec("bq2")
    sql_conn.execute("DELETE FROM docs WHERE id < 100")  # no trigger keeps the companion now
    docs.add_codec("bq2", "bq2")
    docs.add_codec("f16", "f16")
    assert_in_step(sql_conn, docs)


def test_sqlalchemy_search_table_takes_the_stages(pair: tuple[pgembed.Collection, pgembed.Collection],
                                                  dsn: str) -> None:
    import sqlalchemy as sa

    from pgembed.sqlalchemy import search_table

    _, beside = pair
    q = unit_vectors(1, DIM, seed=16)[0]
    hits = search_table("beside", q, k=10, plan="index", oversample=30, ef_search=ROWS, refine="sq8", rerank=False)
    engine = sa.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(hits.c.id, hits.c.distance)).all()
    engine.dispose()
    want = beside.search(q, 10, plan="index", oversample=30, ef_search=ROWS, refine="sq8", rerank=False)
    assert [int(r[0]) for r in rows] == want.ids.tolist()
    assert np.allclose([r[1] for r in rows], want.distances, rtol=0, atol=0)


def test_advise_says_partial_indexes_need_the_codes_in_the_table(docs: pgembed.Collection) -> None:
    docs.add_codec("bq2", "bq2")
    docs.create_index("bq2")
    with pytest.raises(SchemaError, match="placement='table'"):
        docs.advise([{"cat": "b"}] * 10)


def test_nobody_can_turn_the_trigger_on_a_table_of_their_own(docs: pgembed.Collection,
                                                              sql_conn: psycopg.Connection) -> None:
    docs.add_codec("bq2", "bq2")
    function = f"pgembed.keep_codes_{docs.info.id}"
    sql_conn.execute("CREATE ROLE pgembed_mallory")
    sql_conn.execute("GRANT USAGE, CREATE ON SCHEMA public TO pgembed_mallory")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), sql_conn.transaction():
        sql_conn.execute("SET LOCAL ROLE pgembed_mallory")
        sql_conn.execute("CREATE TABLE forged (id bigint, embedding vector(24))")
        sql_conn.execute(f"CREATE TRIGGER t AFTER TRUNCATE ON forged EXECUTE FUNCTION {function}()")
    # Even its owner cannot make it write the companion from another table.
    sql_conn.execute("CREATE TABLE other (id bigint, embedding vector(24))")
    sql_conn.execute(f"CREATE TRIGGER t AFTER TRUNCATE ON other EXECUTE FUNCTION {function}()")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="keeps the codes of public.docs"):
        sql_conn.execute("TRUNCATE other")
    assert sql_conn.execute(sql.SQL("SELECT count(*) FROM {}").format(companion(docs))).fetchone() == (ROWS,)


def test_a_companion_needs_a_key_that_is_never_null_and_checked_at_once(db: pgembed.Database,
                                                                         sql_conn: psycopg.Connection) -> None:
    sql_conn.execute("CREATE TABLE loose (id bigint UNIQUE, embedding vector(24))")
    with pytest.raises(SchemaError, match="may be NULL"):
        db.collection("loose", key="id", placement="companion")
    sql_conn.execute("CREATE TABLE late (id bigint NOT NULL, embedding vector(24), "
                     "CONSTRAINT late_id UNIQUE (id) DEFERRABLE)")
    with pytest.raises(SchemaError):  # a deferrable index is no key pgembed attaches to at all
        db.collection("late", key="id", placement="companion")


def test_placement_is_the_collections_own(docs: pgembed.Collection, db: pgembed.Database) -> None:
    with pytest.raises(SchemaError, match="placement 'companion', not 'table'"):
        db.collection("docs", placement="table")
    assert db.collection("docs").info.placement == "companion"


def test_indexes_on_companion_codes_are_named_after_the_companion(docs: pgembed.Collection) -> None:
    docs.add_codec("bq2", "bq2")
    index = docs.create_index("bq2")
    assert index.index_name == f"codes_{docs.info.id}_embedding_bq2_hnsw_idx"


def test_after_a_refit_dropping_the_last_codec_empties_the_companion(docs: pgembed.Collection,
                                                                      sql_conn: psycopg.Connection) -> None:
    docs.add_codec("bq2", "bq2")
    docs.fit()
    docs.drop_codec("bq2")
    assert sql_conn.execute(sql.SQL("SELECT count(*) FROM {}").format(companion(docs))).fetchone() == (0,)
