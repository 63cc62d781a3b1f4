"""pgembed: compressed, hybrid, batched vector search inside PostgreSQL with pgvector."""

from pgembed.collection import Collection
from pgembed.database import Database, connect
from pgembed.errors import (
    CatalogError,
    CollectionNotFoundError,
    DuplicateKeyError,
    EmbeddedServerError,
    InvalidInputError,
    InvalidVectorsError,
    PgembedError,
    PgvectorMissingError,
    SchemaError,
    UnknownCodecError,
)

__version__ = "0.1.0"

__all__ = [
    "CatalogError",
    "Collection",
    "CollectionNotFoundError",
    "Database",
    "DuplicateKeyError",
    "EmbeddedServerError",
    "InvalidInputError",
    "InvalidVectorsError",
    "PgembedError",
    "PgvectorMissingError",
    "SchemaError",
    "UnknownCodecError",
    "connect",
]
