"""pgembed's catalog rows, read and written (statements: pgembed.statements.catalog)."""

from __future__ import annotations

from typing import Any

from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from pgembed.codecs.base import Fitted
from pgembed.db.session import Session
from pgembed.records import (
    CoarseSource,
    CodecInfo,
    CollectionInfo,
    IndexInfo,
    RelevanceModelInfo,
    TextSearchInfo,
    Tuned,
)
from pgembed.statements import catalog as q
from pgembed.statements.encoders import stored_column
from pgembed.vocabulary import CodecState, IndexMethod, Metric, Placement


def installed_revision(session: Session) -> str | None:
    if not session.value(q.CATALOG_PRESENT):
        return None
    row = session.row(q.INSTALLED_REVISION)
    return row[0] if row else None


def may_administer(session: Session) -> bool:
    """Whether this role may write pgembed's schema: its owner, or a role it trusts with CREATE there."""
    return bool(session.value(q.MAY_ADMINISTER))


# -- collections ------------------------------------------------------------------------------------------
def find_collection(session: Session, name: str) -> CollectionInfo | None:
    with session.conn.cursor(row_factory=class_row(CollectionInfo)) as cur:
        return cur.execute(q.FIND_COLLECTION, (name,)).fetchone()


def list_collections(session: Session) -> list[CollectionInfo]:
    with session.conn.cursor(row_factory=class_row(CollectionInfo)) as cur:
        return cur.execute(q.LIST_COLLECTIONS).fetchall()


def insert_collection(session: Session, name: str, schema: str, table: str, key: str, vector: str, dim: int,
                      metric: Metric, placement: Placement) -> CollectionInfo:
    """Raises psycopg.errors.UniqueViolation when the name or the (table, vector) is taken."""
    with session.conn.cursor(row_factory=class_row(CollectionInfo)) as cur:
        row = cur.execute(q.INSERT_COLLECTION, (name, schema, table, key, vector, dim, metric.value,
                                                placement.value)).fetchone()
    assert row is not None
    return row


def delete_collection(session: Session, collection_id: int) -> None:
    session.execute(q.DELETE_COLLECTION, (collection_id,))


# -- codecs ---------------------------------------------------------------------------------------------
def list_codecs(session: Session, collection_id: int, *, include_retired: bool = False) -> list[CodecInfo]:
    with session.conn.cursor(row_factory=class_row(CodecInfo)) as cur:
        return cur.execute(q.LIST_CODECS, (collection_id, include_retired)).fetchall()


def insert_codec(session: Session, collection_id: int, name: str, kind: str, *, version: int, state: CodecState,
                 column_name: str, sql_type: str, params: dict[str, Any], fitted_rows: int | None,
                 estimator: str | None) -> CodecInfo:
    with session.conn.cursor(row_factory=class_row(CodecInfo)) as cur:
        row = cur.execute(q.INSERT_CODEC, (collection_id, name, kind, version, state.value, column_name, sql_type,
                                           Jsonb(params), fitted_rows, estimator)).fetchone()
    assert row is not None
    return row


def set_codec_estimator(session: Session, codec_id: int, estimator: str | None) -> None:
    session.execute(q.SET_CODEC_ESTIMATOR, (estimator, codec_id, estimator))


def store_fitted(session: Session, codec_id: int, digest: str, parameter: Fitted) -> None:
    """A fitted parameter of a codec version, which its generated functions name by `digest`
    (pgembed.statements.encoders); kept once."""
    session.execute(q.store_fitted(stored_column(parameter.sql_type), parameter.sql_type.value),
                    {"codec": codec_id, "digest": digest, "value": parameter.text})


def set_codec_state(session: Session, codec_id: int, state: CodecState) -> None:
    session.execute(q.SET_CODEC_STATE, (state.value, codec_id))


def set_codec_column(session: Session, codec_id: int, column_name: str) -> None:
    session.execute(q.SET_CODEC_COLUMN, (column_name, codec_id))


def delete_codec(session: Session, codec_id: int) -> None:
    session.execute(q.DELETE_CODEC, (codec_id,))


# -- indexes --------------------------------------------------------------------------------------------
def list_indexes(session: Session, collection_id: int) -> list[IndexInfo]:
    with session.conn.cursor(row_factory=class_row(IndexInfo)) as cur:
        return cur.execute(q.LIST_INDEXES, (collection_id,)).fetchall()


def insert_index(session: Session, collection_id: int, codec_id: int | None, index_name: str, method: IndexMethod,
                 opclass: str, params: dict[str, Any], build_seconds: float,
                 predicate: dict[str, Any] | None = None) -> None:
    session.execute(q.INSERT_INDEX, (collection_id, codec_id, index_name, method.value, opclass, Jsonb(params),
                                     build_seconds, Jsonb(predicate) if predicate is not None else None))


def delete_index(session: Session, collection_id: int, index_name: str) -> None:
    session.execute(q.DELETE_INDEX, (collection_id, index_name))


# -- search ---------------------------------------------------------------------------------------------
def search_sources(session: Session, collection_id: int) -> list[CoarseSource]:
    """Active code columns with an HNSW index, in the planner's order (pgembed.search_sources)."""
    return [CoarseSource(codec_id, name, column, sql_type, index, predicate, float(rows))
            for codec_id, name, column, sql_type, index, predicate, rows
            in session.rows(q.SEARCH_SOURCES, (collection_id,))]


def save_tuning(session: Session, collection_id: int, codec_id: int, tuned: Tuned, sample_queries: int,
                index_name: str = "") -> None:
    session.execute(q.SAVE_TUNING, (collection_id, codec_id, index_name, tuned.recall_target, tuned.selectivity,
                                    tuned.ef_search, tuned.oversample, tuned.measured_recall, tuned.queries_per_s,
                                    sample_queries))


def forget_tuning(session: Session, collection_id: int, codec_id: int, index_name: str, recall_target: float,
                  selectivity: float) -> None:
    session.execute(q.FORGET_TUNING, (collection_id, codec_id, index_name, recall_target, selectivity))


# -- text search ----------------------------------------------------------------------------------------------
def text_search(session: Session, collection_id: int) -> TextSearchInfo | None:
    with session.conn.cursor(row_factory=class_row(TextSearchInfo)) as cur:
        return cur.execute(q.TEXT_SEARCH, (collection_id,)).fetchone()


def insert_text_search(session: Session, collection_id: int, info: TextSearchInfo) -> None:
    session.execute(q.INSERT_TEXT_SEARCH, (collection_id, info.column_name, info.config, info.index_name,
                                           info.tsvector_column))


def delete_text_search(session: Session, collection_id: int) -> None:
    session.execute(q.DELETE_TEXT_SEARCH, (collection_id,))


# -- relevance models -----------------------------------------------------------------------------------------
def list_relevance_models(session: Session, collection_id: int) -> list[RelevanceModelInfo]:
    with session.conn.cursor(row_factory=class_row(RelevanceModelInfo)) as cur:
        return cur.execute(q.LIST_RELEVANCE_MODELS, (collection_id,)).fetchall()


def insert_relevance_model(session: Session, collection_id: int, values: dict[str, Any]) -> RelevanceModelInfo:
    """A new active version (the active one retired first); `values`: w_a, c_a, w_b, c_b, queries, pairs."""
    session.execute(q.RETIRE_RELEVANCE_MODELS, (collection_id,))
    with session.conn.cursor(row_factory=class_row(RelevanceModelInfo)) as cur:
        row = cur.execute(q.INSERT_RELEVANCE_MODEL, {"collection_id": collection_id, **values}).fetchone()
    assert row is not None
    return row
