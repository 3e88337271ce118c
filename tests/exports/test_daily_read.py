"""The export's columnar reader (binary COPY over block ranges) against a plain SELECT of the same rows."""

from __future__ import annotations

import math
import struct
import uuid

import numpy as np
import psycopg
import pytest

from exports import db
from exports.daily_read import _FIELDS, ROW_DTYPE, SOURCE_CODES, parse_binary_copy, read_daily_chunks
from tests.exports.export_cohort import World

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)


def _row(null_field: str | None = None) -> bytes:
    out = struct.pack(">h", len(_FIELDS))
    for name, (_, kind) in _FIELDS.items():
        width = np.dtype(kind).itemsize
        out += struct.pack(">i", -1) if name == null_field else struct.pack(">i", width) + b"\x01" * width
    return out


def test_parse_accepts_fixed_rows_and_refuses_a_null_or_a_foreign_stream() -> None:
    rows = parse_binary_copy(HEADER + _row() * 3 + TRAILER)
    assert rows.shape == (3,) and rows.dtype == ROW_DTYPE
    assert parse_binary_copy(HEADER + TRAILER).shape == (0,)
    with pytest.raises(ValueError, match=r"width|NULL"):
        parse_binary_copy(HEADER + _row() + _row("wear_h") + TRAILER)
    with pytest.raises(ValueError, match="binary COPY"):
        parse_binary_copy(b"participant_id,sleep_date\n")


def test_chunks_hold_exactly_the_eligible_rows_with_nulls_and_versions(world: World) -> None:
    with psycopg.connect(world.url, autocommit=True) as admin:
        # a second algorithm version and a NULL measurement, so that both paths are exercised; restored after
        admin.execute("CREATE TEMP TABLE saved AS SELECT participant_id, sleep_date, wear_h, algorithm_version "
                      "FROM derived.daily_features WHERE programme_day = 3")
        admin.execute("UPDATE derived.daily_features SET algorithm_version = 'features-0.9', wear_h = NULL "
                      "WHERE programme_day = 3")
        try:
            with psycopg.connect(world.url) as conn:
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                with conn.transaction():
                    ids = db.eligible_participants(conn)["participant_id"].tolist()
                    chunks = list(read_daily_chunks(conn, ids, 1, 28, db.ELIGIBLE, blocks_per_chunk=3, workers=2))
                    expected = conn.execute(
                        f"SELECT f.participant_id::text, f.programme_day, f.wear_h, f.algorithm_version, "
                        f"f.hrv_source FROM derived.daily_features f JOIN core.participants p USING (participant_id) "
                        f"WHERE {db.ELIGIBLE} AND f.programme_day BETWEEN 1 AND 28").fetchall()
        finally:
            admin.execute("UPDATE derived.daily_features f SET wear_h = s.wear_h, algorithm_version = "
                          "s.algorithm_version FROM saved s WHERE (f.participant_id, f.sleep_date) = "
                          "(s.participant_id, s.sleep_date)")
    assert len(chunks) > 2, "several block ranges were read"
    got = set()
    for chunk in chunks:
        c = chunk.columns
        for i in range(chunk.rows):
            wear = float(c["wear_h"][i])
            source = (None, *SOURCE_CODES)[int(c["hrv_source"][i])]
            got.add((ids[int(c["pidx"][i])], int(c["programme_day"][i]), None if math.isnan(wear) else round(wear, 3),
                     chunk.versions[int(c["algorithm_version"][i]) - 1], source))
    want = {(str(uuid.UUID(p)), d, None if w is None else round(w, 3), v, s) for p, d, w, v, s in expected}
    assert sum(ch.rows for ch in chunks) == len(expected) and got == want
