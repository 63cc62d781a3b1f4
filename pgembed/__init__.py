"""pgembed: compressed, hybrid, batched vector search inside PostgreSQL with pgvector."""

from pgembed.collection import Collection
from pgembed.database import Database, connect
from pgembed.db.kernels import KernelStatus
from pgembed.engine.advise import Advice
from pgembed.engine.batch import BatchResult
from pgembed.engine.search import SearchResult
from pgembed.engine.tune import TuneResult
from pgembed.errors import (
    CatalogError,
    CollectionNotFoundError,
    DuplicateKeyError,
    EmbeddedServerError,
    InvalidFilterError,
    InvalidInputError,
    InvalidVectorsError,
    NotDecodableError,
    PgembedError,
    PgvectorMissingError,
    SchemaError,
    UnknownCodecError,
)
from pgembed.planning.costs import CostModel
from pgembed.planning.params import SearchParams
from pgembed.planning.plans import Plan
from pgembed.vocabulary import BatchStrategy, KernelMode, Metric, PlanKind

__version__ = "0.1.0"

__all__ = [
    "Advice",
    "BatchResult",
    "BatchStrategy",
    "CatalogError",
    "Collection",
    "CollectionNotFoundError",
    "CostModel",
    "Database",
    "DuplicateKeyError",
    "EmbeddedServerError",
    "InvalidFilterError",
    "InvalidInputError",
    "InvalidVectorsError",
    "KernelMode",
    "KernelStatus",
    "Metric",
    "NotDecodableError",
    "PgembedError",
    "PgvectorMissingError",
    "Plan",
    "PlanKind",
    "SchemaError",
    "SearchParams",
    "SearchResult",
    "TuneResult",
    "UnknownCodecError",
    "connect",
]
