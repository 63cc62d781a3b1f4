"""A collection on one session, and what pgembed cached about it."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from pgembed.codecs import Codec, load_codec
from pgembed.db import catalog
from pgembed.db.introspection import Column, table_columns
from pgembed.db.session import Session
from pgembed.errors import SchemaError
from pgembed.records import CoarseSource, CodecInfo, CollectionInfo
from pgembed.vocabulary import CodecState

T = TypeVar("T")


class StaleCatalog(Exception):
    """What was cached of the catalog no longer holds (a re-fit or drop made elsewhere): read it again."""
CACHE_SECONDS = 30.0  # how long catalog facts and the planner's answers are trusted
CACHE_ENTRIES = 1024


class CollectionContext:
    """The collection `info` on `session`. Catalog facts it reads (code columns with indexes, the table's
    columns, fitted codecs) and the planner's answers are kept for CACHE_SECONDS; changes made through the
    engine clear them at once (`forget`), and a statement that fails because a re-fit elsewhere replaced a
    code column clears them too."""

    def __init__(self, session: Session, info: CollectionInfo) -> None:
        self.session = session
        self.info = info
        self._cache: OrderedDict[Hashable, Any] = OrderedDict()
        self._read_at = time.monotonic()

    def forget(self) -> None:
        """Drop what was cached (after codecs, indexes, tuning or the table's rows change)."""
        self._cache.clear()
        self._read_at = time.monotonic()

    def cached(self, key: Hashable, compute: Callable[[], T]) -> T:
        if time.monotonic() - self._read_at > CACHE_SECONDS:
            self.forget()
        try:  # one lookup fewer than `in` first: a search looks its plan up here on every call
            self._cache.move_to_end(key)
            return self._cache[key]  # type: ignore[no-any-return]
        except KeyError:
            pass
        value = compute()
        self._cache[key] = value
        if len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return value

    # -- catalog facts ---------------------------------------------------------------------------------------
    def codecs(self, *, include_retired: bool = False) -> list[CodecInfo]:
        """Read afresh: the codec life cycle decides on it."""
        return catalog.list_codecs(self.session, self.info.id, include_retired=include_retired)

    def active_codec(self, name: str) -> CodecInfo:
        codecs = self.codecs()
        for info in codecs:
            if info.name == name and info.state is CodecState.ACTIVE:
                return info
        if any(c.name == name and c.state is CodecState.BUILDING for c in codecs):
            raise SchemaError(f"codec {name!r} of collection {self.info.name!r} is still building (its add_codec() "
                              "was interrupted, or ran with backfill=False): call backfill() to finish it")
        known = ", ".join(c.name for c in codecs) or "none"
        raise SchemaError(f"collection {self.info.name!r} has no active codec {name!r} (codecs: {known})")

    def codec_of(self, codec_id: int | None) -> Codec:
        """The fitted codec version `codec_id` (an index plan's: PreparedSearch.codec_id). A re-fit gives the new
        version the old one's column, never its id, so what is cached for an id never goes stale; an id that is
        no longer active (a re-fit or drop made elsewhere) raises StaleCatalog."""
        def load() -> Codec:
            info = next((c for c in self.codecs() if c.id == codec_id and c.state is CodecState.ACTIVE), None)
            if info is None:
                raise StaleCatalog(f"codec version {codec_id} of {self.info.name!r} is no longer active")
            return load_codec(info.kind, self.info.dim, info.params)

        return self.cached(("codec", codec_id), load)

    def sources(self) -> list[CoarseSource]:
        return self.cached("sources", lambda: catalog.search_sources(self.session, self.info.id))

    def columns(self) -> dict[str, Column]:
        return self.cached("columns", lambda: table_columns(self.session, self.info.table))

    def key_type(self) -> str:
        column = self.columns().get(self.info.key_column)
        if column is None:
            raise SchemaError(f"key column {self.info.key_column!r} is gone from {self.info.qualified_name}")
        return column.type_name
