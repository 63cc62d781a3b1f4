"""Relevance of what a search returns, measured on labelled queries (pgembed.tools.datasets.relevance): nDCG@k
and MRR@k of vector search, full-text search and their fusion, and the latency each adds.

The vector list is the exact one (plan "exact"), so the figures are the ranking's, not an index's recall. Text
alone is the text list as PostgreSQL's full text search ranks it (ts_rank_cd), which may hold fewer than k
rows. Gains are binary (a passage of the query's page is relevant), the ideal DCG that of min(k, relevant)
relevant rows. Latency is one client's, every mode run for each query in turn (interleaved), the order rotated
from query to query.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import pgembed
from pgembed.engine.relevance import fit, labelled_pairs
from pgembed.engine.search import SearchResult
from pgembed.errors import InvalidInputError
from pgembed.reranking import BiEncoderReranker, ModelStage
from pgembed.statements import benchmarks
from pgembed.tools import models
from pgembed.tools.bench.search import load_attrs
from pgembed.tools.datasets.files import base_texts, load_dataset_dir
from pgembed.tools.datasets.folder import _pyarrow
from pgembed.tools.datasets.relevance import load_relevance

TABLE = "relevance_docs"


@dataclass(frozen=True)
class Mode:
    """One way to search: its name, the knobs, whether only the text list counts, and a model stage after."""

    name: str
    text_match: str | None  # None: vector only
    fusion: tuple[float, float] = (1.0, 1.0)
    text_only: bool = False
    model: ModelStage | None = None

    def run(self, docs: pgembed.Collection, q: np.ndarray, text: str, k: int) -> tuple[list[int], SearchResult]:
        if self.text_match is None:
            result = docs.search(q, k, plan="exact", model=self.model, query_text=text)
            return result.ids.tolist(), result
        result = docs.search(q, k, plan="exact", text=text, text_match=self.text_match, model=self.model,
                             fusion={"vector": self.fusion[0], "text": self.fusion[1]})
        return (_text_list(result) if self.text_only else result.ids.tolist()), result


def _text_list(result: SearchResult) -> list[int]:
    assert result.text_ranks is not None
    return [int(i) for i, rank in zip(result.ids, result.text_ranks, strict=True) if rank > 0]


MODES = (
    Mode("vector", None),
    Mode("text (every word)", "websearch", (0.0, 1.0), text_only=True),
    Mode("text (any word)", "any", (0.0, 1.0), text_only=True),
    Mode("RRF hybrid (every word)", "websearch"),
    Mode("RRF hybrid (any word)", "any"),
    Mode("RRF hybrid (any word), text weight 0.5", "any", (1.0, 0.5)),
)


def ndcg(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, key in enumerate(ranked[:k]) if key in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


def reciprocal_rank(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    return next((1.0 / (i + 1) for i, key in enumerate(ranked[:k]) if key in relevant), 0.0)


def load(db: pgembed.Database, dataset: Path, log: Callable[[str], None]) -> pgembed.Collection:
    ds = load_dataset_dir(dataset)
    n = len(ds.base)
    types, values = load_attrs(ds.attrs_path, n) if ds.attrs_path else ({}, {})
    body = base_texts(dataset, n)
    if body is None:
        raise InvalidInputError(f"{dataset} has no texts.txt.gz: the relevance bench searches the passages' text")
    types, values = {**types, "body": "text"}, {**values, "body": body}
    if any(c.name == TABLE for c in db.collections()):
        db.collection(TABLE).drop(drop_table=True)
    db.session.execute(benchmarks.drop_table_if_exists(TABLE))
    docs = db.create_collection(TABLE, ds.dim, attrs=types, metric=ds.metric)
    log(f"loading {n:,} rows of {dataset.name} into {TABLE}")
    docs.ingest(np.arange(n), ds.base, values)
    return docs


def _text_search(db: pgembed.Database, docs: pgembed.Collection, stored: bool,
                 log: Callable[[str], None]) -> dict[str, Any]:
    if docs.text_search() is not None:
        docs.drop_text_search()
    started = time.perf_counter()
    docs.add_text_search("body", stored=stored)
    seconds = time.perf_counter() - started
    db.execute(benchmarks.vacuum_analyze(docs.info.table))
    info = docs.describe()
    log(f"text search on body ({'stored tsvector' if stored else 'expression'}) built in {seconds:.1f} s")
    return {"stored": stored, "build_seconds": seconds, "index_bytes": info["text_search"]["bytes"],
            "table_bytes": info["table_bytes"]}


Sweep = tuple[dict[str, list[list[int]]], dict[str, list[float]], dict[str, list[SearchResult]]]


def _sweep(docs: pgembed.Collection, modes: Sequence[Mode], vectors: np.ndarray, texts: list[str],
           chosen: list[int], k: int) -> Sweep:
    """Each query through every mode in turn (the order rotated): the lists, the seconds, the results."""
    for mode in modes:  # warm: each mode's statements prepared and the pages read once
        mode.run(docs, vectors[chosen[0]], texts[chosen[0]], k)
    found: dict[str, list[list[int]]] = {m.name: [] for m in modes}
    seconds: dict[str, list[float]] = {m.name: [] for m in modes}
    results: dict[str, list[SearchResult]] = {m.name: [] for m in modes}
    for turn, qid in enumerate(chosen):
        for mode in (*modes[turn % len(modes):], *modes[:turn % len(modes)]):
            started = time.perf_counter()
            ranked, result = mode.run(docs, vectors[qid], texts[qid], k)
            seconds[mode.name].append(time.perf_counter() - started)
            found[mode.name].append(ranked)
            results[mode.name].append(result)
    return found, seconds, results


def _quality(lists: list[list[int]], relevant: list[set[int]], chosen: list[int], k: int) -> dict[str, float]:
    return {f"ndcg@{k}": float(np.mean([ndcg(r, relevant[q], k) for r, q in zip(lists, chosen, strict=True)])),
            f"mrr@{k}": float(np.mean([reciprocal_rank(r, relevant[q], k)
                                       for r, q in zip(lists, chosen, strict=True)]))}


def _percentiles(ms: Sequence[float] | np.ndarray, prefix: str = "") -> dict[str, float | None]:
    if not len(ms):
        return {f"{prefix}p50_ms": None, f"{prefix}p99_ms": None}
    return {f"{prefix}p50_ms": float(np.percentile(ms, 50)), f"{prefix}p99_ms": float(np.percentile(ms, 99))}


# -- a model stage ---------------------------------------------------------------------------------------------
# all-mpnet-base-v2 was fine-tuned on pairs of at most 128 tokens; longer passages are cut there.
MODEL_MAX_TOKENS = 128


def model_figures(docs: pgembed.Collection, stage: ModelStage, vectors: np.ndarray, texts: list[str],
                  relevant: list[set[int]], chosen: list[int], k: int) -> list[dict[str, Any]]:
    """Vector search and RRF hybrid search, each without and with the model stage, interleaved: nDCG@k, MRR@k,
    the latency, and each stage's own (rows in, milliseconds)."""
    modes = (Mode("vector", None), Mode("vector + model", None, model=stage),
             Mode("RRF hybrid (every word)", "websearch"),
             Mode("RRF hybrid (every word) + model", "websearch", model=stage))
    found, seconds, results = _sweep(docs, modes, vectors, texts, chosen, k)
    rows = []
    for mode in modes:
        row: dict[str, Any] = {"mode": mode.name, **_quality(found[mode.name], relevant, chosen, k),
                               **_percentiles(np.array(seconds[mode.name]) * 1000)}
        for name in ("candidates", "model"):
            stages = [s for r in results[mode.name] for s in r.stages if s["stage"] == name]
            if stages:
                row[f"{name}_n"] = int(np.max([s["n"] for s in stages]))
                row |= _percentiles([s["ms"] for s in stages], f"{name}_")
        row["model_skipped"] = sum(1 for r in results[mode.name] for s in r.stages
                                   if s["stage"] == "model" and s["skipped"])
        rows.append(row)
    return rows


# -- the relevance cut-off -------------------------------------------------------------------------------------
TARGET_RECALLS = (0.3, 0.5, 0.7)


def _precision_recall(scores: list[np.ndarray], labels: list[np.ndarray], threshold: float) -> tuple[float, float]:
    """Over every query's candidates: precision and recall of "score >= threshold" (recall of the relevant
    rows among the candidates)."""
    kept = sum(int((s >= threshold).sum()) for s in scores)
    hits = sum(int(((s >= threshold) & (y > 0)).sum()) for s, y in zip(scores, labels, strict=True))
    relevant = sum(int(y.sum()) for y in labels)
    return (hits / kept if kept else 1.0), hits / relevant


def _threshold_for_recall(scores: list[np.ndarray], labels: list[np.ndarray], recall: float) -> float:
    """The highest threshold whose recall reaches `recall` on these queries."""
    positives = np.sort(np.concatenate([s[y > 0] for s, y in zip(scores, labels, strict=True)]))[::-1]
    return float(positives[min(len(positives) - 1, max(0, math.ceil(recall * len(positives)) - 1))])


def _best_f1_threshold(scores: list[np.ndarray], labels: list[np.ndarray]) -> float:
    grid = np.unique(np.quantile(np.concatenate(scores), np.linspace(0.0, 1.0, 401)))
    f1 = [2 * p * r / (p + r) if p + r else 0.0 for p, r in (_precision_recall(scores, labels, t) for t in grid)]
    return float(grid[int(np.argmax(f1))])


def cutoff_figures(docs: pgembed.Collection, vectors: np.ndarray, relevant: list[set[int]], train: list[int],
                   test: list[int], depth: int = 50) -> dict[str, Any]:
    """The relevance model fitted on the train queries, against the best single raw-distance threshold chosen on
    the same queries, both measured on the test queries' exact nearest `depth` rows."""
    started = time.perf_counter()
    info, model = fit(docs.context, vectors[train], [relevant[i] for i in train], depth=depth)
    fit_seconds = time.perf_counter() - started
    figures: dict[str, Any] = {"depth": depth, "train_queries": len(train), "test_queries": len(test),
                               "model_version": info.version, "fit_seconds": fit_seconds, "rows": []}
    pairs = {}
    for split, ids in (("train", train), ("test", test)):
        distances, labels = labelled_pairs(docs.context, vectors[ids], [relevant[i] for i in ids], depth)
        calibrated = [model.predict(vectors[i].astype(np.float64), d) for i, d in zip(ids, distances, strict=True)]
        pairs[split] = {"raw": [-d for d in distances], "calibrated": calibrated, "labels": labels}
    train_pairs, test_pairs = pairs["train"], pairs["test"]
    choices = [(f"recall {r} on train", {m: _threshold_for_recall(train_pairs[m], train_pairs["labels"], r)
                                         for m in ("raw", "calibrated")}) for r in TARGET_RECALLS]
    choices.append(("best F1 on train", {m: _best_f1_threshold(train_pairs[m], train_pairs["labels"])
                                         for m in ("raw", "calibrated")}))
    for rule, thresholds in choices:
        row: dict[str, Any] = {"threshold chosen by": rule}
        for method, threshold in thresholds.items():
            precision, recall = _precision_recall(test_pairs[method], test_pairs["labels"], threshold)
            row[method] = {"threshold": threshold if method == "calibrated" else -threshold,
                           "precision": precision, "recall": recall}
        # The raw threshold at the calibrated one's recall, chosen on the test queries themselves: the raw
        # distance's best at equal recall (an oracle for it, so the comparison leans its way).
        oracle = _threshold_for_recall(test_pairs["raw"], test_pairs["labels"], row["calibrated"]["recall"])
        precision, recall = _precision_recall(test_pairs["raw"], test_pairs["labels"], oracle)
        row["raw at equal recall"] = {"threshold": -oracle, "precision": precision, "recall": recall}
        figures["rows"].append(row)
    return figures


# -- diversity -------------------------------------------------------------------------------------------------
DIVERSITY = (None, 0.7, 0.5)


def diversity_figures(docs: pgembed.Collection, vectors: np.ndarray, relevant: list[set[int]], pages: list[str],
                      chosen: list[int], k: int) -> list[dict[str, Any]]:
    """Vector search with and without MMR (lambda 0.7, 0.5 over stage_depth(k) candidates), interleaved: nDCG,
    the distinct pages among the k rows, the latency, and the MMR stage's own."""
    def run(lam: float | None, qid: int) -> SearchResult:
        return docs.search(vectors[qid], k, plan="exact", diversity=lam)

    for lam in DIVERSITY:
        run(lam, chosen[0])
    found: dict[float | None, list[tuple[SearchResult, float]]] = {lam: [] for lam in DIVERSITY}
    for turn, qid in enumerate(chosen):
        for lam in (*DIVERSITY[turn % 3:], *DIVERSITY[:turn % 3]):
            started = time.perf_counter()
            result = run(lam, qid)
            found[lam].append((result, (time.perf_counter() - started) * 1000))
    rows = []
    for lam in DIVERSITY:
        results = found[lam]
        ms = np.array([s for _, s in results])
        stage = [r.stages[-1]["ms"] for r, _ in results if r.stages]
        rows.append({
            "diversity": lam, f"ndcg@{k}": float(np.mean([ndcg(r.ids.tolist(), relevant[q], k)
                                                         for (r, _), q in zip(results, chosen, strict=True)])),
            "distinct_pages": float(np.mean([len({pages[i] for i in r.ids.tolist()}) for r, _ in results])),
            **_percentiles(ms), **_percentiles(stage, "mmr_"),
        })
    return rows


def _torch_threads() -> int:
    import torch  # type: ignore[import-not-found]

    return int(torch.get_num_threads())


def run_relevance_bench(dataset: str | Path, labels: str | Path, *, dsn: str | None = None,
                        data_dir: str | Path | None = None, k: int = 10, split: str | None = "test",
                        limit: int | None = None, only: str | None = None,
                        log: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Every mode on the labelled queries of `split` (None: all; `limit`: the first so many), with the text
    index on the expression; then the text modes again with the tsvector stored (same answers checked, latency
    measured); then the relevance cut-off. `only`: "cutoff", "diversity" or "model" (vector and hybrid search
    with and without all-mpnet-base-v2 re-ranking, the rerank-model extra) alone."""
    dataset, labels = Path(dataset), Path(labels)
    vectors, table, relevant = load_relevance(labels)
    texts = [str(t) for t in table["text"]]
    chosen = [i for i, s in enumerate(table["split"]) if split is None or s == split][:limit]
    with pgembed.connect(dsn, data_dir=data_dir, migrate=True) as db:
        docs = load(db, dataset, log)
        train = [i for i, s in enumerate(table["split"]) if s == "train"][:limit]
        test = [i for i, s in enumerate(table["split"]) if s == "test"][:limit]
        if only == "cutoff":
            log(f"relevance cut-off: fitted on {len(train)} train queries, measured on {len(test)} test queries")
            return {"dataset": dataset.name, "labels": str(labels), "rows": docs.count(), "vector_plan": "exact",
                    "cutoff": cutoff_figures(docs, vectors, relevant, train, test)}
        if only == "diversity":
            log(f"diversity: {len(chosen)} queries, lambda {DIVERSITY[1:]} and none, interleaved")
            pages = [str(p) for p in _pyarrow().parquet.read_table(dataset / "attrs.parquet").column("page")
                     .to_pylist()]
            return {"dataset": dataset.name, "labels": str(labels), "rows": docs.count(), "queries": len(chosen),
                    "k": k, "depth": f"pgembed.stage_depth({k})", "vector_plan": "exact",
                    "diversity": diversity_figures(docs, vectors, relevant, pages, chosen, k)}
        if only == "model":
            model = models.load(models.Model.MPNET)
            model.max_seq_length = MODEL_MAX_TOKENS
            stage = ModelStage(BiEncoderReranker(model, "body"), columns=("body",), batch_size=64)
            _text_search(db, docs, True, log)
            log(f"model stage ({models.Model.MPNET.value}): {len(chosen)} queries, 4 modes, interleaved")
            return {"dataset": dataset.name, "labels": str(labels), "rows": docs.count(), "queries": len(chosen),
                    "split": split, "k": k, "vector_plan": "exact", "text_search": "stored tsvector",
                    "model": {"name": models.Model.MPNET.value, "packages": models.package_versions(models.Model.MPNET),
                              "scores": "cosine of the query text's and the passage's embeddings",
                              "depth": f"pgembed.stage_depth({k})", "batch_size": stage.batch_size,
                              "max_tokens": MODEL_MAX_TOKENS,
                              "torch_threads": _torch_threads()},
                    "model_stage": model_figures(docs, stage, vectors, texts, relevant, chosen, k)}
        if only is not None:
            raise InvalidInputError(f"only takes cutoff, diversity or model, got {only!r}")
        forms = [_text_search(db, docs, False, log)]
        log(f"{len(chosen)} queries ({split or 'all'}), {len(MODES)} modes, interleaved")
        found, seconds, _ = _sweep(docs, MODES, vectors, texts, chosen, k)
        rows_total = docs.count()
        forms.append(_text_search(db, docs, True, log))
        text_modes = [m for m in MODES if m.text_match is not None]
        log(f"again with the tsvector stored: {len(text_modes)} text modes")
        stored_found, stored_seconds, _ = _sweep(docs, text_modes, vectors, texts, chosen, k)
        log(f"relevance cut-off: fitted on {len(train)} train queries, measured on {len(test)} test queries")
        cutoff = cutoff_figures(docs, vectors, relevant, train, test)
    rows = []
    for mode in MODES:
        lists = found[mode.name]
        ms = np.array(seconds[mode.name]) * 1000
        row = {
            "mode": mode.name, "text_match": mode.text_match, "fusion": list(mode.fusion), "text_only": mode.text_only,
            **_quality(lists, relevant, chosen, k),
            "empty_lists": sum(1 for r in lists if not r), "mean_rows": float(np.mean([len(r) for r in lists])),
            **_percentiles(ms),
        }
        if mode.name in stored_found:
            row |= {**_percentiles(np.array(stored_seconds[mode.name]) * 1000, "stored_"),
                    "stored_same_answers": sum(a == b for a, b in zip(lists, stored_found[mode.name], strict=True))}
        rows.append(row)
    return {"dataset": dataset.name, "labels": str(labels), "queries": len(chosen), "split": split, "k": k,
            "rows": rows_total, "text_search": forms, "fusion_depth": f"pgembed.stage_depth({k})",
            "vector_plan": "exact", "modes": rows, "cutoff": cutoff}
