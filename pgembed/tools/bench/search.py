"""`pgembed bench search`: search measured inside the database, against plain pgvector.

One run loads the base vectors (and attribute columns from a parquet file) into a fresh collection through
pgembed itself, builds a B-tree on every attribute column a filter uses, ANALYZEs, and then measures, per
filter (and unfiltered), every configuration of:

- plain pgvector, single client, one prepared statement per query (the SQL text differs between settings,
  because a prepared statement keeps its cached plan across SET changes):
  HNSW on the float32 column (`pgvector-hnsw-f32`), HNSW on `embedding::halfvec(d)` (`pgvector-hnsw-f16`),
  HNSW on `binary_quantize(embedding)::bit(d)` with the re-rank written by hand as pgvector's README shows
  (`pgvector-bit-rerank`), each over hnsw.ef_search and hnsw.iterative_scan; and the exact plan PostgreSQL
  takes with its B-tree (`pgvector-btree-exact`: ordered by an expression no HNSW index matches);
- pgembed's own `Collection.search` (with --search), over codecs, oversampling, ef_search and recall targets.

Recall: ground truth is exact, per filter: the ids matching the filter are fetched from the database, and
the top k by cosine (the collection's metric) over those rows is computed in numpy. A returned id is a hit
when it matches the filter and its exact score is at least the k-th true score minus 1e-6 (real corpora
hold exact duplicates). When fewer than k rows match, recall is over those.

Timing: each configuration is warmed with a few queries, then every query is timed from the client
(execute + fetch); qps = queries / summed latency. The float32 HNSW index is built, measured and dropped
before everything else, so that it cannot serve an exact plan of pgembed's by accident.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
from rich.console import Console
from rich.table import Table

import pgembed
from pgembed.db.session import Session
from pgembed.engine.codecs import code_columns
from pgembed.engine.filters import compile_filter
from pgembed.errors import InvalidInputError, PgembedError
from pgembed.groundtruth import exact_topk, recall_at_k, unit_rows
from pgembed.planning.filters import as_filter
from pgembed.records import CollectionInfo
from pgembed.statements import benchmarks
from pgembed.statements.benchmarks import Baseline
from pgembed.tools.bench.codecs import load_matrix
from pgembed.tools.bench.environment import describe_environment

if TYPE_CHECKING:
    from psycopg.sql import Composable, Composed

TABLE = "pgembed_bench_search"
EF_SEARCH = (10, 20, 40, 80, 160, 320)
OVERSAMPLE = (1, 2, 4, 10, 20)
BIT_RERANK_FACTORS = (2, 4, 10, 20)  # the bit baseline's inner LIMIT is k * factor
RECALL_TARGETS = (0.9, 0.95, 0.99)
SEARCH_CODECS = ("bq", "bq2", "pca128,f16")
SUMMARY_TARGET = 0.95
WARMUP = 3
HNSW_PARAMS = {"m": 16, "ef_construction": 64}
FILTER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

ARROW_TO_PG = {
    "bool": "boolean", "int8": "smallint", "int16": "smallint", "int32": "integer", "int64": "bigint",
    "uint8": "smallint", "uint16": "integer", "uint32": "bigint", "float": "real", "float32": "real",
    "double": "double precision", "float64": "double precision", "string": "text", "large_string": "text",
    "date32[day]": "date",
}


# -- inputs ---------------------------------------------------------------------------------------------
def parse_filters(items: Sequence[str] | None) -> dict[str, str | dict[str, Any]]:
    """['name=SQL WHERE', 'name={"col": "value"}', ...] -> {name: SQL text or filter dict}: the text after the
    first '=' is a WHERE clause, or, when it is a JSON object, a filter in pgembed's filter language (which
    pgembed's search then takes as a dict: partial indexes match on it)."""
    filters: dict[str, str | dict[str, Any]] = {}
    for item in items or ():
        name, sep, where = item.partition("=")
        name, where = name.strip(), where.strip()
        if not sep or not FILTER_NAME.match(name) or not where:
            raise InvalidInputError(f"--filter wants NAME=SQL_WHERE (NAME a plain word), got {item!r}")
        if name in filters:
            raise InvalidInputError(f"--filter {name!r} given twice")
        if where.startswith("{"):
            try:
                doc = json.loads(where)
            except json.JSONDecodeError as err:
                raise InvalidInputError(f"--filter {name!r}: not valid JSON: {err}") from err
            if not isinstance(doc, dict) or not doc:
                raise InvalidInputError(f"--filter {name!r}: a JSON filter must be a non-empty object")
            filters[name] = doc
        else:
            filters[name] = where
    return filters


def load_attrs(path: str | Path, n: int) -> tuple[dict[str, str], dict[str, Any]]:
    """Attribute columns of base rows 0..n-1 from .parquet or .csv (with a header; an `id` column = row of the
    base): ({column: PostgreSQL type}, {column: values in row order})."""
    try:
        import pyarrow.compute as pc  # type: ignore[import-untyped]
        import pyarrow.csv as pcsv  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError as err:
        raise InvalidInputError("--attrs reads parquet and csv with pyarrow: "
                                "pip install 'pgembed-search[bench]'") from err
    suffix = Path(path).suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise InvalidInputError(f"--attrs {path}: give a .parquet or .csv file")
    try:
        table = pq.read_table(path) if suffix == ".parquet" else pcsv.read_csv(path)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise InvalidInputError(f"--attrs {path}: {err}") from err
    if "id" not in table.column_names:
        raise InvalidInputError(f"{path} has no `id` column (the row of each vector in the base)")
    table = table.filter(pc.less(table.column("id"), n))
    ids = table.column("id").to_numpy()
    if len(ids) != n or not np.array_equal(np.sort(ids), np.arange(n)):
        raise InvalidInputError(f"{path}: the `id` column must hold every base row 0..{n - 1} exactly once")
    order = np.argsort(ids, kind="stable")
    types: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name in table.column_names:
        if name == "id":
            continue
        arrow_type = str(table.schema.field(name).type)
        if arrow_type not in ARROW_TO_PG:
            raise InvalidInputError(f"{path}: column {name!r} has type {arrow_type}, which the bench cannot map")
        types[name] = ARROW_TO_PG[arrow_type]
        column = table.column(name)
        if types[name] in ("text", "date") or column.null_count:
            data = column.to_pylist()
            values[name] = [data[i] for i in order]
        else:
            values[name] = column.to_numpy()[order]
    return types, values


def filter_columns(where: str, columns: Sequence[str]) -> list[str]:
    """Attribute columns a filter names (a word match on its text)."""
    return [c for c in columns if re.search(rf"(?<![\w.]){re.escape(c)}(?!\w)", where)]


# -- ground truth and scoring ------------------------------------------------------------------------------
@dataclass
class Truth:
    """Exact answers for one filter (or none): what recall is measured against. Scores are inner products of
    the unit rows the bench scores by (cosine); distances, as pgembed.groundtruth takes them, their negatives."""

    name: str | None
    where: str | None
    allowed: np.ndarray  # bool per base row: matches the filter
    distances: np.ndarray  # (queries, need): the exact distances of each query's true nearest allowed rows

    @property
    def need(self) -> int:
        """min(k, rows matching): hits possible per query."""
        return int(self.distances.shape[1])

    @property
    def kth(self) -> np.ndarray:
        """Per query, the k-th best exact score among allowed rows (-inf when none)."""
        if self.need == 0:
            return np.full(len(self.distances), -np.inf, dtype=np.float32)
        return -self.distances.max(axis=1)

    @property
    def matching(self) -> int:
        return int(self.allowed.sum())

    def recall(self, base: np.ndarray, queries: np.ndarray, results: Sequence[np.ndarray]) -> float | None:
        """recall@need of `results` (ids, rows of `base`), ties counted as hits; a row outside the filter is
        never a hit, and one returned twice counts once."""
        if self.need == 0:
            return None
        found = []
        for i, ids in enumerate(results):
            ids = np.unique(np.asarray(ids, dtype=np.int64))
            ids = ids[(ids >= 0) & (ids < len(base))]
            ids = ids[self.allowed[ids]]
            # Nearest first: recall_at_k judges the first `need` rows, and every hit must be among them.
            found.append(np.sort(-(base[ids] @ queries[i])))
        return recall_at_k(found, list(self.distances), self.need)


def truth_for(scoring: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray, name: str | None,
              where: str | None) -> Truth:
    """Exact top-k per query over the allowed rows of `scoring` (the base, normalised for cosine)."""
    rows = np.flatnonzero(allowed)
    need = min(k, len(rows))
    if need == 0:
        return Truth(name, where, allowed, np.empty((len(queries), 0), dtype=np.float32))
    return Truth(name, where, allowed, -exact_topk(scoring[rows], queries, need, "ip")[1])


# -- measuring ------------------------------------------------------------------------------------------
@dataclass
class Timed:
    results: list[np.ndarray]
    latencies: np.ndarray
    extra: list[Any]


def run_concurrently(jobs: Sequence[Callable[[], None]]) -> float:
    """Run each job in a thread of its own, all at once; the wall seconds they took. The first error a job
    raised is raised here, in the caller's thread."""
    errors: list[BaseException] = []

    def guarded(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as err:  # re-raised below
            errors.append(err)

    threads = [threading.Thread(target=guarded, args=(job,)) for job in jobs]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def time_queries(run: Callable[[int], tuple[np.ndarray, Any]], n: int, warmup: int = WARMUP) -> Timed:
    for i in range(min(warmup, n)):
        run(i)
    results: list[np.ndarray] = []
    extra: list[Any] = []
    latencies = np.empty(n)
    for i in range(n):
        started = time.perf_counter()
        ids, info = run(i)
        latencies[i] = time.perf_counter() - started
        results.append(ids)
        extra.append(info)
    return Timed(results, latencies, extra)


def _figures(timed: Timed, truth: Truth, base: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    recall = truth.recall(base, queries, timed.results)
    return {
        "recall_at_k": None if recall is None else round(recall, 4),
        "qps": round(len(timed.latencies) / float(timed.latencies.sum()), 1),
        "p50_ms": round(float(np.percentile(timed.latencies, 50)) * 1000, 3),
        "p99_ms": round(float(np.percentile(timed.latencies, 99)) * 1000, 3),
        "min_rows_returned": int(min(len(r) for r in timed.results)),
    }


def relation_size(session: Session, name: str) -> int:
    row = session.row(benchmarks.RELATION_SIZE, (name,))
    return int(row[0]) if row and row[0] is not None else 0


def mean_bytes(session: Session, statement: Composable) -> float:
    """A bytes-per-vector figure (statements.benchmarks: column_bytes, baseline_value_bytes, ...)."""
    row = session.row(statement)
    return round(float(row[0]), 1) if row and row[0] is not None else 0.0


def code_bytes(collection: pgembed.Collection, name: str) -> float:
    """Bytes per vector on disk of the columns the active codec `name` occupies."""
    info = next(c for c in collection.codecs() if c.name == name and c.state == "active")
    columns = [c for c, _ in code_columns(info.column_name, collection.codec(name))]
    return mean_bytes(collection.context.session, benchmarks.column_bytes(collection.info.table, columns))


def _plan_label(plan: dict[str, Any], hnsw: set[str], iterative: str) -> str:
    """'hnsw' / 'hnsw+iterative' when an HNSW index serves the query, else how the rows were found."""
    names: set[str] = set()
    nodes: list[str] = []
    stack = [plan]
    while stack:
        node = stack.pop()
        nodes.append(str(node.get("Node Type")))
        if "Index Name" in node:
            names.add(str(node["Index Name"]))
        stack.extend(node.get("Plans", []))
    if names & hnsw:
        return "hnsw" if iterative == "off" else "hnsw+iterative"
    if names:
        return "btree+exact"
    return "seqscan+exact" if "Seq Scan" in nodes else "+".join(dict.fromkeys(nodes)) or "unknown"


# -- plain pgvector -------------------------------------------------------------------------------------
@dataclass
class BuiltBaseline:
    method: str
    index: str | None  # index name (None: the exact plan)
    build_s: float | None
    index_bytes: int | None
    bytes_per_vector: float


class BaselineRunner:
    """Plain pgvector on the bench table (statements.benchmarks), on a connection of its own (no pgembed
    involved)."""

    def __init__(self, session: Session, info: CollectionInfo, k: int, queries: np.ndarray) -> None:
        self.session = session
        self.info = info
        self.k = k
        self.queries = queries
        self.hnsw_names: set[str] = set()

    @property
    def dim(self) -> int:
        return self.info.dim

    def build(self, method: Baseline, name: str) -> tuple[float, int]:
        statement = benchmarks.create_baseline_index(self.info, method, name, **HNSW_PARAMS)
        started = time.perf_counter()
        self.session.execute(statement)
        seconds = time.perf_counter() - started
        self.session.execute(benchmarks.analyze(self.info.table))
        self.hnsw_names.add(name)
        return seconds, relation_size(self.session, name)

    def drop(self, name: str) -> None:
        self.session.execute(benchmarks.drop_index(self.info, name))
        self.hnsw_names.discard(name)

    def statement(self, method: Baseline, where: str | None, tag: str, candidates: int = 0) -> Composed:
        return benchmarks.baseline_query(self.info, method, self.k, where, candidates=candidates, tag=tag)

    def settings(self, ef_search: int | None, iterative: str) -> None:
        for statement in benchmarks.set_hnsw(ef_search, iterative):
            self.session.execute(statement)

    def measure(self, statement: Composed, iterative: str) -> tuple[Timed, str]:
        explained = self.session.row(benchmarks.explain_json(statement), {"q": self.queries[0]})
        assert explained is not None
        document = explained[0] if not isinstance(explained[0], str) else json.loads(explained[0])
        label = _plan_label(document[0]["Plan"], self.hnsw_names, iterative)
        conn = self.session.conn

        def run(i: int) -> tuple[np.ndarray, None]:
            rows = conn.execute(statement, {"q": self.queries[i]}, prepare=True).fetchall()
            return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)), None

        return time_queries(run, len(self.queries)), label


def baseline_configs(method: Baseline, k: int, filtered: bool, ef_values: Sequence[int],
                     rerank_factors: Sequence[int]) -> list[dict[str, Any]]:
    """Knob settings swept for one plain-pgvector method. hnsw.iterative_scan only matters with a filter."""
    if method is Baseline.BTREE_EXACT:
        return [{}]
    modes = ["off"]
    if filtered:
        modes += ["relaxed_order", "strict_order"] if method is Baseline.HNSW_F32 else ["relaxed_order"]
    configs = []
    for mode in modes:
        if method is Baseline.BIT_RERANK:
            for factor in rerank_factors:
                candidates = k * factor
                for ef in sorted({candidates, *(e for e in ef_values if e > candidates)}):
                    configs.append({"ef_search": ef, "iterative_scan": mode, "candidates": candidates})
        else:
            configs.extend({"ef_search": ef, "iterative_scan": mode} for ef in ef_values)
    return configs


# -- pgembed --------------------------------------------------------------------------------------------
def _plan_summary(plans: Sequence[Any]) -> tuple[str, dict[str, int]]:
    counts = Counter(str(getattr(p, "kind", "unknown")) for p in plans)
    label = next(iter(counts)) if len(counts) == 1 else "+".join(f"{kind}:{n}" for kind, n in counts.most_common())
    return label, dict(counts)


# -- the run --------------------------------------------------------------------------------------------
def filter_sql(collection: pgembed.Collection, doc: dict[str, Any]) -> str:
    """The SQL text of a filter written in pgembed's language, as the server writes it (pgembed.filter_sql:
    identifiers through format('%I'), values through quote_literal), for plain-pgvector baselines and ground
    truth."""
    return compile_filter(collection.context, as_filter(doc))


def fresh_collection(db: pgembed.Database, name: str, dim: int, attrs: dict[str, str]) -> pgembed.Collection:
    """A new, empty collection `name` (a leftover of an interrupted run, collection or bare table, goes)."""
    if any(c.name == name for c in db.collections()):
        db.collection(name).drop(drop_table=True)
    db.session.execute(benchmarks.drop_table_if_exists(name))
    return db.create_collection(name, dim, attrs=attrs)


def run_search_bench(base_path: str, queries_path: str, gt_path: str | None = None,
                     attrs_path: str | None = None, filters: dict[str, Any] | None = None, *,
                     baselines: bool = True, search: bool = False, k: int = 10, rows: int | None = None,
                     queries_limit: int | None = None, codecs: Sequence[str] | None = None,
                     ef_search: Sequence[int] = EF_SEARCH, oversample: Sequence[float] = OVERSAMPLE,
                     rerank_factors: Sequence[int] = BIT_RERANK_FACTORS,
                     recall_targets: Sequence[float] = RECALL_TARGETS, tune_sample: int = 200,
                     partial: Sequence[str] = (), tune_queries: int = 0, dsn: str | None = None,
                     data_dir: str | Path | None = None, quiet: bool = False) -> dict[str, Any]:
    """Search measured in the database: plain pgvector baselines and/or pgembed's own search, per filter."""
    console = Console(quiet=quiet, stderr=True)
    given = dict(filters or {})
    docs = {name: f for name, f in given.items() if isinstance(f, dict)}
    where_sql: dict[str, str] = {name: f for name, f in given.items() if isinstance(f, str)}
    if not baselines and not search:
        raise InvalidInputError("nothing to measure: ask for --baselines and/or --search")
    if given and attrs_path is None:
        raise InvalidInputError("--filter needs --attrs (the columns the filters are written over)")
    full = load_matrix(base_path, "base")
    n = len(full) if rows is None else min(rows, len(full))
    base = np.ascontiguousarray(full[:n], dtype=np.float32)
    all_queries = load_matrix(queries_path, "queries")
    queries = np.ascontiguousarray(all_queries[: queries_limit or len(all_queries)], dtype=np.float32)
    # tune() on real queries: the file's last ones, never among those timed.
    if tune_queries and len(queries) + tune_queries > len(all_queries):
        raise InvalidInputError(f"--tune-queries {tune_queries} overlaps the {len(queries)} queries timed "
                                f"(the file has {len(all_queries)}): lower --queries-limit")
    tuning_queries = np.ascontiguousarray(all_queries[len(all_queries) - tune_queries:], dtype=np.float32) \
        if tune_queries else None
    dim = int(base.shape[1])
    # Ground truth by cosine, the collection's metric, on the vectors as stored. "Unit length" vectors shipped
    # as float16 are off by up to ~1e-4 in norm: enough to reorder near-ties between cosine and inner product
    # (an exact plan then scored 0.999 against inner-product truth). A --gt file is compared, not used.
    scoring = unit_rows(base)
    gt_ids = None
    if gt_path is not None and n == len(full):
        gt_ids = np.load(gt_path)[: len(queries)]
    elif gt_path is not None:
        console.print(f"--gt not compared: it is for the whole base, this run takes its first {n:,} rows")
    attr_types, attr_values = load_attrs(attrs_path, n) if attrs_path else ({}, {})
    for name, where in where_sql.items():
        if not filter_columns(where, list(attr_types)):
            raise InvalidInputError(f"filter {name!r} names none of the attribute columns {list(attr_types)}")
    unknown_partial = [spec for spec in partial if spec not in list(codecs or SEARCH_CODECS)]
    if unknown_partial:
        raise InvalidInputError(f"--partial {unknown_partial}: not among the codecs searched")

    out_rows: list[dict[str, Any]] = []
    with pgembed.connect(dsn, data_dir=data_dir, migrate=True) as db:
        environment = describe_environment(db)
        session = db.session
        collection = fresh_collection(db, TABLE, dim, attr_types)
        info = collection.info
        # Filters written in pgembed's language become SQL through pgembed.filter_sql, for the baselines
        # and the ground truth; pgembed's own search takes them as dicts.
        for name, doc in docs.items():
            where_sql[name] = filter_sql(collection, doc)
        where_sql = {name: where_sql[name] for name in given}
        # pgembed's codecs go on before the load, so the database computes the codes during the COPY; added
        # afterwards, their backfill UPDATE would pay an insertion into every HNSW index of the table.
        added = _add_codecs(collection, list(codecs or SEARCH_CODECS), base, console) if search else {}
        started = time.perf_counter()
        collection.ingest(np.arange(n), base, attr_values or None, progress=not quiet)
        load_s = time.perf_counter() - started
        console.print(f"loaded {n:,} x {dim} with {len(attr_types)} attribute columns and {len(added)} codecs "
                      f"({load_s:.1f}s)")

        # B-trees on every attribute column a filter uses; the baselines and pgembed share them.
        btrees: dict[str, tuple[str, float, int]] = {}
        for column in dict.fromkeys(c for w in where_sql.values() for c in filter_columns(w, list(attr_types))):
            index = f"{TABLE}_{column}_btree"
            started = time.perf_counter()
            session.execute(benchmarks.create_btree(info, column, index))
            btrees[column] = (index, time.perf_counter() - started, relation_size(session, index))
        session.execute(benchmarks.vacuum_analyze(info.table))

        truths: list[Truth] = [truth_for(scoring, queries, k, np.ones(n, dtype=bool), None, None)]
        gt_agreement = None
        if gt_ids is not None:  # how the given file's top k scores against the cosine truth
            gt_agreement = truths[0].recall(scoring, queries, list(gt_ids[:, :k]))
            console.print(f"{gt_path}: its top {k} has recall {gt_agreement:.4f} against the cosine truth")
        filter_info: dict[str, Any] = {}
        for name, where in where_sql.items():
            # The operator's own SQL (statements.benchmarks): which rows match is the database's answer, not ours.
            try:
                matched = session.rows(benchmarks.matching_keys(info, where))
            except psycopg.Error as err:
                raise InvalidInputError(f"filter {name!r} ({where}): {err}") from err
            allowed = np.zeros(n, dtype=bool)
            allowed[np.fromiter((r[0] for r in matched), dtype=np.int64, count=len(matched))] = True
            truths.append(truth_for(scoring, queries, k, allowed, name, where))
            filter_info[name] = {"sql": where, "filter": docs.get(name), "rows": int(allowed.sum()),
                                 "selectivity": round(float(allowed.mean()), 5),
                                 "btree_columns": filter_columns(where, list(attr_types))}
            console.print(f"filter {name}: {allowed.sum():,} rows ({allowed.mean():.2%})  {where}")

        def btree_of(truth: Truth) -> tuple[float | None, int | None]:
            if truth.where is None:
                return None, None
            used = [btrees[c] for c in filter_columns(truth.where, list(attr_types))]
            return round(sum(b[1] for b in used), 2), sum(b[2] for b in used)

        def emit(row: dict[str, Any]) -> None:
            out_rows.append(row)
            recall = "-" if row["recall_at_k"] is None else f"{row['recall_at_k']:.3f}"
            console.print(f"  {row['filter'] or '(none)':<14} {row['method']:<22} {_knobs_text(row['knobs']):<44} "
                          f"{row['plan']:<16} recall {recall}  {row['qps']:>8,.1f} qps  "
                          f"min rows {row['min_rows_returned']}", highlight=False, soft_wrap=True)

        if baselines:
            runner = BaselineRunner(Session(db.new_connection()), info, k, queries)
            try:
                _run_baselines(runner, truths, scoring, queries, k, ef_search, rerank_factors, btree_of, emit,
                               console)
            finally:
                runner.session.conn.close()
        pgembed_report: dict[str, Any] = {"codecs": {}, "tune": {}}
        if search:
            pgembed_report = _run_pgembed(collection, truths, scoring, queries, k, added, ef_search, oversample,
                                          recall_targets, tune_sample, emit, console, docs, partial,
                                          tuning_queries)
        collection.drop(drop_table=True)

    dataset = {"base": str(base_path), "queries": str(queries_path), "attrs": attrs_path, "n_base": n,
               "n_base_file": int(len(full)), "n_queries": int(len(queries)), "dim": dim, "k": k,
               "ground_truth": "exact cosine top k in numpy over the rows each filter matches (float32)",
               "gt_file": gt_path, "gt_file_recall": None if gt_agreement is None else round(gt_agreement, 5),
               "load_s": round(load_s, 2), "metric": "cosine", "tune_queries": tune_queries,
               "hnsw": HNSW_PARAMS, "warmup_queries": WARMUP}
    result = {"benchmark": "search", "dataset": dataset, "filters": filter_info,
              "codecs": pgembed_report["codecs"], "tune": pgembed_report["tune"],
              "rows": out_rows, "summary": summarize(out_rows, [t.name for t in truths]),
              "environment": environment}
    if not quiet:
        out = Console(width=None if sys.stdout.isatty() else 200)
        out.print(results_table(result))
        out.print(summary_table(result))
    return result


def _run_baselines(runner: BaselineRunner, truths: list[Truth], base: np.ndarray, queries: np.ndarray, k: int,
                   ef_values: Sequence[int], rerank_factors: Sequence[int],
                   btree_of: Callable[[Truth], tuple[float | None, int | None]],
                   emit: Callable[[dict[str, Any]], None], console: Console) -> None:
    indexes = {Baseline.HNSW_F32: f"{TABLE}_f32_hnsw", Baseline.HNSW_F16: f"{TABLE}_f16_hnsw",
               Baseline.BIT_RERANK: f"{TABLE}_bit_hnsw"}

    def sweep(method: Baseline, built: BuiltBaseline) -> None:
        for truth in truths:
            for knobs in baseline_configs(method, k, truth.where is not None, ef_values, rerank_factors):
                tag = f"{method} {truth.name} " + " ".join(f"{a}={b}" for a, b in knobs.items())
                runner.settings(knobs.get("ef_search"), knobs.get("iterative_scan", "off"))
                statement = runner.statement(method, truth.where, tag, knobs.get("candidates", 0))
                timed, label = runner.measure(statement, knobs.get("iterative_scan", "off"))
                # The index used: the HNSW one, or (when PostgreSQL chose them) the filter's B-trees.
                on_hnsw = label.startswith("hnsw")
                build_s, index_bytes = ((built.build_s, built.index_bytes) if on_hnsw else
                                        btree_of(truth) if label == "btree+exact" else (None, None))
                emit({"method": method.value, "filter": truth.name, "knobs": knobs, "plan": label,
                      **_figures(timed, truth, base, queries), "bytes_per_vector": built.bytes_per_vector,
                      "index": built.index if on_hnsw else None, "index_bytes": index_bytes, "build_s": build_s})
        runner.settings(40, "off")

    def build(method: Baseline) -> BuiltBaseline:
        name = indexes[method]
        seconds, size = runner.build(method, name)
        console.print(f"built {name}: {seconds:.1f}s, {size / 2**20:.1f} MiB")
        return BuiltBaseline(method.value, name, round(seconds, 2), size,
                             mean_bytes(runner.session, benchmarks.baseline_value_bytes(runner.info, method)))

    # float32 first, alone: built, measured, dropped, so it cannot serve anyone else's exact plan.
    f32 = build(Baseline.HNSW_F32)
    sweep(Baseline.HNSW_F32, f32)
    runner.drop(indexes[Baseline.HNSW_F32])

    built = {method: build(method) for method in (Baseline.HNSW_F16, Baseline.BIT_RERANK)}
    built[Baseline.BTREE_EXACT] = BuiltBaseline(Baseline.BTREE_EXACT.value, None, None, None, f32.bytes_per_vector)
    for method in (Baseline.BTREE_EXACT, Baseline.HNSW_F16, Baseline.BIT_RERANK):
        sweep(method, built[method])
    # The f16 and bit expression indexes stay: they match no expression pgembed's queries use.


def _add_codecs(collection: pgembed.Collection, specs: list[str], base: np.ndarray, console: Console
                ) -> dict[str, dict[str, Any]]:
    """Add each codec (fitted on a uniform sample of up to 50,000 base rows) to the still empty collection:
    {spec: {"name", "fit_s"} or {"name", "error"}}."""
    rng = np.random.default_rng(0)
    sample = base[np.sort(rng.choice(len(base), min(50_000, len(base)), replace=False))]
    added: dict[str, dict[str, Any]] = {}
    for spec in specs:
        name = re.sub(r"\W+", "_", spec)
        started = time.perf_counter()
        try:
            collection.add_codec(name, spec, fit_on=sample)
        except PgembedError as err:
            console.print(f"[yellow]codec {spec}: skipped[/] ({err})")
            added[spec] = {"name": name, "error": str(err)}
            continue
        added[spec] = {"name": name, "fit_s": round(time.perf_counter() - started, 2)}
    return added


def _run_pgembed(collection: pgembed.Collection, truths: list[Truth], base: np.ndarray, queries: np.ndarray,
                 k: int, added: dict[str, dict[str, Any]], ef_values: Sequence[int], oversample: Sequence[float],
                 recall_targets: Sequence[float], tune_sample: int, emit: Callable[[dict[str, Any]], None],
                 console: Console, docs: dict[str, dict[str, Any]] | None = None,
                 partial: Sequence[str] = (), tuning_queries: np.ndarray | None = None) -> dict[str, Any]:
    from sqlalchemy import text

    session = collection.context.session
    report: dict[str, Any] = {}
    ready: dict[str, dict[str, Any]] = {}
    for spec, entry in added.items():
        name = entry["name"]
        if "error" in entry:
            report[spec] = entry
            continue
        try:
            index = collection.create_index(name, "hnsw", m=HNSW_PARAMS["m"],
                                            ef_construction=HNSW_PARAMS["ef_construction"])
        except PgembedError as err:
            console.print(f"[yellow]codec {spec}: no index[/] ({err})")
            report[spec] = {**entry, "error": str(err)}
            continue
        ready[name] = {"spec": spec, "name": name, "fit_s": entry["fit_s"],
                       "build_s": round(index.build_seconds or 0.0, 2), "index": index.index_name,
                       "index_bytes": relation_size(session, index.index_name),
                       "bytes_per_vector": code_bytes(collection, name)}
        report[spec] = ready[name]
        console.print(f"codec {spec}: fit {entry['fit_s']:.1f}s, HNSW {ready[name]['build_s']:.1f}s, "
                      f"{ready[name]['index_bytes'] / 2**20:.1f} MiB")
    # Partial HNSW indexes for the filters written as dicts: the hot predicates of this workload.
    partial_indexes: dict[str, dict[str, Any]] = {}
    for spec in partial:
        name = added.get(spec, {}).get("name")
        if name not in ready:
            continue
        for filter_name, doc in (docs or {}).items():
            index = collection.create_index(name, "hnsw", m=HNSW_PARAMS["m"],
                                            ef_construction=HNSW_PARAMS["ef_construction"], where=doc)
            partial_indexes[index.index_name] = {
                "codec": spec, "filter": filter_name, "build_s": round(index.build_seconds or 0.0, 2),
                "index_bytes": relation_size(session, index.index_name)}
            console.print(f"partial index {index.index_name} ({spec}, {filter_name}): "
                          f"{partial_indexes[index.index_name]['build_s']:.1f}s, "
                          f"{partial_indexes[index.index_name]['index_bytes'] / 2**20:.1f} MiB")
    report["partial_indexes"] = partial_indexes
    session.execute(benchmarks.analyze(collection.info.table))

    configs: list[dict[str, Any]] = []
    for name in ready:
        configs += [{"codec": name, "oversample": o, "ef_search": None} for o in oversample]
        configs += [{"codec": name, "oversample": None, "ef_search": e} for e in ef_values]
    configs.append({"plan": "exact"})
    tuning: dict[str, Any] = {}
    if ready:
        for target in recall_targets:
            started = time.perf_counter()
            try:
                tuned = collection.tune(recall=target, k=k, sample=tune_sample, queries=tuning_queries)
            except (PgembedError, psycopg.Error, TypeError) as err:  # reported, and its rows left out
                console.print(f"[yellow]tune(recall={target}) failed[/]: {err}")
                tuning[str(target)] = {"error": f"{type(err).__name__}: {err}"}
                continue
            seconds = time.perf_counter() - started
            tuning[str(target)] = {"seconds": round(seconds, 2), "results": [
                {"codec": t.codec, "index": t.index, "selectivity": t.selectivity, "best_recall": t.best_recall,
                 "tuned": asdict(t.tuned) if t.tuned is not None else None} for t in tuned]}
            on = f"{len(tuning_queries)} held-out queries" if tuning_queries is not None else \
                f"{tune_sample} of the collection's vectors"
            tuning[str(target)]["on"] = on
            console.print(f"tune(recall={target}, k={k}) on {on}: {seconds:.1f}s")
            configs.append({"recall": target})

    for truth in truths:
        truth_doc = (docs or {}).get(truth.name) if truth.name else None
        # A dict filter goes to pgembed as a dict; a SQL one is the operator's own SQL, as in _where.
        where: Any = truth_doc if truth_doc is not None else None if truth.where is None else text(truth.where)
        for knobs in configs:
            def run(i: int, knobs: dict[str, Any] = knobs, where: Any = where) -> tuple[np.ndarray, Any]:
                result = collection.search(queries[i], k, where=where, **knobs)
                return np.asarray(result.ids, dtype=np.int64), result.plan

            timed = time_queries(run, len(queries))
            label, counts = _plan_summary(timed.extra)
            # The codec and index the plans used (an exact plan uses none); several only if plans differ.
            used = sorted({str(p.codec) for p in timed.extra if getattr(p, "kind", None) == "index"
                           and getattr(p, "codec", None) in ready})
            codec = ready[used[0]] if len(used) == 1 else ready.get(str(knobs.get("codec")))
            indexes = sorted({str(p.index) for p in timed.extra if getattr(p, "kind", None) == "index"})
            sizes = {i: partial_indexes[i] if i in partial_indexes else next(
                (r for r in ready.values() if r["index"] == i), {"index_bytes": None, "build_s": None})
                for i in indexes}
            emit({"method": "pgembed", "filter": truth.name, "knobs": knobs, "plan": label, "plan_counts": counts,
                  **_figures(timed, truth, base, queries),
                  "bytes_per_vector": codec["bytes_per_vector"] if codec else None,
                  "codecs_used": used,
                  "index": ",".join(indexes) or None,
                  "index_bytes": sum(v["index_bytes"] or 0 for v in sizes.values()) if indexes else None,
                  "build_s": round(sum(v["build_s"] or 0 for v in sizes.values()), 2) if indexes else None,
                  "plan_example": timed.extra[0].describe() if timed.extra else None})
    return {"codecs": report, "tune": tuning}


# -- reporting ------------------------------------------------------------------------------------------
def summarize(rows: Sequence[dict[str, Any]], filters: Sequence[str | None],
              target: float = SUMMARY_TARGET) -> list[dict[str, Any]]:
    """Per filter: the fastest plain-pgvector and pgembed configurations reaching `target` recall."""
    summary = []
    for name in filters:
        entry: dict[str, Any] = {"filter": name, "recall_target": target}
        for side, pick in (("pgvector", lambda r: r["method"].startswith("pgvector")),
                           ("pgembed", lambda r: r["method"] == "pgembed")):
            mine = [r for r in rows if r["filter"] == name and pick(r)]
            reaching = [r for r in mine if r["recall_at_k"] is not None and r["recall_at_k"] >= target]
            if not mine:
                entry[side] = None
            elif not reaching:
                entry[side] = f"cannot reach {target}"
            else:
                best = max(reaching, key=lambda r: r["qps"])
                entry[side] = {key: best[key] for key in ("method", "knobs", "plan", "recall_at_k", "qps",
                                                          "p50_ms", "p99_ms", "min_rows_returned")}
        a, b = entry.get("pgvector"), entry.get("pgembed")
        entry["qps_ratio_pgembed_over_pgvector"] = (
            round(b["qps"] / a["qps"], 3) if isinstance(a, dict) and isinstance(b, dict) else None)
        summary.append(entry)
    return summary


def _knobs_text(knobs: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in knobs.items() if v is not None) or "-"


def results_table(result: dict[str, Any]) -> Table:
    d = result["dataset"]
    table = Table(title=f"search on {Path(d['base']).name}: {d['n_base']:,} x {d['dim']}, {d['n_queries']} queries, "
                        f"recall@{d['k']}")
    for column in ("filter", "method", "knobs", "plan", "recall", "min rows", "qps", "p50 ms", "p99 ms",
                   "B/vector", "index MiB", "build s"):
        table.add_column(column, justify="left" if column in ("filter", "method", "knobs", "plan") else "right")
    for r in result["rows"]:
        table.add_row(r["filter"] or "-", r["method"], _knobs_text(r["knobs"]), r["plan"],
                      "-" if r["recall_at_k"] is None else f"{r['recall_at_k']:.3f}", str(r["min_rows_returned"]),
                      f"{r['qps']:,.1f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
                      "-" if r["bytes_per_vector"] is None else f"{r['bytes_per_vector']:.0f}",
                      "-" if r["index_bytes"] is None else f"{r['index_bytes'] / 2**20:.1f}",
                      "-" if r["build_s"] is None else f"{r['build_s']:.1f}")
    return table


def summary_table(result: dict[str, Any]) -> Table:
    table = Table(title=f"fastest configuration reaching recall@{result['dataset']['k']} >= {SUMMARY_TARGET}")
    for column in ("filter", "rows", "plain pgvector", "qps", "pgembed", "qps ", "pgembed / pgvector"):
        table.add_column(column, justify="right" if column.startswith("qps") or column == "rows" else "left")

    def cell(entry: Any) -> tuple[str, str]:
        if entry is None:
            return "not measured", "-"
        if isinstance(entry, str):
            return entry, "-"
        return f"{entry['method']} {_knobs_text(entry['knobs'])} ({entry['plan']})", f"{entry['qps']:,.1f}"

    for s in result["summary"]:
        rows = result["filters"].get(s["filter"], {}).get("rows", result["dataset"]["n_base"]) if s["filter"] else \
            result["dataset"]["n_base"]
        ratio = s["qps_ratio_pgembed_over_pgvector"]
        table.add_row(s["filter"] or "-", f"{rows:,}", *cell(s["pgvector"]), *cell(s["pgembed"]),
                      "-" if ratio is None else f"{ratio:.2f}")
    return table
