"""Full-text and hybrid search against a real server: the fused list equals reciprocal rank fusion computed here
from an independent vector list (numpy) and text list (PostgreSQL's own full text search, asked directly); the
SQL function and the Python API agree; filters, row-level security and writes hold on the text path; bad
input gets an error that names it."""

from __future__ import annotations

import uuid

import numpy as np
import psycopg
import pytest
from psycopg import sql

import pgembed
from pgembed.engine.search import prepare_hybrid
from pgembed.errors import InvalidFilterError, InvalidInputError, SchemaError
from pgembed.planning.filters import as_filter
from pgembed.planning.params import SearchParams
from tests.helpers import unit_vectors, vector_text

DIM = 16
ROWS = 600
WORDS = ["open", "file", "socket", "directory", "process", "signal", "memory", "thread", "lock", "buffer"]


def body(i: int) -> str:
    """Three words of WORDS picked by the row's digits, so that each word matches a tenth to a third of rows."""
    return f"{WORDS[i % 10]} the {WORDS[(i // 10) % 10]} and {WORDS[(i * 7 + 3) % 10]} row {i}"


@pytest.fixture(params=[False, True], ids=["expression", "stored"])
def docs(db: pgembed.Database, request: pytest.FixtureRequest) -> pgembed.Collection:
    """Both forms of a text search: the GIN index on the expression, and on a stored generated column."""
    x = unit_vectors(ROWS, DIM, seed=4)
    docs = db.create_collection("docs", DIM, attrs={"body": "text", "cat": "text", "year": "integer"})
    docs.ingest(np.arange(ROWS), x, {"body": [body(i) for i in range(ROWS)],
                                     "cat": ["a" if i % 3 else "b" for i in range(ROWS)],
                                     "year": [2000 + i % 20 for i in range(ROWS)]})
    docs.add_text_search("body", stored=request.param)
    db.execute("ANALYZE docs")
    docs.x = x  # type: ignore[attr-defined]
    return docs


def reference(docs: pgembed.Collection, conn: psycopg.Connection, q: np.ndarray, text: str, k: int, depth: int,
              weights: tuple[float, float] = (1.0, 1.0), where_sql: str = "true",
              mask: np.ndarray | None = None) -> list[tuple[int, float]]:
    """Reciprocal rank fusion by its definition: numpy's exact top `depth` by cosine distance, PostgreSQL's
    ts_rank_cd top `depth` (asked with plain SQL), score sum of weight / (60 + rank)."""
    x = docs.x  # type: ignore[attr-defined]
    ids = np.arange(ROWS) if mask is None else np.flatnonzero(mask)
    dist = 1.0 - x[ids] @ q / (np.linalg.norm(x[ids], axis=1) * np.linalg.norm(q))
    vector_list = ids[np.lexsort((ids, dist))][:depth].tolist()
    text_list = [r[0] for r in conn.execute(
        sql.SQL("SELECT id FROM docs WHERE to_tsvector('english', body) @@ websearch_to_tsquery('english', %s) "
                "AND {} ORDER BY ts_rank_cd(to_tsvector('english', body), websearch_to_tsquery('english', %s)) DESC, "
                "id LIMIT %s").format(sql.SQL(where_sql)), (text, text, depth)).fetchall()]
    scores: dict[int, float] = {}
    for weight, ranked in zip(weights, (vector_list, text_list), strict=True):
        for rank, key in enumerate(ranked, 1):
            scores[key] = scores.get(key, 0.0) + weight / (60 + rank)

    def rank_in(ranked: list[int], key: int) -> int:
        return ranked.index(key) if key in ranked else len(ranked) + ROWS

    order = sorted(scores, key=lambda key: (-scores[key], rank_in(vector_list, key), rank_in(text_list, key), key))
    return [(key, scores[key]) for key in order[:k]]


@pytest.mark.parametrize("weights", [(1.0, 1.0), (1.0, 0.3), (0.0, 1.0), (1.0, 0.0)])
def test_fused_list_is_reciprocal_rank_fusion(docs: pgembed.Collection, sql_conn: psycopg.Connection,
                                              weights: tuple[float, float]) -> None:
    q = unit_vectors(1, DIM, seed=9)[0]
    got = docs.search(q, 10, text="socket memory", plan="exact", fusion={"vector": weights[0], "text": weights[1]},
                      fusion_depth=40)
    want = reference(docs, sql_conn, q, "socket memory", 10, 40, weights)
    assert got.ids.tolist() == [key for key, _ in want]
    np.testing.assert_allclose(got.scores, [score for _, score in want], rtol=1e-12)
    x = docs.x  # type: ignore[attr-defined]
    np.testing.assert_allclose(got.distances, 1.0 - x[got.ids] @ q / np.linalg.norm(x[got.ids], axis=1), atol=1e-6)
    assert ((got.vector_ranks > 0) | (got.text_ranks > 0)).all()


def test_filters_hold_on_both_lists_and_k_rows_come_back(docs: pgembed.Collection,
                                                         sql_conn: psycopg.Connection) -> None:
    q = unit_vectors(1, DIM, seed=10)[0]
    got = docs.search(q, 10, text="lock", where={"cat": "b"}, plan="exact", columns=["cat", "body"])
    mask = np.array([i % 3 == 0 for i in range(ROWS)])
    want = reference(docs, sql_conn, q, "lock", 10, 30, where_sql="cat = 'b'", mask=mask)
    assert got.ids.tolist() == [key for key, _ in want]
    assert {row["cat"] for row in got.rows or []} == {"b"}
    # A text that matches nothing: the vector list alone, k rows.
    none = docs.search(q, 10, text="zebra", where={"cat": "b"})
    assert len(none) == 10 and (none.text_ranks == 0).all()


def test_sql_function_and_python_agree(docs: pgembed.Collection, db: pgembed.Database) -> None:
    for seed in range(3):
        q = unit_vectors(1, DIM, seed=20 + seed)[0]
        py = docs.search(q, 7, text="open file", where={"year": {"$gte": 2010}}, fusion={"vector": 1, "text": 2})
        rows = db.execute("SELECT id, distance, score FROM pgembed.search('docs', %s::vector, 7, "
                          "'{\"year\": {\"$gte\": 2010}}'::jsonb, text => 'open file', text_weight => 2)",
                          (vector_text(q),)).fetchall()
        assert [int(r[0]) for r in rows] == py.ids.tolist()
        np.testing.assert_allclose([r[2] for r in rows], py.scores, rtol=1e-12)
        np.testing.assert_allclose([r[1] for r in rows], py.distances, atol=1e-9)
    plain = db.execute("SELECT score FROM pgembed.search('docs', %s::vector, 3)", (vector_text(q),)).fetchall()
    assert [r[0] for r in plain] == [None] * 3


def test_any_word_matches_more_than_every_word(docs: pgembed.Collection) -> None:
    q = unit_vectors(1, DIM, seed=11)[0]
    every = docs.search(q, 30, text="socket signal thread", fusion={"vector": 0, "text": 1}, fusion_depth=30)
    any_word = docs.search(q, 30, text="socket signal thread", fusion={"vector": 0, "text": 1}, fusion_depth=30,
                           text_match="any")
    assert (any_word.text_ranks > 0).sum() == 30 > (every.text_ranks > 0).sum()
    bodies = {int(i): body(int(i)) for i in any_word.ids}
    assert all(any(w in bodies[int(i)] for w in ("socket", "signal", "thread")) for i in any_word.ids)


def test_matches_filter_and_its_row_estimate(docs: pgembed.Collection, db: pgembed.Database) -> None:
    q = unit_vectors(1, DIM, seed=12)[0]
    found = docs.search(q, 10, where={"body": {"$matches": "buffer"}}, columns=["body"])
    matching = sum("buffer" in body(i) for i in range(ROWS))
    assert len(found) == 10 and all("buffer" in row["body"] for row in found.rows or [])
    plan = docs.explain(10, where={"body": {"$matches": "buffer"}})
    assert plan.estimated_rows is not None and matching / 2 <= plan.estimated_rows <= matching * 2
    with pytest.raises(InvalidFilterError, match=r"\$matches needs a string"):
        docs.search(q, 10, where={"body": {"$matches": 3}})
    with pytest.raises(InvalidFilterError, match="needs a text search on it"):
        docs.search(q, 10, where={"cat": {"$matches": "a"}})


def test_rows_written_by_any_client_are_found(docs: pgembed.Collection, sql_conn: psycopg.Connection) -> None:
    q = unit_vectors(1, DIM, seed=13)[0]
    sql_conn.execute("INSERT INTO docs (id, embedding, body, cat, year) "
                     "VALUES (%s, %s::vector, 'a quokka here', 'a', 2001)", (ROWS, vector_text(-q)))
    got = docs.search(q, 5, text="quokka")
    assert ROWS in got.ids.tolist()
    sql_conn.execute("UPDATE docs SET body = 'nothing' WHERE id = %s", (ROWS,))
    assert ROWS not in docs.search(q, 5, text="quokka", fusion={"vector": 0, "text": 1}).ids.tolist()


def test_row_level_security_holds_on_the_text_list(docs: pgembed.Collection, dsn: str,
                                                   sql_conn: psycopg.Connection) -> None:
    role = f"reader_{uuid.uuid4().hex[:8]}"
    sql_conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
    try:
        sql_conn.execute("ALTER TABLE docs ENABLE ROW LEVEL SECURITY")
        sql_conn.execute(sql.SQL("CREATE POLICY only_b ON docs TO {} USING (cat = 'b')").format(sql.Identifier(role)))
        sql_conn.execute(sql.SQL("GRANT SELECT ON docs TO {}").format(sql.Identifier(role)))
        q = unit_vectors(1, DIM, seed=14)[0]
        with pgembed.connect(dsn) as db:
            db.conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            got = db.collection("docs").search(q, 20, text="open", fusion={"vector": 0, "text": 1}, columns=["cat"])
            assert len(got) == 20 and {row["cat"] for row in got.rows or []} == {"b"}
            rows = db.execute("SELECT id FROM pgembed.search('docs', %s::vector, 20, text => 'open', "
                              "vector_weight => 0)", (vector_text(q),)).fetchall()
            assert all(int(r[0]) % 3 == 0 for r in rows) and len(rows) == 20
    finally:
        sql_conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        sql_conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_bad_input_is_named(docs: pgembed.Collection, db: pgembed.Database) -> None:
    q = unit_vectors(1, DIM, seed=15)[0]
    with pytest.raises(InvalidInputError, match="fusion weights must be finite and >= 0"):
        docs.search(q, 5, text="open", fusion={"vector": -1, "text": 1})
    with pytest.raises(InvalidInputError, match="fusion weights are both 0"):
        docs.search(q, 5, text="open", fusion={"vector": 0, "text": 0})
    with pytest.raises(InvalidInputError, match="fusion weights are named vector and text"):
        docs.search(q, 5, text="open", fusion={"txt": 1})
    with pytest.raises(InvalidInputError, match="fusion must be 'rrf'"):
        docs.search(q, 5, text="open", fusion="rank")
    with pytest.raises(InvalidInputError, match="fusion_depth must be between 1 and 10000"):
        docs.search(q, 5, text="open", fusion_depth=0)
    with pytest.raises(InvalidInputError, match="text_match must be one of"):
        docs.search(q, 5, text="open", text_match="fuzzy")
    with pytest.raises(InvalidInputError, match="text must be a string"):
        docs.search(q, 5, text=3)  # type: ignore[arg-type]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="text_match must be websearch or any"):
        db.execute("SELECT * FROM pgembed.search('docs', %s::vector, 5, text => 'open', text_match => 'x')",
                   (vector_text(q),))
    db.conn.rollback()
    with pytest.raises(SchemaError, match="already searches column 'body'"):
        docs.add_text_search("body")


def test_add_checks_and_drop(db: pgembed.Database) -> None:
    x = unit_vectors(50, DIM, seed=5)
    docs = db.create_collection("notes", DIM, attrs={"body": "text", "n": "integer"})
    docs.ingest(np.arange(50), x, {"body": [body(i) for i in range(50)], "n": list(range(50))})
    with pytest.raises(SchemaError, match="no column 'nope'"):
        docs.add_text_search("nope")
    with pytest.raises(SchemaError, match="full-text search takes a text column"):
        docs.add_text_search("n")
    with pytest.raises(SchemaError, match="no text search configuration 'klingon'"):
        docs.add_text_search("body", "klingon")
    with pytest.raises(SchemaError, match="has no text search"):
        docs.search(x[0], 5, text="open")
    info = docs.add_text_search("body", "simple", concurrently=True)
    assert info.config == "simple" and docs.describe()["text_search"]["index"] == info.index_name
    assert info.tsvector_column is None and "body_tsv" not in docs.describe()
    assert len(docs.search(x[0], 5, text="the")) == 5  # 'the' is a word in 'simple', a stop word in 'english'
    docs.drop_text_search()
    assert docs.text_search() is None
    assert db.execute("SELECT to_regclass(%s)", (info.index_name,)).fetchone() == (None,)
    with pytest.raises(SchemaError, match="has no text search"):
        docs.search(x[0], 5, text="open")


# -- diversity -------------------------------------------------------------------------------------------------
def mmr_reference(q: np.ndarray, x: np.ndarray, k: int, lam: float) -> list[int]:
    """MMR by its definition, over candidates best first, cosine similarity."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    relevance = unit @ (q / np.linalg.norm(q))
    chosen: list[int] = []
    while len(chosen) < min(k, len(x)):
        redundancy = (unit @ unit[chosen].T).max(axis=1) if chosen else np.zeros(len(x))
        score = lam * relevance - (1 - lam) * redundancy
        score[chosen] = -np.inf
        chosen.append(int(np.argmax(score)))
    return chosen


@pytest.mark.parametrize("lam", [1.0, 0.7, 0.3, 0.0])
def test_diversity_is_mmr_over_the_candidates(docs: pgembed.Collection, db: pgembed.Database, lam: float) -> None:
    q = unit_vectors(1, DIM, seed=16)[0]
    candidates = docs.search(q, 30, plan="exact")
    got = docs.search(q, 8, plan="exact", diversity=lam, diversity_depth=30, columns=["cat"])
    x = docs.x  # type: ignore[attr-defined]
    want = candidates.ids[mmr_reference(q, x[candidates.ids], 8, lam)]
    assert got.ids.tolist() == want.tolist()
    np.testing.assert_allclose(got.distances, 1.0 - x[got.ids] @ q / np.linalg.norm(x[got.ids], axis=1), atol=1e-6)
    assert got.rows is not None and list(got.rows[0]) == ["cat"]  # the vector was fetched for MMR, not returned
    rows = db.execute("SELECT id FROM pgembed.search('docs', %s::vector, 8, plan => 'exact', diversity => %s, "
                      "diversity_depth => 30)", (vector_text(q), lam)).fetchall()
    assert [int(r[0]) for r in rows] == want.tolist()
    if lam == 1.0:
        assert got.ids.tolist() == candidates.ids[:8].tolist()


def test_diversity_over_many_candidates(docs: pgembed.Collection, db: pgembed.Database) -> None:
    """Above 256 candidates MMR reads one row of similarities a chosen candidate instead of the whole matrix:
    the same choice."""
    q = unit_vectors(1, DIM, seed=18)[0]
    candidates = docs.search(q, 300, plan="exact")
    x = docs.x  # type: ignore[attr-defined]
    for depth in (256, 300):
        got = docs.search(q, 6, plan="exact", diversity=0.4, diversity_depth=depth)
        want = candidates.ids[:depth][mmr_reference(q, x[candidates.ids[:depth]], 6, 0.4)]
        assert got.ids.tolist() == want.tolist()


def test_diversity_over_a_hybrid_list_and_its_errors(docs: pgembed.Collection, db: pgembed.Database) -> None:
    q = unit_vectors(1, DIM, seed=17)[0]
    fused = docs.search(q, 30, text="open", fusion_depth=30)
    got = docs.search(q, 5, text="open", fusion_depth=30, diversity=0.5, diversity_depth=30)
    x = docs.x  # type: ignore[attr-defined]
    assert got.ids.tolist() == fused.ids[mmr_reference(q, x[fused.ids], 5, 0.5)].tolist()
    assert got.scores is not None and set(got.scores.tolist()) <= set(fused.scores.tolist())  # type: ignore[union-attr]
    with pytest.raises(InvalidInputError, match=r"diversity \(MMR's lambda\) must be between 0 and 1"):
        docs.search(q, 5, diversity=1.5)
    with pytest.raises(InvalidInputError, match=r"diversity_depth must be at least k \(5\), got 3"):
        docs.search(q, 5, diversity=0.5, diversity_depth=3)
    with pytest.raises(InvalidInputError, match=r"fusion_depth must be at least k \(5\), got 2"):
        docs.search(q, 5, text="open", fusion_depth=2)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="must be between 0 and 1"):
        db.execute("SELECT * FROM pgembed.search('docs', %s::vector, 5, diversity => -0.1)", (vector_text(q),))


def test_a_stored_tsvector_is_a_generated_column_dropped_with_the_search(db: pgembed.Database) -> None:
    x = unit_vectors(40, DIM, seed=6)
    docs = db.create_collection("notes", DIM, attrs={"body": "text"})
    docs.ingest(np.arange(40), x, {"body": [body(i) for i in range(40)]})
    info = docs.add_text_search("body", stored=True)
    assert info.tsvector_column == "body_tsv"
    kind = db.execute("SELECT attgenerated FROM pg_attribute WHERE attrelid = 'notes'::regclass "
                      "AND attname = 'body_tsv'").fetchone()
    assert kind == ("s",)
    # Statements search the stored column (what its index is on), not the expression.
    fusion = "".join(prepare_hybrid(docs.context, as_filter(None), 3, SearchParams()).fusion)
    assert 'body_tsv OPERATOR(pg_catalog.@@)' in fusion and "to_tsvector" not in fusion
    clause = db.execute("SELECT pgembed.filter_sql('notes', '{\"body\": {\"$matches\": \"x\"}}')").fetchone()[0]
    assert clause.startswith('body_tsv OPERATOR(pg_catalog.@@)')
    db.execute("UPDATE notes SET body = 'a wombat' WHERE id = 3")
    assert docs.search(x[0], 3, text="wombat", fusion={"vector": 0, "text": 1}).ids[0] == 3
    docs.drop_text_search()
    assert db.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'notes'::regclass "
                      "AND attname = 'body_tsv' AND NOT attisdropped").fetchone() == (0,)
    db.execute("ALTER TABLE notes ADD COLUMN body_tsv int")
    with pytest.raises(SchemaError, match="has a column 'body_tsv' already"):
        docs.add_text_search("body", stored=True)


def test_dropping_the_collection_takes_its_text_search(db: pgembed.Database) -> None:
    x = unit_vectors(20, DIM, seed=7)
    docs = db.create_collection("notes", DIM, attrs={"body": "text"})
    docs.ingest(np.arange(20), x, {"body": [body(i) for i in range(20)]})
    info = docs.add_text_search("body", stored=True)
    docs.drop()
    assert db.execute("SELECT to_regclass(%s)", (info.index_name,)).fetchone() == (None,)
    columns = [r[0] for r in db.execute("SELECT attname FROM pg_attribute WHERE attrelid = 'notes'::regclass "
                                        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum").fetchall()]
    assert columns == ["id", "embedding", "body"]
