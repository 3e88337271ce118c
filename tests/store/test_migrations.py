"""Migrations: applied in order, recorded with checksums, idempotent, and the storage mode is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from store.migrate import MigrationError, discover, migrate, status
from tests.conftest import create_database, drop_database


@pytest.fixture
def empty_db(pg_admin_url: str) -> Iterator[str]:
    url = create_database(pg_admin_url, "fatigue_mig")
    yield url
    drop_database(pg_admin_url, url)


def _schema_snapshot(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2, 3").fetchall()


def test_migrate_twice_changes_nothing(empty_db: str) -> None:
    first = migrate(empty_db)
    assert first == [m.name for m in discover()]
    snapshot = _schema_snapshot(empty_db)
    assert migrate(empty_db) == []
    assert _schema_snapshot(empty_db) == snapshot
    st = status(empty_db)
    assert st.pending == () and len(st.applied) == len(first)


def test_numbers_are_unique_and_ordered() -> None:
    versions = [m.version for m in discover()]
    assert versions == sorted(set(versions))
    assert versions[0] == 1


def test_changed_applied_file_is_refused(empty_db: str) -> None:
    migrate(empty_db)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("UPDATE store.schema_migrations SET sha256 = 'edited' WHERE version = 1")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(empty_db)


def test_storage_mode_recorded(empty_db: str) -> None:
    migrate(empty_db)
    with psycopg.connect(empty_db) as conn:
        has_tsdb = conn.execute(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone() == (1,)
    st = status(empty_db)
    assert st.storage_mode == ("timescaledb" if has_tsdb else "partitioned")


def _partitioned(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    row = conn.execute("SELECT mode FROM store.storage_mode").fetchone()
    return row == ("partitioned",)


def test_no_insert_fails_for_lack_of_a_partition(db: psycopg.Connection[tuple[object, ...]]) -> None:
    if not _partitioned(db):
        pytest.skip("TimescaleDB present: hypertables create chunks on demand")
    far = [datetime(1999, 1, 1, tzinfo=UTC), datetime(2101, 6, 1, tzinfo=UTC), datetime.now(UTC)]
    for i, ts in enumerate(far):
        db.execute("INSERT INTO raw.device_status (device_id, ts, online) VALUES (%s, %s, true)", (f"d{i}", ts))
    rows = db.execute("SELECT tableoid::regclass::text FROM raw.device_status ORDER BY ts").fetchall()
    assert rows[0][0] == "raw.device_status_default"
    assert rows[2][0] == "raw.device_status_default"
    assert str(rows[1][0]).startswith("raw.device_status_p")


def test_new_partition_adopts_rows_from_default(db: psycopg.Connection[tuple[object, ...]]) -> None:
    if not _partitioned(db):
        pytest.skip("TimescaleDB present: no native partitions")
    ts = datetime(2099, 3, 5, tzinfo=UTC)
    db.execute("INSERT INTO raw.device_status (device_id, ts, online) VALUES ('late', %s, false)", (ts,))
    created = db.execute("SELECT store.ensure_partitions('raw.device_status', '2099-03-01', '2099-04-01')").fetchone()
    assert created == (1,)
    where = db.execute("SELECT tableoid::regclass::text FROM raw.device_status WHERE device_id = 'late'").fetchone()
    assert where == ("raw.device_status_p209903",)


@pytest.mark.timescaledb
def test_timescaledb_hypertables_with_policies(db: psycopg.Connection[tuple[object, ...]]) -> None:
    if _partitioned(db):
        pytest.skip("timescaledb extension is not installed on this server (plain PostgreSQL path tested instead)")
    hypertables = {r[0] for r in db.execute(
        "SELECT hypertable_schema || '.' || hypertable_name FROM timescaledb_information.hypertables").fetchall()}
    assert {"raw.hr_runs", "raw.rr_runs", "raw.sleep_episodes", "raw.device_status",
            "raw.survey_answers"} <= hypertables
    jobs = {r[0] for r in db.execute("SELECT proc_name FROM timescaledb_information.jobs").fetchall()}
    assert {"policy_compression", "policy_retention"} <= jobs
    rls = db.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                     "WHERE n.nspname = 'raw' AND c.relrowsecurity").fetchone()
    assert rls == (0,), "row-level security must never sit on a hypertable"
