"""The bad-input suite: wrong types, values and names through the three faces (Python, the command line, SQL).
Each case must raise an error whose message names the problem, and leave the table, its columns and indexes,
and pgembed's catalog exactly as they were (a checksum of all of them before and after)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

import pgembed
from pgembed.cli import main
from tests.helpers import unit_vectors, vector_text

DIM = 16
ROWS = 300
GOOD = unit_vectors(1, DIM, seed=11)[0]
GOOD_TEXT = vector_text(GOOD)


@dataclass(frozen=True)
class Env:
    db: pgembed.Database
    docs: pgembed.Collection
    conn: psycopg.Connection  # a plain client's
    dsn: str
    files: Path


@dataclass(frozen=True)
class Case:
    face: str
    name: str
    call: Callable[[Env], Any]
    says: str  # a regex the error's message must match: it names the problem

    @property
    def id(self) -> str:
        return f"{self.face}:{self.name}"


# -- Python ------------------------------------------------------------------------------------------------------
BAD_QUERIES: dict[str, tuple[Any, str]] = {
    "str": ("hello", r"str"),
    "none": (None, r"None|query"),
    "dict": ({"a": 1}, r"dict|numeric"),
    "strings": (["a", "b"], r"number|float|str|query"),
    "short": (np.zeros(3, dtype=np.float32) + 1, r"dimension|16"),
    "long": (np.ones(17, dtype=np.float32), r"dimension|16"),
    "nan": (np.full(DIM, np.nan, dtype=np.float32), r"NaN|finite"),
    "inf": (np.full(DIM, np.inf, dtype=np.float32), r"(?i)inf|finite"),
    "empty": (np.zeros((0, DIM), dtype=np.float32), r"empty|no quer|0"),
    "3d": (np.ones((1, 1, DIM), dtype=np.float32), r"2-d|dimension|shape"),
    "complex": (np.ones(DIM, dtype=np.complex64), r"complex|dtype|real"),
    "objects": (np.array(["x"] * DIM, dtype=object), r"numeric"),
    "zero_cosine": (np.zeros(DIM, dtype=np.float32), r"zero|norm"),
}
BAD_K: dict[str, tuple[Any, str]] = {
    "zero": (0, r"\bk\b"), "negative": (-3, r"\bk\b"), "float": (2.5, r"\bk\b"), "str": ("10", r"\bk\b"),
    "none": (None, r"\bk\b"), "bool": (True, r"\bk\b"), "numpy_float": (np.float64(2.5), r"\bk\b"),
    "huge": (10**12, r"k must be at most"),
}
BAD_WHERE: dict[str, tuple[Any, str]] = {
    "unknown_column": ({"nope": 1}, r"nope"),
    "unknown_operator": ({"cat": {"$foo": 1}}, r"\$foo"),
    "int_column_text": ({"year": "abc"}, r"year|abc|integer"),
    "range_text": ({"year": {"$gte": "x"}}, r"year|integer|'x'"),
    "in_not_list": ({"cat": {"$in": "a"}}, r"\$in|list"),
    "or_not_list": ({"$or": 5}, r"\$or"),
    "and_of_numbers": ({"$and": [1]}, r"\$and|filter|dict|1"),
    "list": ([1, 2], r"filter|list"),
    "number": (42, r"filter|int"),
    "sql_text": ("cat = 'a'", r"filter|str"),
    "eq_list": ({"cat": {"$eq": [1]}}, r"cat|\$eq|list"),
    "empty_name": ({"": 1}, r"column|''"),
    "vector_column": ({"embedding": [1, 2]}, r"embedding|vector"),
    "between": ({"year": {"$between": [1]}}, r"\$between"),
    "nested_unknown": ({"$or": [{"cat": "a"}, {"nope": 2}]}, r"nope"),
}
BAD_KNOBS: dict[str, tuple[dict[str, Any], str]] = {
    "recall_above_1": ({"recall": 1.5}, r"recall"), "recall_negative": ({"recall": -0.1}, r"recall"),
    "recall_zero": ({"recall": 0}, r"recall"), "recall_str": ({"recall": "x"}, r"recall"),
    "ef_zero": ({"ef_search": 0}, r"ef_search"), "ef_negative": ({"ef_search": -1}, r"ef_search"),
    "ef_float": ({"ef_search": 1.5}, r"ef_search"), "ef_huge": ({"ef_search": 10**7}, r"ef_search|1000"),
    "oversample_zero": ({"oversample": 0}, r"oversample"), "oversample_negative": ({"oversample": -2}, r"oversample"),
    "oversample_str": ({"oversample": "x"}, r"oversample"), "codec_unknown": ({"codec": "nope"}, r"nope"),
    "plan_unknown": ({"plan": "nope"}, r"plan|nope"), "refine_unknown": ({"refine": "nope"}, r"nope"),
    "refine_oversample_zero": ({"refine": "sq8", "refine_oversample": 0}, r"refine_oversample"),
    "rerank_str": ({"rerank": "yes"}, r"rerank"), "knob_typo": ({"ef_serch": 40}, r"ef_serch"),
    "codec_int": ({"codec": 5}, r"codec"),
}


def python_cases() -> Iterator[Case]:
    for name, (query, says) in BAD_QUERIES.items():
        yield Case("python", f"search query {name}", lambda e, q=query: e.docs.search(q, 5), says)
        batch = query if name in ("empty", "3d", "str", "none", "dict") else [query, query]
        yield Case("python", f"search_batch queries {name}", lambda e, q=batch: e.docs.search_batch(q, 5), says)
        if name not in ("zero_cosine", "empty"):
            yield Case("python", f"ingest vectors {name}",
                       lambda e, q=query: e.docs.ingest([ROWS + 1], q), says)
        if name not in ("zero_cosine", "empty", "none"):  # tune(queries=None) samples the collection's own
            yield Case("python", f"tune queries {name}",
                       lambda e, q=query: e.docs.tune(0.9, queries=q, sample=10), says)
    for name, (k, says) in BAD_K.items():
        yield Case("python", f"search k {name}", lambda e, k=k: e.docs.search(GOOD, k), says)
        yield Case("python", f"search_batch k {name}", lambda e, k=k: e.docs.search_batch([GOOD], k), says)
        yield Case("python", f"explain k {name}", lambda e, k=k: e.docs.explain(k), says)
        yield Case("python", f"tune k {name}", lambda e, k=k: e.docs.tune(0.9, k=k, sample=10), says)
    for name, (where, says) in BAD_WHERE.items():
        yield Case("python", f"search where {name}", lambda e, w=where: e.docs.search(GOOD, 5, where=w), says)
        yield Case("python", f"search_batch where {name}",
                   lambda e, w=where: e.docs.search_batch([GOOD], 5, where=w), says)
        yield Case("python", f"explain where {name}", lambda e, w=where: e.docs.explain(5, where=w), says)
        if isinstance(where, dict):
            yield Case("python", f"create_index where {name}",
                       lambda e, w=where: e.docs.create_index("bq2", where=w), says)
    for name, (knobs, says) in BAD_KNOBS.items():
        yield Case("python", f"search {name}", lambda e, kn=knobs: e.docs.search(GOOD, 5, **kn), says)
        yield Case("python", f"search_batch {name}", lambda e, kn=knobs: e.docs.search_batch([GOOD], 5, **kn), says)
    yield from _python_writes()
    yield from _python_catalog()


def _python_writes() -> Iterator[Case]:
    x2 = unit_vectors(2, DIM, seed=12)
    cases: dict[str, tuple[Callable[[Env], Any], str]] = {
        "ids count": (lambda e: e.docs.ingest([ROWS + 1, ROWS + 2, ROWS + 3], x2), r"3|2|ids"),
        "ids duplicated": (lambda e: e.docs.ingest([ROWS + 1, ROWS + 1], x2), r"duplicate"),
        "id exists": (lambda e: e.docs.ingest([0, ROWS + 1], x2), r"already exists|duplicate"),
        "id null": (lambda e: e.docs.ingest([None, ROWS + 1], x2), r"NULL|None"),
        "id text for bigint": (lambda e: e.docs.ingest(["abc", "def"], x2), r"abc|bigint|integer"),
        "attrs unknown column": (lambda e: e.docs.ingest([ROWS + 1, ROWS + 2], x2, {"nope": [1, 2]}), r"nope"),
        "attrs length": (lambda e: e.docs.ingest([ROWS + 1, ROWS + 2], x2, {"cat": ["a"]}), r"cat|1|2"),
        "attrs text for integer": (lambda e: e.docs.ingest([ROWS + 1, ROWS + 2], x2, {"year": ["x", "y"]}),
                                   r"year|integer|'x'"),
        "attrs code column": (lambda e: e.docs.ingest([ROWS + 1, ROWS + 2], x2, {"embedding_bq2": ["1", "0"]}),
                              r"embedding_bq2|code"),
        "attrs vector column": (lambda e: e.docs.ingest([ROWS + 1, ROWS + 2], x2, {"embedding": [1, 2]}),
                                r"'embedding'"),
        "attrs not a mapping": (lambda e: e.docs.ingest([ROWS + 1, ROWS + 2], x2, ["a", "b"]), r"attrs|mapping|dict"),
        "no rows": (lambda e: e.docs.ingest([], np.zeros((0, DIM), dtype=np.float32)), r"no rows|empty|0"),
        "no batches": (lambda e: e.docs.ingest_batches([]), r"no batches"),
        "1-d vectors for 2 ids": (lambda e: e.docs.ingest([ROWS + 1, ROWS + 2], GOOD), r"2|1|ids"),
        "integer overflow key": (lambda e: e.docs.ingest([2**70], x2[:1]), r"key|int|range|2361183241434822606848"),
        "chunk_rows zero": (lambda e: e.docs.ingest([ROWS + 1], x2[:1], chunk_rows=0), r"chunk_rows"),
    }
    for name, (call, says) in cases.items():
        yield Case("python", f"ingest {name}", call, says)


def _python_catalog() -> Iterator[Case]:
    x = unit_vectors(20, DIM, seed=13)
    cases: dict[str, tuple[Callable[[Env], Any], str]] = {
        "add_codec unknown spec": (lambda e: e.docs.add_codec("c1", "zz"), r"zz"),
        "add_codec pq0": (lambda e: e.docs.add_codec("c1", "pq0"), r"pq0|subspace|0"),
        "add_codec bq9": (lambda e: e.docs.add_codec("c1", "bq9"), r"bq9|bits"),
        "add_codec pca too wide": (lambda e: e.docs.add_codec("c1", "pca999"), r"pca999|999|16"),
        "add_codec pca0": (lambda e: e.docs.add_codec("c1", "pca0"), r"pca0|0"),
        "add_codec mrl0": (lambda e: e.docs.add_codec("c1", "mrl0"), r"mrl0|0"),
        "add_codec duplicate name": (lambda e: e.docs.add_codec("bq2", "bq2"), r"bq2"),
        "add_codec empty name": (lambda e: e.docs.add_codec("", "bq"), r"name"),
        "add_codec quoted name": (lambda e: e.docs.add_codec('a"b', "bq"), r"name|a\"b"),
        "add_codec long name": (lambda e: e.docs.add_codec("n" * 100, "bq"), r"name|long|63"),
        "add_codec spec none": (lambda e: e.docs.add_codec("c1", None), r"spec|None"),
        "add_codec spec int": (lambda e: e.docs.add_codec("c1", 5), r"spec|5"),
        "add_codec fit_on dim": (lambda e: e.docs.add_codec("c1", "sq8", fit_on=np.ones((20, 3))), r"dimension|16"),
        "add_codec fit_on nan": (lambda e: e.docs.add_codec("c1", "sq8", fit_on=np.full((20, DIM), np.nan)),
                                 r"NaN|finite"),
        "add_codec sample zero": (lambda e: e.docs.add_codec("c1", "sq8", sample=0), r"sample"),
        "add_codec sample negative": (lambda e: e.docs.add_codec("c1", "sq8", sample=-5), r"sample"),
        "create_index unknown codec": (lambda e: e.docs.create_index("nope"), r"nope"),
        "create_index method": (lambda e: e.docs.create_index("bq2", "nope"), r"nope|method"),
        "create_index m zero": (lambda e: e.docs.create_index("bq2", m=0), r"\bm\b"),
        "create_index m huge": (lambda e: e.docs.create_index("bq2", m=1000), r"\bm\b|100"),
        "create_index ef_construction": (lambda e: e.docs.create_index("bq2", ef_construction=1), r"ef_construction"),
        "create_index lists zero": (lambda e: e.docs.create_index("vector", "ivfflat", lists=0), r"lists"),
        "create_index concurrently in transaction": (
            lambda e: _in_transaction(e, lambda: e.docs.create_index("sq8", concurrently=True)), r"concurrently"),
        "drop_index unknown": (lambda e: e.docs.drop_index("nope"), r"nope"),
        "drop_codec unknown": (lambda e: e.docs.drop_codec("nope"), r"nope"),
        "codec unknown": (lambda e: e.docs.codec("nope"), r"nope"),
        "tune recall zero": (lambda e: e.docs.tune(0, sample=10), r"recall"),
        "tune recall above 1": (lambda e: e.docs.tune(1.5, sample=10), r"recall"),
        "tune sample zero": (lambda e: e.docs.tune(0.9, sample=0), r"sample"),
        "tune selectivity zero": (lambda e: e.docs.tune(0.9, sample=10, selectivities=[0]), r"selectivit"),
        "tune selectivity above 1": (lambda e: e.docs.tune(0.9, sample=10, selectivities=[1.5]), r"selectivit"),
        "tune no selectivities": (lambda e: e.docs.tune(0.9, sample=10, selectivities=[]), r"selectivit"),
        "tune unknown codec": (lambda e: e.docs.tune(0.9, sample=10, codecs=["nope"]), r"'nope'"),
        "create_collection dim zero": (lambda e: e.db.create_collection("c1", 0), r"dim"),
        "create_collection dim negative": (lambda e: e.db.create_collection("c1", -4), r"dim"),
        "create_collection dim too large": (lambda e: e.db.create_collection("c1", 16001), r"dim|16000"),
        "create_collection dim str": (lambda e: e.db.create_collection("c1", "x"), r"dim"),
        "create_collection empty name": (lambda e: e.db.create_collection("", DIM), r"name"),
        "create_collection attr type unknown": (lambda e: e.db.create_collection("c1", DIM, attrs={"a": "no_type"}),
                                                r"no_type"),
        "create_collection attr type injection": (
            lambda e: e.db.create_collection("c1", DIM, attrs={"a": "int); DROP TABLE docs; --"}), r"type|DROP"),
        "create_collection key type": (lambda e: e.db.create_collection("c1", DIM, key_type="nope"), r"nope|key"),
        "create_collection metric": (lambda e: e.db.create_collection("c1", DIM, metric="nope"), r"nope|metric"),
        "create_collection placement": (lambda e: e.db.create_collection("c1", DIM, placement="nope"),
                                        r"nope|placement"),
        "create_collection existing": (lambda e: e.db.create_collection("docs", DIM), r"docs|exists"),
        "create_collection attr named like the key": (lambda e: e.db.create_collection("c1", DIM, attrs={"id": "text"}),
                                                      r"\bid\b"),
        "collection no table": (lambda e: e.db.collection("no_such_table"), r"no_such_table"),
        "collection no vector column": (lambda e: e.db.collection("docs", vector="nope", name="d2"), r"nope"),
        "collection no key column": (lambda e: e.db.collection("docs", key="nope", name="d2"), r"nope"),
        "collection other metric": (lambda e: e.db.collection("docs", metric="l2"), r"metric 'cosine', not 'l2'"),
        "get_collection unknown": (lambda e: e.db.get_collection("nope"), r"nope"),
        "search columns unknown": (lambda e: e.docs.search(GOOD, 5, columns=["nope"]), r"nope"),
        "search columns str": (lambda e: e.docs.search(GOOD, 5, columns="cat"), r"columns"),
        "search columns int": (lambda e: e.docs.search(GOOD, 5, columns=[1]), r"columns|1"),
        "search_batch where count": (lambda e: e.docs.search_batch(x[:3], 5, where=[{"cat": "a"}] * 2),
                                     r"3|2|filters"),
        "search_batch workers zero": (lambda e: e.docs.search_batch(x[:3], 5, workers=0), r"workers"),
        "search_batch workers negative": (lambda e: e.docs.search_batch(x[:3], 5, workers=-1), r"workers"),
        "search_batch workers str": (lambda e: e.docs.search_batch(x[:3], 5, workers="x"), r"workers"),
        "search_batch strategy": (lambda e: e.docs.search_batch(x[:3], 5, strategy="nope"), r"nope|strategy"),
        "search params not SearchParams": (lambda e: e.docs.search(GOOD, 5, params={"recall": 0.9}),
                                           r"params|SearchParams"),
        "advise no workload": (lambda e: e.docs.advise([]), r"workload|empty|no quer"),
        "advise unknown codec": (lambda e: e.docs.advise([{"cat": "a"}], codec="nope"), r"nope"),
        "advise min_share": (lambda e: e.docs.advise([{"cat": "a"}], min_share=2), r"min_share"),
        "sample negative": (lambda e: e.docs.sample(-1), r"\bn\b|sample|-1"),
        "database from a str": (lambda e: pgembed.Database("postgresql://x"), r"connection|str"),
    }
    for name, (call, says) in cases.items():
        yield Case("python", name, call, says)


def _in_transaction(env: Env, work: Callable[[], Any]) -> Any:
    with env.db.transaction():
        return work()


# -- the command line ----------------------------------------------------------------------------------------------
def cli_cases() -> Iterator[Case]:
    cases: dict[str, tuple[list[str], str]] = {
        "search unknown collection": (["search", "nope", "--query", json.dumps(GOOD.tolist())], r"nope"),
        "search query not json": (["search", "docs", "--query", "[1,2"], r"query|JSON"),
        "search query wrong dim": (["search", "docs", "--query", "[1, 2, 3]"], r"dimension|16"),
        "search query strings": (["search", "docs", "--query", '["a"]'], r"query|number|str"),
        "search no query": (["search", "docs"], r"query"),
        "search k zero": (["search", "docs", "--query", json.dumps(GOOD.tolist()), "--k", "0"], r"\bk\b"),
        "search where not json": (["search", "docs", "--query", json.dumps(GOOD.tolist()), "--where", "{x"],
                                  r"where|JSON"),
        "search where unknown column": (["search", "docs", "--query", json.dumps(GOOD.tolist()), "--where",
                                         '{"nope": 1}'], r"nope"),
        "search recall": (["search", "docs", "--query", json.dumps(GOOD.tolist()), "--recall", "2"], r"recall"),
        "search codec": (["search", "docs", "--query", json.dumps(GOOD.tolist()), "--codec", "nope"], r"nope"),
        "search columns": (["search", "docs", "--query", json.dumps(GOOD.tolist()), "--columns", "nope"], r"nope"),
        "search query file missing": (["search", "docs", "--query-file", "/nonexistent/q.npy"],
                                      r"--query-file .*q.npy"),
        "search row out of range": (["search", "docs", "--query-file", "{files}/q.npy", "--row", "99"], r"--row 99"),
        "add-codec unknown spec": (["add-codec", "docs", "c1", "zz"], r"zz"),
        "add-codec existing": (["add-codec", "docs", "bq2", "bq2"], r"bq2"),
        "add-codec unknown collection": (["add-codec", "nope", "c1", "bq"], r"nope"),
        "index unknown codec": (["index", "docs", "--on", "nope"], r"nope"),
        "index where unknown column": (["index", "docs", "--on", "bq2", "--where", '{"nope": 1}'], r"nope"),
        "ingest missing file": (["ingest", "docs", "--vectors", "/nonexistent/v.npy"], r"--vectors .*v.npy"),
        "ingest wrong dim": (["ingest", "docs", "--vectors", "{files}/wrong_dim.npy"], r"dimension|16"),
        "ingest not npy": (["ingest", "docs", "--vectors", "{files}/not.npy"], r"--vectors .*not.npy"),
        "ingest existing ids": (["ingest", "docs", "--vectors", "{files}/good.npy", "--start-id", "0"],
                                r"already exists|duplicate"),
        "info unknown": (["info", "nope"], r"nope"),
        "attach no table": (["attach", "no_such_table"], r"no_such_table"),
        "attach no vector column": (["attach", "docs", "--vector", "nope", "--name", "d2"], r"nope"),
        "tune recall": (["tune", "docs", "--recall", "2"], r"recall"),
        "tune selectivities": (["tune", "docs", "--selectivities", "x"], r"selectivit|x"),
        "advise workload missing": (["advise", "docs", "--workload", "/nonexistent/w.json"], r"w.json|No such"),
        "advise workload not json": (["advise", "docs", "--workload", "{files}/not.json"], r"not.json|JSON"),
        "migrate unknown revision": (["migrate", "--revision", "nope"], r"'nope'"),
    }
    for name, (argv, says) in cases.items():
        yield Case("cli", name, lambda e, a=argv: _cli(e, a), says)


class CliFailed(Exception):
    pass


def _cli(env: Env, argv: list[str]) -> None:
    args = [a.replace("{files}", str(env.files)) for a in argv]
    code = main([*args, "--dsn", env.dsn, "--json"])
    if code != 0:
        raise CliFailed(code)


# -- SQL ------------------------------------------------------------------------------------------------------------
def sql_cases() -> Iterator[Case]:
    v = f"'{GOOD_TEXT}'::vector"
    cases: dict[str, tuple[str, str]] = {
        "search unknown collection": (f"SELECT * FROM pgembed.search('nope', {v})", r"nope"),
        "search wrong dim": ("SELECT * FROM pgembed.search('docs', '[1,2,3]'::vector)", r"dimension|16|3"),
        "search k zero": (f"SELECT * FROM pgembed.search('docs', {v}, 0)", r"\bk\b"),
        "search k negative": (f"SELECT * FROM pgembed.search('docs', {v}, -1)", r"\bk\b"),
        "search k null": (f"SELECT * FROM pgembed.search('docs', {v}, NULL)", r"\bk\b"),
        "search null query": ("SELECT * FROM pgembed.search('docs', NULL)", r"query"),
        "search null collection": (f"SELECT * FROM pgembed.search(NULL, {v})", r"collection"),
        "search filter unknown column": (f"""SELECT * FROM pgembed.search('docs', {v}, 5, '{{"nope": 1}}')""",
                                         r"nope"),
        "search filter unknown operator": (
            f"""SELECT * FROM pgembed.search('docs', {v}, 5, '{{"cat": {{"$foo": 1}}}}')""", r"\$foo"),
        "search filter wrong type": (f"""SELECT * FROM pgembed.search('docs', {v}, 5, '{{"year": "abc"}}')""",
                                     r"year|integer|abc"),
        "search filter array": (f"SELECT * FROM pgembed.search('docs', {v}, 5, '[1]')", r"filter|object|array"),
        "search filter number": (f"SELECT * FROM pgembed.search('docs', {v}, 5, '7')", r"filter|object|number"),
        "search filter not json": (f"SELECT * FROM pgembed.search('docs', {v}, 5, '{{x')", r"json"),
        "search filter in not array": (
            f"""SELECT * FROM pgembed.search('docs', {v}, 5, '{{"cat": {{"$in": "a"}}}}')""", r"\$in|array|list"),
        "search recall": (f"SELECT * FROM pgembed.search('docs', {v}, 5, recall => 1.5)", r"recall"),
        "search recall negative": (f"SELECT * FROM pgembed.search('docs', {v}, 5, recall => -1)", r"recall"),
        "search codec": (f"SELECT * FROM pgembed.search('docs', {v}, 5, codec => 'nope')", r"nope"),
        "search ef_search": (f"SELECT * FROM pgembed.search('docs', {v}, 5, ef_search => 0)", r"ef_search"),
        "search oversample": (f"SELECT * FROM pgembed.search('docs', {v}, 5, oversample => 0)", r"oversample"),
        "search plan": (f"SELECT * FROM pgembed.search('docs', {v}, 5, plan => 'nope')", r"plan|nope"),
        "search refine": (f"SELECT * FROM pgembed.search('docs', {v}, 5, refine => 'nope')", r"nope"),
        "search nan": ("SELECT * FROM pgembed.search('docs', ('[' || repeat('NaN,', 15) || 'NaN]')::vector)",
                       r"NaN"),
        "search_plan k zero": (f"SELECT pgembed.search_plan('docs', {v}, 0)", r"\bk\b"),
        "search_batch filters count": (
            f"""SELECT * FROM pgembed.search_batch('docs', ARRAY[{v}, {v}], 5, ARRAY['{{}}'::jsonb, '{{}}', '{{}}'])""",
            r"3 filters for 2 queries"),
        "search_batch mixed dims": (
            f"SELECT * FROM pgembed.search_batch('docs', ARRAY[{v}, '[1,2]'::vector], 5)", r"dimension|16|2"),
        "search_batch k zero": (f"SELECT * FROM pgembed.search_batch('docs', ARRAY[{v}], 0)", r"\bk\b"),
        "search_batch null queries": ("SELECT * FROM pgembed.search_batch('docs', NULL)", r"quer"),
        "search_batch unknown collection": (f"SELECT * FROM pgembed.search_batch('nope', ARRAY[{v}])", r"nope"),
        "search_batch recall": (f"SELECT * FROM pgembed.search_batch('docs', ARRAY[{v}], 5, recall => 2)",
                                r"recall"),
        "scan_topk unknown collection": (f"SELECT * FROM pgembed.scan_topk('nope', ARRAY[{v}])", r"nope"),
        "scan_topk k zero": (f"SELECT * FROM pgembed.scan_topk('docs', ARRAY[{v}], 0)", r"\bk\b"),
        "scan_topk wrong dim": ("SELECT * FROM pgembed.scan_topk('docs', ARRAY['[1,2]'::vector])", r"dimension|16"),
        "query_table unknown codec": (f"SELECT pgembed.query_table('docs', 'nope', {v})", r"nope"),
        "query_table wrong dim": ("SELECT pgembed.query_table('docs', 'sq8', '[1,2]'::vector)", r"dimension|16"),
        "insert wrong dim": ("INSERT INTO docs (id, embedding) VALUES (100000, '[1,2,3]')", r"dimension|16"),
        "insert nan": (
            "INSERT INTO docs (id, embedding) VALUES (100000, ('[' || repeat('NaN,', 15) || 'NaN]')::vector)", r"NaN"),
        "insert duplicate key": (f"INSERT INTO docs (id, embedding) VALUES (0, {v})", r"duplicate key"),
        "update to wrong dim": ("UPDATE docs SET embedding = '[1,2]' WHERE id = 1", r"dimension|16"),
    }
    for name, (statement, says) in cases.items():
        yield Case("sql", name, lambda e, s=statement: e.conn.execute(s), says)


CASES = [*python_cases(), *cli_cases(), *sql_cases()]


def test_the_suite_has_at_least_200_cases_through_each_face() -> None:
    faces = {face: sum(c.face == face for c in CASES) for face in ("python", "cli", "sql")}
    assert len(CASES) >= 200 and all(n >= 25 for n in faces.values()), faces
    assert len({c.id for c in CASES}) == len(CASES)


# -- the shared collection and the checksum ------------------------------------------------------------------------
STATE = """
SELECT md5(concat_ws('|',
    (SELECT string_agg(t::text, ';' ORDER BY t.id) FROM docs AS t),
    (SELECT string_agg(format('%s %s %s %s', attname, atttypid, atttypmod, attnotnull), ';' ORDER BY attnum)
       FROM pg_attribute WHERE attrelid = 'docs'::regclass AND attnum > 0 AND NOT attisdropped),
    (SELECT string_agg(indexdef, ';' ORDER BY indexname) FROM pg_indexes WHERE schemaname IN ('public', 'pgembed')),
    (SELECT string_agg(tgname, ';' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal),
    (SELECT string_agg(relname, ';' ORDER BY relname) FROM pg_class
       WHERE relnamespace IN ('public'::regnamespace, 'pgembed'::regnamespace) AND relkind IN ('r', 'v', 'm')),
    (SELECT string_agg(c::text, ';' ORDER BY c.id) FROM pgembed.collections AS c),
    (SELECT string_agg(c::text, ';' ORDER BY c.id) FROM pgembed.codecs AS c),
    (SELECT string_agg(i::text, ';' ORDER BY i.index_name) FROM pgembed.indexes AS i),
    (SELECT string_agg(t::text, ';') FROM (SELECT * FROM pgembed.tuning ORDER BY 1, 2, 3) AS t)))
"""


@pytest.fixture(scope="module")
def env(server_dsn_for_module: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    dsn = server_dsn_for_module
    files = tmp_path_factory.mktemp("bad_input")
    np.save(files / "q.npy", unit_vectors(3, DIM, seed=14))
    np.save(files / "wrong_dim.npy", np.ones((4, 3), dtype=np.float32))
    np.save(files / "good.npy", unit_vectors(4, DIM, seed=15))
    (files / "not.npy").write_text("not an array")
    (files / "not.json").write_text("{not json")
    with pgembed.connect(dsn) as db, psycopg.connect(dsn, autocommit=True) as conn:
        docs = db.create_collection("docs", DIM, attrs={"cat": "text", "year": "integer"})
        docs.ingest(np.arange(ROWS), unit_vectors(ROWS, DIM, seed=10),
                    {"cat": ["a" if i % 3 else "b" for i in range(ROWS)], "year": [2000 + i % 20 for i in range(ROWS)]})
        docs.add_codec("bq2", "bq2")
        docs.add_codec("sq8", "sq8")
        docs.create_index("bq2")
        yield Env(db, docs, conn, dsn, files)


def checksum(env: Env) -> str:
    return str(env.conn.execute(STATE).fetchone()[0])


def failure_message(env: Env, case: Case, capsys: pytest.CaptureFixture[str]) -> str:
    try:
        case.call(env)
    except CliFailed:
        out = capsys.readouterr()
        try:
            return str(json.loads(out.out.strip().splitlines()[-1])["message"])
        except (ValueError, IndexError, KeyError):
            return out.out + out.err
    except SystemExit as err:  # argparse refused the arguments: its message is on stderr
        return f"{capsys.readouterr().err} (exit {err.code})"
    except (pgembed.errors.PgembedError, psycopg.Error, TypeError, ValueError) as err:
        return f"{type(err).__name__}: {err}"
    return ""


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_a_clear_error_and_changes_nothing(env: Env, case: Case,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    before = checksum(env)
    message = failure_message(env, case, capsys)
    assert message, f"{case.id}: no error"
    assert re.search(case.says, message), f"{case.id}: the message does not name the problem: {message!r}"
    assert "Traceback" not in message
    assert checksum(env) == before, f"{case.id}: the table or the catalog changed"
    assert not env.db.in_transaction and len(env.docs.search(GOOD, 3)) == 3  # and pgembed goes on working
