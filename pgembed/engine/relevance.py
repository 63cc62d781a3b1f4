"""Fitting a collection's relevance model (pgembed/relevance.py) from labelled queries: each query's exact
nearest `depth` rows give (distance, relevant) pairs, and a new version of the model is stored in the catalog,
retiring the one before; search(min_relevance=...) reads the active one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from pgembed.db import catalog
from pgembed.engine.context import CollectionContext
from pgembed.engine.search import search
from pgembed.errors import InvalidInputError
from pgembed.planning.params import SearchParams
from pgembed.records import RelevanceModelInfo
from pgembed.relevance import RelevanceModel, fit_relevance
from pgembed.vectors import as_matrix
from pgembed.vocabulary import PlanKind


def labelled_pairs(ctx: CollectionContext, queries: np.ndarray, relevant: Sequence[Iterable[Any]], depth: int
                   ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each query's exact nearest `depth` rows: their distances and whether each is one of its relevant keys."""
    exact = SearchParams(plan=PlanKind.EXACT)
    distances, labels = [], []
    for q, keys in zip(queries, relevant, strict=True):
        found = search(ctx, q, depth, None, exact)
        wanted = set(keys)
        distances.append(found.distances)
        labels.append(np.array([key in wanted for key in found.ids.tolist()], dtype=np.float64))
    return distances, labels


def fit(ctx: CollectionContext, queries: Any, relevant: Sequence[Iterable[Any]], *, depth: int = 50,
        l2: float = 1e-3) -> tuple[RelevanceModelInfo, RelevanceModel]:
    q = as_matrix(queries, ctx.info.dim)
    if isinstance(relevant, str | bytes) or len(relevant) != len(q):
        raise InvalidInputError(f"fit_relevance takes one collection of relevant keys per query: {len(q)} queries, "
                                f"{len(relevant) if not isinstance(relevant, str | bytes) else 'a string'} given")
    distances, labels = labelled_pairs(ctx, q, relevant, depth)
    model = fit_relevance(q, distances, labels, l2=l2)
    with ctx.session.transaction():
        info = catalog.insert_relevance_model(ctx.session, ctx.info.id, {
            "w_a": model.w_a.tolist(), "c_a": model.c_a, "w_b": model.w_b.tolist(), "c_b": model.c_b,
            "queries": len(q), "pairs": int(sum(len(d) for d in distances))})
    ctx.forget()
    return info, model
