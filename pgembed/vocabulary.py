"""The words pgembed's catalog, planner and API share, as str enums: each is defined here once."""

from __future__ import annotations

from enum import StrEnum


class Metric(StrEnum):
    """How a collection measures distance, and what pgvector calls it."""

    COSINE = "cosine"
    IP = "ip"  # negative inner product, pgvector's <#>
    L2 = "l2"

    @property
    def operator(self) -> str:
        """pgvector's distance operator."""
        return {Metric.COSINE: "<=>", Metric.IP: "<#>", Metric.L2: "<->"}[self]

    def opclass(self, storage: Storage) -> str:
        """pgvector's operator class for an index on a column stored as `storage` (bit codes: Hamming)."""
        if storage in (Storage.BIT, Storage.VARBIT):
            return "bit_hamming_ops"
        if storage in (Storage.VECTOR, Storage.HALFVEC):
            return f"{storage.value}_{self.value}_ops"
        raise ValueError(f"pgvector has no operator class for {storage.value} columns")


class Storage(StrEnum):
    """How a column of vectors or codes is stored: its PostgreSQL base type."""

    VECTOR = "vector"
    HALFVEC = "halfvec"
    BIT = "bit"
    VARBIT = "varbit"
    BYTEA = "bytea"
    INTEGER = "integer"  # a partitioning's cluster (ivf<n>)

    @classmethod
    def of(cls, sql_type: str) -> Storage:
        """The storage of a type as pgembed writes it ("bit(768)", "halfvec(384)", "bytea")."""
        return cls(sql_type.split("(", 1)[0])


class Placement(StrEnum):
    """Where a collection's codes live."""

    TABLE = "table"  # code columns in the user's table, beside the vector
    COMPANION = "companion"  # pgembed.codes_<collection id>: key plus code columns, kept by a trigger


class PlanKind(StrEnum):
    """How one query is answered (pgembed._plan, sql/functions/planner.sql)."""

    AUTO = "auto"  # asked for: let the planner choose
    EXACT = "exact"
    INDEX = "index"


class TextMatch(StrEnum):
    """How a hybrid search's text becomes a full-text query (pgembed.text_query, sql/functions/text.sql)."""

    WEBSEARCH = "websearch"  # websearch_to_tsquery: every word, "a phrase", or, -word
    ANY = "any"  # any of its words: for queries written as prose


class BatchStrategy(StrEnum):
    """How search_batch answers a group of queries that share a filter."""

    AUTO = "auto"  # the cost model chooses per group
    SCAN = "scan"  # read the group's rows once, one matrix product for all its queries (exact)
    EACH = "each"  # every query through the planner of search()
    PROBE = "probe"  # each query reads its `probes` nearest clusters of a partitioning codec (pgembed.probe_topk)


class CodecState(StrEnum):
    BUILDING = "building"  # codes being written; readers use the version it replaces
    ACTIVE = "active"
    RETIRED = "retired"


class IndexMethod(StrEnum):
    HNSW = "hnsw"
    IVFFLAT = "ivfflat"


class IterativeScan(StrEnum):
    """pgvector's hnsw.iterative_scan."""

    OFF = "off"
    RELAXED_ORDER = "relaxed_order"


class KernelMode(StrEnum):
    """What pgembed's SQL functions run in a database (pgembed.kernels(), sql/functions/kernels.sql)."""

    KERNELS = "kernels"  # the C extension pgembed_kernels (kernels/)
    TWINS = "twins"  # the SQL twins in schema pgembed_twins: same results, slower


class KernelBenchPart(StrEnum):
    """The parts of `pgembed bench kernels` (pgembed.tools.bench.kernels), each runnable alone with --only."""

    BUILD = "build"
    ENCODE = "encode"
    INGEST = "ingest"
    ESTIMATORS = "estimators"  # the per-row estimators and the multi-query scan by estimate (estimate_topk)
    MEMORY = "memory"
    SEARCH_BATCH = "search_batch"
    PROBE = "probe"  # the scan of each query's clusters (probe_topk) against plain pgvector's HNSW, one query a time


class CrashScenario(StrEnum):
    """The long operations the crash suite kills the server in (pgembed.tools.reliability.crash)."""

    INGEST = "ingest"
    BACKFILL = "backfill"
    FIT = "fit"
    ACTIVATION = "activation"
    CONCURRENT_INDEX = "concurrent_index"
