"""Binary ``COPY ... TO STDOUT`` of fixed-width rows straight into NumPy columns (no per-row Python).

A job asks for rows whose every field is NOT NULL and of a fixed binary width (``int2``, ``int4``, ``int8``,
``float4``, ``float8``, ``bool``, ``uuid``, and ``date`` / ``timestamptz`` as days / microseconds since
2000-01-01): the SQL casts and ``coalesce``-s to make them so (e.g.
``coalesce(x, 'NaN')::float8``, ``offsets::int8[]`` so that a column widened from ``int4`` to ``int8`` still
reads). Then every row of the stream has the same width, the body is one structured ``np.frombuffer`` view,
and each column is one byte-swapping ``astype``. The row layout is checked field by field, so a NULL or a field
of another width raises instead of silently misaligning every following row.

Wire format: PostgreSQL documentation, "COPY", section "Binary Format" (11-byte signature, flags, header
extension, then per row an int16 field count and per field an int32 length and the big-endian value; a -1
count ends the stream).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

__all__ = ["PG_EPOCH_S", "CopyFormatError", "copy_columns", "copy_floor_bytes", "copy_rows_in", "decode_array",
           "decode_arrays", "fetch_blobs", "fetch_columns", "fixed_rows_bytes",
           "parse_fixed_rows"]

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
PG_EPOCH_S = 946_684_800  # 2000-01-01 in Unix seconds: binary timestamptz/date are counted from here

#: binary COPY value types by short name -> big-endian NumPy type of the value
WIRE = {"int2": ">i2", "int4": ">i4", "int8": ">i8", "float4": ">f4", "float8": ">f8", "bool": "u1",
        "uuid": "V16", "date": ">i4", "timestamptz": ">i8"}  # date: days, timestamptz: us since 2000-01-01


class CopyFormatError(ValueError):
    """The stream is not binary COPY of the fixed-width rows asked for."""


def _row_dtype(fields: Sequence[tuple[str, str]]) -> np.dtype[Any]:
    layout: list[tuple[str, str]] = [("n_fields", ">i2")]
    for name, kind in fields:
        layout += [(f"len_{name}", ">i4"), (name, WIRE[kind])]
    return np.dtype(layout)


def parse_fixed_rows(data: bytes | memoryview, fields: Sequence[tuple[str, str]]) -> dict[str, np.ndarray[Any, Any]]:
    """Columns of a binary COPY stream of fixed-width rows, native-endian (``bool`` as ``np.bool_``).

    Parameters
    ----------
    data : bytes
        The whole stream (header, rows, trailer).
    fields : sequence of (name, type)
        The row's fields in order; types are keys of :data:`WIRE`.

    Raises
    ------
    CopyFormatError
        Not binary COPY, or a row that is not the fixed-width row asked for.
    """
    buf = memoryview(data)
    if bytes(buf[:11]) != SIGNATURE:
        raise CopyFormatError("not a binary COPY stream")
    ext = int.from_bytes(buf[15:19], "big")
    body = buf[19 + ext:len(buf) - 2]
    dtype = _row_dtype(fields)
    if bytes(buf[-2:]) != b"\xff\xff" or len(body) % dtype.itemsize:
        raise CopyFormatError("binary COPY rows are not all of the expected width")
    rows = np.frombuffer(body, dtype)
    if rows.size and not (rows["n_fields"] == len(fields)).all():
        raise CopyFormatError("binary COPY row with an unexpected number of fields")
    out: dict[str, np.ndarray[Any, Any]] = {}
    for name, kind in fields:
        width = np.dtype(WIRE[kind]).itemsize
        if rows.size and not (rows[f"len_{name}"] == width).all():
            raise CopyFormatError(f"binary COPY field {name} is NULL or not {width} bytes wide")
        col = rows[name]
        if kind == "bool":
            out[name] = col.astype(np.bool_)
        elif kind == "uuid":
            out[name] = col.copy()
        else:
            out[name] = col.astype(np.dtype(WIRE[kind]).newbyteorder("="))
    return out


def _copy_bytes(conn: psycopg.Connection[Any], query: str, params: Mapping[str, object] | Sequence[object] | None
                ) -> bytes:
    stmt = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(sql.SQL(query))
    parts: list[bytes] = []
    with conn.cursor() as cur, cur.copy(stmt, params) as copy:
        for chunk in copy:
            parts.append(bytes(chunk))
    return b"".join(parts)


def copy_columns(conn: psycopg.Connection[Any], query: str, fields: Sequence[tuple[str, str]],
                 params: Mapping[str, object] | Sequence[object] | None = None) -> dict[str, np.ndarray[Any, Any]]:
    """Run ``query`` as a binary COPY and return its columns as NumPy arrays keyed by ``fields`` names.

    ``query`` must select exactly ``fields`` in order, each NOT NULL and cast to its type. Parameters are bound
    client side (COPY takes no server-side parameters).
    """
    return parse_fixed_rows(_copy_bytes(conn, query, params), fields)


def copy_floor_bytes(conn: psycopg.Connection[Any], query: str,
                     params: Mapping[str, object] | Sequence[object] | None = None) -> int:
    """Stream ``query`` by binary COPY and only count the bytes: the I/O floor a job reading it cannot beat."""
    stmt = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(sql.SQL(query))
    total = 0
    with conn.cursor() as cur, cur.copy(stmt, params) as copy:
        for chunk in copy:
            total += len(chunk)
    return total


def fixed_rows_bytes(fields: Sequence[tuple[str, str]], columns: Mapping[str, np.ndarray[Any, Any]]) -> bytes:
    """A binary COPY stream (header, rows, trailer) of equal-length NumPy ``columns`` in ``fields`` order.

    ``uuid`` columns are ``V16`` (or 16-byte ``S16``/``u1`` rows); no value may be NULL: stage NaN / sentinel
    codes and turn them into NULL in the ``INSERT ... SELECT`` that follows.
    """
    n = len(next(iter(columns.values()))) if columns else 0
    rows = np.zeros(n, _row_dtype(fields))
    rows["n_fields"] = len(fields)
    for name, kind in fields:
        rows[f"len_{name}"] = np.dtype(WIRE[kind]).itemsize
        value = np.asarray(columns[name])
        if kind == "uuid":
            rows[name] = np.ascontiguousarray(value).view("V16").reshape(n)
        else:
            rows[name] = value.astype(WIRE[kind])
    return SIGNATURE + bytes(8) + rows.tobytes() + b"\xff\xff"


def copy_rows_in(conn: psycopg.Connection[Any], table: str, fields: Sequence[tuple[str, str]],
                 columns: Mapping[str, np.ndarray[Any, Any]]) -> None:
    """Binary ``COPY table (fields) FROM STDIN`` of NumPy columns (see :func:`fixed_rows_bytes`)."""
    names = sql.SQL(", ").join(sql.Identifier(name) for name, _ in fields)
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(sql.SQL(table), names)
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        copy.write(fixed_rows_bytes(fields, columns))


# --- arrays as ``array_send`` blobs: one aggregate row instead of one COPY message per sample ---------------------
#
# ``array_send(a)`` is the binary wire form of an array: int32 ndim, int32 has-nulls flag, int32 element type
# OID, then per dimension int32 length and int32 lower bound, then per element int32 byte length and the
# big-endian value (an empty array is the 12-byte header with ndim 0). A job aggregates many runs into one row:
# ``array_send(array_agg(key))`` per key column and ``string_agg(array_send(samples), '')`` for the samples,
# all in one plain (ungrouped) aggregate, so every column sees the runs in the same order, nothing is sorted or
# hashed on the server (no temp files) and the client decodes with a few vectorised gathers.


def _gather(buf: np.ndarray[Any, Any], pos: np.ndarray[Any, Any], kind: str) -> np.ndarray[Any, Any]:
    """Big-endian values of type ``kind`` starting at byte positions ``pos`` of ``buf`` (uint8)."""
    width = np.dtype(WIRE[kind]).itemsize
    raw = buf[pos[:, None] + np.arange(width)].reshape(-1)
    return raw.view(WIRE[kind]).astype(np.dtype(WIRE[kind]).newbyteorder("="))


def decode_array(blob: bytes | None, kind: str) -> np.ndarray[Any, Any]:
    """Values of a one-dimensional ``array_send`` blob of element type ``kind`` without NULLs (None -> empty)."""
    return decode_arrays(blob, None, kind)


def decode_arrays(blob: bytes | None, counts: np.ndarray[Any, Any] | None, kind: str) -> np.ndarray[Any, Any]:
    """Concatenated values of concatenated ``array_send`` blobs holding ``counts[j]`` elements each.

    With ``counts`` None the blob is a single array whose length is read from its header.

    Raises
    ------
    CopyFormatError
        A blob is not a one-dimensional array of ``kind`` without NULLs, or the counts do not add up.
    """
    width = np.dtype(WIRE[kind]).itemsize
    if not blob:
        if counts is not None and int(np.sum(counts)) > 0:
            raise CopyFormatError("array blob missing")
        return np.zeros(0, np.dtype(WIRE[kind]).newbyteorder("="))
    buf = np.frombuffer(blob, np.uint8)
    if counts is None:
        ndim = int.from_bytes(blob[:4], "big")
        counts = np.array([int.from_bytes(blob[12:16], "big") if ndim else 0], np.int64)
    n = np.asarray(counts, np.int64)
    sizes = np.where(n > 0, 20 + n * (4 + width), 12)
    starts = np.cumsum(sizes) - sizes
    if int(sizes.sum()) != buf.size:
        raise CopyFormatError("array blobs do not match their element counts")
    full = starts[n > 0]
    if full.size and not ((_gather(buf, full, "int4") == 1).all() and (_gather(buf, full + 4, "int4") == 0).all()
                          and (_gather(buf, full + 12, "int4") == n[n > 0]).all()):
        raise CopyFormatError("array blob is not one-dimensional without NULLs")
    keep = np.ones(buf.size, np.bool_)  # drop the headers; the element records then have one stride
    keep[(starts[:, None] + np.arange(12)).reshape(-1)] = False
    keep[(full[:, None] + np.arange(12, 20)).reshape(-1)] = False
    records = np.frombuffer(buf[keep].tobytes(), np.dtype([("len", ">i4"), ("v", WIRE[kind])]))
    if records.size and not (records["len"] == width).all():
        raise CopyFormatError(f"array element is NULL or not {width} bytes wide")
    return records["v"].astype(np.dtype(WIRE[kind]).newbyteorder("="))


def fetch_blobs(conn: psycopg.Connection[Any], query: str,
                params: Mapping[str, object] | Sequence[object] | None = None) -> tuple[bytes | None, ...]:
    """The single row of an aggregate query whose columns are all ``bytea``, as bytes (None for NULL)."""
    row = conn.execute(query, params, binary=True).fetchone()
    return tuple(None if v is None else bytes(v) for v in row) if row else ()


def fetch_columns(conn: psycopg.Connection[Any], query: str, fields: Sequence[tuple[str, str]],
                  params: Mapping[str, object] | Sequence[object] | None = None) -> dict[str, np.ndarray[Any, Any]]:
    """Like :func:`copy_columns`, but the server aggregates each column into one ``array_send`` blob.

    One result row instead of one COPY message per row: for the many small rows of a batch (stored daily rows,
    duties) the per-message cost of the client dominates otherwise. Every column is aggregated from the same
    row stream, so the columns stay aligned (and in the order of ``query``). Aggregating into arrays holds the
    result in server memory: use it for results of at most tens of MB (one batch).
    """
    names = [f"c{i}" for i in range(len(fields))]
    select = ", ".join(f"array_send(array_agg(x.{c}))" for c in names)
    blobs = fetch_blobs(conn, f"SELECT {select} FROM ({query}) AS x({', '.join(names)})", params)
    return {name: decode_array(blob, kind).astype(np.bool_) if kind == "bool" else decode_array(blob, kind)
            for (name, kind), blob in zip(fields, blobs, strict=True)}
