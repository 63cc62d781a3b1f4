"""A model stage of search: a re-ranker scores the best candidates of the stages before (the query's text
and vector, and the candidate rows' columns) and keeps the k best by its scores.

A re-ranker is any callable `(query, rows) -> scores`, higher is better, one score a row: a function of
yours, or an adapter: CrossEncoderReranker for sentence-transformers' CrossEncoder, BiEncoderReranker for a
sentence embedding model on the query's and the rows' texts. ModelStage says
which columns the rows carry, how many candidates it sees, in which batches, and its time budget per query:
past it the stage is skipped, the result keeps the order of the stage before and says so
(SearchResult.stages). An error of the model is raised as RerankError, with the model's own as its cause.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from pgembed.errors import InvalidInputError, PgembedError


class RerankError(PgembedError):
    """The re-ranker raised, or returned something other than one finite score per row."""


@dataclass(frozen=True)
class RerankQuery:
    """What a re-ranker knows of the query: its text (None when the search had none) and its vector."""

    text: str | None
    vector: np.ndarray


class Reranker(Protocol):
    def __call__(self, query: RerankQuery, rows: Sequence[Mapping[str, Any]]) -> Sequence[float]: ...


@dataclass(frozen=True)
class ModelStage:
    """reranker: scores a batch of rows; columns: the table's columns each row carries (the key is always
    there, under its column's name); depth: how many candidates it scores (default: the server's
    pgembed.stage_depth(k)); batch_size: rows per call; budget_ms: the most it may take for one query (None: no
    limit)."""

    reranker: Reranker
    columns: tuple[str, ...] = ()
    depth: int | None = None
    batch_size: int = 32
    budget_ms: float | None = None

    def __post_init__(self) -> None:
        if not callable(self.reranker):
            raise InvalidInputError(f"a model stage's reranker must be callable, got {self.reranker!r}")
        if isinstance(self.columns, str) or not all(isinstance(c, str) for c in self.columns):
            raise InvalidInputError("a model stage's columns are a list of column names, not one string")
        object.__setattr__(self, "columns", tuple(self.columns))
        for name in ("depth", "batch_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InvalidInputError(f"a model stage's {name} must be a positive integer, got {value!r}")
        budget = self.budget_ms
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int | float)
                                   or not budget > 0):
            raise InvalidInputError(f"a model stage's budget_ms must be a positive number, got {budget!r}")


@dataclass(frozen=True)
class Scored:
    """The stage's outcome for one query: the scores (None when skipped) and why it was skipped."""

    scores: np.ndarray | None
    seconds: float
    skipped: str | None = None


def score(stage: ModelStage, query: RerankQuery, rows: Sequence[Mapping[str, Any]],
          clock: Callable[[], float]) -> Scored:
    """Every row scored in batches; skipped once the budget is spent (checked after each batch)."""
    started = clock()
    scores: list[float] = []
    for start in range(0, len(rows), stage.batch_size):
        batch = rows[start:start + stage.batch_size]
        try:
            got = stage.reranker(query, batch)
        except Exception as err:
            raise RerankError(f"the re-ranker {stage.reranker!r} raised {type(err).__name__}: {err}") from err
        scores.extend(_checked(stage, got, len(batch)))
        elapsed = clock() - started
        if stage.budget_ms is not None and elapsed * 1000 > stage.budget_ms and start + len(batch) < len(rows):
            return Scored(None, elapsed, f"over its budget of {stage.budget_ms:g} ms after {start + len(batch)} of "
                                         f"{len(rows)} rows")
    elapsed = clock() - started
    if stage.budget_ms is not None and elapsed * 1000 > stage.budget_ms:
        return Scored(None, elapsed, f"took {elapsed * 1000:.1f} ms, over its budget of {stage.budget_ms:g} ms")
    return Scored(np.asarray(scores, dtype=np.float64), elapsed)


def _checked(stage: ModelStage, got: Any, rows: int) -> list[float]:
    try:
        values = [float(v) for v in got]
    except (TypeError, ValueError) as err:
        raise RerankError(f"the re-ranker {stage.reranker!r} must return numbers, got {type(got).__name__}") from err
    if len(values) != rows:
        raise RerankError(f"the re-ranker {stage.reranker!r} returned {len(values)} scores for {rows} rows")
    if not all(math.isfinite(v) for v in values):
        raise RerankError(f"the re-ranker {stage.reranker!r} returned a score that is not finite")
    return values


@dataclass(frozen=True)
class CrossEncoderReranker:
    """sentence-transformers' CrossEncoder on (query text, the row's `column`) pairs: its predict() scores."""

    model: Any
    column: str

    def __call__(self, query: RerankQuery, rows: Sequence[Mapping[str, Any]]) -> Sequence[float]:
        if query.text is None:
            raise InvalidInputError("a cross-encoder scores the query's text: search(..., text=...) gives it")
        pairs = [(query.text, "" if row[self.column] is None else str(row[self.column])) for row in rows]
        return list(self.model.predict(pairs, batch_size=len(pairs), show_progress_bar=False))


@dataclass(frozen=True)
class BiEncoderReranker:
    """A sentence embedding model (sentence-transformers' SentenceTransformer, or anything with its encode())
    on the query's text and each row's `column`: the cosine of the two embeddings. Worth it when the model is
    another, stronger one than the model of the stored vectors, which the exact distance already ranks by.
    batch_size: texts the model encodes at once (sorted by length, each batch padded to its longest)."""

    model: Any
    column: str
    batch_size: int = 16

    def __call__(self, query: RerankQuery, rows: Sequence[Mapping[str, Any]]) -> Sequence[float]:
        if query.text is None:
            raise InvalidInputError("a bi-encoder re-ranker scores the query's text: search(..., text=...) or "
                                    "query_text=... gives it")
        texts = [query.text, *("" if row[self.column] is None else str(row[self.column]) for row in rows)]
        embedded = np.asarray(self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                                convert_to_numpy=True, show_progress_bar=False), dtype=np.float64)
        return (embedded[1:] @ embedded[0]).tolist()
