"""`pgembed migrate | collections | info | attach | add-codec | index | ingest`: the catalog and a collection's
codecs, indexes and rows, each the library call of the same name."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

import pgembed
from pgembed.cli._common import METRICS, Add, console, emit, json_arg, load_npy, table_console
from pgembed.db import migrate as migrations
from pgembed.errors import InvalidInputError
from pgembed.vocabulary import IndexMethod, Placement


def open_db(args: argparse.Namespace) -> pgembed.Database:
    return pgembed.connect(args.dsn, data_dir=args.data_dir)


def cmd_migrate(args: argparse.Namespace) -> None:
    with pgembed.connect(args.dsn, data_dir=args.data_dir, migrate=False) as db:
        before = db.catalog_revision()
        if args.downgrade:
            db.downgrade(args.downgrade)
        else:
            db.migrate(args.revision)
        after = db.catalog_revision()
    emit(args, {"from": before, "to": after, "head": migrations.head_revision()},
         lambda d: console.print(f"catalog: {d['from']} -> {d['to']} (head {d['head']})"))


def cmd_collections(args: argparse.Namespace) -> None:
    with open_db(args) as db:
        rows = [{**asdict(c), "metric": c.metric.value} for c in db.collections()]

    def render(rows: list[dict[str, Any]]) -> None:
        table = Table("name", "table", "key", "vector", "dim", "metric")
        for r in rows:
            table.add_row(r["name"], f"{r['table_schema']}.{r['table_name']}", r["key_column"], r["vector_column"],
                          str(r["dim"]), r["metric"])
        table_console().print(table)

    emit(args, rows, render)


def cmd_info(args: argparse.Namespace) -> None:
    with open_db(args) as db:
        info = db.get_collection(args.name).describe()
    emit(args, info, lambda d: table_console().print_json(json.dumps(d, default=str)))


def cmd_attach(args: argparse.Namespace) -> None:
    with open_db(args) as db:
        info = db.collection(args.table, vector=args.vector, key=args.key, metric=args.metric,
                             name=args.name, placement=args.placement).describe()
    emit(args, info, lambda d: console.print(f"collection {d['name']}: {d['rows']} rows, dim {d['dim']}"))


def cmd_add_codec(args: argparse.Namespace) -> None:
    with open_db(args) as db:
        collection = db.get_collection(args.collection)
        queries = load_npy(args.fit_queries, "--fit-queries") if args.fit_queries else None
        collection.add_codec(args.codec_name, args.spec, sample=args.sample, fit_queries=queries,
                             progress=not args.json)
        info = collection.describe()
    emit(args, info["codecs"], lambda d: console.print(f"codecs: {', '.join(c['name'] for c in d)}"))


def cmd_index(args: argparse.Namespace) -> None:
    with open_db(args) as db:
        index = db.get_collection(args.collection).create_index(
            args.on, args.method, m=args.m, ef_construction=args.ef_construction, lists=args.lists,
            where=json_arg(args.where, "--where"), concurrently=args.concurrently, progress=not args.json,
        )
    data = {**asdict(index), "method": index.method.value}
    emit(args, data, lambda d: console.print(f"built {d['index_name']} in {d['build_seconds']:.1f}s"))


def cmd_text_search(args: argparse.Namespace) -> None:
    with open_db(args) as db:
        collection = db.get_collection(args.collection)
        if args.drop:
            collection.drop_text_search()
            data = None
        else:
            if args.column is None:
                raise InvalidInputError("text-search takes the text column to search (or --drop)")
            data = asdict(collection.add_text_search(args.column, args.config, stored=args.stored,
                                                     concurrently=args.concurrently))
    emit(args, data, lambda d: console.print("text search dropped" if d is None else
                                             f"text search on {d['column_name']} ({d['config']}): {d['index_name']}"))


def cmd_ingest(args: argparse.Namespace) -> None:
    try:
        vectors = load_npy(args.vectors, "--vectors", mmap=True)
        ids = load_npy(args.ids, "--ids") if args.ids else np.arange(args.start_id, args.start_id + len(vectors))
    except (OSError, ValueError) as err:
        raise InvalidInputError(f"cannot read {args.vectors if not args.ids else args.ids}: {err}") from err
    with open_db(args) as db:
        collection = db.get_collection(args.collection)
        batches = ((ids[i : i + args.batch], vectors[i : i + args.batch], None)
                   for i in range(0, len(vectors), args.batch))
        rows = collection.ingest_batches(batches, progress=not args.json, total=len(vectors))
    emit(args, {"rows": rows}, lambda d: console.print(f"ingested {d['rows']} rows"))


def register(add: Add, parents: dict[str, argparse.ArgumentParser]) -> None:
    db = [parents["db"]]
    p = add("migrate", cmd_migrate, "upgrade (or --downgrade) pgembed's catalog schema", db)
    p.add_argument("--revision", default="head")
    p.add_argument("--downgrade", default=None, metavar="REV", help="downgrade to REV ('base' removes it)")
    add("collections", cmd_collections, "list collections", db)
    p = add("info", cmd_info, "describe a collection: codecs, indexes, sizes", db)
    p.add_argument("name")
    p = add("attach", cmd_attach, "make an existing table with a vector column a collection", db)
    p.add_argument("table")
    p.add_argument("--vector", default=None, help="its vector column (default: the only one)")
    p.add_argument("--key", default=None, help="its key column (default: the single-column primary key)")
    p.add_argument("--metric", default=None, choices=METRICS, help="for a new collection (default cosine)")
    p.add_argument("--name", default=None, help="the collection's name (default: the table's)")
    p.add_argument("--placement", default=None, choices=[x.value for x in Placement],
                   help="where codes live: columns of the table, or a companion table pgembed keeps")
    p = add("add-codec", cmd_add_codec, "add a code column (kept in step by the database) and fill it", db)
    p.add_argument("collection")
    p.add_argument("codec_name")
    p.add_argument("spec", help="codec spec: f16, bq, bq2..bq4, sq8, osq4, pq48, pca128,bq2, rabitq, ...")
    p.add_argument("--sample", type=int, default=50_000, help="rows to fit trainable codecs on")
    p.add_argument("--fit-queries", default=None, metavar="Q.npy", help="a query sample (LeanVec fits on it)")
    p = add("index", cmd_index, "build a pgvector index on the vector or on a codec's codes", db)
    p.add_argument("collection")
    p.add_argument("--on", default="vector", help="'vector' or a codec name")
    p.add_argument("--method", default="hnsw", choices=[m.value for m in IndexMethod])
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=64)
    p.add_argument("--lists", type=int, default=None)
    p.add_argument("--concurrently", action="store_true")
    p.add_argument("--where", default=None, metavar="JSON",
                   help="a partial index over the rows this filter keeps, e.g. '{\"category\": \"news\"}'")
    p = add("text-search", cmd_text_search, "full-text search on a text column, for hybrid search (--text)", db)
    p.add_argument("collection")
    p.add_argument("column", nargs="?", default=None, help="the text column")
    p.add_argument("--config", default="english", help="the text search configuration")
    p.add_argument("--stored", action="store_true", help="keep the tsvector in a generated column (rewrites the "
                   "table once; ranks broad queries faster)")
    p.add_argument("--concurrently", action="store_true")
    p.add_argument("--drop", action="store_true", help="drop the collection's text search and its index")
    p = add("ingest", cmd_ingest, "bulk-load vectors from a .npy file through binary COPY", db)
    p.add_argument("collection")
    p.add_argument("--vectors", required=True, type=Path, help=".npy file, (n, dim)")
    p.add_argument("--ids", default=None, help=".npy file of keys (default: consecutive from --start-id)")
    p.add_argument("--start-id", type=int, default=0)
    p.add_argument("--batch", type=int, default=50_000)
