"""Admin imports, withdrawal and erasure on a real PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from store import enrolment

TZ = ZoneInfo("Europe/London")
HEADER = ("force_id,staff_ref,role_group,age_band,sex,programme_start,consent_manager,consent_research,"
          "device_ids,gateway_id\n")
ROSTER_HEADER = "force_id,staff_ref,start,end,shift_type,overtime\n"
Conn = psycopg.Connection[tuple[object, ...]]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _count(conn: Conn, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(str(row[0]))


@pytest.fixture
def people(db: Conn, tmp_path: Path) -> Path:
    db.execute("TRUNCATE core.forces, core.devices, core.participants, core.identities, core.gateways, "
               "core.duties, core.device_assignments, core.erasure_log, ingest.dirty_days CASCADE")
    return _write(tmp_path, "people.csv", HEADER
                  + "WMP,PC0001,response,25-29,female,2026-03-02,true,true,dev-1;dev-2,gw-1\n"
                  + "WMP,PC0002,firearms,55+,male,2026-03-02,false,true,dev-3,gw-1\n"
                  + "KENT,PC0001,investigation,40-44,not_stated,2026-03-09,true,false,dev-4,\n")


def test_import_is_complete_and_idempotent(db: Conn, people: Path) -> None:
    first = enrolment.import_participants(db, people, TZ)
    assert (first.rows, first.inserted, first.updated) == (3, 3, 0)
    assert _count(db, "core.participants") == 3
    assert _count(db, "core.device_assignments") == 4
    assert _count(db, "core.forces") == 2
    again = enrolment.import_participants(db, people, TZ)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)  # re-import changes nothing
    assert _count(db, "core.participants") == 3
    assert _count(db, "core.device_assignments") == 4
    # identities are kept apart from participants
    cols = {r[0] for r in db.execute("SELECT column_name FROM information_schema.columns "
                                     "WHERE table_schema = 'core' AND table_name = 'participants'").fetchall()}
    assert "staff_ref" not in cols


def test_bad_rows_reported_and_nothing_written(db: Conn, people: Path, tmp_path: Path) -> None:
    bad = _write(tmp_path, "bad.csv", HEADER
                 + "WMP,PC0009,response,25-29,female,2026-03-02,true,true,dev-9,gw-1\n"
                 + "WMP,PC0010,pilot,25-29,female,2026-02-30,yes,true,dev+10,gw-1\n"
                 + "WMP,PC0009,response,25-29,female,2026-03-02,true,true,dev-9,gw-1\n")
    with pytest.raises(enrolment.CsvImportError) as err:
        enrolment.import_participants(db, bad, TZ)
    found = {(p.line, p.column) for p in err.value.problems}
    assert {(3, "role_group"), (3, "programme_start"), (3, "consent_manager"), (3, "device_ids"),
            (4, "staff_ref"), (4, "device_ids")} <= found
    assert "line 3, column role_group" in str(err.value)
    assert _count(db, "core.participants") == 0
    assert _count(db, "core.forces") == 0


def test_device_owned_by_someone_else_rolls_back(db: Conn, people: Path, tmp_path: Path) -> None:
    enrolment.import_participants(db, people, TZ)
    clash = _write(tmp_path, "clash.csv", HEADER
                   + "WMP,PC0100,response,30-34,male,2026-04-01,true,true,dev-100,gw-1\n"
                   + "WMP,PC0101,response,30-34,male,2026-04-01,true,true,dev-1,gw-1\n")
    with pytest.raises(enrolment.CsvImportError, match="assigned to another participant"):
        enrolment.import_participants(db, clash, TZ)
    assert _count(db, "core.participants") == 3  # PC0100 was not half-imported


def test_missing_column_is_reported(db: Conn, tmp_path: Path) -> None:
    path = _write(tmp_path, "short.csv", "force_id,staff_ref\nWMP,PC1\n")
    with pytest.raises(enrolment.CsvImportError, match="column missing"):
        enrolment.import_participants(db, path, TZ)


def test_roster_import(db: Conn, people: Path, tmp_path: Path) -> None:
    enrolment.import_participants(db, people, TZ)
    roster = _write(tmp_path, "roster.csv", ROSTER_HEADER
                    + "WMP,PC0001,2026-03-02T07:00:00+00:00,2026-03-02T17:00:00+00:00,early,false\n"
                    + "WMP,PC0001,2026-03-03T22:00:00+00:00,2026-03-04T07:00:00+00:00,night,true\n")
    summary = enrolment.import_roster(db, roster)
    assert (summary.rows, summary.inserted) == (2, 2)
    assert enrolment.import_roster(db, roster).inserted == 0
    assert _count(db, "core.duties") == 2
    assert _count(db, "ingest.dirty_days") == 3  # 2 Mar, 3 Mar, 4 Mar


def test_roster_bad_rows(db: Conn, people: Path, tmp_path: Path) -> None:
    enrolment.import_participants(db, people, TZ)
    roster = _write(tmp_path, "roster.csv", ROSTER_HEADER
                    + "WMP,PC0001,2026-03-02T07:00:00,2026-03-02T17:00:00+00:00,early,false\n"
                    + "WMP,NOBODY,2026-03-02T07:00:00+00:00,2026-03-02T17:00:00+00:00,early,false\n"
                    + "WMP,PC0001,2026-03-05T07:00:00+00:00,2026-03-05T06:00:00+00:00,brunch,0\n")
    with pytest.raises(enrolment.CsvImportError) as err:
        enrolment.import_roster(db, roster)
    found = {(p.line, p.column) for p in err.value.problems}
    assert found == {(2, "start"), (3, "staff_ref"), (4, "end"), (4, "shift_type"), (4, "overtime")}
    assert _count(db, "core.duties") == 0


def test_withdraw_and_erase(db: Conn, people: Path) -> None:
    enrolment.import_participants(db, people, TZ)
    pid, force = enrolment.resolve_participant(db, "WMP/PC0001")
    assert force == "WMP"
    assert enrolment.resolve_participant(db, str(pid)) == (pid, "WMP")
    enrolment.withdraw_participant(db, pid)
    row = db.execute("SELECT withdrawn_at IS NOT NULL FROM core.participants WHERE participant_id = %s",
                     (pid,)).fetchone()
    assert row == (True,)
    db.execute("INSERT INTO raw.survey_answers (device_id, ts, participant_id, kss, msg_id) "
               "VALUES ('dev-1', '2026-03-03T08:00:00Z', %s, 7, %s)", (pid, uuid.uuid4()))
    db.execute("INSERT INTO ingest.dead_letters (topic, payload, reason_code, detail) "
               "VALUES ('fatigue/v1/gw-1/dev-1/hr', 'x', 'malformed_json', 'test')")
    counts = enrolment.erase_participant(db, pid, requested_by="test")
    assert counts["raw.survey_answers"] == 1
    assert counts["ingest.dead_letters"] == 1
    assert counts["core.participants"] == 1 and counts["core.identities"] == 1
    assert _count(db, "raw.survey_answers") == 0
    assert db.execute("SELECT count(*) FROM core.identities WHERE staff_ref = 'PC0001' AND force_id = 'WMP'"
                      ).fetchone() == (0,)
    log = db.execute("SELECT force_id, rows_deleted::text FROM core.erasure_log").fetchall()
    assert len(log) == 1 and log[0][0] == "WMP"
    assert str(pid) not in str(log) and "PC0001" not in str(log)
    with pytest.raises(LookupError):
        enrolment.resolve_participant(db, "WMP/PC0001")
