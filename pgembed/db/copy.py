"""PostgreSQL's binary COPY, both ways.

Writing: fixed-width fields (integers, floats, booleans, dates, timestamps, uuids, vectors) are laid out for
a whole batch at once as one (rows x bytes) matrix, so a 384-d vector costs one vectorised byte-swap, not a
Python call; variable-width fields (text, jsonb, bytea) and NULLs take a per-row join.

Reading (key, vector) rows: with an integer key every row has the same width, and numpy reads a block of them
as records; other keys go through a binary server-side cursor.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from pgembed.db.session import Session
from pgembed.errors import InvalidInputError, SchemaError
from pgembed.records import CollectionInfo
from pgembed.statements import rows as q

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
_PG_EPOCH_DAYS = (dt.date(2000, 1, 1) - dt.date(1970, 1, 1)).days
_PG_EPOCH_US = _PG_EPOCH_DAYS * 86_400 * 1_000_000

# PostgreSQL base type name -> numpy big-endian dtype of its binary representation.
FIXED_TYPES: dict[str, str] = {
    "int2": ">i2", "int4": ">i4", "int8": ">i8", "float4": ">f4", "float8": ">f8", "bool": "?",
    "date": ">i4", "timestamp": ">i8", "timestamptz": ">i8", "uuid": "V16",
}
TEXT_TYPES = {"text", "varchar", "bpchar", "name", "citext"}
VARIABLE_TYPES = TEXT_TYPES | {"jsonb", "json", "bytea"}


@dataclass(frozen=True)
class CopyColumn:
    name: str
    type_name: str  # pg_type.typname of the column's type, e.g. "int8", "text", "vector"
    dim: int = -1  # vector columns: declared dimension

    @property
    def is_vector(self) -> bool:
        return self.type_name == "vector"

    @property
    def fixed_width(self) -> int | None:
        if self.is_vector:
            return 4 + 4 * self.dim
        if self.type_name in FIXED_TYPES:
            return np.dtype(FIXED_TYPES[self.type_name]).itemsize
        return None


def check_supported(column: CopyColumn) -> None:
    if not (column.is_vector or column.type_name in FIXED_TYPES or column.type_name in VARIABLE_TYPES):
        raise SchemaError(
            f"column {column.name!r} has type {column.type_name}, which ingest cannot write; "
            "load it with SQL (UPDATE ... FROM) after ingesting"
        )


def prepare(column: CopyColumn, values: Any, n: int) -> np.ndarray | list[bytes | None]:
    """Validate one column's values for `n` rows and convert them to what `encode_rows` lays out:
    a numpy array of the binary dtype (fixed, no NULLs) or a list of encoded bytes / None."""
    if column.is_vector:
        arr = np.asarray(values, dtype=np.float32)
        assert arr.shape == (n, column.dim)
        return arr
    if isinstance(values, np.ndarray) and values.dtype != object:
        seq: Sequence[Any] | np.ndarray = values
        has_null = False
    else:
        seq = list(values)
        has_null = any(v is None for v in seq)
    if len(seq) != n:
        raise InvalidInputError(f"column {column.name!r} has {len(seq)} values for {n} rows")
    if column.type_name in FIXED_TYPES and not has_null:
        return _fixed_array(column, seq)
    return [None if v is None else _encode_value(column, v) for v in seq]


def _fixed_array(column: CopyColumn, seq: Sequence[Any] | np.ndarray) -> np.ndarray:
    kind = column.type_name
    try:
        if kind in ("date", "timestamp", "timestamptz"):
            unit = "D" if kind == "date" else "us"
            stamps = np.asarray(seq, dtype=f"datetime64[{unit}]").astype(np.int64)
            return stamps - (_PG_EPOCH_DAYS if kind == "date" else _PG_EPOCH_US)
        if kind == "uuid":
            return np.frombuffer(b"".join(_uuid_bytes(v) for v in seq), dtype="V16")
        arr = np.asarray(seq)
        if kind == "bool":
            if arr.dtype != np.bool_:
                raise TypeError(f"expected booleans, got {arr.dtype}")
            return arr
        if kind.startswith("int"):
            if arr.dtype.kind not in "iu":
                raise TypeError(f"expected integers, got {arr.dtype}")
            info = np.iinfo(np.dtype(FIXED_TYPES[kind]).newbyteorder("="))
            if arr.size and (arr.min() < info.min or arr.max() > info.max):
                raise TypeError(f"a value is out of range for {kind}")
            return arr
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"expected numbers, got {arr.dtype}")
        return arr
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"column {column.name!r} ({kind}): {err}") from err


def _uuid_bytes(value: Any) -> bytes:
    return (value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))).bytes


def _encode_value(column: CopyColumn, value: Any) -> bytes:
    kind = column.type_name
    try:
        if kind in TEXT_TYPES:
            if not isinstance(value, str):
                raise TypeError(f"expected str, got {type(value).__name__}")
            if "\x00" in value:
                raise ValueError("text cannot contain NUL characters")
            return value.encode("utf-8")
        if kind in ("jsonb", "json"):
            text = json.dumps(value, allow_nan=False).encode("utf-8")
            return b"\x01" + text if kind == "jsonb" else text
        if kind == "bytea":
            if not isinstance(value, bytes | bytearray | memoryview):
                raise TypeError(f"expected bytes, got {type(value).__name__}")
            return bytes(value)
        return _fixed_array(column, [value]).astype(FIXED_TYPES[kind]).tobytes()
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"column {column.name!r} ({kind}): {err}") from err


def encode_rows(columns: Sequence[CopyColumn], data: Sequence[np.ndarray | list[bytes | None]], n: int) -> bytes:
    """Rows [0, n) of prepared column data in binary COPY row format (no header or trailer)."""
    # Lay out every fixed column (field length + value) in one byte matrix; note the variable ones.
    widths = [c.fixed_width if isinstance(d, np.ndarray) else None for c, d in zip(columns, data, strict=True)]
    fixed_bytes = 2 + sum(4 + w for w in widths if w is not None)
    matrix = np.empty((n, fixed_bytes), dtype=np.uint8)
    matrix[:, 0:2] = np.frombuffer(struct.pack(">h", len(columns)), dtype=np.uint8)
    offset = 2
    slots: list[tuple[int, int] | list[bytes | None]] = []  # per column: (start, end) in matrix, or values
    for column, values, width in zip(columns, data, widths, strict=True):
        if width is None:
            assert isinstance(values, list)
            slots.append(values)
            continue
        assert isinstance(values, np.ndarray)
        start = offset
        matrix[:, offset : offset + 4] = np.frombuffer(struct.pack(">i", width), dtype=np.uint8)
        offset += 4
        if column.is_vector:
            matrix[:, offset : offset + 4] = np.frombuffer(struct.pack(">HH", column.dim, 0), dtype=np.uint8)
            matrix[:, offset + 4 : offset + width] = values.astype(">f4").view(np.uint8).reshape(n, -1)
        else:
            binary = values.astype(FIXED_TYPES[column.type_name])
            matrix[:, offset : offset + width] = binary.view(np.uint8).reshape(n, width)
        offset += width
        slots.append((start, offset))
    if all(isinstance(s, tuple) for s in slots):
        return matrix.tobytes()
    return _join_rows(matrix, slots, n)


def _join_rows(matrix: np.ndarray, slots: list[tuple[int, int] | list[bytes | None]], n: int) -> bytes:
    """Interleave fixed runs of the byte matrix with variable-width fields, row by row."""
    null = struct.pack(">i", -1)
    pack_len = struct.Struct(">i").pack
    # Consecutive fixed columns form one run: (start, end) of the run in the matrix.
    pieces: list[tuple[int, int] | list[bytes | None]] = [(0, 2)]
    for slot in slots:
        last = pieces[-1]
        if isinstance(slot, tuple) and isinstance(last, tuple) and last[1] == slot[0]:
            pieces[-1] = (last[0], slot[1])
        else:
            pieces.append(slot)
    rows = np.ascontiguousarray(matrix).reshape(-1).data  # a memoryview: slices of it are not copied
    stride = matrix.shape[1]
    out: list[bytes | memoryview] = []
    for i in range(n):
        base = i * stride
        for piece in pieces:
            if isinstance(piece, tuple):
                out.append(rows[base + piece[0] : base + piece[1]])
            else:
                value = piece[i]
                out.append(null if value is None else pack_len(len(value)) + value)
    return b"".join(out)


# -- reading ------------------------------------------------------------------------------------------------
FIXED_KEYS = {"int2": ">i2", "int4": ">i4", "int8": ">i8"}
BLOCK_ROWS = 20_000


def read_vectors(session: Session, info: CollectionInfo, clause: str, key_type: str,
                 block_rows: int = BLOCK_ROWS, limit: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(keys, float32 vectors) of the rows a compiled filter keeps, in blocks of about `block_rows`: binary
    COPY parsed by numpy when the key is an integer (measured: a 12,432-row group read 1.6-2.2x faster than
    through the cursor, which makes Python objects of rows), a binary server-side cursor otherwise."""
    select = q.select_vectors(info, clause, limit)
    if key_type in FIXED_KEYS:
        yield from _copy_blocks(session, q.copy_out(select), FIXED_KEYS[key_type], info.dim, block_rows)
        return
    with session.transaction(), session.conn.cursor(name="pgembed_scan", binary=True) as cur:
        cur.itersize = block_rows
        cur.execute(select)
        while True:
            fetched = cur.fetchmany(block_rows)
            if not fetched:
                return
            keys = np.array([r[0] for r in fetched], dtype=object)
            yield keys, np.stack([as_float32(r[1]) for r in fetched])


def as_float32(value: object) -> np.ndarray:
    """A vector as pgvector's adapter hands it (numpy, or an object with to_numpy()) as float32."""
    to_numpy = getattr(value, "to_numpy", None)
    return np.asarray(to_numpy() if callable(to_numpy) else value, dtype=np.float32)


def _copy_blocks(session: Session, statement: sql.Composed, key_dtype: str, dim: int, block_rows: int
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Binary COPY rows of (integer key, vector(dim)) have a fixed width: numpy reads them as records."""
    record = np.dtype([("fields", ">i2"), ("key_len", ">i4"), ("key", key_dtype), ("vec_len", ">i4"),
                       ("dim", ">i2"), ("unused", ">i2"), ("vec", ">f4", (dim,))])
    block_bytes = block_rows * record.itemsize
    chunks: list[bytes] = []
    size = 0
    header = -1  # bytes of header still to skip; -1 until known
    with session.conn.cursor() as cur, cur.copy(statement) as copy:
        for chunk in copy:
            chunks.append(bytes(chunk))
            size += len(chunk)
            if header < 0:
                if size < 19:
                    continue
                data = b"".join(chunks)
                header = 19 + int.from_bytes(data[15:19], "big")
                chunks, size = [data[header:]], len(data) - header
            if size >= block_bytes:
                data = b"".join(chunks)
                whole = len(data) // record.itemsize * record.itemsize
                yield _records(data[:whole], record)
                chunks, size = [data[whole:]], len(data) - whole
    data = b"".join(chunks)
    body = data[:-2] if data.endswith(b"\xff\xff") else data  # the trailer: -1 as int16
    if body:
        yield _records(body, record)


def _records(data: bytes, record: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    rows = np.frombuffer(data, dtype=record)
    if rows.size and (np.any(rows["fields"] != 2) or np.any(rows["vec_len"] < 0)):
        raise SchemaError("unexpected binary COPY layout (a NULL key or vector?)")
    return rows["key"].astype(np.int64).astype(object), rows["vec"].astype(np.float32)


def write_rows(session: Session, statement: sql.Composed, batches: Iterator[bytes]) -> None:
    """Stream COPY FROM STDIN (FORMAT BINARY): the header, the encoded batches, the trailer. A thread sends
    chunks while the next is encoded (psycopg's QueuedLibpqWriter)."""
    with session.conn.cursor() as cur, cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy:
        copy.write(HEADER)
        for data in batches:
            copy.write(data)
        copy.write(TRAILER)
