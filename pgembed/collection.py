"""A collection: a user table with a vector column, plus the codecs and indexes pgembed keeps on it."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from pgembed import catalog, copyformat, schema
from pgembed.catalog import CodecInfo, CollectionInfo, IndexInfo
from pgembed.codecs import Codec, load_codec, make_codec
from pgembed.errors import DuplicateKeyError, InvalidInputError, InvalidVectorsError, SchemaError
from pgembed.plan import Plan
from pgembed.progress import advancer, progress_bar
from pgembed.vectors import as_matrix

if TYPE_CHECKING:
    from pgembed.advise import Advice
    from pgembed.batch import BatchResult
    from pgembed.database import Database
    from pgembed.search import Searcher, SearchResult
    from pgembed.tune import TuneResult

Batch = tuple[Any, Any, Mapping[str, Any] | None]
INDEX_METHODS = ("hnsw", "ivfflat")


@dataclass(frozen=True)
class _Prepared:
    n: int
    data: list[np.ndarray | list[bytes | None]]


class Collection:
    def __init__(self, db: Database, info: CollectionInfo) -> None:
        self.db = db
        self.info = info
        self._searcher: Searcher | None = None

    @property
    def conn(self) -> psycopg.Connection:
        return self.db.conn

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def dim(self) -> int:
        return self.info.dim

    @property
    def metric(self) -> str:
        return self.info.metric

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, dim={self.dim}, metric={self.metric!r})"

    # -- codecs ---------------------------------------------------------------------------------------
    def codecs(self) -> list[CodecInfo]:
        return catalog.list_codecs(self.conn, self.info.id)

    def codec(self, name: str) -> Codec:
        """The fitted codec `name`, rebuilt from its catalog parameters."""
        return _load_codec(self._codec_info(name), self.dim)

    def _codec_info(self, name: str) -> CodecInfo:
        for info in self.codecs():
            if info.name == name and info.state == "active":
                return info
        known = ", ".join(c.name for c in self.codecs()) or "none"
        raise SchemaError(f"collection {self.name!r} has no active codec {name!r} (codecs: {known})")

    def add_codec(
        self,
        name: str,
        spec: Any,
        *,
        fit_on: np.ndarray | None = None,
        fit_queries: np.ndarray | None = None,
        sample: int = 50_000,
        progress: bool = False,
    ) -> CodecInfo:
        """Add a code column (spec: see pgembed.codecs.spec, e.g. "bq", "sq8", "pca128,bq2") kept in step
        with the vectors by a trigger, and fill it for existing rows.

        Trainable codecs fit on `fit_on` when given, else on up to `sample` rows of the table (an empty
        table cannot fit them: pass fit_on); LeanVec also needs `fit_queries`. Backfill runs in batches that
        commit on their own unless you called this inside your own transaction; an interrupted backfill is
        finished by `backfill()`. `spec` may also be what `pgembed.advise_codec` recommended (the object,
        or its --json mapping): its codec spec is taken as is.
        """
        from pgembed.advise_codec import codec_spec

        codec = make_codec(codec_spec(spec), self.dim)
        if any(c.name == name for c in self.codecs()):
            raise SchemaError(f"collection {self.name!r} already has a codec {name!r}")
        fitted_rows = None
        if codec.trainable:
            data = self._training_data(fit_on, sample)
            codec.fit(data, fit_queries)
            fitted_rows = int(data.shape[0])
        column = schema.code_column_name(self.info, name)
        with self.db.transaction():
            catalog.insert_codec(
                self.conn, self.info.id, name, codec.spec, version=1, state="building", column_name=column,
                sql_type=codec.sql_type(), params=codec.params(), fitted_rows=fitted_rows,
            )
            for column_name, sql_type in schema.code_columns(column, codec):
                schema.add_code_column(self.conn, self.info, column_name, sql_type)
            self._install_trigger()
        self.backfill(progress=progress)
        return self._codec_info(name)

    def backfill(self, *, progress: bool = False, batch_rows: int = 20_000) -> int:
        """Compute missing codes of every codec version still 'building', then make each the active one
        (retiring the version it replaces, in one transaction). Returns the rows encoded."""
        building = [c for c in self.codecs() if c.state == "building"]
        total = 0
        for info in building:
            todo = self._count_missing(info.column_name)
            with progress_bar(f"codes {info.name} v{info.version}", todo, progress) as bar:
                total += schema.backfill(
                    self.conn, self.info, info.column_name, batch_rows=batch_rows,
                    commit_batches=not self.db.in_transaction, on_batch=advancer(bar),
                )
            self._activate(info)
        return total

    def _activate(self, info: CodecInfo) -> None:
        previous = next((c for c in self.codecs() if c.name == info.name and c.state == "active"), None)
        # Readers keep the previous version's index until the switch: build the new version's first.
        rebuilt = [i for i in self.indexes() if previous is not None and i.codec_id == previous.id]
        for index in rebuilt:
            self._build_index(info.id, info.column_name, index.method, index.params, concurrently=False,
                              progress=False, predicate=index.predicate)
        with self.db.transaction():
            if previous is not None:
                catalog.set_codec_state(self.conn, previous.id, "retired")
                for index in rebuilt:
                    catalog.delete_index(self.conn, self.info.id, index.index_name)
            catalog.set_codec_state(self.conn, info.id, "active")
            self._install_trigger()
            if previous is not None:
                for column_name in self._column_names(previous):
                    schema.drop_code_column(self.conn, self.info, column_name)  # its indexes go with it

    def drop_codec(self, name: str) -> None:
        info = self._codec_info(name)
        columns = self._column_names(info)
        with self.db.transaction():
            catalog.delete_codec(self.conn, info.id)
            self._install_trigger()
            for column_name in columns:
                schema.drop_code_column(self.conn, self.info, column_name)

    def fit(self, *, sample: int = 50_000, fit_on: np.ndarray | None = None,
            fit_queries: np.ndarray | None = None, progress: bool = False, backfill: bool = True) -> int:
        """Re-fit every trainable codec on a fresh sample (of up to `sample` rows, or `fit_on`).

        Each becomes a new version with columns of its own, kept in step by the trigger from now on and
        filled in committed batches while readers keep using the current version; then the new version
        (and its rebuilt indexes) replaces the old in one transaction. With `backfill=False` only the new
        versions are created; `backfill()` completes them later. Returns the rows encoded.
        """
        codecs = self.codecs()
        if any(c.state == "building" for c in codecs):
            raise SchemaError(f"collection {self.name!r} has codec versions still building: call backfill()")
        trainable = [c for c in codecs if c.state == "active" and make_codec(c.kind, self.dim).trainable]
        if not trainable:
            return 0
        data = self._training_data(fit_on, sample)
        with self.db.transaction():
            for info in trainable:
                codec = make_codec(info.kind, self.dim).fit(data, fit_queries)
                column = schema.code_column_name(self.info, info.name, info.version + 1)
                catalog.insert_codec(
                    self.conn, self.info.id, info.name, codec.spec, version=info.version + 1, state="building",
                    column_name=column, sql_type=codec.sql_type(), params=codec.params(),
                    fitted_rows=int(data.shape[0]),
                )
                for column_name, sql_type in schema.code_columns(column, codec):
                    schema.add_code_column(self.conn, self.info, column_name, sql_type)
            self._install_trigger()
        return self.backfill(progress=progress) if backfill else 0

    def _training_data(self, fit_on: np.ndarray | None, sample: int) -> np.ndarray:
        data = as_matrix(fit_on, self.dim, what="fit_on") if fit_on is not None else self.sample(sample)
        if data.shape[0] == 0:
            raise InvalidVectorsError(
                f"cannot fit codecs of collection {self.name!r}: it has no vectors yet; pass fit_on="
            )
        return data

    def _column_names(self, info: CodecInfo) -> list[str]:
        """Every column a codec version occupies (main, then extras): known from its spec alone."""
        return [name for name, _ in schema.code_columns(info.column_name, make_codec(info.kind, self.dim))]

    def reinstall_trigger(self) -> None:
        """Regenerate the trigger and the query encoder from the catalog (what migrate() does for every
        collection after an upgrade)."""
        with self.db.transaction():
            self._install_trigger()

    def _install_trigger(self) -> None:
        self._catalog_changed()
        codes = [
            schema.CodeColumn(c.column_name, _load_codec(c, self.dim))
            for c in self.codecs()
            if c.state in ("building", "active")
        ]
        schema.install_trigger(self.conn, self.info, codes)

    def _count_missing(self, column: str) -> int:
        row = self.conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL AND {} IS NOT NULL").format(
                self.info.table, sql.Identifier(column), self.info.vector
            )
        ).fetchone()
        return int(row[0]) if row else 0

    # -- reading --------------------------------------------------------------------------------------
    def count(self) -> int:
        row = self.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self.info.table)).fetchone()
        return int(row[0]) if row else 0

    def sample(self, n: int, *, seed: int = 0) -> np.ndarray:
        """Up to `n` vectors of the table: all of them when the table is small, else a row-level sample."""
        return self.sample_rows(n, seed=seed)[1]

    def sample_rows(self, n: int, *, seed: int = 0) -> tuple[list[Any], np.ndarray]:
        """Keys and vectors of up to `n` rows: a Bernoulli sample of about 1.5n rows (all rows when the
        table has fewer than 2n), of which n are kept in an order that depends on the seed, not on where the
        rows lie in the table."""
        if n < 1:
            raise InvalidInputError(f"sample size must be positive, got {n}")
        estimate = self.conn.execute(
            "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = %s::regclass",
            (self.info.table.as_string(self.conn),),
        ).fetchone()
        rows = int(estimate[0]) if estimate else 0
        sampling = sql.SQL("TABLESAMPLE BERNOULLI ({}) REPEATABLE ({})").format(
            sql.Literal(min(100.0, 150.0 * n / rows)), sql.Literal(seed)) if rows > 2 * n else sql.SQL("")
        statement = sql.SQL(
            "SELECT {k}, {v} FROM {t} {s} WHERE {v} IS NOT NULL ORDER BY hashtext(ctid::text || {seed}) LIMIT {n}"
        ).format(k=self.info.key, v=self.info.vector, t=self.info.table, s=sampling, n=sql.Literal(n),
                 seed=sql.Literal(str(seed)))
        with self.conn.cursor(binary=True) as cur:
            cur.execute(statement)
            fetched = cur.fetchall()
        if not fetched:
            return [], np.empty((0, self.dim), dtype=np.float32)
        return [r[0] for r in fetched], np.stack([np.asarray(r[1].to_numpy() if hasattr(r[1], "to_numpy") else r[1])
                                                 for r in fetched])

    # -- bulk ingest ----------------------------------------------------------------------------------
    def ingest(
        self,
        ids: Any,
        vectors: Any,
        attrs: Mapping[str, Any] | None = None,
        *,
        progress: bool = False,
        chunk_rows: int = 8192,
    ) -> int:
        """Insert rows through binary COPY: all of them or, on any error, none.

        Everything is validated before anything is written: vector shape, dtype, dimension, NaN/Inf,
        ids (count, NULLs, duplicates among them), attribute columns and values. Keys already in the table
        raise DuplicateKeyError and leave the table as it was.
        """
        vectors = as_matrix(vectors, self.dim)
        return self.ingest_batches([(ids, vectors, attrs)], progress=progress, total=len(vectors),
                                   chunk_rows=chunk_rows)

    def ingest_batches(
        self,
        batches: Iterable[Batch],
        *,
        progress: bool = False,
        total: int | None = None,
        chunk_rows: int = 8192,
    ) -> int:
        """Insert (ids, vectors, attrs) batches from an iterator, for data larger than memory.

        One transaction for the whole iterator: a bad batch (validated before it is written) or a duplicate
        key anywhere rolls back every row of the call.
        """
        iterator = iter(batches)
        first = next(iterator, None)
        if first is None:
            raise InvalidInputError("ingest got no batches")
        live = [c for c in self.codecs() if c.state != "retired"]
        columns = self._copy_columns(first[2], {name for c in live for name in self._column_names(c)})
        names = [c.name for c in columns]
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            self.info.table, sql.SQL(", ").join(map(sql.Identifier, names))
        )
        checks = [_load_codec(c, self.dim) for c in live]
        written = 0
        try:
            with self.db.transaction(), progress_bar(f"ingest {self.name}", total, progress) as bar:
                advance = advancer(bar)
                with self.conn.cursor() as cur, cur.copy(copy_sql, writer=QueuedLibpqWriter(cur)) as copy:
                    copy.write(copyformat.HEADER)
                    for ids, vectors, attrs in _chain(first, iterator):
                        prepared = self._prepare(columns, ids, vectors, attrs, checks)
                        for start in range(0, prepared.n, chunk_rows):
                            stop = min(start + chunk_rows, prepared.n)
                            chunk = [d[start:stop] for d in prepared.data]
                            copy.write(copyformat.encode_rows(columns, chunk, stop - start))
                            advance(stop - start)
                        written += prepared.n
                    copy.write(copyformat.TRAILER)
        except psycopg.errors.UniqueViolation as err:
            detail = err.diag.message_detail or str(err)
            raise DuplicateKeyError(f"ingest into {self.name!r} rolled back: {detail}") from err
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as err:
            raise InvalidInputError(f"ingest into {self.name!r} rolled back: {err}") from err
        self._catalog_changed()  # row counts and estimates moved
        return written

    def _copy_columns(self, attrs: Mapping[str, Any] | None, codes: set[str]) -> list[copyformat.CopyColumn]:
        table = schema.table_columns(self.conn, self.info)
        attr_names = list(attrs.keys()) if attrs is not None else []
        columns = []
        for name in [self.info.key_column, self.info.vector_column, *attr_names]:
            if name not in table:
                raise InvalidInputError(f"table {self.info.table_name!r} has no column {name!r}")
            if name in codes:
                raise InvalidInputError(f"column {name!r} holds codes computed by the database; do not write it")
            typname, typmod = table[name]
            column = copyformat.CopyColumn(name, typname, typmod if typname == "vector" else -1)
            copyformat.check_supported(column)
            columns.append(column)
        if len(set(attr_names)) != len(attr_names) or set(attr_names) & {self.info.key_column,
                                                                          self.info.vector_column}:
            raise InvalidInputError("attrs repeat a column, or name the key or vector column")
        return columns

    def _prepare(
        self,
        columns: list[copyformat.CopyColumn],
        ids: Any,
        vectors: Any,
        attrs: Mapping[str, Any] | None,
        checks: list[Codec],
    ) -> _Prepared:
        x = as_matrix(vectors, self.dim)
        n = x.shape[0]
        keys = _validate_ids(ids, n)
        for codec in checks:
            codec.check(x)
        attr_names = [c.name for c in columns[2:]]
        given = list(attrs.keys()) if attrs is not None else []
        if given != attr_names:
            raise InvalidInputError(f"every batch must carry the same attrs {attr_names}, got {given}")
        data: list[np.ndarray | list[bytes | None]] = [copyformat.prepare(columns[0], keys, n), x]
        for column in columns[2:]:
            assert attrs is not None
            data.append(copyformat.prepare(column, attrs[column.name], n))
        return _Prepared(n, data)

    # -- indexes --------------------------------------------------------------------------------------
    def indexes(self) -> list[IndexInfo]:
        return catalog.list_indexes(self.conn, self.info.id)

    def create_index(
        self,
        on: str = "vector",
        method: str = "hnsw",
        *,
        m: int = 16,
        ef_construction: int = 64,
        lists: int | None = None,
        where: Mapping[str, Any] | None = None,
        concurrently: bool = False,
        progress: bool = False,
    ) -> IndexInfo:
        """A pgvector index on the source vector (`on="vector"`) or on a codec's code column.

        HNSW takes `m` and `ef_construction`; IVFFlat takes `lists` (default rows/1000, or sqrt(rows)
        above a million rows, as pgvector advises). `where`: a filter (dict language, see pgembed.filters)
        makes it a partial index over the rows that match, which search() uses for queries whose filter
        includes that predicate (a hot predicate). `concurrently` builds without blocking writers (not
        possible inside a transaction). With `progress`, shows pg_stat_progress_create_index.
        """
        if method not in INDEX_METHODS:
            raise SchemaError(f"unknown index method {method!r}; use one of {', '.join(INDEX_METHODS)}")
        if on in ("vector", self.info.vector_column):
            codec_id, column = None, self.info.vector_column
        else:
            codec_info = self._codec_info(on)
            codec_id, column = codec_info.id, codec_info.column_name
        if concurrently and self.db.in_transaction:
            raise SchemaError("concurrently=True cannot run inside a transaction; commit first")
        if method == "hnsw":
            params = {"m": m, "ef_construction": ef_construction}
        else:
            rows = self.count()
            params = {"lists": lists or max(1, rows // 1000 if rows <= 1_000_000 else int(math.sqrt(rows)))}
        if where is not None and (not isinstance(where, Mapping) or not where):
            raise InvalidInputError("a partial index takes a non-empty filter dict, e.g. where={'category': 'news'}")
        name = self._build_index(codec_id, column, method, params, concurrently=concurrently, progress=progress,
                                 predicate=dict(where) if where is not None else None)
        return next(i for i in self.indexes() if i.index_name == name)

    def _build_index(self, codec_id: int | None, column: str, method: str, params: dict[str, int], *,
                     concurrently: bool, progress: bool, predicate: dict[str, Any] | None = None) -> str:
        column_type = schema.table_columns(self.conn, self.info)[column][0]
        opclass = schema.opclass_for(column_type, self.metric, method)
        clause = None
        canonical = None
        if predicate is not None:
            from pgembed.filters import build_filter

            clause = build_filter(self.conn, self.info.table, predicate).clause
            predicate = json.loads(json.dumps(predicate, default=str))  # dates/decimals as the text jsonb keeps
            canonical = json.dumps(predicate, sort_keys=True, separators=(",", ":"))
        name = schema.index_name(self.info, column, method, canonical)
        monitor = self._monitor_connection() if progress else None
        try:
            with progress_bar(f"index {name}", None, progress) as bar:

                def report(p: schema.IndexProgress) -> None:
                    if bar is not None:
                        bar.update(bar.task_ids[0], description=f"{name}: {p.phase}", completed=p.done,
                                   total=p.total or None)

                with nullcontext() if concurrently else self.db.transaction():
                    seconds = schema.build_index(
                        self.conn, self.info, name=name, column=column, method=method, opclass=opclass,
                        with_params=params, concurrently=concurrently, where=clause, monitor=monitor,
                        on_progress=report,
                    )
                    catalog.insert_index(self.conn, self.info.id, codec_id, name, method, opclass, params, seconds,
                                         predicate)
            self._catalog_changed()
        except psycopg.errors.DuplicateTable as err:
            raise SchemaError(f"index {name!r} already exists") from err
        finally:
            if monitor is not None:
                monitor.close()
        return name

    def drop_index(self, index_name: str) -> None:
        if index_name not in {i.index_name for i in self.indexes()}:
            raise SchemaError(f"collection {self.name!r} has no index {index_name!r}")
        with self.db.transaction():
            self.conn.execute(
                sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(self.info.table_schema, index_name))
            )
            catalog.delete_index(self.conn, self.info.id, index_name)
        self._catalog_changed()

    def _monitor_connection(self) -> psycopg.Connection | None:
        try:
            return self.db.new_connection()
        except psycopg.Error:
            return None  # progress is a nicety; the build goes on without it

    # -- search ---------------------------------------------------------------------------------------
    @property
    def searcher(self) -> Searcher:
        if self._searcher is None:
            from pgembed.search import Searcher

            self._searcher = Searcher(self)
        return self._searcher

    def _catalog_changed(self) -> None:
        if self._searcher is not None:
            self._searcher.forget()

    def search(
        self,
        query: Any,
        k: int = 10,
        *,
        where: Any = None,
        recall: float | None = None,
        codec: str | None = None,
        ef_search: int | None = None,
        oversample: float | None = None,
        plan: str = "auto",
        columns: Sequence[str] | None = None,
        explain: bool = False,
    ) -> SearchResult:
        """The k rows nearest to `query` among those `where` keeps: ids and exact distances, best first.

        `where`: a filter dict (`{"category": "news", "year": {"$gte": 2020}}`, see pgembed.filters) or a
        SQLAlchemy expression over the table. Planned per query (see pgembed.plan): exact distances on the
        matching rows when the filter keeps few, else candidates from a code column's HNSW index re-ranked
        by exact distance. `recall=0.95` uses the knobs `tune()` measured for that target; `ef_search` and
        `oversample` (candidates per result) set them by hand; `codec` picks the code column; `plan` forces
        "exact" or "index". k rows come back whenever k rows match. `columns`: table columns to return
        with each hit (result.rows). The plan taken is result.plan; `explain=True` prints it too.
        """
        result = self.searcher.search(query, k, where=where, recall=recall, codec=codec, ef_search=ef_search,
                                      oversample=oversample, plan=plan, columns=columns)
        if explain:
            import json

            print(json.dumps(result.plan.describe(), indent=2))
        return result

    def explain(self, k: int = 10, *, where: Any = None, recall: float | None = None,
                codec: str | None = None, ef_search: int | None = None, oversample: float | None = None,
                plan: str = "auto") -> Plan:
        """The plan search() would take for these arguments, without running it."""
        compiled, doc = self.searcher.prepare(where)
        return self.searcher.plan(compiled, k=k, codec=codec, ef_search=ef_search, oversample=oversample,
                                  recall=recall, plan=plan, filter_doc=doc)

    def search_batch(self, queries: Any, k: int = 10, *, where: Any = None, recall: float | None = None,
                     codec: str | None = None, ef_search: int | None = None, oversample: float | None = None,
                     plan: str = "auto", workers: int | None = None, progress: bool = False,
                     explain: bool = False) -> BatchResult:
        """Answer a whole batch of queries (n x dim), planned together: `where` is one filter for all or a
        list of one per query. Queries are grouped by filter; a group whose rows are cheaper to read once
        than to search per query is scanned (exact; one matrix product for all its queries), the others go
        through search(). `workers` > 1 adds connections from the same DSN (without this session's state;
        never inside a transaction). The plan of each group is in result.groups; `explain=True` prints them.
        See pgembed.batch."""
        from pgembed.batch import search_batch

        result = search_batch(self, queries, k, where=where, recall=recall, codec=codec, ef_search=ef_search,
                              oversample=oversample, plan=plan, workers=workers, progress=progress)
        if explain:
            import json

            print(json.dumps([g.describe() for g in result.groups], indent=2, default=str))
        return result

    def advise(self, workload: Any, *, codec: str | None = None, min_share: float = 0.02, max_indexes: int = 8,
               partition: bool = False, max_partitions: int = 64, apply: bool = False,
               progress: bool = False) -> Advice:
        """Recommend, with estimated gains, partial HNSW indexes for the workload's hot predicates and a
        LIST partitioning column (with `partition`, applied to the index: one partial index per value the
        queries select on); `apply=True` builds the indexes without blocking readers or writers, and
        search() / search_batch() use them from then on. See pgembed.advise."""
        from pgembed.advise import advise

        return advise(self, workload, codec=codec, min_share=min_share, max_indexes=max_indexes,
                      partition=partition, max_partitions=max_partitions, apply=apply, progress=progress)

    def tune(self, recall: float = 0.95, *, k: int = 10, sample: int = 200,
             selectivities: Sequence[float] = (1.0, 0.1, 0.02), codecs: Sequence[str] | None = None,
             queries: np.ndarray | None = None, progress: bool = False) -> list[TuneResult]:
        """Measure, on `sample` of the collection's own vectors used as queries (or on `queries`, a sample
        of real ones, which tune better when queries differ from rows) against exact ground truth, the
        fewest candidates per result (and ef_search) each indexed codec needs to reach `recall`@k,
        unfiltered and under filters keeping `selectivities` of the rows; store them in the catalog, where
        search(recall=...) finds them."""
        from pgembed.tune import tune

        return tune(self, self.searcher, recall, k=k, sample=sample, selectivities=selectivities, codecs=codecs,
                    queries=queries, progress=progress)

    # -- whole collection -----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Everything the catalog and the server know about this collection, as JSON-ready data."""
        sizes: dict[str, int] = dict(
            self.conn.execute(
                """SELECT c.relname, pg_relation_size(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                   WHERE i.indrelid = %s::regclass""",
                (self.info.table.as_string(self.conn),),
            ).fetchall()
        )
        table_bytes = self.conn.execute(
            "SELECT pg_table_size(%s::regclass)", (self.info.table.as_string(self.conn),)
        ).fetchone()
        return {
            "name": self.name,
            "table": f"{self.info.table_schema}.{self.info.table_name}",
            "key": self.info.key_column,
            "vector": self.info.vector_column,
            "dim": self.dim,
            "metric": self.metric,
            "rows": self.count(),
            "table_bytes": int(table_bytes[0]) if table_bytes else None,
            "codecs": [
                {"name": c.name, "kind": c.kind, "version": c.version, "state": c.state, "column": c.column_name,
                 "type": c.sql_type, "fitted_rows": c.fitted_rows}
                for c in self.codecs()
            ],
            "indexes": [
                {"name": i.index_name, "method": i.method, "opclass": i.opclass, "params": i.params,
                 "where": i.predicate, "build_seconds": i.build_seconds, "bytes": sizes.get(i.index_name)}
                for i in self.indexes()
            ],
        }

    def drop(self, *, drop_table: bool = False) -> None:
        """Forget the collection: its trigger, code columns and pgembed indexes go; the table and its rows
        stay unless `drop_table`."""
        with self.db.transaction():
            if drop_table:
                self.conn.execute(sql.SQL("DROP TABLE {}").format(self.info.table))
                self.conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(schema.trigger_function(self.info)))
                self.conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}(text, vector)").format(
                    schema.query_encoder(self.info)))
            else:
                schema.drop_trigger(self.conn, self.info)
                for index in self.indexes():
                    self.conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(
                        sql.Identifier(self.info.table_schema, index.index_name)))
                for codec in catalog.list_codecs(self.conn, self.info.id, include_retired=True):
                    for column_name in self._column_names(codec):
                        schema.drop_code_column(self.conn, self.info, column_name)
            catalog.drop_collection(self.conn, self.info.id)


def _load_codec(info: CodecInfo, dim: int) -> Codec:
    return load_codec(info.kind, dim, info.params)


def _chain(first: Batch, rest: Iterator[Batch]) -> Iterator[Batch]:
    yield first
    yield from rest


def _validate_ids(ids: Any, n: int) -> np.ndarray | list[Any]:
    """Keys for n rows: the right count, no NULLs, no duplicates among them."""
    if isinstance(ids, np.ndarray) and ids.dtype != object:
        keys: np.ndarray | list[Any] = ids.reshape(-1) if ids.ndim else ids
        count = len(keys)
        if count == n and ids.dtype.kind in "iu":
            unique = np.unique(keys)
            if len(unique) != n:
                values, counts = np.unique(keys, return_counts=True)
                raise InvalidVectorsError(f"duplicate ids in input, e.g. {values[counts > 1][0]!r}")
            return keys
    else:
        keys = list(ids)
        count = len(keys)
    if count != n:
        raise InvalidVectorsError(f"got {count} ids for {n} vectors")
    as_list = list(keys)
    if any(k is None for k in as_list):
        raise InvalidVectorsError("ids contain None (NULL keys)")
    seen: set[Any] = set()
    for k in as_list:
        hashable = k.item() if isinstance(k, np.generic) else k
        if hashable in seen:
            raise InvalidVectorsError(f"duplicate ids in input, e.g. {hashable!r}")
        seen.add(hashable)
    return keys
