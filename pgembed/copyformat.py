"""PostgreSQL's binary COPY format, written from numpy columns.

Fixed-width fields (integers, floats, booleans, dates, timestamps, uuids, vectors) are laid out for a whole
batch at once as one (rows x bytes) matrix, so a 384-d vector costs one vectorised byte-swap, not a Python
call. Variable-width fields (text, jsonb, bytea) and NULLs take a per-row join.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pgembed.errors import InvalidInputError, SchemaError

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
