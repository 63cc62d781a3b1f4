"""Batched search: a workload of hybrid queries planned together.

Queries are grouped by filter. Each group is answered one of two ways, chosen by a cost model:

- scan: the group's matching rows are read once (binary COPY, vectors parsed by numpy) and all the group's
  queries are scored with matrix products, exact top-k by argpartition, block by block for large groups
  (a running top-k, so memory stays bounded). Exact answers, and the read is shared by every query of the
  group: HQI's multi-query optimisation in its simplest form.
- each: the group's queries go one by one through Collection.search (its per-query planner: exact on few
  rows, HNSW on codes and re-rank, partial indexes).

Cost model (seconds), constants measured on this project's 2-core machines (docs/benchmarks.md, "Batched
search", and `calibrate()` measures them on yours):
    scan = rows * (READ_ROW + queries * dim * SCORE)      each = queries * PER_QUERY
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
from psycopg import sql

from pgembed.errors import InvalidInputError, SchemaError
from pgembed.filters import Filter
from pgembed.plan import check_request
from pgembed.progress import progress_bar
from pgembed.search import check_not_zero
from pgembed.vectors import as_matrix

if TYPE_CHECKING:
    from pgembed.collection import Collection
    from pgembed.search import SearchResult

BLOCK_ROWS = 20_000  # rows scored at once: (queries x 20,000) float32 distances stay small
SCORE_BUDGET = 20_000_000  # distances held at once per scanned group (80 MB of float32)
EACH_CHUNK = 16  # per-query work is handed to the workers in chunks of this many queries
FIXED_KEYS = {"int2": ">i2", "int4": ">i4", "int8": ">i8"}


@dataclass(frozen=True)
class CostModel:
    """Seconds per unit of work; see the module docstring."""

    read_row_per_dim: float = 2.0e-9  # reading one row's vector over binary COPY and parsing it, per dimension
    score: float = 1.0e-10  # one multiply-add of the matrix product (numpy float32 on 2 cores)
    per_query: float = 1.5e-3  # one query through search(): round trip, plan, index scan, re-rank

    def scan_seconds(self, rows: float, queries: int, dim: int) -> float:
        return rows * dim * (self.read_row_per_dim + queries * self.score)

    def each_seconds(self, queries: int) -> float:
        return queries * self.per_query


@dataclass(frozen=True)
class GroupPlan:
    filter: Any  # the group's filter as given (a dict, a SQLAlchemy expression, or None)
    queries: int
    estimated_rows: float
    kind: str  # "scan" | "each"
    reason: str
    seconds: float = 0.0  # measured
    unique: int | None = None  # distinct query vectors among them (each answered once); None: not counted
    exact_fallbacks: int = 0  # scanned queries answered again by the exact plan (ties past the kept rows)

    def describe(self) -> dict[str, Any]:
        return {"filter": _describe_filter(self.filter), "queries": self.queries, "unique_queries": self.unique,
                "estimated_rows": self.estimated_rows, "kind": self.kind, "reason": self.reason,
                "seconds": round(self.seconds, 4), "exact_fallbacks": self.exact_fallbacks}


@dataclass
class BatchResult:
    """Per query (row i): up to k keys and exact distances, best first; rows past counts[i] are padding
    (key None, distance inf) — a query whose filter matches fewer than k rows gets all of them."""

    ids: np.ndarray  # (n, k) object array
    distances: np.ndarray  # (n, k) float64
    counts: np.ndarray  # (n,) int
    groups: list[GroupPlan] = field(default_factory=list)

    def plan_mix(self) -> dict[str, int]:
        """Queries answered by each plan kind."""
        mix: dict[str, int] = {}
        for g in self.groups:
            mix[g.kind] = mix.get(g.kind, 0) + g.queries
        return mix


def _describe_filter(where: Any) -> Any:
    if where is None or isinstance(where, dict):
        return where
    return str(where)


def _group_key(where: Any, compiled: Filter, conn: Any) -> str:
    if where is None or compiled.is_empty():
        return ""
    if isinstance(where, dict):
        return "dict:" + json.dumps(where, sort_keys=True, default=str)
    return "sql:" + compiled.clause.as_string(conn) + repr(sorted(compiled.params.items()))


def search_batch(
    collection: Collection,
    queries: Any,
    k: int = 10,
    *,
    where: Any = None,
    recall: float | None = None,
    codec: str | None = None,
    ef_search: int | None = None,
    oversample: float | None = None,
    plan: str = "auto",
    cost: CostModel | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> BatchResult:
    """Answer every query of `queries` (n x dim); `where` is one filter for all, or a list of n filters.

    plan: "auto" (the cost model chooses per group), "scan" (every group scanned: exact), or "each"
    (every query through search(), with `recall`/`codec`/`ef_search`/`oversample` as search() takes them);
    "index" and "exact" are "each" with search()'s plan forced to that.
    workers: connections working at once (default 1). Extra workers are new connections from the same DSN:
    they do not carry this session's state (SET ROLE, search_path, settings row-level security reads), and
    inside a transaction they are not used at all (they would not see its uncommitted rows).
    """
    q = as_matrix(queries, collection.dim, what="queries")
    check_not_zero(q, collection.metric)
    check_request(k, recall, ef_search, oversample, "auto")
    if plan not in ("auto", "scan", "each", "index", "exact"):
        raise InvalidInputError(f"plan must be one of auto, scan, each, index, exact, got {plan!r}")
    search_plan = plan if plan in ("index", "exact") else "auto"
    n = q.shape[0]
    if isinstance(where, list | tuple):
        if len(where) != n:
            raise InvalidInputError(f"got {len(where)} filters for {n} queries: give one, or one per query")
        filters = list(where)
    else:
        filters = [where] * n
    cost = cost or CostModel()
    searcher = collection.searcher
    groups: dict[str, tuple[Any, Filter, list[int]]] = {}
    for i, f in enumerate(filters):
        compiled, _ = searcher.prepare(f)
        key = _group_key(f, compiled, collection.conn)
        groups.setdefault(key, (f, compiled, []))[2].append(i)

    ids = np.full((n, k), None, dtype=object)
    distances = np.full((n, k), np.inf, dtype=np.float64)
    counts = np.zeros(n, dtype=np.int64)
    total = searcher.total_rows()
    tasks: list[tuple[int, str, list[int]]] = []  # (group number, kind, query rows)
    plans: list[GroupPlan] = []
    entries = list(groups.values())
    # Identical queries under the same filter are answered once and their answer copied: HQI's sharing
    # of work between queries in its exact form (sharing candidates between merely similar queries does
    # not reach the recall target on real queries: docs/benchmarks.md, "Batched search").
    copies: list[tuple[int, int]] = []  # (query row, the row whose answer it takes)
    sizes = [len(members) for _, _, members in entries]
    for number, (original, compiled, members) in enumerate(entries):
        _, first, inverse = np.unique(q[members], axis=0, return_index=True, return_inverse=True)
        if len(first) < len(members):
            answered_by = [members[first[j]] for j in inverse.ravel()]
            copies += [(i, source) for i, source in zip(members, answered_by, strict=True) if source != i]
            entries[number] = (original, compiled, sorted(members[j] for j in first))
    for number, (original, compiled, members) in enumerate(entries):
        rows = total if compiled.is_empty() else searcher.estimate_rows(compiled)
        scan_s = cost.scan_seconds(rows, len(members), collection.dim)
        each_s = cost.each_seconds(len(members))
        if plan == "scan" or (plan == "auto" and recall is None and codec is None and scan_s < each_s):
            kind = "scan"
            reason = f"~{rows:.0f} rows read once for {len(members)} queries: ~{scan_s:.3f}s < ~{each_s:.3f}s"
            tasks.extend((number, kind, members[i : i + MAX_SCAN_QUERIES])
                         for i in range(0, len(members), MAX_SCAN_QUERIES))
        else:
            kind = "each"
            reason = ("asked for" if plan in ("each", "index", "exact") else
                      f"~{each_s:.3f}s <= ~{scan_s:.3f}s to scan ~{rows:.0f} rows" if plan == "auto"
                      and recall is None and codec is None else "recall/codec given: per-query plans")
            # Chunks of EACH_CHUNK queries: one statement each for an index plan; the workers share them out.
            tasks.extend((number, kind, members[i : i + EACH_CHUNK]) for i in range(0, len(members), EACH_CHUNK))
        plans.append(GroupPlan(original, sizes[number], rows, kind, reason, unique=len(members)))
    # The biggest tasks first, so that the workers finish together.
    tasks.sort(key=lambda t: -(len(t[2]) * (20 if t[1] == "scan" else 1)))
    seconds = [0.0] * len(entries)
    fallbacks = [0] * len(entries)
    timing = threading.Lock()

    def run(worker: Collection, task: tuple[int, str, list[int]]) -> None:
        number, kind, members = task
        original, compiled, _ = entries[number]
        started = time.perf_counter()
        if kind == "scan":
            unsure = _scan_group(worker, q[members], k, compiled, members, ids, distances, counts)
            with timing:
                fallbacks[number] += len(unsure)
            for i in unsure:
                exact = worker.searcher.search(q[i], k, where=original, plan="exact")  # ties past the kept rows
                counts[i] = len(exact.ids)
                ids[i, : counts[i]] = exact.ids
                distances[i, : counts[i]] = exact.distances
        else:
            for i, result in zip(members, _search_each(worker, q[members], k, original, recall=recall, codec=codec,
                                                       ef_search=ef_search, oversample=oversample, plan=search_plan),
                                 strict=True):
                counts[i] = len(result.ids)
                ids[i, : counts[i]] = result.ids
                distances[i, : counts[i]] = result.distances
        with timing:
            seconds[number] += time.perf_counter() - started

    with progress_bar(f"search_batch {collection.name}", n, progress) as bar, \
            _workers(collection, workers) as pool:
        if bar is not None and copies:  # answered by their twins
            bar.advance(bar.task_ids[0], len(copies))
        pending: queue.SimpleQueue[tuple[int, str, list[int]]] = queue.SimpleQueue()
        for task in tasks:
            pending.put(task)
        errors: list[BaseException] = []

        def drain(worker: Collection) -> None:
            while not errors:
                try:
                    task = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    run(worker, task)
                except BaseException as err:  # re-raised in the caller's thread
                    errors.append(err)
                    return
                if bar is not None:
                    bar.advance(bar.task_ids[0], len(task[2]))

        threads = [threading.Thread(target=drain, args=(w,), daemon=True) for w in pool[1:]]
        for t in threads:
            t.start()
        drain(pool[0])
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
    for i, source in copies:
        ids[i], distances[i], counts[i] = ids[source], distances[source], counts[source]
    plans = [replace(p, seconds=seconds[i], exact_fallbacks=fallbacks[i]) for i, p in enumerate(plans)]
    return BatchResult(ids, distances, counts, plans)


def _search_each(worker: Collection, q: np.ndarray, k: int, where: Any, **knobs: Any) -> list[SearchResult]:
    """search() for each query of a group. The plan depends on the filter and the knobs, not on the vector,
    so when it is an index plan the queries run together in one statement (Searcher.search_many; 1.16-1.28x
    the speed of one statement a query in raw SQL, measured), else one by one."""
    searcher = worker.searcher
    compiled, doc = searcher.prepare(where)
    chosen = searcher.plan(compiled, k=k, filter_doc=doc, **knobs)
    if chosen.kind == "index" and len(q) > 1:
        try:
            return searcher.search_many(q, chosen, compiled)
        except (psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedObject):
            # A codec re-fitted or dropped elsewhere since the catalog was read (search() does the same):
            # read it again and plan again, once; a second failure is a real error and goes to the caller.
            searcher.forget()
            chosen = searcher.plan(compiled, k=k, filter_doc=doc, **knobs)
            if chosen.kind == "index":
                return searcher.search_many(q, chosen, compiled)
    return [searcher.search(v, k, where=where, **knobs) for v in q]


@contextmanager
def _workers(collection: Collection, workers: int | None) -> Iterator[list[Collection]]:
    """The collection itself, plus workers - 1 views of it on connections of their own (new connections from
    the same DSN, without this session's state). Extra connections only when the caller's connection is idle
    in autocommit: inside the application's transaction another connection would not see its uncommitted
    rows, so the batch then runs on that connection alone."""
    from pgembed.collection import Collection
    from pgembed.database import Database

    wanted = 1 if workers is None else workers
    if wanted < 1:
        raise InvalidInputError(f"workers must be at least 1, got {workers!r}")
    idle = collection.conn.autocommit and not collection.db.in_transaction
    extra: list[Database] = []
    try:
        if idle:
            for _ in range(wanted - 1):
                extra.append(Database(collection.db.new_connection(), _owned=True))
        yield [collection, *(Collection(db, collection.info) for db in extra)]
    finally:
        for db in extra:
            db.close()


def iter_search_batch(collection: Collection, batches: Iterator[tuple[Any, Any]], k: int = 10,
                      **options: Any) -> Iterator[BatchResult]:
    """search_batch over (queries, where) chunks of a workload larger than memory, one result per chunk."""
    for queries, where in batches:
        yield search_batch(collection, queries, k, where=where, **options)


# -- scan and multiply ---------------------------------------------------------------------------------------
MARGIN = 10  # candidates kept past k per query and block, re-scored in float64 (float32 rounding)
CHUNK = 32  # columns per chunk in _smallest's first pass
RESCORE_BUDGET = 2_000_000  # candidate vector values re-scored at once (float64 copies: ~28 bytes each)
MAX_SCAN_QUERIES = SCORE_BUDGET // 1_000  # a bigger group is scanned in parts: blocks stay >= 1,000 rows


class RunningTopK:
    """Per query of a group, the `keep` best rows seen so far over blocks of rows: their keys and exact
    (float64) distances. Each block's candidates are chosen by _scores (float32 for cosine), then re-scored
    from their vectors in float64, so nothing but keys and distances is kept."""

    def __init__(self, q: np.ndarray, keep: int, metric: str, key_dtype: Any = object) -> None:
        self.q = q
        self.keep = keep
        self.metric = metric
        self.d = np.full((len(q), 0), np.inf, dtype=np.float64)
        self.keys = np.empty((len(q), 0), dtype=key_dtype)

    def add(self, scores: np.ndarray, keys: np.ndarray, x: np.ndarray) -> None:
        """A block: scores (queries x rows) from _scores for the rows `keys` / `x`."""
        if scores.shape[1] == 0:
            return
        pick = _smallest(scores, self.keep)
        exact = np.empty(pick.shape, dtype=np.float64)
        # x[pick] and its float64 copies hold queries x keep x dim values: in slices of RESCORE_BUDGET.
        step = max(1, RESCORE_BUDGET // max(pick.shape[1] * x.shape[1], 1))
        for start in range(0, len(pick), step):
            part = pick[start : start + step]
            exact[start : start + step] = _exact_distances(self.q[start : start + step], x[part], self.metric)
        exact = np.where(np.isfinite(np.take_along_axis(scores, pick, 1)), exact, np.inf)
        self.merge(exact, keys[pick])

    def merge(self, d: np.ndarray, keys: np.ndarray) -> None:
        """Candidates given per query: exact distances d and their keys (queries x c)."""
        cat_d = np.concatenate([self.d, d], axis=1)
        take = min(self.keep, cat_d.shape[1])
        part = np.argpartition(cat_d, take - 1, axis=1)[:, :take]
        self.d = np.take_along_axis(cat_d, part, 1)
        cat_keys = np.concatenate([self.keys, keys.astype(self.keys.dtype, copy=False)], axis=1)
        self.keys = np.take_along_axis(cat_keys, part, 1)

    def finish(self, k: int, members: Sequence[int], ids: np.ndarray, distances: np.ndarray,
               counts: np.ndarray) -> list[int]:
        """The k best per query into the result rows `members` (all the rows seen when fewer than k), in
        search()'s order: distance, then key. A row whose distance is undefined (a zero vector, under
        cosine: inf here) comes last with distance NaN, as search() returns it. Returns the result rows
        that may differ from search(): those whose k-th distance equals the last kept one's (rows tied with
        it may have been left out), and, for text keys, any tie within the first k + 1 (PostgreSQL orders
        text by the column's collation, not as Python does); the caller answers them exactly."""
        unsure = []
        for row, i in enumerate(members):
            d, keys = self.d[row], self.keys[row]
            order = (np.lexsort((keys, d)) if keys.dtype != object
                     else np.array(sorted(range(len(d)), key=lambda j: (d[j], keys[j])), dtype=np.int64))
            chosen = order[:k]
            if len(d) == self.keep and len(d) > k and d[order[k - 1]] == d[order[-1]]:
                unsure.append(i)
            elif keys.dtype == object and len(np.unique(d[order[: k + 1]])) < len(order[: k + 1]):
                unsure.append(i)  # text keys: PostgreSQL breaks the tie by the column's collation
            counts[i] = len(chosen)
            ids[i, : len(chosen)] = keys[chosen]
            distances[i, : len(chosen)] = np.where(np.isinf(d[chosen]), np.nan, d[chosen])
        return unsure


def _smallest(d: np.ndarray, keep: int) -> np.ndarray:
    """Column indices of the `keep` smallest values of each row of d (no NaN in it), each once, in no
    order (ties broken arbitrarily).

    argpartition over every element costs ~13 ns each; instead the minimum of each whole chunk of CHUNK
    columns is taken first (~1 ns an element), and only the `keep` chunks with the smallest minima, plus
    the columns past the last whole chunk, are searched: each of a row's keep smallest values lies among
    them, because every value of any other chunk has at least `keep` values at or below it (the chosen
    chunks' minima)."""
    queries, rows = d.shape
    if rows <= keep:
        return np.broadcast_to(np.arange(rows), (queries, rows))
    if rows < 8 * keep * CHUNK:
        return np.argpartition(d, keep - 1, axis=1)[:, :keep]
    whole = rows // CHUNK * CHUNK
    minima = d[:, :whole].reshape(queries, -1, CHUNK).min(axis=2)
    chunks = np.argpartition(minima, keep - 1, axis=1)[:, :keep]
    cols = (chunks[:, :, None] * CHUNK + np.arange(CHUNK)).reshape(queries, -1)
    if whole < rows:
        cols = np.concatenate([cols, np.broadcast_to(np.arange(whole, rows), (queries, rows - whole))], axis=1)
    pick = np.argpartition(np.take_along_axis(d, cols, 1), keep - 1, axis=1)[:, :keep]
    return np.take_along_axis(cols, pick, 1)


def _scan_group(collection: Collection, q: np.ndarray, k: int, where: Filter, members: Sequence[int],
                ids: np.ndarray, distances: np.ndarray, counts: np.ndarray) -> list[int]:
    """Exact top-k of every query of a group over the rows its filter keeps, read once for the group.
    Returns the result rows that ties past the kept candidates may have made wrong (RunningTopK.finish)."""
    block_rows = max(1_000, min(BLOCK_ROWS, SCORE_BUDGET // max(len(members), 1)))
    metric = collection.metric
    q32 = _scoring_queries(q, metric)
    top = RunningTopK(q, k + MARGIN, metric)
    for keys, x in read_rows(collection, where, block_rows):
        top.add(_scores(q32, _scoring_rows(x, metric), metric), keys, x)
    return top.finish(k, members, ids, distances, counts)


def _scoring_queries(q: np.ndarray, metric: str) -> np.ndarray:
    """Queries as _scores takes them: for cosine, float32, normalised and negated (so that a matrix
    product with normalised rows gives scores where smaller is nearer)."""
    q32 = np.ascontiguousarray(q, dtype=np.float32)
    if metric == "cosine":
        q32 = -q32 / np.maximum(np.linalg.norm(q32, axis=1, keepdims=True), np.finfo(np.float32).tiny)
    return q32


def _scoring_rows(x: np.ndarray, metric: str) -> np.ndarray:
    """Rows as _scores takes them: for cosine, normalised once per block (a row with no cosine distance
    becomes NaN: _scores gives it inf); other metrics use the rows as they are."""
    if metric != "cosine":
        return x
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]  # float32 sums of squares, as pgvector's
        rows = x / norms
        # A zero row, or one whose float32 sum of squares underflows to 0 or overflows: pgvector's cosine
        # distance is NaN for it too (its norms accumulate in float32).
        rows[~(np.isfinite(norms[:, 0]) & (norms[:, 0] > 0))] = np.nan
    return rows


def _scores(q: np.ndarray, x: np.ndarray, metric: str) -> np.ndarray:
    """(queries x rows) scores that order rows as the metric's distances do, smaller nearer; inf where
    undefined. Candidates are chosen by them and then re-scored exactly (RunningTopK).

    Cosine: float32 products of normalised vectors (twice the speed of float64; the rounding, ~1e-7 of
    scores within [-1, 1], is covered by keeping MARGIN candidates more than k per query). Inner
    product and L2, whose float32 error grows with the vectors' magnitudes, are scored in float64."""
    if metric == "cosine":
        undefined = np.isnan(x[:, 0])  # zero rows, NaN all along after normalising
        if not undefined.any():
            return q @ x.T
        d = q @ np.where(undefined[:, None], np.float32(0), x).T
        d[:, undefined] = np.inf
        return d
    q64, x64 = q.astype(np.float64), x.astype(np.float64)
    if metric == "ip":
        return -(q64 @ x64.T)
    return (x64**2).sum(1)[None, :] - 2 * q64 @ x64.T  # the query's own norm does not change the order


def _distances(q: np.ndarray, x: np.ndarray, metric: str) -> np.ndarray:
    """Scores of raw queries against raw rows (what calibrate() times)."""
    return _scores(_scoring_queries(q, metric), _scoring_rows(x, metric), metric)


def _exact_distances(q: np.ndarray, vectors: np.ndarray, metric: str) -> np.ndarray:
    """float64 distances of each query to its own candidates' vectors (queries x candidates x dim)."""
    q64 = q.astype(np.float64)[:, None, :]
    v64 = vectors.astype(np.float64)
    if metric == "cosine":
        dots = (q64 * v64).sum(-1)
        norms = np.linalg.norm(v64, axis=-1) * np.linalg.norm(q64, axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = 1.0 - dots / norms
    elif metric == "ip":
        d = -(q64 * v64).sum(-1)
    else:
        d = np.linalg.norm(v64 - q64, axis=-1)
    return np.where(np.isnan(d), np.inf, d)


def read_rows(collection: Collection, where: Filter, block_rows: int = BLOCK_ROWS, limit: int | None = None
              ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(keys, vectors) of the rows `where` keeps, in blocks: binary COPY parsed by numpy when the key is
    an integer (fixed-width rows), a binary server-side cursor otherwise."""
    info = collection.info
    key_type = _key_type(collection)
    select = sql.SQL("SELECT {k}, {v} FROM {t} WHERE ({w}) AND {v} IS NOT NULL{limit}").format(
        k=info.key, v=info.vector, t=info.table, w=sql.SQL("true") if where.is_empty() else where.clause,
        limit=sql.SQL(" LIMIT {}").format(sql.Literal(limit)) if limit is not None else sql.SQL(""))
    if key_type in FIXED_KEYS:
        # COPY takes no parameters: psycopg binds the filter's values (a SQLAlchemy filter's) into the
        # text itself, quoted as literals, and turns the clause's doubled '%%' back into '%'. Measured: a
        # 12,432-row group read 1.6-2.2x faster than through the cursor, which makes Python objects of rows.
        # (A Python float becomes a numeric literal here, a float8 parameter in search(): the same
        # comparison except against numeric columns holding more digits than a float8.)
        with psycopg.ClientCursor(collection.conn) as client:
            bound = sql.SQL(client.mogrify(select, where.params))
        yield from _copy_blocks(collection, bound, FIXED_KEYS[key_type], block_rows)
        return
    with collection.db.transaction(), collection.conn.cursor(name="pgembed_scan", binary=True) as cur:
        cur.itersize = block_rows
        cur.execute(select, where.params)
        while True:
            fetched = cur.fetchmany(block_rows)
            if not fetched:
                return
            keys = np.array([r[0] for r in fetched], dtype=object)
            yield keys, np.stack([np.asarray(r[1].to_numpy() if hasattr(r[1], "to_numpy") else r[1],
                                             dtype=np.float32) for r in fetched])


def _key_type(collection: Collection) -> str:
    row = collection.conn.execute(
        """SELECT t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
           WHERE a.attrelid = %s::regclass AND a.attname = %s""",
        (collection.info.table.as_string(collection.conn), collection.info.key_column),
    ).fetchone()
    if row is None:
        raise SchemaError(f"key column {collection.info.key_column!r} is gone from {collection.info.table_name!r}")
    return str(row[0])


def _copy_blocks(collection: Collection, select: sql.Composable, key_dtype: str, block_rows: int
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Binary COPY rows of (integer key, vector(dim)) have a fixed width: numpy reads them as records."""
    dim = collection.dim
    record = np.dtype([("fields", ">i2"), ("key_len", ">i4"), ("key", key_dtype), ("vec_len", ">i4"),
                       ("dim", ">i2"), ("unused", ">i2"), ("vec", ">f4", (dim,))])
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(select)
    block_bytes = block_rows * record.itemsize
    chunks: list[bytes] = []
    size = 0
    header = -1  # bytes of header still to skip; -1 until known
    with collection.conn.cursor() as cur, cur.copy(statement) as copy:
        for chunk in copy:
            chunks.append(bytes(chunk))
            size += len(chunk)
            if header < 0:
                if size < 19:
                    continue
                data = b"".join(chunks)
                header = 19 + int.from_bytes(data[15:19], "big")
                chunks, size = [data[header:]], len(data) - header
            if size >= block_bytes:
                data = b"".join(chunks)
                whole = len(data) // record.itemsize * record.itemsize
                yield _records(data[:whole], record)
                chunks, size = [data[whole:]], len(data) - whole
    data = b"".join(chunks)
    body = data[:-2] if data.endswith(b"\xff\xff") else data  # the trailer: -1 as int16
    if body:
        yield _records(body, record)


def _records(data: bytes, record: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    rows = np.frombuffer(data, dtype=record)
    if rows.size and (np.any(rows["fields"] != 2) or np.any(rows["vec_len"] < 0)):
        raise SchemaError("unexpected binary COPY layout (a NULL key or vector?)")
    return rows["key"].astype(np.int64).astype(object), rows["vec"].astype(np.float32)


def calibrate(collection: Collection, *, sample_queries: int = 40, rows: int = 20_000,
              group_queries: int = 64) -> CostModel:
    """Measure the cost model's constants on this machine and this collection: reading `rows` rows over
    binary COPY; scoring them as a scan does (matrix product and top-k) for a group of `group_queries`
    queries (the sample, repeated); and `sample_queries` queries through search() (a trimmed mean)."""
    if min(sample_queries, rows, group_queries) < 1:
        raise InvalidInputError("calibrate needs at least one query, one row and one query per group")
    searcher = collection.searcher
    qs = collection.sample(sample_queries, seed=11)
    started = time.perf_counter()
    blocks = list(read_rows(collection, Filter(sql.SQL("true"), {}), limit=rows))
    read = sum(len(keys) for keys, _ in blocks)
    if len(qs) == 0 or read == 0:
        raise SchemaError(f"collection {collection.name!r} has no vectors: nothing to calibrate on")
    read_s = (time.perf_counter() - started) / max(read, 1) / collection.dim
    keys = np.concatenate([k for k, _ in blocks])
    x = np.concatenate([x for _, x in blocks])
    group = np.resize(qs.astype(np.float32), (group_queries, collection.dim))
    started = time.perf_counter()
    top = RunningTopK(group, 10 + MARGIN, collection.metric)
    top.add(_distances(group, x, collection.metric), keys, x)
    score_s = (time.perf_counter() - started) / (group_queries * max(read, 1) * collection.dim)
    searcher.search(qs[0], 10)  # the first statement pays for planning the catalog reads; not counted
    seconds = []
    for v in qs:
        started = time.perf_counter()
        searcher.search(v, 10)
        seconds.append(time.perf_counter() - started)
    # A mean (the model predicts totals) without the slowest and fastest tenth: one query caught behind
    # another process would move a plain mean, and the plans with it.
    trim = len(seconds) // 10
    kept = sorted(seconds)[trim : len(seconds) - trim]
    return CostModel(read_row_per_dim=read_s, score=score_s, per_query=float(np.mean(kept)))


__all__ = ["BatchResult", "CostModel", "GroupPlan", "calibrate", "iter_search_batch", "search_batch"]
