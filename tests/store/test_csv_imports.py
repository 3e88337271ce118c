"""CSV imports as administrators meet them: spreadsheet encodings, re-imports that change nothing, repeated and
overlapping duties. Real PostgreSQL; the CLI is driven through click's runner."""

from __future__ import annotations

import codecs
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from click.testing import CliRunner

from service.cli import main
from store import enrolment
from store.csv_text import CsvEncodingError, read_csv_text
from store.duty_checks import Duty, duty_conflicts

TZ = ZoneInfo("Europe/London")
HEADER = ("force_id,staff_ref,role_group,age_band,sex,programme_start,consent_manager,consent_research,"
          "device_ids,gateway_id\n")
PEOPLE = (HEADER + "WMP,PC0001,response,25-29,female,2026-03-02,true,true,dev-1,gw-1\n"
          + "WMP,PC0002,firearms,55+,male,2026-03-02,false,true,dev-2,gw-1\n"
          + "WMP,PC0003,firearms,55+,male,2026-03-02,false,true,dev-3,gw-1\n")
ACCENTED = PEOPLE.replace("PC0003", "PCÉ003")  # decoding fails before the staff reference is validated
ROSTER = ("force_id,staff_ref,start,end,shift_type,overtime\n"
          "WMP,PC0001,2026-03-02T07:00:00+00:00,2026-03-02T17:00:00+00:00,early,false\n"
          "WMP,PC0001,2026-03-03T22:00:00+00:00,2026-03-04T07:00:00+00:00,night,true\n"
          "WMP,PC0002,2026-03-02T07:00:00+00:00,2026-03-02T17:00:00+00:00,early,false\n")
Conn = psycopg.Connection[tuple[object, ...]]


def _count(conn: Conn, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(str(row[0]))


@pytest.fixture
def clean(db: Conn) -> Conn:
    db.execute("TRUNCATE core.forces, core.devices, core.participants, core.identities, core.gateways, "
               "core.duties, core.device_assignments, ingest.dirty_days CASCADE")
    return db


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- encodings ------------------------------------------------------------------------------------------------

def test_utf8_with_and_without_excel_bom_reads(tmp_path: Path) -> None:
    plain = _file(tmp_path, "a.csv", ACCENTED.encode())
    bom = _file(tmp_path, "b.csv", codecs.BOM_UTF8 + ACCENTED.encode())
    assert read_csv_text(plain) == read_csv_text(bom) == ACCENTED


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_is_refused_with_the_fix(tmp_path: Path, codec: str) -> None:
    text = ACCENTED.replace(",", "\t")  # Excel's "Unicode text" is tab-separated UTF-16
    with pytest.raises(CsvEncodingError) as err:
        read_csv_text(_file(tmp_path, "u.csv", text.encode(codec)))
    assert "UTF-16" in err.value.reason and "CSV UTF-8" in err.value.reason
    assert "iconv -f UTF-16 -t UTF-8" in err.value.reason and "tabs" in err.value.reason


def test_latin1_is_refused_naming_the_line_and_character(tmp_path: Path) -> None:
    with pytest.raises(CsvEncodingError) as err:
        read_csv_text(_file(tmp_path, "l.csv", ACCENTED.encode("latin-1")))
    assert err.value.line == 4
    assert "0xC9" in err.value.reason and "'É'" in err.value.reason
    assert "iconv -f WINDOWS-1252 -t UTF-8" in err.value.reason


def test_cli_import_of_a_latin1_file_is_one_clear_error(clean: Conn, db_url: str, tmp_path: Path) -> None:
    path = _file(tmp_path, "people.csv", ACCENTED.encode("cp1252"))
    result = CliRunner().invoke(main, ["participants", "import", str(path)], env={"FATIGUE_DATABASE_URL": db_url})
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "UnicodeDecodeError" not in result.output
    assert "line 4, column (file): byte 0xC9" in result.output and "CSV UTF-8" in result.output
    assert _count(clean, "core.participants") == 0


# --- re-imports -----------------------------------------------------------------------------------------------

def test_unchanged_reimport_changes_nothing_and_marks_no_day(clean: Conn, db_url: str, tmp_path: Path) -> None:
    people = _file(tmp_path, "people.csv", PEOPLE.encode())
    roster = _file(tmp_path, "roster.csv", ROSTER.encode())
    env = {"FATIGUE_DATABASE_URL": db_url}
    runner = CliRunner()
    first = runner.invoke(main, ["participants", "import", str(people)], env=env)
    assert "3 new, 0 updated, 0 unchanged" in first.output
    again = runner.invoke(main, ["participants", "import", str(people)], env=env)
    assert "0 new, 0 updated, 3 unchanged -- nothing changed" in again.output, again.output
    assert "3 duties: 3 new" in runner.invoke(main, ["roster", "import", str(roster)], env=env).output
    clean.execute("DELETE FROM ingest.dirty_days")
    again = runner.invoke(main, ["roster", "import", str(roster)], env=env)
    assert "0 new, 0 updated, 3 unchanged -- nothing changed" in again.output, again.output
    assert _count(clean, "ingest.dirty_days") == 0  # nothing to recompute


def test_a_real_change_is_counted_and_marks_its_days(clean: Conn, tmp_path: Path) -> None:
    enrolment.import_participants(clean, _file(tmp_path, "p.csv", PEOPLE.encode()), TZ)
    changed = PEOPLE.replace("PC0002,firearms,55+,male,2026-03-02,false", "PC0002,firearms,55+,male,2026-03-02,true")
    summary = enrolment.import_participants(clean, _file(tmp_path, "p2.csv", changed.encode()), TZ)
    assert (summary.inserted, summary.updated, summary.unchanged) == (0, 1, 2)
    more_devices = changed.replace("dev-1,gw-1", "dev-1;dev-9,gw-1")
    summary = enrolment.import_participants(clean, _file(tmp_path, "p3.csv", more_devices.encode()), TZ)
    assert (summary.updated, summary.unchanged) == (1, 2)
    enrolment.import_roster(clean, _file(tmp_path, "r.csv", ROSTER.encode()))
    clean.execute("DELETE FROM ingest.dirty_days")
    later = ROSTER.replace("2026-03-02T17:00:00+00:00,early,false\nWMP,PC0001",
                           "2026-03-02T18:00:00+00:00,early,true\nWMP,PC0001")
    summary = enrolment.import_roster(clean, _file(tmp_path, "r2.csv", later.encode()))
    assert (summary.inserted, summary.updated, summary.unchanged) == (0, 1, 2)
    assert _count(clean, "ingest.dirty_days") == 1  # 2 March only


# --- duplicate and overlapping duties -------------------------------------------------------------------------

def test_exact_duplicate_and_overlapping_duties_are_refused(clean: Conn, tmp_path: Path) -> None:
    enrolment.import_participants(clean, _file(tmp_path, "p.csv", PEOPLE.encode()), TZ)
    lines = ROSTER.splitlines()
    bad = "\n".join([*lines, lines[1],  # line 5 repeats line 2
                     "WMP,PC0001,2026-03-02T16:00:00+00:00,2026-03-02T23:00:00+00:00,late,false"]) + "\n"  # line 6
    with pytest.raises(enrolment.CsvImportError) as err:
        enrolment.import_roster(clean, _file(tmp_path, "r.csv", bad.encode()))
    reasons = {p.line: p.reason for p in err.value.problems}
    assert reasons[5].startswith("repeats line 2 exactly")
    assert "overlaps line 2" in reasons[6]
    assert _count(clean, "core.duties") == 0


def test_a_duty_overlapping_a_stored_one_is_refused(clean: Conn, tmp_path: Path) -> None:
    enrolment.import_participants(clean, _file(tmp_path, "p.csv", PEOPLE.encode()), TZ)
    enrolment.import_roster(clean, _file(tmp_path, "r.csv", ROSTER.encode()))
    shifted = ROSTER.splitlines()[0] + "\nWMP,PC0002,2026-03-02T08:00:00+00:00,2026-03-02T18:00:00+00:00,early,false\n"
    with pytest.raises(enrolment.CsvImportError, match="overlaps a duty already stored"):
        enrolment.import_roster(clean, _file(tmp_path, "r2.csv", shifted.encode()))
    assert _count(clean, "core.duties") == 3


def _d(line: int, who: str, start_h: int, end_h: int) -> Duty:
    return Duty(line, who, datetime(2026, 3, 2, start_h, tzinfo=UTC), datetime(2026, 3, 2, end_h, tzinfo=UTC))


def test_duty_checks_edges() -> None:
    assert duty_conflicts([_d(2, "a", 7, 12), _d(3, "a", 12, 20)]) == []  # back to back is not an overlap
    assert duty_conflicts([_d(2, "a", 7, 12), _d(3, "b", 8, 12)]) == []  # different officers
    long_first = duty_conflicts([_d(2, "a", 1, 23), _d(3, "a", 4, 5), _d(4, "a", 6, 7)])
    assert [p[0] for p in long_first] == [3, 4]  # both overlap the long duty, not only its neighbour
    replaced = duty_conflicts([_d(2, "a", 7, 13)], stored=[_d(0, "a", 7, 12)])
    assert replaced == []  # same start: the row replaces the stored duty
    assert duty_conflicts([], stored=[_d(0, "a", 7, 12), _d(0, "a", 8, 9)]) == []  # stored overlaps: not ours
    different = duty_conflicts([_d(2, "a", 7, 12), Duty(3, "a", _d(0, "a", 7, 12).start, _d(0, "a", 7, 13).end)])
    assert different and "different duty" in different[0][2]
