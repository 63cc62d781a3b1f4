"""The cost model's batch constants (pgembed.planning.costs.CostModel), measured on this machine and this
collection."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from pgembed.db.copy import read_vectors
from pgembed.engine import search as searching
from pgembed.engine.batch.scan import MARGIN, RunningTopK, distances_of
from pgembed.engine.context import CollectionContext
from pgembed.engine.rows import sample_rows
from pgembed.errors import InvalidInputError, SchemaError
from pgembed.planning.costs import CostModel
from pgembed.planning.filters import NO_FILTER
from pgembed.planning.params import SearchParams


def calibrate(ctx: CollectionContext, *, sample_queries: int = 40, rows: int = 20_000, group_queries: int = 64,
              base: CostModel | None = None) -> CostModel:
    """Measure reading `rows` rows over binary COPY; scoring them as a scan does (matrix product and top-k)
    for a group of `group_queries` queries (the sample, repeated); and `sample_queries` queries through
    search() (a trimmed mean). The other constants are `base`'s."""
    if min(sample_queries, rows, group_queries) < 1:
        raise InvalidInputError("calibrate needs at least one query, one row and one query per group")
    _, qs = sample_rows(ctx, sample_queries, seed=11)
    dim, metric = ctx.info.dim, ctx.info.metric
    started = time.perf_counter()
    blocks = list(read_vectors(ctx.session, ctx.info, "true", ctx.key_type(), limit=rows))
    read = sum(len(keys) for keys, _ in blocks)
    if len(qs) == 0 or read == 0:
        raise SchemaError(f"collection {ctx.info.name!r} has no vectors: nothing to calibrate on")
    read_s = (time.perf_counter() - started) / read / dim
    keys = np.concatenate([k for k, _ in blocks])
    x = np.concatenate([x for _, x in blocks])
    group = np.resize(qs.astype(np.float32), (group_queries, dim))
    started = time.perf_counter()
    RunningTopK(group, 10 + MARGIN, metric).add(distances_of(group, x, metric), keys, x)
    score_s = (time.perf_counter() - started) / (group_queries * read * dim)
    params = SearchParams()
    searching.search(ctx, qs[0], 10, None, params)  # the first pays for the planner's answer; not counted
    seconds = []
    for v in qs:
        started = time.perf_counter()
        searching.search(ctx, v, 10, None, params)
        seconds.append(time.perf_counter() - started)
    # A mean (the model predicts totals) without the slowest and fastest tenth: one query caught behind
    # another process would move a plain mean, and the plans with it.
    trim = len(seconds) // 10
    kept = sorted(seconds)[trim : len(seconds) - trim]
    model = replace(base or CostModel(), read_row_per_dim=read_s, score=score_s, per_query=float(np.mean(kept)))
    return _calibrate_probes(ctx, model, group)


def _calibrate_probes(ctx: CollectionContext, model: CostModel, group: np.ndarray) -> CostModel:
    """With a partitioning codec: probe_topk for the group at every cluster and at an eighth of them, whose
    difference is the pairs' cost and whose rest the rows'. Without one, the model as it is."""
    try:
        part = searching.partitioning(ctx)
    except SchemaError:
        return model
    rows = float(searching.prepare(ctx, NO_FILTER, 10, SearchParams()).plan.total_rows or 0)
    if rows <= 0:
        return model
    times = {}
    for probes in (part.lists, max(1, part.lists // 8)):
        searching.search_probed(ctx, group[:2], 10, NO_FILTER, probes)  # plans and caches: not counted
        started = time.perf_counter()
        searching.search_probed(ctx, group, 10, NO_FILTER, probes)
        times[probes] = time.perf_counter() - started
    full, few = part.lists, max(1, part.lists // 8)
    n = len(group)
    pairs = n * rows * (1.0 - few / full)
    pair_s = max((times[full] - times[few]) / pairs, 1e-12) if pairs > 0 else model.probe_pair
    touched = CostModel.touched(few / full, n)
    row_s = max((times[few] - n * rows * (few / full) * pair_s) / (rows * touched), 1e-12)
    return replace(model, probe_row=row_s, probe_pair=pair_s)
