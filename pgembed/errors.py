"""Every error pgembed raises on purpose derives from PgembedError and says what is wrong."""

from __future__ import annotations


class PgembedError(Exception):
    """Base class of pgembed's own errors."""


class EmbeddedServerError(PgembedError):
    """The embedded PostgreSQL server could not be initialised, started or stopped."""


class PgvectorMissingError(PgembedError):
    """The server lacks pgvector, or has one older than pgembed needs."""


class CatalogError(PgembedError):
    """The pgembed catalog is missing, outdated, or disagrees with the database."""


class CollectionNotFoundError(CatalogError):
    """No collection of that name in the catalog."""


class SchemaError(PgembedError):
    """A user table, column or identifier is not usable as asked."""


class InvalidInputError(PgembedError, ValueError):
    """Input handed to pgembed fails validation; the message names the problem."""


class InvalidVectorsError(InvalidInputError):
    """Vectors or keys fail validation (shape, dtype, dimension, NaN/Inf, duplicates)."""


class InvalidFilterError(InvalidInputError):
    """A search filter is malformed, names an unknown column or operator, or holds a value unfit for its column."""


class UnknownCodecError(PgembedError, ValueError):
    """No codec of that kind."""


class DuplicateKeyError(PgembedError):
    """A key being written already exists in the table."""


class NotDecodableError(PgembedError, TypeError):
    """The codec's codes do not determine a vector (sign bits, for instance): compare them, don't decode."""


class LockBusyError(PgembedError):
    """Other transactions held what pgembed needed past its bounded wait; nothing was changed, and the message
    names the call that finishes the work."""


class ConnectionLostError(PgembedError):
    """The connection is closed or was lost, and pgembed may not (or did not) open another in its place."""


class ConcurrentUseError(PgembedError):
    """A Database was used from a thread other than the one whose transaction is open on its connection."""


class MissingDependencyError(PgembedError, ImportError):
    """An optional dependency (an extra of pgembed) is needed for this and is not installed."""
