"""A text corpus from the English man pages installed on this machine, cut into passages of 20..120 words.

Pages are rendered by man-db (`man -l`, groff) rather than parsed from roff here: groff already knows every
macro package and preprocessor (tbl, eqn) the pages use. Rendering at 4000 columns without hyphenation or
justification puts each paragraph on one line, so paragraphs are lines and indentation tells the structure.
Only prose is kept: SYNOPSIS, SEE ALSO, AUTHOR-type sections and blocks that read as code are dropped.
"""

from __future__ import annotations

import fnmatch
import gzip
import math
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pgembed.errors import PgembedError

MIN_WORDS, MAX_WORDS = 20, 120
SECTIONS = ("1", "2", "3", "4", "5", "6", "7", "8")
# google-cloud-cli installs ~16,600 generated gcloud reference pages: left in, they would be most of the corpus.
EXCLUDE = ("gcloud*",)
_DROPPED_SECTIONS = {"NAME", "SYNOPSIS", "SEE ALSO", "COLOPHON", "LIBRARY", "REPORTING BUGS", "AVAILABILITY",
                     "TRANSLATION", "TRANSLATIONS", "LICENSE", "LICENCE"}
_DROPPED_PREFIXES = ("AUTHOR", "COPYRIGHT", "SEE ALSO")
_WORD = re.compile(r"^[(\"'`]*[A-Za-z][A-Za-z'-]*[)\"'`.,;:!?]*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'`])")
_SAME_LINE_TAG = re.compile(r"^(\S+(?: \S+)?)( {2,})(\S.*)$")
_BULLETS = {"o", "*", "-", "+", "\u00b7"}  # list bullets as groff renders them in ASCII


class ManRenderError(PgembedError):
    """man-db could not render a page, or is not installed."""


@dataclass(frozen=True)
class ManPage:
    path: Path
    name: str  # file name without .gz: 'ls.1', 'openssl-req.1ssl'
    section: str  # the man<N> folder: '1'..'8'


@dataclass(frozen=True)
class Passage:
    page: str
    section: str
    heading: str  # the man section heading it sits under (DESCRIPTION, OPTIONS, ...)
    position: int  # index within its page
    text: str

    @property
    def n_words(self) -> int:
        return len(self.text.split())


@dataclass(frozen=True)
class ParsedPage:
    page: ManPage
    name_line: str | None  # the NAME section: 'ls - list directory contents'
    passages: tuple[Passage, ...]


def list_pages(man_dir: str | Path = "/usr/share/man", sections: Sequence[str] = SECTIONS,
               exclude: Sequence[str] = EXCLUDE) -> list[ManPage]:
    """English pages (man<N>/, not the <lang>/ translations), sorted; symlinks and `.so` aliases skipped."""
    pages = []
    for section in sections:
        folder = Path(man_dir) / f"man{section}"
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            name = path.name.removesuffix(".gz")
            if path.is_symlink() or not path.is_file() or any(fnmatch.fnmatch(name, pat) for pat in exclude):
                continue
            if _is_alias(path):
                continue
            pages.append(ManPage(path=path, name=name, section=section))
    return pages


def _is_alias(path: Path) -> bool:
    # A page that is only `.so man1/other.1` renders another page: counting it would duplicate that page.
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(512)
    except (OSError, EOFError):
        return True  # unreadable: nothing to index
    lines = [ln.strip() for ln in head.decode("latin-1").splitlines() if ln.strip() and not ln.startswith(".\\\"")]
    return bool(lines) and lines[0].startswith(".so ") and len(lines) <= 2


def render(path: str | Path, *, timeout: float = 60.0) -> str:
    """The page as plain ASCII text, one line per paragraph (4000 columns, no hyphenation, left-adjusted)."""
    man = shutil.which("man")
    if man is None:
        raise ManRenderError("rendering man pages needs man-db and groff: apt-get install man-db groff-base")
    # LC_ALL=C: ASCII output (no Unicode hyphens or quotes to normalise); MAN_KEEP_FORMATTING would keep overstrikes.
    env = {k: v for k, v in os.environ.items() if k != "MAN_KEEP_FORMATTING"}
    env.update(LC_ALL="C", MANWIDTH="4000", MANROFFOPT="-rHY=0 -dAD=l", MANPAGER="cat", PAGER="cat")
    try:
        done = subprocess.run([man, "-l", str(path)], env=env, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as err:
        raise ManRenderError(f"{path}: man -l took longer than {timeout:.0f}s") from err
    if done.returncode != 0 or not done.stdout.strip():
        raise ManRenderError(f"{path}: man -l failed ({done.returncode}): {done.stderr.decode(errors='replace')[:300]}")
    return done.stdout.decode("ascii", errors="replace")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _blocks(text: str) -> Iterator[tuple[str, list[tuple[int, str]]]]:
    """(section heading, lines of one blank-line-separated block with their indentation), in page order."""
    lines = [ln.rstrip() for ln in text.splitlines()]
    nonempty = [i for i, ln in enumerate(lines) if ln]
    if len(nonempty) > 2:  # the running header ('LS(1) ... LS(1)') and footer ('GNU coreutils ... LS(1)')
        lines = lines[nonempty[0] + 1:nonempty[-1]]
    # Body text sits at column 7 (man macros) or 5 (mdoc); sub-headings to the left of it, headings at 0.
    indents = Counter(_indent(ln) for ln in lines if ln and 0 < _indent(ln) <= 8)
    body = indents.most_common(1)[0][0] if indents else 7
    heading, block = "", list[tuple[int, str]]()
    for line in lines:
        ind = _indent(line)
        if not line or ind < body:
            if block:
                yield heading, block
                block = []
            if line and ind == 0:
                heading = " ".join(line.split()).upper()
            continue
        block.append((ind, line.strip()))
    if block:
        yield heading, block


def _paragraph(block: list[tuple[int, str]]) -> str:
    """One block's text; a tagged paragraph (.TP) becomes 'TAG: body' so the body keeps what it is about."""
    parts = []
    for i, (ind, line) in enumerate(block):
        if i + 1 < len(block) and block[i + 1][0] > ind and len(line) <= 80:
            parts.append(f"{line.rstrip(':')}:")  # a tag on its own line, its body indented below it
            continue
        m = _SAME_LINE_TAG.match(line)
        # '-c     with -lt: sort by ...': a short tag padded to the body's column (a one-line .TP / .IP).
        if m and len(m.group(1)) <= 12 and not m.group(1).endswith(".") and len(m.group(1) + m.group(2)) >= 4:
            tag, body = m.group(1), m.group(3)
            line = body if tag in _BULLETS else f"{tag.rstrip(':')}: {body}"
        parts.append(line)
    return " ".join(parts)


def is_prose(text: str) -> bool:
    """True when most tokens are words: code, option tables, ASCII-art tables and file listings are not."""
    tokens = text.split()
    if not tokens or "+--" in text or "--+" in text or text.count("|") >= 4:
        return False
    words = sum(1 for t in tokens if _WORD.match(t))
    return words / len(tokens) >= 0.65


def _keep_section(heading: str) -> bool:
    return heading not in _DROPPED_SECTIONS and not heading.startswith(_DROPPED_PREFIXES) and heading != ""


def _split_long(text: str) -> list[str]:
    """A paragraph over MAX_WORDS as balanced chunks at sentence boundaries (at words when a sentence is longer)."""
    units: list[list[str]] = []
    for sentence in _SENTENCE_END.split(text):
        words = sentence.split()
        units.extend(words[i:i + MAX_WORDS] for i in range(0, len(words), MAX_WORDS))
    total = sum(len(u) for u in units)
    target = total / math.ceil(total / MAX_WORDS)
    chunks: list[list[str]] = [[]]
    for unit in units:
        if chunks[-1] and (len(chunks[-1]) + len(unit) > MAX_WORDS or len(chunks[-1]) >= target):
            chunks.append([])
        chunks[-1].extend(unit)
    return [" ".join(c) for c in chunks]


def pack(paragraphs: Iterable[str]) -> list[str]:
    """Passages of MIN_WORDS..MAX_WORDS from one section: long paragraphs split, short neighbours merged."""
    out: list[str] = []
    buf: list[str] = []
    for para in paragraphs:
        for piece in _split_long(para) if len(para.split()) > MAX_WORDS else [para]:
            n_buf, n_piece = sum(len(b.split()) for b in buf), len(piece.split())
            if buf and (n_buf >= MIN_WORDS or n_buf + n_piece > MAX_WORDS):
                _flush(buf, out)
                buf = []
            buf.append(piece)
    _flush(buf, out)
    return out


def _flush(buf: list[str], out: list[str]) -> None:
    if not buf:
        return
    text = " ".join(buf)
    n = len(text.split())
    if n >= MIN_WORDS:
        out.append(text)
    elif out and len(out[-1].split()) + n <= MAX_WORDS:
        out[-1] = f"{out[-1]} {text}"  # a short tail joins the passage before it rather than being lost
    # else: a short paragraph alone in its section: too little text to be a passage


def split_passages(text: str, page: str = "", section: str = "") -> tuple[str | None, list[Passage]]:
    """The NAME line and the prose passages of a rendered page."""
    name_parts: list[str] = []
    by_heading: list[tuple[str, list[str]]] = []
    for heading, block in _blocks(text):
        if heading == "NAME":
            name_parts.append(" ".join(t for _, t in block))
            continue
        if not _keep_section(heading):
            continue
        para = " ".join(_paragraph(block).split())
        if not is_prose(para):
            continue
        if not by_heading or by_heading[-1][0] != heading:
            by_heading.append((heading, []))
        by_heading[-1][1].append(para)
    passages: list[Passage] = []
    for heading, paras in by_heading:
        for text_ in pack(paras):
            passages.append(Passage(page=page, section=section, heading=heading, position=len(passages), text=text_))
    name_line = " ".join(" ".join(name_parts).split()) or None
    return name_line, passages


def parse_page(page: ManPage) -> ParsedPage:
    name_line, passages = split_passages(render(page.path), page.name, page.section)
    return ParsedPage(page=page, name_line=name_line, passages=tuple(passages))


def parse_pages(pages: Sequence[ManPage], *, workers: int | None = None) -> Iterator[ParsedPage | None]:
    """Parsed pages in the order given (None for a page man-db cannot render), rendered in parallel."""
    def one(p: ManPage) -> ParsedPage | None:
        try:
            return parse_page(p)
        except ManRenderError:
            if shutil.which("man") is None:
                raise
            return None

    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # A window at a time, so a caller that stops early (enough passages) has not rendered every page.
        for start in range(0, len(pages), 4 * workers):
            yield from pool.map(one, pages[start:start + 4 * workers])
