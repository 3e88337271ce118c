"""The weekly report's compliance section: small numbers suppressed, only consenting officers named, and no
section at all (rather than "everybody lapsed") when the compliance job has never run."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from compliance.report_section import build_section, section_csv
from compliance.rules import ComplianceRules
from risk.programme import load_programme
from risk.publisher import make_weekly_report
from risk.report import SUPPRESSED

R = ComplianceRules()
MONDAY = date(2026, 3, 9)


def _section(valid: list[int], consent: list[bool]) -> Any:
    refs = [f"S{k}" for k in range(len(valid))]
    return build_section(MONDAY, np.array(valid, np.int64), np.full(len(valid), 7, np.int64),
                         np.array(consent, bool), [r if c else None for r, c in zip(refs, consent, strict=True)], R)


def test_one_small_level_hides_the_next_smallest() -> None:
    s = _section([7] * 10 + [2, 3], [False] * 11 + [True])
    # not named: 10 ok and 1 lapsed; the lapsed 1 is hidden (R1) and the ok 10 with it (R3), so the total
    # (known from the roster) cannot give it back; the "not named" line would pin it, so it is hidden too
    assert [(lv, shown) for lv, _, shown in s.counts] == [("ok", SUPPRESSED), ("watch", "0"),
                                                          ("lapsed", SUPPRESSED)]
    assert s.total == "12"
    assert s.named == (("S11", "lapsed", "3 of 7"),)
    assert s.unnamed == SUPPRESSED


def test_a_force_where_everyone_is_named_hides_nothing_and_lists_only_watch_and_lapsed() -> None:
    s = _section([7, 4, 1], [True, True, True])
    assert [shown for _, _, shown in s.counts] == ["1", "1", "1"] and s.total == "3" and s.unnamed == "0"
    assert [n[0] for n in s.named] == ["S2", "S1"], "lapsed first, then watch"
    text = section_csv(s)["compliance.csv"]
    assert "S0" not in text, "an ok officer is not listed"


def test_a_small_unnamed_group_shows_no_count() -> None:
    s = _section([7, 7, 7, 1, 7, 7], [False, False, False, False, True, True])
    assert {shown for _, _, shown in s.counts} == {SUPPRESSED} and s.unnamed == SUPPRESSED  # R2: 4 not named
    assert s.total == "6" and s.named == ()


def _seed(conn: psycopg.Connection[Any], force: str) -> dict[str, uuid.UUID]:
    conn.execute("INSERT INTO core.forces (force_id) VALUES (%s)", (force,))
    people = {}
    for k in range(8):
        ref = f"{'GOOD' if k < 5 else 'POOR'}-{'C' if k % 2 else 'N'}{k}"
        pid = uuid.uuid4()
        conn.execute("INSERT INTO core.participants (participant_id, force_id, role_group, age_band, sex, "
                     "programme_start, consent_manager) VALUES (%s, %s, 'response', '30-34', 'female', %s, %s)",
                     (pid, force, MONDAY - timedelta(days=14), k % 2 == 1))
        conn.execute("INSERT INTO core.identities VALUES (%s, %s, %s)", (pid, force, ref))
        # a flag row each, so that the officers are in the report week
        conn.execute("INSERT INTO risk.weekly_flags (participant_id, force_id, programme_week, week_start, week_end, "
                     "overall_level, criteria, programme_version, algorithm_version) VALUES "
                     "(%s, %s, 3, %s, %s, 'green', '{}', 'v1', 'a1')", (pid, force, MONDAY, MONDAY + timedelta(days=6)))
        nights = 7 if k < 5 else 2
        for d in range(nights):
            conn.execute("INSERT INTO compliance.daily (participant_id, day, wear_min, sleep_episodes) "
                         "VALUES (%s, %s, 1300, 1)", (pid, MONDAY + timedelta(days=d)))
        people[ref] = pid
    return people


def test_weekly_report_carries_the_section(db: psycopg.Connection[Any], tmp_path: Path) -> None:
    people = _seed(db, "CMPF")
    programme = load_programme(None)
    now = datetime(2026, 3, 16, 12, tzinfo=UTC)
    before = make_weekly_report(db, "CMPF", "2026-W11", tmp_path / "a", programme, now=now)
    assert "Device wear this week" not in before.html_path.read_text(), "job never ran: no section"
    db.execute("INSERT INTO compliance.watermark (ingested_through) VALUES (now())")
    result = make_weekly_report(db, "CMPF", "2026-W11", tmp_path / "b", programme, now=now)
    html = result.html_path.read_text()
    assert "Device wear this week" in html
    assert "POOR-C5" in html and "POOR-C7" in html, "consenting lapsed officers are named"
    assert "POOR-N6" not in html and "GOOD-" not in html
    files = {p.name: p.read_text() for p in result.folder.iterdir() if p.suffix == ".csv"}
    assert "compliance.csv" in files
    assert "POOR-N6" not in "".join(files.values())
    # not named: GOOD-N0, N2, N4 (ok) and POOR-N6 (lapsed): 4 officers, so no count is shown (rule R2)
    assert "count,lapsed,not shown" in files["compliance.csv"]
    assert "count,ok,not shown" in files["compliance.csv"], "5 ok would reveal the 3 lapsed out of 8"
    assert "count,not_named,not shown" in files["compliance.csv"]
    assert set(people) >= {"POOR-C5", "POOR-N6", "POOR-C7"}
