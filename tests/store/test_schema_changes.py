"""Schema changes of raw.* through store.alter_timeseries work in both modes, with compression on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.store.tsdb import compress_every_chunk, storage_mode

Conn = psycopg.Connection[tuple[object, ...]]


def _insert(db: Conn, ts: datetime, bpm: int) -> None:
    db.execute("INSERT INTO raw.hr_runs (device_id, start_ts, end_ts, participant_id, offsets_ms, bpm, suspect, "
               "msg_id) VALUES ('dev-s', %s, %s, %s, '{0}', %s, '{f}', %s)",
               (ts, ts + timedelta(seconds=1), uuid.uuid4(), [bpm], uuid.uuid4()))


def _add_and_check(db: Conn) -> None:
    db.execute("SELECT store.alter_timeseries('raw.hr_runs', 'ADD CONSTRAINT test_bpm CHECK (bpm[1] <> 123)')")
    try:
        with pytest.raises(psycopg.errors.CheckViolation):
            _insert(db, datetime.now(UTC) - timedelta(days=2), 123)
        _insert(db, datetime.now(UTC) - timedelta(days=2), 124)
    finally:
        db.execute("SELECT store.alter_timeseries('raw.hr_runs', 'DROP CONSTRAINT test_bpm')")
    _insert(db, datetime.now(UTC) - timedelta(days=3), 123)  # dropped: accepted again


def test_check_constraint_on_a_raw_stream_with_data_in_every_child(db: Conn) -> None:
    db.execute("TRUNCATE raw.hr_runs")
    for days in (1, 20, 45, 400):
        _insert(db, datetime.now(UTC) - timedelta(days=days), 70)
    if storage_mode(db) == "timescaledb":
        compress_every_chunk(db)
    _add_and_check(db)


def test_existing_rows_that_violate_are_reported(db: Conn) -> None:
    db.execute("TRUNCATE raw.hr_runs")
    _insert(db, datetime.now(UTC) - timedelta(days=1), 123)
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("SELECT store.alter_timeseries('raw.hr_runs', 'ADD CONSTRAINT test_bpm CHECK (bpm[1] <> 123)')")


def test_only_raw_streams_are_accepted(db: Conn) -> None:
    with pytest.raises(psycopg.errors.RaiseException, match="not a raw time-series table"):
        db.execute("SELECT store.alter_timeseries('core.participants', 'ADD COLUMN x int')")


@pytest.mark.timescaledb
def test_check_constraint_with_every_chunk_compressed(db: Conn) -> None:
    if storage_mode(db) != "timescaledb":
        pytest.skip("timescaledb extension is not installed on this server (partitioned mode tested above)")
    db.execute("TRUNCATE raw.hr_runs")
    for days in (10, 20, 30):
        _insert(db, datetime.now(UTC) - timedelta(days=days), 70)
    assert compress_every_chunk(db) >= 3
    _add_and_check(db)
    assert db.execute("SELECT count(*) FROM raw.hr_runs").fetchone() == (5,)
