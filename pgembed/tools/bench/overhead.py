"""pgembed's overhead: its search() against the same plan written by hand in SQL on the same table.

For each case (a filter keeping about 1% of the rows, and no filter), pgembed's planner chooses a plan
(explain()); the hand-written SQL is that plan as an application would write it for pgvector: the exact plan
as `WHERE <filter> ORDER BY embedding <=> q LIMIT k` (a B-tree serves the filter), the index plan as
pgvector's re-rank recipe on the same code column with the same candidates and ef_search (set once for the
connection). Each runs the same queries one at a time on a connection of its own, interleaved query by query
(which goes first rotates), so that a noisy machine's drift falls on both alike; the figure is pgembed's
queries/s over the hand SQL's in each round of all the queries. The query's code for the
hand SQL is computed by the same numpy codec (an application would need it too)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from psycopg import sql

import pgembed
from pgembed.engine import search as searching
from pgembed.engine.search import query_code
from pgembed.errors import InvalidInputError
from pgembed.planning.filters import as_filter
from pgembed.planning.params import SearchParams
from pgembed.statements import benchmarks
from pgembed.tools.bench.codecs import load_matrix
from pgembed.tools.bench.search import filter_sql, fresh_collection, load_attrs
from pgembed.vocabulary import PlanKind

TABLE = "pgembed_overhead"
CASES: dict[str, dict[str, Any] | None] = {"filter_1pct": {"source": "man", "section": "5"}, "unfiltered": None}
CODEC = "bq2"


def run_overhead_bench(base_path: str, queries_path: str, attrs_path: str, *, k: int = 10, queries_limit: int = 300,
                       rounds: int = 5, dsn: str | None = None, data_dir: str | Path | None = None) -> dict[str, Any]:
    base = np.ascontiguousarray(load_matrix(base_path, "base"), dtype=np.float32)
    queries = np.ascontiguousarray(load_matrix(queries_path, "queries")[:queries_limit], dtype=np.float32)
    types, values = load_attrs(attrs_path, len(base))
    if not {"source", "section"} <= set(types):
        raise InvalidInputError(f"{attrs_path}: the cases filter on columns source and section")
    keep = {name: types[name] for name in ("source", "section")}
    with pgembed.connect(dsn, data_dir=data_dir) as db:
        db.migrate()
        collection = fresh_collection(db, TABLE, int(base.shape[1]), keep)
        collection.ingest(np.arange(len(base)), base, {name: values[name] for name in keep})
        collection.add_codec(CODEC, CODEC)
        collection.create_index(CODEC)
        db.execute(sql.SQL("CREATE INDEX ON {} (source, section)").format(collection.info.table))
        db.execute(benchmarks.analyze(collection.info.table))
        cases = {name: _case(collection, where, queries, k, rounds) for name, where in CASES.items()}
    return {"benchmark": "overhead", "dataset": {"base": str(base_path), "n_base": len(base), "dim": int(base.shape[1]),
                                                 "queries": len(queries)},
            "k": k, "rounds": rounds, "codec": CODEC, "cases": cases}


def _case(collection: pgembed.Collection, where: dict[str, Any] | None, queries: np.ndarray, k: int,
          rounds: int) -> dict[str, Any]:
    # The plan search() takes, and its statements: pgembed's own statement is also run by hand (what the
    # statement's shape costs, apart from the Python around it).
    prepared = searching.prepare(collection.context, as_filter(where), k, SearchParams())
    plan = prepared.plan
    info = collection.info
    # A connection per contender: one that runs two contenders' statements stays warmer (its backend's caches,
    # its CPU) than one that runs a single contender's, which measured as a 10% edge on a 0.5 ms query.
    hand_conn = collection.context.session.new_connection()
    own_conn = collection.context.session.new_connection()
    try:
        if plan.kind is PlanKind.EXACT:
            clause = sql.SQL(filter_sql(collection, where)) if where is not None else sql.SQL("TRUE")
            statement = sql.SQL("SELECT {k}, {v} <=> %(q)s AS distance FROM {t} WHERE {w} ORDER BY distance "
                                "LIMIT {n}").format(k=info.key, v=info.vector, t=info.table, w=clause,
                                                    n=sql.Literal(k))
            codec = None
        else:
            if where is not None or plan.column is None or plan.candidates is None:
                raise InvalidInputError(f"the overhead bench writes unfiltered index plans only, got {plan}")
            hand_conn.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(plan.ef_search)))
            statement = sql.SQL(
                "SELECT {k}, {v} <=> %(q)s AS distance FROM (SELECT {k}, {v} FROM {t} ORDER BY {c} <~> %(qcode)s "
                "LIMIT {m}) AS candidates ORDER BY distance LIMIT {n}").format(
                k=info.key, v=info.vector, t=info.table, c=sql.Identifier(plan.column),
                m=sql.Literal(plan.candidates), n=sql.Literal(k))
            codec = collection.context.codec_of(prepared.codec_id)

        def hand(q: np.ndarray) -> list[Any]:
            params: dict[str, Any] = {"q": q}
            if codec is not None:
                params["qcode"] = query_code(codec, q)
            return [r[0] for r in hand_conn.execute(statement, params, prepare=True).fetchall()]

        def ours(q: np.ndarray) -> list[Any]:
            return collection.search(q, k, where=where).ids.tolist()

        own = collection.context.session.statement(prepared.exact if plan.kind is PlanKind.EXACT else prepared.run)

        def own_statement(q: np.ndarray) -> list[Any]:
            params: dict[str, Any] = {"q": q}
            if codec is not None:
                params["qcode"] = query_code(codec, q)
            return [r[0] for r in own_conn.execute(own, params, prepare=True).fetchall()]

        same = sum(hand(q) == ours(q) for q in queries) / len(queries)
        contenders = [("pgembed", ours), ("hand_sql", hand), ("pgembed_statement_by_hand", own_statement)]
        measured: dict[str, list[float]] = {name: [] for name, _ in contenders}
        for _ in range(rounds):
            spent = dict.fromkeys(measured, 0.0)
            for i, q in enumerate(queries):
                shift = i % len(contenders)
                for name, run in contenders[shift:] + contenders[:shift]:
                    started = time.perf_counter()
                    run(q)
                    spent[name] += time.perf_counter() - started
            for name, seconds in spent.items():
                measured[name].append(len(queries) / seconds)
    finally:
        hand_conn.close()
        own_conn.close()
    ratios = [a / b for a, b in zip(measured["pgembed"], measured["hand_sql"], strict=True)]
    return {"where": where, "plan": plan.describe(), "same_ids": round(same, 4),
            "pgembed_qps": [round(x, 1) for x in measured["pgembed"]],
            "hand_sql_qps": [round(x, 1) for x in measured["hand_sql"]],
            "pgembed_statement_by_hand_qps": [round(x, 1) for x in measured["pgembed_statement_by_hand"]],
            "ratio_per_round": [round(x, 3) for x in ratios], "ratio_median": round(statistics.median(ratios), 3),
            "ratio_min": round(min(ratios), 3)}

