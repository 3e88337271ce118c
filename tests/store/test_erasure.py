"""Erasure through parent tables only: partitions (plain PostgreSQL) and chunks, compressed or not (TimescaleDB).

The same tests run in both storage modes; in TimescaleDB mode every chunk is compressed before erasing, so
they prove erasure on compressed data. Tests marked ``timescaledb`` skip on plain PostgreSQL (and fail under
``FATIGUE_REQUIRE_TIMESCALEDB=1``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from features.job import run_features
from risk.validation.pipeline import write_log
from simulators.params import FaultRates, SimParams
from simulators.run import simulate_to_dir
from store import enrolment
from store.migrate import migrate
from tests.conftest import create_database, drop_database
from tests.store.tsdb import compress_every_chunk, storage_mode

Conn = psycopg.Connection[tuple[object, ...]]
TZ = "Europe/London"
CHILD_RE = re.compile(r"(_p\d{6}|_default|_hyper_|_compressed_|chunk|_timescaledb)")
HEADER = ("force_id,staff_ref,role_group,age_band,sex,programme_start,consent_manager,consent_research,"
          "device_ids,gateway_id\n")


def _insert_runs(conn: Conn, pid: object, device: str, starts: list[datetime]) -> None:
    for ts in starts:
        conn.execute("INSERT INTO raw.hr_runs (device_id, start_ts, end_ts, participant_id, offsets_ms, bpm, suspect, "
                     "msg_id) VALUES (%s, %s, %s, %s, '{0,1000}', '{60,61}', '{f,f}', %s)",
                     (device, ts, ts + timedelta(seconds=1), pid, uuid.uuid4()))


def _count(conn: Conn, sql: str, *args: object) -> int:
    row = conn.execute(sql, args).fetchone()
    assert row is not None
    return int(str(row[0]))


@pytest.fixture
def two_people(db: Conn, tmp_path: Path) -> tuple[object, object]:
    db.execute("TRUNCATE core.forces, core.devices, core.participants, core.identities, core.gateways, "
               "core.duties, core.device_assignments, core.erasure_log, ingest.dirty_days, raw.hr_runs CASCADE")
    people = tmp_path / "people.csv"
    people.write_text(HEADER + "WMP,PC0001,response,25-29,female,2026-03-02,true,true,dev-a,gw-1\n"
                      + "WMP,PC0002,firearms,55+,male,2026-03-02,false,true,dev-b,gw-1\n", encoding="utf-8")
    enrolment.import_participants(db, people, ZoneInfo(TZ))
    return enrolment.resolve_participant(db, "WMP/PC0001")[0], enrolment.resolve_participant(db, "WMP/PC0002")[0]


def _spread_starts(db: Conn) -> list[datetime]:
    """Run starts over five months; in plain mode also one in a month without a partition (the DEFAULT
    partition). Not in TimescaleDB mode: its retention job may drop a 1999 chunk at any moment."""
    now = datetime.now(UTC).replace(microsecond=0)
    recent = [now - timedelta(days=d) for d in (1, 9, 40, 75, 110)]
    return recent if storage_mode(db) == "timescaledb" else [*recent, datetime(1999, 1, 4, tzinfo=UTC)]


def test_erase_deletes_through_parents_and_names_only_parents(db: Conn, two_people: tuple[object, object]) -> None:
    erased, kept = two_people
    starts = _spread_starts(db)
    _insert_runs(db, erased, "dev-a", starts)
    _insert_runs(db, kept, "dev-b", starts)
    homes = {str(r[0]) for r in db.execute("SELECT DISTINCT tableoid::regclass::text FROM raw.hr_runs").fetchall()}
    assert len(homes) >= 4, f"rows must sit in several children for this test to mean anything: {homes}"
    if storage_mode(db) == "timescaledb":
        assert compress_every_chunk(db) >= 4
    counts = enrolment.erase_participant(db, erased, requested_by="test")  # type: ignore[arg-type]
    assert counts["raw.hr_runs"] == len(starts), "every child's rows are counted under the parent"
    assert [k for k in counts if CHILD_RE.search(k) or k.startswith("_")] == []
    logged = db.execute("SELECT rows_deleted FROM core.erasure_log").fetchall()
    assert len(logged) == 1 and isinstance(logged[0][0], dict) and set(logged[0][0]) == set(counts)
    assert _count(db, "SELECT count(*) FROM raw.hr_runs WHERE participant_id = %s", erased) == 0
    assert _count(db, "SELECT count(*) FROM raw.hr_runs WHERE participant_id = %s", kept) == len(starts)
    assert _count(db, "SELECT count(*) FROM core.participants WHERE participant_id = %s", erased) == 0


def test_participant_tables_are_parents_only(db: Conn) -> None:
    tables = enrolment._participant_tables(db)
    names = [f"{s}.{t}" for s, t in tables]
    assert "raw.hr_runs" in names and "raw.survey_answers" in names
    assert [n for n in names if CHILD_RE.search(n)] == []
    children = _count(db, "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent "
                          "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'raw'")
    assert children > 0, "raw streams have children (partitions or chunks) that must not be listed"


def test_erase_of_temp_lookalike_is_not_attempted(db: Conn, two_people: tuple[object, object]) -> None:
    """The ingester's staging tables (temporary, LIKE raw.*) are not participant tables of the database."""
    db.execute("CREATE TEMP TABLE stage_probe (LIKE raw.hr_runs INCLUDING DEFAULTS)")
    try:
        assert [s for s, _ in enrolment._participant_tables(db) if s.startswith("pg_temp")] == []
    finally:
        db.execute("DROP TABLE stage_probe")


@pytest.mark.timescaledb
def test_erase_on_compressed_chunks(db: Conn, two_people: tuple[object, object]) -> None:
    if storage_mode(db) != "timescaledb":
        pytest.skip("timescaledb extension is not installed on this server (plain partitions tested above)")
    erased, kept = two_people
    starts = _spread_starts(db)
    _insert_runs(db, erased, "dev-a", starts)
    _insert_runs(db, kept, "dev-b", starts)
    assert compress_every_chunk(db) >= 3
    counts = enrolment.erase_participant(db, erased, requested_by="test")  # type: ignore[arg-type]
    assert counts["raw.hr_runs"] == len(starts)
    assert [k for k in counts if CHILD_RE.search(k)] == []
    assert _count(db, "SELECT count(*) FROM raw.hr_runs") == len(starts)


# --- erase, replay and recompute on a simulated cohort (compressed first in TimescaleDB mode) ---------------

DAYS = 14


def _write_log(url: str, log: Path) -> None:
    with psycopg.connect(url) as conn:
        write_log(conn, log, TZ, batch_size=500)


@pytest.fixture(scope="module")
def cohort(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    url = create_database(pg_admin_url, "fatigue_erasure")
    migrate(url)
    out = tmp_path_factory.mktemp("sim")
    params = replace(SimParams(n_participants=3, n_days=DAYS, start_date=date.today() - timedelta(days=DAYS + 2),
                               seed=5), faults=FaultRates(malformed=0.0))
    simulate_to_dir(params, out)
    with psycopg.connect(url) as conn:
        enrolment.import_participants(conn, out / "participants.csv", ZoneInfo(TZ))
        enrolment.import_roster(conn, out / "roster.csv")
        conn.commit()
    _write_log(url, out / "messages.bin")
    yield url, out
    drop_database(pg_admin_url, url)


def _features(conn: Conn) -> list[tuple[object, ...]]:
    return conn.execute("SELECT participant_id, sleep_date, main_tst_min, rmssd_ms, resting_hr_bpm "
                        "FROM derived.daily_features ORDER BY 1, 2").fetchall()


def _erase_replay_recompute(cohort: tuple[str, Path]) -> int:
    """Erase the first remaining participant (every chunk compressed first in TimescaleDB mode), replay every
    message, recompute every feature; return how many chunks were compressed."""
    url, out = cohort
    run_features(url, TZ, full=True)
    with psycopg.connect(url, autocommit=True) as conn:
        compressed = compress_every_chunk(conn) if storage_mode(conn) == "timescaledb" else 0
        pid = enrolment.resolve_participant(conn, str(conn.execute(
            "SELECT force_id || '/' || staff_ref FROM core.identities ORDER BY 1 LIMIT 1").fetchone()[0]))[0]  # type: ignore[index]
        devices = [r[0] for r in conn.execute("SELECT device_id FROM core.device_assignments WHERE participant_id = "
                                              "%s", (pid,)).fetchall()]
        before = [r for r in _features(conn) if r[0] != pid]
        raw_before = _count(conn, "SELECT count(*) FROM raw.hr_runs WHERE participant_id <> %s", pid)
        counts = enrolment.erase_participant(conn, pid, requested_by="test")
        assert counts["raw.hr_runs"] > 0 and counts["raw.rr_runs"] > 0 and counts["derived.daily_features"] > 0
        assert [k for k in counts if CHILD_RE.search(k)] == []
    _write_log(url, out / "messages.bin")  # the gateway replays everything it ever sent
    with psycopg.connect(url, autocommit=True) as conn:
        assert _count(conn, "SELECT count(*) FROM raw.hr_runs WHERE device_id = ANY(%s)", devices) == 0, \
            "an erased participant's replayed data must not come back into raw tables"
        assert _count(conn, "SELECT count(*) FROM raw.hr_runs") == raw_before, "replay into "\
            f"{'compressed' if compressed else 'partitioned'} storage is absorbed"
    run_features(url, TZ, full=True)
    with psycopg.connect(url, autocommit=True) as conn:
        after = _features(conn)
    assert after == before, "recomputing after erasure and replay changes nobody else's features"
    assert all(r[0] != pid for r in after)
    return compressed


def test_erase_then_replay_then_recompute(cohort: tuple[str, Path]) -> None:
    _erase_replay_recompute(cohort)


@pytest.mark.timescaledb
def test_erase_replay_recompute_with_every_chunk_compressed(cohort: tuple[str, Path]) -> None:
    with psycopg.connect(cohort[0]) as conn:
        if storage_mode(conn) != "timescaledb":
            pytest.skip("timescaledb extension is not installed on this server (partitioned run above)")
    assert _erase_replay_recompute(cohort) > 0
