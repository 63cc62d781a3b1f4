"""Relevance judgments for a dataset of man-page passages, built offline from real text.

Each query is one base page's NAME description, the words after the dash (`ls - list directory contents`
gives "list directory contents"), and the relevant rows are that page's passages in the base. Both dataset
builders drop the NAME section from the passages (pgembed.tools.datasets.manpages), so no query text is in the
base. The description is rendered by man-db from the page installed on this machine. A page not installed here
is left out, and so is a description that several pages share, whose relevant rows would be ambiguous.

The queries are split in two halves, `train` and `test`: a relevance cut-off is fitted on the first and
measured on the second.

Files written to the output folder, beside the vectors when it is the dataset's own:
- relevance_queries.npy: float32 (n, dim), the descriptions embedded as the base was;
- relevance_queries.parquet: qid, page, text, split;
- qrels.parquet: qid, id (a relevant base row);
- relevance.json: the counts, the seed and how the judgments were made.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pgembed.errors import InvalidInputError
from pgembed.tools import models
from pgembed.tools.datasets import manpages
from pgembed.tools.datasets.files import base_texts
from pgembed.tools.datasets.folder import _pyarrow
from pgembed.tools.datasets.text import MODEL, embed

MIN_WORDS = 2  # a description of one word ("shell") says little about which page is meant
SPLITS = ("train", "test")


def description(name_line: str) -> str | None:
    """The words after the first " - " of a NAME line, or None when it has none."""
    _names, dash, text = name_line.partition(" - ")
    text = " ".join(text.split())
    return text if dash and len(text.split()) >= MIN_WORDS else None


def _installed_page(man_dir: Path, page: str) -> Path | None:
    section = page.rsplit(".", 1)[-1][:1]
    for candidate in (man_dir / f"man{section}" / f"{page}.gz", man_dir / f"man{section}" / page):
        if candidate.is_file():
            return candidate
    return None


def base_pages(dataset_dir: Path) -> tuple[dict[str, list[int]], int]:
    """Each man page of the base and its rows (a dataset with a `source` column: its 'man' rows only), and the
    base's number of rows."""
    attrs = _pyarrow().parquet.read_table(dataset_dir / "attrs.parquet").to_pydict()
    if "page" not in attrs:
        raise InvalidInputError(f"{dataset_dir}/attrs.parquet has no `page` column: relevance judgments need the "
                                "page each passage comes from")
    sources = attrs.get("source", ["man"] * len(attrs["page"]))
    rows: dict[str, list[int]] = defaultdict(list)
    for row_id, page, source in zip(attrs["id"], attrs["page"], sources, strict=True):
        if source == "man":
            rows[page].append(int(row_id))
    return dict(rows), len(attrs["id"])


def build_relevance(dataset_dir: str | Path, out_dir: str | Path, *, queries: int = 1000, seed: int = 0,
                    man_dir: str | Path = "/usr/share/man", model: Any = None,
                    log: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Write the judgments for up to `queries` pages of the dataset's base (a seeded sample); returns the meta."""
    dataset_dir, out, man_dir = Path(dataset_dir), Path(out_dir), Path(man_dir)
    pages, base_rows = base_pages(dataset_dir)
    installed = {page: path for page in sorted(pages) if (path := _installed_page(man_dir, page)) is not None}
    log(f"{len(pages):,} man pages in the base, {len(installed):,} installed here; reading their NAME lines")
    found = manpages.parse_pages([manpages.ManPage(path, page, page.rsplit(".", 1)[-1][:1])
                                  for page, path in installed.items()])
    described = {p.page.name: d for p in found if p is not None and p.name_line
                 and (d := description(p.name_line)) is not None}
    shared = Counter(d.lower() for d in described.values())
    usable = sorted(page for page, d in described.items() if shared[d.lower()] == 1)
    chosen = random.Random(seed).sample(usable, min(queries, len(usable)))
    texts = [described[page] for page in chosen]
    log(f"{len(usable):,} pages with a description of their own; embedding {len(chosen):,} of them")
    vectors = embed(model if model is not None else models.load(models.Model.MINILM), texts)
    # A folder shipped without its texts is not checked: the NAME section is never a passage anyway.
    passages = set(base_texts(dataset_dir, base_rows) or ())
    leaked = [t for t in texts if t in passages]
    if leaked:
        raise InvalidInputError(f"{len(leaked)} description(s) are base passages too, e.g. {leaked[0]!r}")
    half = len(chosen) // 2
    split = [SPLITS[0] if i < half else SPLITS[1] for i in range(len(chosen))]
    pa = _pyarrow()
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "relevance_queries.npy", vectors.astype(np.float32))
    pa.parquet.write_table(pa.table({"qid": list(range(len(chosen))), "page": chosen, "text": texts, "split": split}),
                           out / "relevance_queries.parquet")
    qids = [qid for qid, page in enumerate(chosen) for _ in pages[page]]
    ids = [row for page in chosen for row in pages[page]]
    pa.parquet.write_table(pa.table({"qid": pa.array(qids, pa.int32()), "id": pa.array(ids, pa.int32())}),
                           out / "qrels.parquet")
    meta = {"dataset": dataset_dir.name, "queries": len(chosen), "train": half, "test": len(chosen) - half,
            "judgments": len(ids), "relevant_per_query_median": float(np.median([len(pages[p]) for p in chosen])),
            "base_man_pages": len(pages), "installed": len(installed), "described": len(described),
            "unique_descriptions": len(usable), "seed": seed, "model": MODEL, "man_dir": str(man_dir),
            "how": "query: a base page's NAME description (after the dash), rendered by man-db from the page "
                   "installed on the build machine; relevant: that page's passages in the base"}
    (out / "relevance.json").write_text(json.dumps(meta, indent=2) + "\n")
    _describe_in_readme(out, meta)
    return meta


README_SECTION = "## Relevance judgments"


def _describe_in_readme(out: Path, meta: dict[str, Any]) -> None:
    """The folder's README (when it has one) says what the judgments are; a section written before is replaced."""
    readme = out / "README.md"
    if not readme.exists():
        return
    text = readme.read_text()
    text = text[:text.index(README_SECTION)].rstrip() + "\n" if README_SECTION in text else text
    readme.write_text(f"""{text}
{README_SECTION}

Built by `pgembed dataset relevance` (`pgembed.tools.datasets.relevance`, seed {meta['seed']}): {meta['queries']:,}
labelled queries ({meta['train']:,} `train`, {meta['test']:,} `test`) and {meta['judgments']:,} judgments. Each query
is one base page's NAME description, the words after the dash, embedded as the base was; its relevant rows are that
page's passages in the base (median {meta['relevant_per_query_median']:g} a query). The NAME section is never a
passage. Of the base's {meta['base_man_pages']:,} man pages, {meta['installed']:,} were installed on the build machine
(man-db renders the NAME line), {meta['unique_descriptions']:,} had a description no other page shares.

| file | content |
| --- | --- |
| `relevance_queries.npy` | float32, {meta['queries']:,} x dim: the descriptions' embeddings |
| `relevance_queries.parquet` | qid, page, text, split (`train` / `test`) |
| `qrels.parquet` | qid, id: a relevant base row of the query |
| `relevance.json` | counts, seed, model, how they were made |
""")


def load_relevance(folder: str | Path) -> tuple[np.ndarray, dict[str, list[Any]], list[set[int]]]:
    """(query vectors, the queries' table as columns, each query's relevant base rows)."""
    folder = Path(folder)
    pa = _pyarrow()
    vectors = np.load(folder / "relevance_queries.npy")
    table = pa.parquet.read_table(folder / "relevance_queries.parquet").to_pydict()
    qrels = pa.parquet.read_table(folder / "qrels.parquet").to_pydict()
    relevant: list[set[int]] = [set() for _ in range(len(vectors))]
    for qid, row in zip(qrels["qid"], qrels["id"], strict=True):
        relevant[qid].add(int(row))
    return vectors, table, relevant
