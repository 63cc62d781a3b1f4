"""The knobs of a search, in one object (FAISS's SearchParameters in spirit): what search(), search_batch(),
tune()'s results, the codec advisor's recommendations and the CLI all take and give.

Types are checked here; ranges are the planner's (pgembed.check_search_params, sql/functions/planner.sql),
checked when the knobs reach the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, TypedDict

from pgembed.errors import InvalidInputError
from pgembed.reranking import ModelStage
from pgembed.vocabulary import PlanKind, TextMatch

RRF = "rrf"  # reciprocal rank fusion with equal weights: fusion="rrf" is fusion={"vector": 1, "text": 1}


class SearchKnobs(TypedDict, total=False):
    """SearchParams' fields as keyword arguments: search(q, 10, recall=0.95) is
    search(q, 10, params=SearchParams(recall=0.95))."""

    recall: float | None
    codec: str | None
    ef_search: int | None
    oversample: float | None
    plan: PlanKind | str
    refine: str | None
    refine_oversample: float | None
    rerank: bool
    fusion: str | Mapping[str, float] | tuple[float, float]
    fusion_depth: int | None
    text_match: TextMatch | str
    diversity: float | None
    diversity_depth: int | None
    model: ModelStage | None
    min_relevance: float | None
    probes: int | None


@dataclass(frozen=True)
class SearchParams:
    """recall: a recall@k target (uses what tune() measured; none measured: the exact plan); codec: the code
    column to take candidates from; ef_search: pgvector's hnsw.ef_search; oversample: candidates fetched per
    result; plan: "auto" (the planner chooses), "exact" or "index". Unset knobs are the planner's choice.

    The stages of an index plan after the coarse candidates: refine, a codec whose codes (an estimator, or
    vectors' distance) keep refine_oversample * k of them (default 2, or 1 without the re-rank); rerank, the
    exact distance from the user's rows (False: distances are the last stage's estimates).

    A search with text (hybrid): fusion, the weights of the vector list and the text list in reciprocal rank
    fusion ("rrf": both 1, or {"vector": w, "text": w}; kept as the pair (vector, text)); fusion_depth, how many
    rows each list holds (default: the server's pgembed.stage_depth(k)); text_match, how the text becomes a
    full-text query (TextMatch).

    diversity: the last stage, maximal marginal relevance's lambda (1: by similarity alone; 0: most unlike the
    rows chosen), choosing k among the best diversity_depth rows of the stages before (default the server's
    pgembed.stage_depth(k)).

    model: a model stage (pgembed.reranking.ModelStage) after the exact distances (or the fusion): a re-ranker
    scores its depth best candidates and the best by its scores go on (k, or diversity_depth for diversity).

    min_relevance: the last word, a cut-off: only rows whose relevance (the collection's relevance model,
    fit_relevance()) is at least this come back, possibly fewer than k.

    probes: a batch's knob (search_batch): each query of a group the planner would search through an index
    reads instead the rows of its `probes` nearest clusters of the collection's partitioning codec (ivf<n>),
    all the group's queries in one read of those clusters (pgembed.probe_topk), ranked by exact distance there;
    the recall follows the share of clusters read. search() plans one query and refuses it."""

    recall: float | None = None
    codec: str | None = None
    ef_search: int | None = None
    oversample: float | None = None
    plan: PlanKind = PlanKind.AUTO
    refine: str | None = None
    refine_oversample: float | None = None
    rerank: bool = True
    fusion: tuple[float, float] = (1.0, 1.0)
    fusion_depth: int | None = None
    text_match: TextMatch = TextMatch.WEBSEARCH
    diversity: float | None = None
    diversity_depth: int | None = None
    model: ModelStage | None = None
    min_relevance: float | None = None
    probes: int | None = None

    def __post_init__(self) -> None:
        _check_number("recall", self.recall)
        _check_number("oversample", self.oversample)
        _check_number("refine_oversample", self.refine_oversample)
        if self.refine is not None and not isinstance(self.refine, str):
            raise InvalidInputError(f"refine must be a codec's name, got {self.refine!r}")
        if not isinstance(self.rerank, bool):
            raise InvalidInputError(f"rerank must be True or False, got {self.rerank!r}")
        if self.ef_search is not None and (isinstance(self.ef_search, bool) or not isinstance(self.ef_search, int)):
            raise InvalidInputError(f"ef_search must be an integer, got {self.ef_search!r}")
        if self.codec is not None and not isinstance(self.codec, str):
            raise InvalidInputError(f"codec must be a codec's name, got {self.codec!r}")
        object.__setattr__(self, "fusion", _fusion_weights(self.fusion))
        _check_number("diversity", self.diversity)
        _check_number("min_relevance", self.min_relevance)
        if self.model is not None and not isinstance(self.model, ModelStage):
            raise InvalidInputError(f"model must be a pgembed.reranking.ModelStage, got {type(self.model).__name__}")
        for name in ("fusion_depth", "diversity_depth", "probes"):
            depth = getattr(self, name)
            if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int)):
                raise InvalidInputError(f"{name} must be an integer, got {depth!r}")
        try:
            object.__setattr__(self, "text_match", TextMatch(self.text_match))
        except ValueError:
            raise InvalidInputError(f"text_match must be one of {', '.join(m.value for m in TextMatch)}, "
                                    f"got {self.text_match!r}") from None
        try:
            object.__setattr__(self, "plan", PlanKind(self.plan))
        except ValueError:
            raise InvalidInputError(
                f"plan must be one of {', '.join(p.value for p in PlanKind)}, got {self.plan!r}") from None
        # Hashed once: the knobs are part of the key of every cached plan a search looks up.
        object.__setattr__(self, "_hash", hash(tuple(getattr(self, f.name) for f in fields(self))))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[no-any-return,attr-defined]

    def __reduce__(self) -> tuple[type[SearchParams], tuple[Any, ...]]:
        # Made again from its fields, so its hash is the one of the process that unpickles it (str hashes differ).
        return type(self), tuple(getattr(self, f.name) for f in fields(self))

    @classmethod
    def of(cls, params: SearchParams | None = None, **knobs: Any) -> SearchParams:
        """`params` (default: all unset) with the knobs given by name replacing its fields."""
        base = params if params is not None else _UNSET
        if not isinstance(base, SearchParams):
            raise InvalidInputError(f"params must be a SearchParams, got {type(base).__name__}")
        if not knobs:
            return base
        unknown = set(knobs) - {f.name for f in fields(cls)}
        if unknown:
            raise InvalidInputError(f"unknown search knob(s): {', '.join(sorted(unknown))}")
        return replace(base, **knobs)

    @property
    def per_query_only(self) -> bool:
        """Knobs only a per-query plan honours: a batch does not scan under them."""
        return (self.recall is not None or self.codec is not None or self.plan is not PlanKind.AUTO
                or self.refine is not None or not self.rerank or self.later_stages)

    @property
    def later_stages(self) -> bool:
        """Stages after the candidates' exact distances (a model, diversity, a relevance cut-off), which
        engine.search.search() runs around the plan's statement."""
        return self.model is not None or self.diversity is not None or self.min_relevance is not None

    def to_dict(self) -> dict[str, Any]:
        # A model stage holds a callable: described by name, not made again by from_dict.
        model = None if self.model is None else {
            "reranker": repr(self.model.reranker), "columns": list(self.model.columns), "depth": self.model.depth,
            "batch_size": self.model.batch_size, "budget_ms": self.model.budget_ms}
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "plan": self.plan.value,
                "text_match": self.text_match.value, "fusion": {"vector": self.fusion[0], "text": self.fusion[1]},
                "model": model}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchParams:
        return cls.of(None, **data)


def _fusion_weights(fusion: Any) -> tuple[float, float]:
    """(vector weight, text weight) from "rrf", a mapping {"vector": w, "text": w} (a weight left out is 1), or
    the pair itself; their range (finite, >= 0, not both 0) is the server's (pgembed._check_fusion)."""
    if fusion == RRF:
        return (1.0, 1.0)
    if isinstance(fusion, Mapping):
        unknown = set(fusion) - {"vector", "text"}
        if unknown:
            raise InvalidInputError("fusion weights are named vector and text, got "
                                    f"{', '.join(sorted(map(str, unknown)))}")
        pair = (fusion.get("vector", 1.0), fusion.get("text", 1.0))
    elif isinstance(fusion, tuple) and len(fusion) == 2:
        pair = fusion
    else:
        raise InvalidInputError(f"fusion must be 'rrf' or weights {{'vector': w, 'text': w}}, got {fusion!r}")
    for weight in pair:
        _check_number("a fusion weight", weight)
    return (float(pair[0]), float(pair[1]))


def _check_number(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise InvalidInputError(f"{name} must be a number, got {value!r}")


_UNSET = SearchParams()  # frozen: one instance serves every call that sets no knob
