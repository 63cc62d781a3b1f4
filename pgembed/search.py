"""Executing hybrid search: the SQL of each plan shape, run in one round trip with its pgvector settings.

Plan shapes (pgembed.search() in SQL builds the same text; docs/architecture.md shows it for people who
write it by hand):

    exact:  SELECT key, distance FROM (
                SELECT key, vector <=> $q AS distance FROM t WHERE <filter> AND vector IS NOT NULL
                OFFSET 0) AS matching ORDER BY distance, key LIMIT k
            -- OFFSET 0: the subquery is not merged, so no HNSW index can serve the ORDER BY and
            -- PostgreSQL computes every matching row's distance (through a B-tree when the filter has
            -- one): exact.
    index:  SELECT key, vector <=> $q AS distance FROM (
                SELECT key, vector FROM t WHERE <filter> ORDER BY code <~> $qcode LIMIT n) AS candidates
            ORDER BY distance, key LIMIT k     -- (key: equal distances come back in one order)
            -- with hnsw.ef_search, hnsw.iterative_scan and hnsw.max_scan_tuples set by the statement
            -- itself, for itself (STATEMENT_SETTINGS).
    many queries on one index plan (search_many, used by search_batch; Python only):
            SELECT qs.no, c.key, c.distance FROM unnest($qs::vector[], $qcodes::code_type[])
                WITH ORDINALITY AS qs(q, qcode, no)
            CROSS JOIN LATERAL (<the index plan's statement, with qs.q and qs.qcode>) AS c
            ORDER BY qs.no, c.distance, c.key
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
from pgvector import HalfVector
from psycopg import sql
from psycopg.pq import TransactionStatus

from pgembed import catalog
from pgembed.codecs import Codec
from pgembed.errors import InvalidInputError
from pgembed.filters import Filter, check_filter, compile_filter, table_column_types
from pgembed.plan import MIN_SCAN_TUPLES, CoarseSource, Plan, PlanRequest, Tuned, choose_plan
from pgembed.vectors import as_matrix

if TYPE_CHECKING:
    from pgembed.collection import Collection

DISTANCE_OPERATORS = {"cosine": "<=>", "ip": "<#>", "l2": "<->"}
_ESTIMATE_CACHE = 1024
CACHE_SECONDS = 30.0  # how long catalog facts and row estimates are trusted


@dataclass(frozen=True)
class SearchResult:
    """The k nearest rows found: keys and exact distances (the collection's metric: cosine distance,
    negative inner product, or L2), best first; `rows` holds the asked-for columns of each."""

    ids: np.ndarray
    distances: np.ndarray
    plan: Plan
    rows: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self.ids)


def check_not_zero(q: np.ndarray, metric: str) -> None:
    """A zero query has no cosine distance to anything: say so rather than rank NaNs."""
    if metric == "cosine":
        zero = ~np.any(q != 0, axis=1)
        if zero.any():
            raise InvalidInputError(f"query row {int(np.argmax(zero))} is all zeros: cosine distance is undefined")


def distance_operator(metric: str) -> sql.SQL:
    return sql.SQL(DISTANCE_OPERATORS[metric])


def code_operator(source: CoarseSource, metric: str) -> sql.SQL:
    """How the HNSW index on a code column orders: Hamming for bits, the collection's metric otherwise."""
    return sql.SQL("<~>") if source.storage == "bit" else distance_operator(metric)


def query_code(codec: Codec, query: np.ndarray) -> Any:
    """The query's code as a parameter (pgvector's Bit, HalfVector, or a float32 array for vector), sent in
    binary: encoded exactly as the rows were, so that the index compares like with like (pgembed.search()
    in SQL computes the same code with the codec's SQL encoder)."""
    code = codec.encode(query[None, :])
    if codec.storage == "bit":
        nbits = int(codec.sql_type().split("(")[1].rstrip(")"))
        # A bit string ('0101...'): psycopg's client-side literal for pgvector's Bit is '...'::bit, which
        # PostgreSQL reads as bit(1).
        return (np.unpackbits(code[0])[:nbits] + ord("0")).astype(np.uint8).tobytes().decode()
    if codec.storage == "halfvec":
        return HalfVector(np.asarray(code[0], dtype=np.float32))
    return np.asarray(code[0], dtype=np.float32)


class Searcher:
    """Search on one collection. Keeps what it learned from the catalog and the planner's row estimates
    for CACHE_SECONDS (changes made through its own Collection clear it at once); a re-fit made elsewhere
    that drops a code column is also picked up by the first statement that fails because of it."""

    def __init__(self, collection: Collection) -> None:
        self.collection = collection
        self._sources: tuple[CoarseSource, ...] | None = None
        self._codecs: dict[str, Codec] = {}
        self._columns: dict[str, Any] | None = None
        self._estimates: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._total_rows: float | None = None
        self._checked: set[tuple[str, str]] = set()
        self._read_at = time.monotonic()

    def _fresh(self) -> None:
        if time.monotonic() - self._read_at > CACHE_SECONDS:
            self.forget()

    @property
    def conn(self) -> psycopg.Connection:
        return self.collection.conn

    def forget(self) -> None:
        """Drop what was cached from the catalog and the planner (after codecs, indexes, tuning or the
        table's rows change)."""
        self._sources = None
        self._codecs.clear()
        self._columns = None
        self._total_rows = None
        self._estimates.clear()
        self._checked.clear()
        self._read_at = time.monotonic()

    # -- what the catalog says ----------------------------------------------------------------------------
    def sources(self) -> tuple[CoarseSource, ...]:
        self._fresh()
        if self._sources is None:
            self._sources = load_sources(self.conn, self.collection.info.id, self.collection.dim)
        return self._sources

    def codec(self, name: str) -> Codec:
        if name not in self._codecs:
            self._codecs[name] = self.collection.codec(name)
        return self._codecs[name]

    def column_types(self) -> dict[str, Any]:
        if self._columns is None:
            self._columns = table_column_types(self.conn, self.collection.info.table)
        return self._columns

    def total_rows(self) -> float:
        if self._total_rows is None:
            row = self.conn.execute(
                "SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = %s::regclass",
                (self.collection.info.table.as_string(self.conn),),
            ).fetchone()
            self._total_rows = float(row[0]) if row else 0.0
            if self._total_rows == 0:  # never analysed (reltuples -1): count, as pgembed.search_plan does
                counted = self.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                    self.collection.info.table)).fetchone()
                self._total_rows = float(counted[0]) if counted else 0.0
        return self._total_rows

    def prepare(self, where: Any) -> tuple[Filter, Mapping[str, Any] | None]:
        """`where` compiled against the table's columns, its values' casts checked by the server once per
        filter (not per query), and the dict itself when it is one (partial indexes match on it)."""
        compiled = compile_filter(where, self.column_types())
        if compiled.casts:
            key = self._filter_key(compiled)
            if key not in self._checked:
                check_filter(self.conn, compiled)
                self._checked.add(key)
        return compiled, where if isinstance(where, Mapping) else None

    def _filter_key(self, where: Filter) -> tuple[str, str]:
        return where.clause.as_string(self.conn), repr(sorted(where.params.items()))

    def estimate_rows(self, where: Filter) -> float:
        """PostgreSQL's own estimate of the rows the filter keeps (EXPLAIN), cached per filter."""
        key = self._filter_key(where)
        if key in self._estimates:
            self._estimates.move_to_end(key)
            return self._estimates[key]
        statement = sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {} WHERE {}").format(
            self.collection.info.table, where.clause
        )
        row = self.conn.execute(statement, where.params).fetchone()
        assert row is not None
        estimate = float(row[0][0]["Plan"]["Plan Rows"])
        self._estimates[key] = estimate
        if len(self._estimates) > _ESTIMATE_CACHE:
            self._estimates.popitem(last=False)
        return estimate

    # -- planning and running ---------------------------------------------------------------------------
    def plan(self, where: Filter, *, k: int, codec: str | None, ef_search: int | None,
             oversample: float | None, recall: float | None, plan: str,
             filter_doc: Mapping[str, Any] | None = None) -> Plan:
        filtered = not where.is_empty()
        return choose_plan(PlanRequest(
            k=k, filtered=filtered, estimated_rows=self.estimate_rows(where) if filtered else None,
            total_rows=self.total_rows(), sources=self.sources(), codec=codec, ef_search=ef_search,
            oversample=oversample, recall=recall, plan=plan, filter_doc=filter_doc if filtered else None,
        ))

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
    ) -> SearchResult:
        q = as_matrix(query, self.collection.dim, what="query")
        check_not_zero(q, self.collection.metric)
        if q.shape[0] != 1:
            raise InvalidInputError(f"search takes one query vector, got {q.shape[0]}: use search_batch")
        compiled, doc = self.prepare(where)
        extra = self._check_columns(columns)
        chosen = self.plan(compiled, k=k, codec=codec, ef_search=ef_search, oversample=oversample,
                           recall=recall, plan=plan, filter_doc=doc)
        try:
            return self._run(chosen, q[0], compiled, extra)
        except (psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedObject):
            if chosen.kind != "index":
                raise
            # The codec was re-fitted or dropped elsewhere since we read the catalog: read it again.
            self.forget()
            chosen = self.plan(compiled, k=k, codec=codec, ef_search=ef_search, oversample=oversample,
                               recall=recall, plan=plan, filter_doc=doc)
            return self._run(chosen, q[0], compiled, extra)

    def _check_columns(self, columns: Sequence[str] | None) -> list[str]:
        if columns is None:
            return []
        if isinstance(columns, str):
            raise InvalidInputError("columns takes a list of column names, not one string")
        known = self.column_types()
        unknown = [c for c in columns if c not in known]
        if unknown:
            raise InvalidInputError(f"table {self.collection.info.table_name!r} has no column(s) {unknown}")
        return list(columns)

    def _run(self, chosen: Plan, q: np.ndarray, where: Filter, columns: list[str]) -> SearchResult:
        if chosen.kind == "index":
            result = self._fetch(chosen, self.index_statement(chosen, where, columns), q, where, columns)
            if len(result.ids) >= chosen.k:
                return result
            chosen = _exact_fallback(chosen, len(result.ids))
        return self._fetch(chosen, self.exact_statement(where, columns, chosen.k), q, where, columns)

    def search_many(self, queries: np.ndarray, chosen: Plan, where: Filter) -> list[SearchResult]:
        """Queries that share a filter and an index plan, answered in one statement (many_statement: each
        query's candidates and re-rank in a LATERAL subquery, one round trip for all); a query that finds
        fewer than k rows there is answered again exactly, on its own, as search() does."""
        if chosen.kind != "index" or chosen.codec is None:
            raise InvalidInputError("search_many takes an index plan")
        codec = self.codec(chosen.codec)
        params: dict[str, Any] = {"qs": list(queries), "qcodes": [query_code(codec, v) for v in queries],
                                  **where.params, **hnsw_settings(chosen)}
        rows = run_statement(self.conn, self.many_statement(chosen, where), params, scoped_settings=True)
        found: list[list[tuple[Any, float]]] = [[] for _ in range(len(queries))]
        for number, key, distance in rows:
            found[number - 1].append((key, distance))
        results = []
        for i, got in enumerate(found):
            if len(got) >= chosen.k:
                results.append(SearchResult(np.array([key for key, _ in got]),
                                            np.array([d for _, d in got], dtype=np.float64), chosen, None))
            else:
                fallback = _exact_fallback(chosen, len(got))
                results.append(self._fetch(fallback, self.exact_statement(where, [], chosen.k), queries[i], where, []))
        return results

    def _params(self, chosen: Plan, q: np.ndarray, where: Filter) -> dict[str, Any]:
        # k and the candidate count are literals in the statement's text, not parameters: a prepared
        # statement's generic plan, not knowing the LIMIT, may pick a worse plan (measured: 3x slower).
        params: dict[str, Any] = {"q": q, **where.params}
        if chosen.kind == "index":
            assert chosen.codec is not None
            params["qcode"] = query_code(self.codec(chosen.codec), q)
            params.update(hnsw_settings(chosen))
        return params

    def _fetch(self, chosen: Plan, statement: sql.Composed, q: np.ndarray, where: Filter,
               columns: list[str]) -> SearchResult:
        params = self._params(chosen, q, where)
        rows = run_statement(self.conn, statement, params, scoped_settings=chosen.kind == "index")
        ids = np.array([r[0] for r in rows]) if rows else np.empty(0, dtype=np.int64)
        distances = np.array([r[1] for r in rows], dtype=np.float64)
        extra = [dict(zip(columns, r[2:], strict=True)) for r in rows] if columns else None
        return SearchResult(ids, distances, chosen, extra)

    # -- SQL text ----------------------------------------------------------------------------------------
    def exact_statement(self, where: Filter, columns: list[str], k: int) -> sql.Composed:
        info = self.collection.info
        # OFFSET 0 keeps the subquery from being merged into the outer query, so that no HNSW index can
        # serve the ORDER BY: PostgreSQL computes every matching row's distance, once, and sorts them.
        return sql.SQL(
            "SELECT {key}, distance{extra_out} FROM (SELECT {key}, {v} {op} %(q)s AS distance{extra} "
            "FROM {table} WHERE ({where}) AND {v} IS NOT NULL OFFSET 0) AS matching ORDER BY distance, {key} LIMIT {k}"
        ).format(key=info.key, v=info.vector, op=distance_operator(info.metric), extra=_extra(columns),
                 extra_out=_extra(columns), table=info.table, where=_clause(where), k=sql.Literal(k))

    def index_statement(self, chosen: Plan, where: Filter, columns: list[str]) -> sql.Composed:
        info = self.collection.info
        source = next(s for s in self.sources() if s.index == chosen.index)
        return sql.SQL(
            "SELECT {key}, {v} {op} %(q)s AS distance{extra} FROM ("
            "SELECT {key}, {v}{extra} FROM {table} WHERE {settings} AND ({where}) "
            "ORDER BY {code} {code_op} %(qcode)s::{code_type} LIMIT {n}) AS candidates "
            "ORDER BY distance, {key} LIMIT {k}"
        ).format(k=sql.Literal(chosen.k), n=sql.Literal(chosen.candidates),
            key=info.key, v=info.vector, op=distance_operator(info.metric), extra=_extra(columns),
            table=info.table, settings=STATEMENT_SETTINGS, where=_clause(where), code=sql.Identifier(source.column),
            code_op=code_operator(source, info.metric), code_type=sql.SQL(source.sql_type),
        )

    def many_statement(self, chosen: Plan, where: Filter) -> sql.Composed:
        """index_statement for an array of queries and their codes: rows (query number from 1, key,
        distance), k per query at most, in query order then distance and key. The queries' relation and
        its columns carry pgembed_ names (the relation's changes if the table itself is so named); every
        column of the table is found in the subqueries' own FROM first, so a filter or key never resolves
        to them."""
        info = self.collection.info
        source = next(s for s in self.sources() if s.index == chosen.index)
        queries = "pgembed_queries" if info.table_name != "pgembed_queries" else "pgembed_queries_"
        return sql.SQL(
            "SELECT {qs}.pgembed_no, c.{key}, c.distance FROM unnest(%(qs)s::vector[], %(qcodes)s::{code_type}[]) "
            "WITH ORDINALITY AS {qs}(pgembed_q, pgembed_qcode, pgembed_no) CROSS JOIN LATERAL ("
            "SELECT {key}, {v} {op} {qs}.pgembed_q AS distance FROM ("
            "SELECT {key}, {v} FROM {table} WHERE {settings} AND ({where}) "
            "ORDER BY {code} {code_op} {qs}.pgembed_qcode LIMIT {n}) AS candidates "
            "ORDER BY distance, {key} LIMIT {k}) AS c ORDER BY {qs}.pgembed_no, c.distance, c.{key}"
        ).format(k=sql.Literal(chosen.k), n=sql.Literal(chosen.candidates), key=info.key, v=info.vector,
                 op=distance_operator(info.metric), table=info.table, settings=STATEMENT_SETTINGS,
                 where=_clause(where), code=sql.Identifier(source.column), code_op=code_operator(source, info.metric),
                 code_type=sql.SQL(source.sql_type), qs=sql.Identifier(queries))


def _exact_fallback(chosen: Plan, found: int) -> Plan:
    """The exact plan that answers a query whose index plan found fewer than k rows."""
    return replace(chosen, kind="exact", fallback=True, codec=None, column=None, index=None, candidates=None,
                   ef_search=None, oversample=None, iterative_scan="off", max_scan_tuples=None,
                   reason=f"{chosen.reason}; the index plan found {found} < k rows, answered exactly")


def _clause(where: Filter) -> sql.Composable:
    return sql.SQL("true") if where.is_empty() else where.clause


def _extra(columns: list[str]) -> sql.Composable:
    return sql.SQL("").join(sql.SQL(", {}").format(sql.Identifier(c)) for c in columns)


# pgvector's settings for one index scan, set by the statement itself: an uncorrelated scalar subquery in
# the candidates' WHERE becomes an InitPlan behind a one-time filter, which PostgreSQL evaluates before it
# asks the index for its first tuple — and pgvector reads hnsw.* when that first tuple is asked for. Local
# to the transaction: in autocommit that is the statement alone; inside the application's transaction a
# savepoint rolled back after the statement puts them back (run_statement).
STATEMENT_SETTINGS = sql.SQL(
    "(SELECT set_config('hnsw.ef_search', %(ef_search)s, true) "
    "|| set_config('hnsw.iterative_scan', %(iterative_scan)s, true) "
    "|| set_config('hnsw.max_scan_tuples', %(max_scan_tuples)s, true)) IS NOT NULL"
)


def hnsw_settings(chosen: Plan) -> dict[str, str]:
    """The parameters STATEMENT_SETTINGS takes for an index plan."""
    return {
        "ef_search": str(chosen.ef_search),
        "iterative_scan": chosen.iterative_scan,
        "max_scan_tuples": str(chosen.max_scan_tuples or MIN_SCAN_TUPLES),
    }


def run_statement(conn: psycopg.Connection, statement: sql.Composed, params: dict[str, Any],
                  *, scoped_settings: bool) -> list[tuple[Any, ...]]:
    """Run a read-only statement. One that sets pgvector settings for itself (`scoped_settings`) runs, when
    the application has a transaction open (or the connection is not in autocommit), inside a savepoint
    that is rolled back afterwards, so that its settings do not outlive it; pipelined, still one round
    trip."""
    if not scoped_settings or (conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE):
        return conn.execute(statement, params).fetchall()
    with conn.pipeline(), conn.transaction(force_rollback=True):
        return conn.execute(statement, params).fetchall()


# -- the catalog's view of search ----------------------------------------------------------------------------
def load_sources(conn: psycopg.Connection, collection_id: int, dim: int) -> tuple[CoarseSource, ...]:
    """Active code columns with an HNSW index, with what tune() measured for each. (sql_type comes from
    pgembed's own catalog, written from a Codec's sql_type(), never from user input.)"""
    rows = conn.execute(
        """SELECT codec_id, name, column_name, sql_type, index_name, predicate, index_rows
           FROM pgembed.search_sources(%s)""",
        (collection_id,),
    ).fetchall()
    tuned = catalog.list_tuning(conn, collection_id)

    def tuning_of(codec_id: int, index: str, partial: bool) -> tuple[Tuned, ...]:
        # A partial index's own tuning when it has some, else its codec's (pgembed.search_plan does the same).
        own = tuple(t for c, i, t in tuned if c == codec_id and i == index) if partial else ()
        return own or tuple(t for c, i, t in tuned if c == codec_id and i == "")

    return tuple(
        CoarseSource(codec=name, column=column, sql_type=sql_type, index=index, dim=dim,
                     tuned=tuning_of(cid, index, predicate is not None), predicate=predicate,
                     index_rows=float(index_rows))
        for cid, name, column, sql_type, index, predicate, index_rows in rows
    )


__all__ = ["SearchResult", "Searcher", "Tuned"]
