"""Rows of pgembed's catalog (schema "pgembed", sql/migrations/), as the layers above read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from pgembed.vocabulary import CodecState, IndexMethod, Metric, Placement


@dataclass(frozen=True)
class CollectionInfo:
    """A user table with a vector column that pgembed knows about (pgembed.collections)."""

    id: int
    name: str
    table_schema: str
    table_name: str
    key_column: str
    vector_column: str
    dim: int
    metric: Metric
    placement: Placement = Placement.TABLE

    def __post_init__(self) -> None:
        object.__setattr__(self, "metric", Metric(self.metric))
        object.__setattr__(self, "placement", Placement(self.placement))

    @property
    def codes_schema(self) -> str:
        """The schema of the table holding the code columns (and their indexes)."""
        return "pgembed" if self.placement is Placement.COMPANION else self.table_schema

    @property
    def codes_table_name(self) -> str:
        return f"codes_{self.id}" if self.placement is Placement.COMPANION else self.table_name

    @property
    def codes_table(self) -> sql.Identifier:
        """The user's table, or for companion placement pgembed.codes_<id> (key plus code columns)."""
        return sql.Identifier(self.codes_schema, self.codes_table_name)

    @property
    def table(self) -> sql.Identifier:
        return sql.Identifier(self.table_schema, self.table_name)

    @property
    def key(self) -> sql.Identifier:
        return sql.Identifier(self.key_column)

    @property
    def vector(self) -> sql.Identifier:
        return sql.Identifier(self.vector_column)

    @property
    def qualified_name(self) -> str:
        return f"{self.table_schema}.{self.table_name}"


@dataclass(frozen=True)
class CodecInfo:
    """A codec version of a collection: its fitted parameters and the column its codes live in."""

    id: int
    collection_id: int
    name: str
    kind: str  # the codec's spec string (pgembed.codecs.spec)
    version: int
    state: CodecState
    column_name: str
    sql_type: str
    params: dict[str, Any] = field(default_factory=dict)
    fitted_rows: int | None = None
    estimator: str | None = None  # the SQL function estimating distances from these codes (a refine tier's)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", CodecState(self.state))


@dataclass(frozen=True)
class IndexInfo:
    """A pgvector index pgembed built, on a code column (codec_id) or on the source vector (None)."""

    id: int
    collection_id: int
    codec_id: int | None
    index_name: str
    method: IndexMethod
    opclass: str
    params: dict[str, Any]
    build_seconds: float | None
    predicate: dict[str, Any] | None = None  # a partial index: the filter (the filter language) its rows satisfy

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", IndexMethod(self.method))


@dataclass(frozen=True)
class TextSearchInfo:
    """A collection's full-text search: the text column, its text search configuration, and the GIN index on
    the expression to_tsvector(config, column), or on the generated column tsvector_column that stores it
    (sql/functions/text.sql)."""

    column_name: str
    config: str
    index_name: str
    tsvector_column: str | None = None


@dataclass(frozen=True)
class RelevanceModelInfo:
    """A version of a collection's relevance model (pgembed.relevance_models; pgembed/relevance.py)."""

    id: int
    version: int
    state: str
    fitted_queries: int
    fitted_pairs: int


@dataclass(frozen=True)
class Tuned:
    """One row of pgembed.tuning: knobs that reached `recall_target` at `selectivity`."""

    recall_target: float
    selectivity: float
    ef_search: int
    oversample: float
    measured_recall: float
    queries_per_s: float | None = None


@dataclass(frozen=True)
class CoarseSource:
    """A code column with an HNSW index: where candidates can come from (pgembed.search_sources)."""

    codec_id: int
    codec: str
    column: str
    sql_type: str
    index: str
    predicate: dict[str, Any] | None = None  # a partial index's filter; None for a full index
    index_rows: float = 0.0  # the index's row estimate (pg_class.reltuples)
