"""The flag job against real PostgreSQL: closing rule, idempotency, revisions kept for audit, withdrawal."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import psycopg
import pytest

from risk.job import run_flags
from risk.programme import Programme, load_programme

Conn = psycopg.Connection[Any]
START = date(2026, 3, 2)  # a Monday; week 1 = 2-8 March, week 2 = 9-15 March


@pytest.fixture(scope="module")
def programme() -> Programme:
    return load_programme()


def _flags(db: Conn, pid: uuid.UUID) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT programme_week, revision, is_current, overall_level, criteria -> 'S1' ->> 'level', supersedes "
        "FROM risk.weekly_flags WHERE participant_id = %s ORDER BY programme_week, revision", (pid,)).fetchall()


def test_week_closes_two_days_after_its_end(db: Conn, seed: Any, programme: Programme) -> None:
    pid = seed.participant("close_f", START)
    seed.nights(pid, START, 1, 7, tst_min=480)
    run_flags(db, date(2026, 3, 9), programme)  # week 1 ends 8 March: not closed on the 9th
    assert _flags(db, pid) == []
    run_flags(db, date(2026, 3, 10), programme)  # 10 March 12:00 = 8 March 23:59 + 36 h
    assert [r[:4] for r in _flags(db, pid)] == [(1, 1, True, "green")]


def test_second_run_changes_nothing(db: Conn, seed: Any, programme: Programme) -> None:
    pid = seed.participant("idem_f", START)
    seed.nights(pid, START, 1, 14, tst_min=450)
    first = run_flags(db, date(2026, 3, 20), programme)
    before = _flags(db, pid)
    second = run_flags(db, date(2026, 3, 20), programme)
    assert _flags(db, pid) == before and len(before) == 2
    assert second.issued == 0 and second.revised == 0 and second.unchanged == second.evaluated
    assert first.issued >= 2


def test_late_data_revises_and_keeps_the_original(db: Conn, seed: Any, programme: Programme) -> None:
    pid = seed.participant("late_f", START)
    seed.nights(pid, START, 1, 3, tst_min=300)  # 3 valid nights of 7: S1 not evaluated
    run_flags(db, date(2026, 3, 10), programme)
    original = _flags(db, pid)
    assert [r[:5] for r in original] == [(1, 1, True, "insufficient_data", "not_evaluated")]
    seed.nights(pid, START, 4, 4, tst_min=300)  # late uploads: now 7 nights of 5 h
    summary = run_flags(db, date(2026, 3, 11), programme)
    rows = _flags(db, pid)
    assert summary.revised >= 1
    assert [r[:5] for r in rows] == [(1, 1, False, "insufficient_data", "not_evaluated"),
                                     (1, 2, True, "red", "red")]
    first_id = db.execute("SELECT flag_id FROM risk.weekly_flags WHERE participant_id = %s AND revision = 1",
                          (pid,)).fetchone()
    assert first_id is not None and rows[1][5] == first_id[0]
    run_flags(db, date(2026, 3, 11), programme)
    assert _flags(db, pid) == rows
    crit = db.execute("SELECT criteria FROM risk.weekly_flags WHERE participant_id = %s AND is_current",
                      (pid,)).fetchone()
    assert crit is not None
    assert crit[0]["S1"] == {"value": 5.0, "unit": "h", "level": "red",
                             "reason": "mean sleep 5 h over 7 valid nights, below 6 h"}
    assert crit[0]["W1"] == {"value": None, "unit": "count", "level": "not_evaluated",
                             "reason": "no roster for this week"}
    assert crit[0]["H1"]["below_band"] is False and crit[0]["H1"]["reason"].startswith("calibrating")


def test_withdrawn_participant_not_flagged_after_withdrawal(db: Conn, seed: Any, programme: Programme) -> None:
    pid = seed.participant("wd_f", START)
    seed.nights(pid, START, 1, 21, tst_min=480)
    db.execute("UPDATE core.participants SET withdrawn_at = %s WHERE participant_id = %s",
               (datetime.fromisoformat("2026-03-12T09:00:00+00:00"), pid))
    run_flags(db, date(2026, 4, 1), programme)
    assert [r[0] for r in _flags(db, pid)] == [1]  # week 1 closed 10 March; week 2 would close 17 March


def test_rls_hides_other_forces(db: Conn, seed: Any, programme: Programme) -> None:
    a = seed.participant("rls_a", START)
    b = seed.participant("rls_b", START)
    seed.nights(a, START, 1, 7)
    seed.nights(b, START, 1, 7)
    run_flags(db, date(2026, 3, 10), programme)
    db.execute("DROP ROLE IF EXISTS risk_test_reader")
    db.execute("CREATE ROLE risk_test_reader")
    db.execute("GRANT USAGE ON SCHEMA risk TO risk_test_reader")
    db.execute("GRANT SELECT ON risk.weekly_flags TO risk_test_reader")
    try:
        with db.transaction():
            db.execute("SET LOCAL ROLE risk_test_reader")
            db.execute("SELECT set_config('fatigue.force_id', 'rls_a', true)")
            forces = {r[0] for r in db.execute("SELECT force_id FROM risk.weekly_flags").fetchall()}
        assert forces == {"rls_a"}
        with db.transaction():
            db.execute("SET LOCAL ROLE risk_test_reader")
            assert db.execute("SELECT count(*) FROM risk.weekly_flags").fetchone() == (0,)
    finally:
        db.execute("REVOKE ALL ON risk.weekly_flags FROM risk_test_reader")
        db.execute("REVOKE ALL ON SCHEMA risk FROM risk_test_reader")
        db.execute("DROP ROLE risk_test_reader")


def test_erasure_removes_every_revision(db: Conn, seed: Any, programme: Programme) -> None:
    from store.enrolment import erase_participant

    pid = seed.participant("erase_f", START)
    seed.nights(pid, START, 1, 3, tst_min=300)
    run_flags(db, date(2026, 3, 10), programme)
    seed.nights(pid, START, 4, 4, tst_min=300)
    run_flags(db, date(2026, 3, 11), programme)
    assert len(_flags(db, pid)) == 2
    erase_participant(db, pid)
    assert _flags(db, pid) == []
