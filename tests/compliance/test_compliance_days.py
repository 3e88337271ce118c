"""Local days in the database path: a clock change gives a 23-hour day, and a late, out-of-order run lands in
its own day on the next incremental run."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from compliance.job import run_compliance
from compliance.rules import ComplianceRules


def _participant(conn: psycopg.Connection[Any], start: date) -> uuid.UUID:
    conn.execute("INSERT INTO core.forces (force_id) VALUES ('DST') ON CONFLICT DO NOTHING")
    pid = uuid.uuid4()
    conn.execute("INSERT INTO core.participants (participant_id, force_id, role_group, age_band, sex, programme_start)"
                 " VALUES (%s, 'DST', 'response', '30-34', 'male', %s)", (pid, start))
    return pid


def _hour_runs(conn: psycopg.Connection[Any], pid: uuid.UUID, device: str, first: datetime, hours: int) -> None:
    """One run per hour, one sample a minute."""
    rows = [(device, first + timedelta(hours=h), first + timedelta(hours=h, minutes=59), pid,
             list(range(0, 3_600_000, 60_000)), [60] * 60, [False] * 60, uuid.uuid4()) for h in range(hours)]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO raw.hr_runs (device_id, start_ts, end_ts, participant_id, offsets_ms, bpm, "
                        "suspect, msg_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)


def _wear(conn: psycopg.Connection[Any], pid: uuid.UUID) -> dict[date, float]:
    rows = conn.execute("SELECT day, wear_min FROM compliance.daily WHERE participant_id = %s", (pid,)).fetchall()
    return {r[0]: float(r[1]) for r in rows}


def test_spring_forward_day_has_23_hours_and_late_runs_land_in_their_day(db: psycopg.Connection[Any]) -> None:
    pid = _participant(db, date(2025, 3, 20))
    # Continuous wear from 2025-03-29 00:00 UTC for 48 h; clocks go forward at 01:00 UTC on 30 March.
    _hour_runs(db, pid, "dst-dev", datetime(2025, 3, 29, tzinfo=UTC), 48)
    run_compliance(db, ComplianceRules(), "Europe/London", now=datetime(2025, 3, 31, 12, tzinfo=UTC))
    wear = _wear(db, pid)
    assert wear[date(2025, 3, 29)] == 1440.0
    assert wear[date(2025, 3, 30)] == 23 * 60, "local 30 March is 23 hours long"
    assert wear[date(2025, 3, 31)] == 60.0, "23:00-24:00 UTC on the 30th is 00:00-01:00 BST on the 31st"
    # A run for the 25th arrives late (a gateway's backlog): only that day changes, on the next run.
    _hour_runs(db, pid, "dst-dev", datetime(2025, 3, 25, 10, tzinfo=UTC), 2)
    run_compliance(db, ComplianceRules(), "Europe/London", now=datetime(2025, 3, 31, 13, tzinfo=UTC),
                   reread=timedelta(0))
    after = _wear(db, pid)
    assert after[date(2025, 3, 25)] == 120.0
    assert {d: w for d, w in after.items() if d != date(2025, 3, 25)} == wear


def test_sleep_without_heart_rate_counts_as_valid_nights(db: psycopg.Connection[Any]) -> None:
    """A device that exports sleep but no heart rate has no wear signal: its nights count on sleep alone, as in
    the feature job's valid sleep day, so the view does not call lapsed a week the flags will evaluate."""
    pid = _participant(db, date(2025, 6, 1))
    db.execute("INSERT INTO raw.sleep_episodes (device_id, start_ts, end_ts, participant_id, in_bed, msg_id) "
               "SELECT 'sleep-only', d + interval '22 hours', d + interval '30 hours', %s, true, gen_random_uuid() "
               "FROM generate_series('2025-06-01'::timestamptz, '2025-06-09'::timestamptz, interval '1 day') d",
               (pid,))
    run_compliance(db, ComplianceRules(), "Europe/London", now=datetime(2025, 6, 10, 12, tzinfo=UTC))
    row = db.execute("SELECT valid_nights_7d, expected_nights_7d, reasons, wear_h_7d FROM compliance.participant_state "
                     "WHERE participant_id = %s", (pid,)).fetchone()
    assert row is not None
    assert row[:2] == (7, 7) and "nights" not in row[2]
    assert row[3] is None, "no wear signal is unknown wear, not 0 h"
    assert db.execute("SELECT count(*) FROM compliance.daily WHERE participant_id = %s AND wear_min IS NULL",
                      (pid,)).fetchone() == (9,)


def test_two_runs_never_overlap(db: psycopg.Connection[Any], db_url: str) -> None:
    """A second run while one holds the lock (two schedulers, or the CLI during a tick) does nothing."""
    with psycopg.connect(db_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (0x636F6D70,))
        skipped = run_compliance(db, ComplianceRules(), "Europe/London")
        other.execute("SELECT pg_advisory_unlock(%s)", (0x636F6D70,))
    assert skipped.skipped and skipped.participants == 0
    assert not run_compliance(db, ComplianceRules(), "Europe/London").skipped


def test_the_scheduler_tick_runs_compliance(db: psycopg.Connection[Any], db_url: str, tmp_path: Any) -> None:
    """``fatigue serve``'s scheduler evaluates compliance on every tick (no broker configured here)."""
    from service.serve import Scheduler, ServeConfig

    pid = _participant(db, date(2025, 9, 1))
    # The weekly job has run (its report cannot yet be drawn for a force without flags: left to issue 15).
    db.execute("INSERT INTO risk.flag_runs (as_of, programme_version, algorithm_version, evaluated, issued, revised, "
               "unchanged, started_at) VALUES ('2025-09-05', 'v1', 'a1', 0, 0, 0, 0, '2025-09-05 12:00+00')")
    Scheduler(ServeConfig(db_url, "Europe/London", tmp_path, api=False)).tick(datetime(2025, 9, 5, 12, tzinfo=UTC))
    row = db.execute("SELECT level, evaluated_at FROM compliance.participant_state WHERE participant_id = %s",
                     (pid,)).fetchone()
    assert row == ("lapsed", datetime(2025, 9, 5, 12, tzinfo=UTC)), "4 days without a word from the device"
    lines = (tmp_path / "compliance" / "alerts.jsonl").read_text().splitlines()
    assert any('"kind": "silent"' in ln for ln in lines)


def test_the_scheduler_takes_the_forces_own_programme_for_compliance(db: psycopg.Connection[Any], db_url: str,
                                                                     tmp_path: Any) -> None:
    """FATIGUE_PROGRAMME reaches the compliance job too: a programme that alerts only after 30 silent days
    gives no silent alert where the packaged one (24 h) does (test above)."""
    from importlib import resources

    from service.serve import Scheduler, ServeConfig

    _participant(db, date(2025, 9, 1))
    db.execute("INSERT INTO risk.flag_runs (as_of, programme_version, algorithm_version, evaluated, issued, revised, "
               "unchanged, started_at) VALUES ('2025-09-05', 'v1', 'a1', 0, 0, 0, 0, '2025-09-05 12:00+00')")
    packaged = resources.files("risk").joinpath("programme_v2.toml").read_text(encoding="utf-8")
    assert "[compliance]" not in packaged
    own = tmp_path / "force_programme.toml"
    own.write_text(packaged + "\n[compliance]\nalert_silent_h = 720.0\nwatch_silent_h = 700.0\n"
                   "lapsed_silent_h = 720.0\n", encoding="utf-8")
    outbox = tmp_path / "outbox"
    Scheduler(ServeConfig(db_url, "Europe/London", outbox, api=False, programme=str(own))).tick(
        datetime(2025, 9, 5, 12, tzinfo=UTC))
    alerts = outbox / "compliance" / "alerts.jsonl"
    events = [json.loads(ln) for ln in alerts.read_text().splitlines()] if alerts.exists() else []
    opened = [e for e in events if e["kind"] == "silent" and e["state"] == "open"]
    assert not opened, "the force's 30-day silence threshold was ignored"
