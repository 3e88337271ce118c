"""store.copyio against a real server: round trips, and malformed rows or arrays raise instead of misaligning."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import numpy as np
import psycopg
import pytest

from store.copyio import (
    CopyFormatError,
    copy_columns,
    copy_rows_in,
    decode_array,
    decode_arrays,
    fetch_blobs,
    fetch_columns,
)

Conn = psycopg.Connection[tuple[object, ...]]
FIELDS = [("id", "uuid"), ("d", "date"), ("t", "timestamptz"), ("b", "bool"), ("s", "int2"), ("x", "float4"),
          ("y", "float8")]


def test_binary_rows_round_trip_through_a_table(db: Conn) -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    cols = {"id": np.frombuffer(b"".join(i.bytes for i in ids), "V16"), "d": np.array([0, -1, 9000]),
            "t": np.array([0, 1_500_000, -7]), "b": np.array([True, False, True]), "s": np.array([-3, 0, 300]),
            "x": np.array([1.5, np.nan, -2.0]), "y": np.array([np.pi, 0.0, 1e300])}
    db.execute("CREATE TEMP TABLE rt (id uuid, d date, t timestamptz, b bool, s int2, x float4, y float8)")
    copy_rows_in(db, "rt", FIELDS, cols)
    row = db.execute("SELECT d, extract(epoch FROM t)::float8 FROM rt WHERE s = 300").fetchone()
    assert row == (date(2000, 1, 1) + timedelta(days=9000), pytest.approx(946_684_800 - 7e-6, abs=1e-7))
    for read in (copy_columns, fetch_columns):
        back = read(db, "SELECT id, d, t, b, s, x, y FROM rt ORDER BY s", FIELDS)
        assert [uuid.UUID(bytes=v.tobytes()) for v in back["id"]] == ids
        for name in ("d", "t", "b", "s", "y"):
            np.testing.assert_array_equal(back[name], cols[name])
        np.testing.assert_array_equal(back["x"], cols["x"].astype(np.float32))


def test_a_null_field_raises_instead_of_shifting_rows(db: Conn) -> None:
    with pytest.raises(CopyFormatError):  # one NULL makes the rows unequal: rejected, never misread
        copy_columns(db, "SELECT g::int4, CASE WHEN g = 2 THEN NULL ELSE g END::int8 FROM generate_series(1, 3) g",
                     [("a", "int4"), ("b", "int8")])
    with pytest.raises(CopyFormatError):
        copy_columns(db, "SELECT g::int8 FROM generate_series(1, 3) g", [("a", "int4")])  # wrong width


def test_array_blobs_decode_and_reject_nulls_and_matrices(db: Conn) -> None:
    n_blob, data = fetch_blobs(db, "SELECT array_send(array_agg(cardinality(a))), string_agg(array_send(a), "
                               "''::bytea) FROM (VALUES ('{1,-2}'::int4[]), ('{}'), ('{2147483647}')) v(a)")
    n = decode_array(n_blob, "int4")
    np.testing.assert_array_equal(n, [2, 0, 1])
    np.testing.assert_array_equal(decode_arrays(data, n, "int4"), [1, -2, 2147483647])
    widened = fetch_blobs(db, "SELECT array_send('{1,-2}'::int4[]::int8[])")[0]  # int4 -> int8 read alike
    np.testing.assert_array_equal(decode_array(widened, "int8"), [1, -2])
    with pytest.raises(CopyFormatError):
        decode_arrays(data, np.array([1, 1, 1]), "int4")
    with pytest.raises(CopyFormatError):
        decode_array(fetch_blobs(db, "SELECT array_send('{1,NULL}'::int2[])")[0], "int2")
    with pytest.raises(CopyFormatError):
        decode_array(fetch_blobs(db, "SELECT array_send('{{1,2},{3,4}}'::int2[])")[0], "int2")
    assert decode_array(None, "int8").size == 0
