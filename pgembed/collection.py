"""A collection: a user table with a vector column, plus the codecs and indexes pgembed keeps on it.

The face of the engine (pgembed.engine): every method hands its arguments to the engine module that does the
work, on this collection's context (its session, and what pgembed cached of the catalog).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, Unpack

import numpy as np
import psycopg

from pgembed.codecs import Codec
from pgembed.db.session import Session
from pgembed.engine import advise as advising
from pgembed.engine import batch, collections, rows
from pgembed.engine import codecs as lifecycle
from pgembed.engine import indexes as indexing
from pgembed.engine import ingest as ingesting
from pgembed.engine import relevance as relevance_models
from pgembed.engine import search as searching
from pgembed.engine import tune as tuning
from pgembed.engine.advise import Advice
from pgembed.engine.batch import BatchResult
from pgembed.engine.context import CollectionContext
from pgembed.engine.ingest import Batch
from pgembed.engine.search import SearchResult
from pgembed.engine.tune import TuneResult
from pgembed.planning.costs import CostModel
from pgembed.planning.params import SearchKnobs, SearchParams
from pgembed.planning.plans import Plan
from pgembed.records import CodecInfo, CollectionInfo, IndexInfo, RelevanceModelInfo, TextSearchInfo
from pgembed.vectors import as_matrix
from pgembed.vocabulary import BatchStrategy, IndexMethod, Metric

T = TypeVar("T")


class Collection:
    def __init__(self, session: Session, info: CollectionInfo) -> None:
        self.context = CollectionContext(session, info)

    @property
    def info(self) -> CollectionInfo:
        return self.context.info

    @property
    def conn(self) -> psycopg.Connection:
        return self.context.session.conn

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def dim(self) -> int:
        return self.info.dim

    @property
    def metric(self) -> Metric:
        return self.info.metric

    def _read(self, work: Callable[[], T]) -> T:
        """A read: run once more on a new connection if the server turned out restarted (Session.read)."""
        return self.context.session.read(work)

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, dim={self.dim}, metric={self.metric.value!r})"

    # -- codecs ---------------------------------------------------------------------------------------------
    def codecs(self) -> list[CodecInfo]:
        return self._read(self.context.codecs)

    def codec(self, name: str) -> Codec:
        """The fitted codec `name`, rebuilt from its catalog parameters."""
        return lifecycle.load(self.context, self.context.active_codec(name))

    def add_codec(self, name: str, spec: Any, *, fit_on: np.ndarray | None = None,
                  fit_queries: np.ndarray | None = None, sample: int = 50_000, progress: bool = False,
                  backfill: bool = True) -> CodecInfo:
        """Add a code column (spec: see pgembed.codecs.spec, e.g. "bq", "sq8", "pca128,bq2") kept in step with
        the vectors by a trigger, and fill it for existing rows.

        Trainable codecs fit on `fit_on` when given, else on up to `sample` rows of the table (an empty table
        cannot fit them: pass fit_on); LeanVec also needs `fit_queries`. Backfill runs in batches that commit on
        their own unless you called this inside your own transaction; an interrupted backfill is finished by
        `backfill()`. `spec` may also be what the codec advisor recommended (the object, or its --json
        mapping): its codec spec is taken as is. `backfill=False` leaves the codec building (kept in step for new
        writes, readers not using it yet): add several, then one `backfill()` encodes them in one pass, and a
        companion table gets each row written once."""
        return lifecycle.add_codec(self.context, name, spec, fit_on=fit_on, fit_queries=fit_queries, sample=sample,
                                   progress=progress, backfill_now=backfill)

    def backfill(self, *, progress: bool = False, batch_rows: int = lifecycle.BACKFILL_ROWS) -> int:
        """Compute missing codes of every codec version still building, then make each the active one.
        Returns the rows encoded."""
        return lifecycle.backfill(self.context, progress=progress, batch_rows=batch_rows)

    def drop_codec(self, name: str) -> None:
        lifecycle.drop_codec(self.context, name)

    def fit(self, *, sample: int = 50_000, fit_on: np.ndarray | None = None, fit_queries: np.ndarray | None = None,
            progress: bool = False, backfill: bool = True) -> int:
        """Re-fit every trainable codec on a fresh sample (of up to `sample` rows, or `fit_on`), each as a new
        version filled while readers keep the current one (pgembed.engine.codecs). With `backfill=False` only
        the new versions are created; `backfill()` completes them later. Returns the rows encoded."""
        return lifecycle.fit(self.context, sample=sample, fit_on=fit_on, fit_queries=fit_queries, progress=progress,
                          backfill_now=backfill)

    def reinstall_trigger(self) -> None:
        """Regenerate the trigger and the query encoder from the catalog."""
        lifecycle.reinstall_trigger(self.context)

    # -- rows -----------------------------------------------------------------------------------------------
    def count(self) -> int:
        return self._read(lambda: rows.count(self.context))

    def sample(self, n: int, *, seed: int = 0) -> np.ndarray:
        """Up to `n` vectors of the table: all of them when the table is small, else a row-level sample."""
        return self._read(lambda: rows.sample_rows(self.context, n, seed=seed))[1]

    def sample_rows(self, n: int, *, seed: int = 0) -> tuple[list[Any], np.ndarray]:
        """Keys and vectors of up to `n` rows, in an order that depends on the seed."""
        return self._read(lambda: rows.sample_rows(self.context, n, seed=seed))

    def ingest(self, ids: Any, vectors: Any, attrs: Mapping[str, Any] | None = None, *, progress: bool = False,
               chunk_rows: int = ingesting.CHUNK_ROWS) -> int:
        """Insert rows through binary COPY: all of them or, on any error, none. Everything is validated before
        anything is written: vector shape, dtype, dimension, NaN/Inf, ids (count, NULLs, duplicates among
        them), attribute columns and values. Keys already in the table raise DuplicateKeyError and leave the
        table as it was."""
        x = as_matrix(vectors, self.dim)
        return ingesting.ingest_batches(self.context, [(ids, x, attrs)], progress=progress, total=len(x),
                                     chunk_rows=chunk_rows)

    def ingest_batches(self, batches: Iterable[Batch], *, progress: bool = False, total: int | None = None,
                       chunk_rows: int = ingesting.CHUNK_ROWS) -> int:
        """Insert (ids, vectors, attrs) batches from an iterator, for data larger than memory, in one
        transaction: a bad batch or a duplicate key anywhere rolls back every row of the call."""
        return ingesting.ingest_batches(self.context, batches, progress=progress, total=total, chunk_rows=chunk_rows)

    # -- indexes --------------------------------------------------------------------------------------------
    def indexes(self) -> list[IndexInfo]:
        return self._read(lambda: indexing.list_indexes(self.context))

    def create_index(self, on: str = "vector", method: IndexMethod | str = IndexMethod.HNSW, *, m: int = 16,
                     ef_construction: int = 64, lists: int | None = None, where: Mapping[str, Any] | None = None,
                     concurrently: bool = False, progress: bool = False) -> IndexInfo:
        """A pgvector index on the source vector (`on="vector"`) or on a codec's code column.

        HNSW takes `m` and `ef_construction`; IVFFlat takes `lists` (default rows/1000, or sqrt(rows) above a
        million rows, as pgvector advises). `where`: a filter dict makes it a partial index over the rows that
        match, which search() uses for queries whose filter includes that predicate (a hot predicate).
        `concurrently` builds without blocking writers (not inside a transaction). With `progress`, shows
        pg_stat_progress_create_index."""
        return indexing.create_index(self.context, on, method, m=m, ef_construction=ef_construction, lists=lists,
                                    where=where, concurrently=concurrently, progress=progress)

    def drop_index(self, index_name: str) -> None:
        indexing.drop_index(self.context, index_name)

    def add_text_search(self, column: str, config: str = "english", *, stored: bool = False,
                        concurrently: bool = False) -> TextSearchInfo:
        """Full-text search on a text column of the table, for hybrid search (search(q, text=...)) and the
        filter operator $matches: a GIN index on to_tsvector(config, column), kept by the database whoever
        writes a row; the table gains no column. `stored`: the tsvector kept in a generated column
        (<column>_tsv; the table is rewritten once), so ranking a query that matches many rows reads it instead
        of computing it again. `concurrently` builds the index without blocking writers."""
        return indexing.add_text_search(self.context, column, config, stored=stored, concurrently=concurrently)

    def drop_text_search(self) -> None:
        indexing.drop_text_search(self.context)

    def text_search(self) -> TextSearchInfo | None:
        return self._read(lambda: indexing.text_search(self.context))

    # -- search ---------------------------------------------------------------------------------------------
    def search(self, query: Any, k: int = 10, *, where: Any = None, params: SearchParams | None = None,
               columns: Sequence[str] | None = None, text: str | None = None, query_text: str | None = None,
               explain: bool = False, **knobs: Unpack[SearchKnobs]) -> SearchResult:
        """The k rows nearest to `query` among those `where` keeps: ids and exact distances, best first.

        `where`: a filter dict (`{"category": "news", "year": {"$gte": 2020}}`) or a SQLAlchemy expression
        over the table. The knobs (`params`, or by name: recall, codec, ef_search, oversample, plan; see
        SearchParams) go to the server's planner: exact distances on the matching rows when the filter keeps
        few, else candidates from a code column's HNSW index re-ranked by exact distance. k rows come back
        whenever k rows match. `columns`: table columns to return with each hit (result.rows). The plan taken
        is result.plan; `explain=True` prints it too.

        `text`: a hybrid search. The vector search's best rows and the full-text search's best on the column
        add_text_search() named (both under `where`) are fused by reciprocal rank (knobs fusion, fusion_depth,
        text_match); result.scores holds the fused scores, result.distances the exact distances.

        Later stages (knobs model, a pgembed.reranking.ModelStage, and diversity) re-rank the best candidates
        and say what they did in result.stages; `query_text` is the text a re-ranker sees (default `text`)."""
        search_params = SearchParams.of(params, **knobs)
        result = self._read(lambda: searching.search(self.context, query, k, where, search_params, columns, text,
                                                     query_text))
        if explain:
            print(json.dumps({"plan": result.plan.describe(), "stages": list(result.stages)}, indent=2,
                             default=str))
        return result

    def explain(self, k: int = 10, *, where: Any = None, params: SearchParams | None = None,
                **knobs: Unpack[SearchKnobs]) -> Plan:
        """The plan search() would take for these arguments, without running it."""
        search_params = SearchParams.of(params, **knobs)
        return self._read(lambda: searching.explain(self.context, k, where, search_params))

    def search_batch(self, queries: Any, k: int = 10, *, where: Any = None, params: SearchParams | None = None,
                     strategy: BatchStrategy | str = BatchStrategy.AUTO, workers: int | None = None,
                     cost: CostModel | None = None, progress: bool = False, explain: bool = False,
                     texts: Sequence[str | None] | None = None, query_texts: Sequence[str | None] | None = None,
                     **knobs: Unpack[SearchKnobs]) -> BatchResult:
        """Answer a whole batch of queries (n x dim), planned together: `where` is one filter for all or a list
        of one per query. Queries are grouped by filter; a group whose rows are cheaper to read once than to
        search query by query is scanned (exact; one matrix product for all its queries), the others go
        through search()'s plan (`strategy` forces one way). `workers` > 1 adds connections from the same DSN,
        which carry this session's role and settings, or the batch is refused (see engine.batch.workers); inside
        the application's transaction the batch runs on its connection alone (result.connections says). The
        plan of each group is in result.groups; `explain=True` prints them. `texts` and `query_texts` give each
        query search()'s `text` and `query_text` (hybrid search, a model stage), and answer query by query.
        See pgembed.engine.batch."""
        search_params = SearchParams.of(params, **knobs)
        result = self._read(lambda: batch.search_batch(self.context, queries, k, where=where, params=search_params,
                                                       strategy=strategy, cost=cost, workers=workers,
                                                       progress=progress, texts=texts, query_texts=query_texts))
        if explain:
            print(json.dumps([g.describe() for g in result.groups], indent=2, default=str))
        return result

    def fit_relevance(self, queries: Any, relevant: Sequence[Iterable[Any]], *, depth: int = 50,
                      l2: float = 1e-3) -> RelevanceModelInfo:
        """Fit the relevance model of search(min_relevance=...) from labelled queries: `relevant[i]` holds the
        keys relevant to queries[i]; each query's exact nearest `depth` rows are its labelled pairs. Stored as
        a new version in the catalog (the one before retired). See pgembed.relevance."""
        info, _model = relevance_models.fit(self.context, queries, relevant, depth=depth, l2=l2)
        return info

    def relevance_models(self) -> list[RelevanceModelInfo]:
        return self._read(lambda: searching.relevance_models(self.context))

    def calibrate(self, **options: Any) -> CostModel:
        """The cost model's batch constants measured on this machine and collection (engine.batch.calibrate)."""
        return batch.calibrate(self.context, **options)

    def advise(self, workload: Any, *, codec: str | None = None, min_share: float = 0.02, max_indexes: int = 8,
               partition: bool = False, max_partitions: int = 64, apply: bool = False,
               progress: bool = False) -> Advice:
        """Recommend, with estimated gains, partial HNSW indexes for the workload's hot predicates and a LIST
        partitioning column (with `partition`, applied to the index: one partial index per value the queries
        select on); `apply=True` builds the indexes without blocking readers or writers, and search() /
        search_batch() use them from then on. See pgembed.engine.advise."""
        return advising.advise(self.context, workload, codec=codec, min_share=min_share, max_indexes=max_indexes,
                               partition=partition, max_partitions=max_partitions, apply=apply, progress=progress)

    def tune(self, recall: float = 0.95, *, k: int = 10, sample: int = 200,
             selectivities: Sequence[float] = (1.0, 0.1, 0.02), codecs: Sequence[str] | None = None,
             queries: np.ndarray | None = None, progress: bool = False) -> list[TuneResult]:
        """Measure, on `sample` of the collection's own vectors used as queries (or on `queries`, a sample of
        real ones, which tune better when queries differ from rows) against exact ground truth, the fewest
        candidates per result (and ef_search) each indexed codec needs to reach `recall`@k, unfiltered and
        under filters keeping `selectivities` of the rows; store them in the catalog, where
        search(recall=...) finds them."""
        return tuning.tune(self.context, recall, k=k, sample=sample, selectivities=selectivities, codecs=codecs,
                         queries=queries, progress=progress)

    # -- whole collection -----------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Everything the catalog and the server know about this collection, as JSON-ready data."""
        return self._read(lambda: collections.describe(self.context))

    def drop(self, *, drop_table: bool = False) -> None:
        """Forget the collection: its trigger, code columns and pgembed indexes go; the table and its rows
        stay unless `drop_table`."""
        collections.drop(self.context, drop_table=drop_table)
