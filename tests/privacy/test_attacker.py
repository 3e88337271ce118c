"""The attacker's checker (tests/privacy/attacker.py) against the report and the managers' API.

It must find something in the outputs of the code before issue 15 (a fixture rendered by it), and nothing
in today's outputs for: the issue's force of 7 officers of whom 2 refused consent, a staggered cohort with
small groups, non-consenting and withdrawn officers and revised flags, and random cohorts of 5-60 officers.
Real PostgreSQL, the real report job, and the API connected as its production login role (fatigue_web).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from exports.job import ExportRequest, run_export
from exports.policy import ExportRefusedError
from risk.programme import load_programme
from risk.publisher import make_weekly_report
from service.api import create_app
from service.auth import create_token
from store.migrate import migrate
from tests.access.access_support import as_role, bearer
from tests.conftest import create_database, drop_database
from tests.privacy.attacker import Outputs, attack, load
from tests.privacy.cohort import Cohort, Officer, random_cohort, seed_cohort, seven

LEGACY = Path(__file__).resolve().parents[1] / "data" / "privacy" / "legacy_seven"
START = date(2026, 2, 16)  # a Monday; programme weeks of the seven-officer force end on Sundays
REPORT_WEEK, REPORT_END = "2026-W11", date(2026, 3, 15)


@pytest.fixture(scope="module")
def env(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, TestClient]]:
    outbox = tmp_path_factory.mktemp("outbox")
    app = create_app(as_role(db_url, "fatigue_web"), outbox, pool_size=2,
                     admin_database_url=as_role(db_url, "fatigue_web_admin"))
    with TestClient(app) as client:
        yield db_url, outbox, client


def outputs_of(env: tuple[str, Path, TestClient], cohort: Cohort, iso_week: str = REPORT_WEEK,
               week_end: date = REPORT_END) -> Outputs:
    """Seed the cohort, run the report job, and collect the manager's API answers over the report's window."""
    url, outbox, client = env
    with psycopg.connect(url, autocommit=True) as conn:
        seed_cohort(conn, cohort)
        token = create_token(conn, "manager", timedelta(hours=1), force_id=cohort.force)[1]
        result = make_weekly_report(conn, cohort.force, iso_week, outbox, load_programme(),
                                    now=datetime(2026, 3, 16, tzinfo=UTC))
    return collect(client, token, cohort.force, result.html_path, list(result.csv_paths), week_end)


def collect(client: TestClient, token: str, force: str, html: Path, csvs: list[Path], week_end: date) -> Outputs:
    """A report's files and the API's answers (``/flags`` for every day and ``/flags/summary`` for every ISO
    week of the report's 8-week window), as the force's manager would get them."""
    base = f"/v1/forces/{force}"
    flags: list[dict[str, Any]] = []
    for k in range(7 * 8):
        resp = client.get(f"{base}/flags", params={"week": (week_end - timedelta(days=k)).isoformat()},
                          headers=bearer(token))
        assert resp.status_code == 200
        flags += resp.json()
    weeks = {f"{d.isocalendar()[0]}-W{d.isocalendar()[1]:02d}"
             for d in (week_end - timedelta(days=7 * k) for k in range(8))}
    summaries = [client.get(f"{base}/flags/summary", params={"iso_week": w}, headers=bearer(token)).json()
                 for w in sorted(weeks)]
    return Outputs(html.read_text(), {p.name: p.read_text() for p in csvs}, flags, summaries)


def test_checker_finds_the_leaks_of_the_old_outputs() -> None:
    findings = [str(f) for f in attack(load(LEGACY))]
    assert any("API returned a row of an officer who is not named" in f for f in findings)
    assert any("mean sleep of the 2 officers not named" in f for f in findings)
    assert any("exactly 0 of the 2 officers not named" in f for f in findings)


def test_seven_officers_two_refused(env: tuple[str, Path, TestClient]) -> None:
    out = outputs_of(env, seven("SEV", START))
    assert attack(out) == []
    # what each output shows (quoted in the closing note of issue 15)
    assert all(f["staff_ref"] and not f["staff_ref"].startswith("SEV-X") for f in out.api_flags)
    assert {f["staff_ref"] for f in out.api_flags if f["week_end"] == "2026-03-15"} == {
        f"SEV-N{k}" for k in range(1, 6)}
    assert "SEV-X" not in out.html and "SEV-X" not in "".join(out.csv.values())
    assert out.csv["counts.csv"] == ("level,officers\nred,not shown\namber,not shown\ngreen,not shown\n"
                                     "insufficient_data,not shown\ntotal,7\nflagged_not_named,not shown\n"
                                     "revised_flags,not shown\n")
    assert out.csv["trends.csv"].splitlines()[-1] == "2026-W11,7,not shown,not shown,not shown"
    summary = next(s for s in out.api_summaries if s and s["iso_week"] == REPORT_WEEK)
    assert summary == {"iso_week": REPORT_WEEK, "officers": 7, "levels": dict.fromkeys(
        ("red", "amber", "green", "insufficient_data")), "flagged": None, "flagged_not_named": None,
        "revised": None, "mean_sleep_h": None}
    assert [line.split(",")[0] for line in out.csv["flagged_officers.csv"].splitlines()[1:]] == [
        "SEV-N1", "SEV-N2", "SEV-N3"]


def _staggered(force: str) -> Cohort:
    """30 officers starting on 10 different days; 7 not named (small groups per level), 2 withdrawn, revisions."""
    levels = ("green", "green", "amber", "red", "green", "insufficient_data")
    officers = []
    for k in range(30):
        named = k >= 7
        lv = tuple(levels[(k + w) % len(levels)] if named else ("red" if k < 2 else "green" if k < 6 else "amber")
                   for w in range(6))
        officers.append(Officer(f"{force}-{k:02d}", START + timedelta(days=k % 10), named, lv,
                                withdrawn=k in (3, 20), revised_weeks=frozenset({4}) if k % 9 == 0 else frozenset(),
                                jitter_h=(k % 5) * 0.1))
    return Cohort(force, officers)


def test_staggered_cohort_with_withdrawn_officers(env: tuple[str, Path, TestClient]) -> None:
    cohort = _staggered("STG")
    out = outputs_of(env, cohort, "2026-W12", date(2026, 3, 22))
    assert attack(out) == [], [str(f) for f in attack(out)]
    withdrawn = {o.staff_ref for o in cohort.officers if o.withdrawn}
    assert not any(f["staff_ref"] in withdrawn for f in out.api_flags)
    assert not any(ref in out.html for ref in withdrawn)
    assert {f["participant_id"] for f in out.api_flags} <= {
        str(cohort.ids[o.staff_ref]) for o in cohort.officers if o.named and not o.withdrawn}


@pytest.mark.parametrize("seed", range(6))
def test_random_cohorts(env: tuple[str, Path, TestClient], seed: int) -> None:
    n = (5, 9, 14, 23, 40, 60)[seed]
    cohort = random_cohort(f"RND{seed}", n, seed, START, p_named=(0.5, 0.7, 0.85)[seed % 3])
    out = outputs_of(env, cohort, "2026-W12", date(2026, 3, 22))
    assert attack(out) == [], [str(f) for f in attack(out)]


def test_legacy_fixture_is_the_seven_officer_cohort() -> None:
    flags = json.loads((LEGACY / "api_flags.json").read_text())
    assert len({f["participant_id"] for f in flags}) == 7
    assert sum(1 for f in flags if f["staff_ref"] is None and f["week_end"] == "2026-03-15") == 2


def test_seven_officer_force_alone_gives_no_research_export(pg_admin_url: str, tmp_path: Path) -> None:
    """The export side of the closing note: 7 officers are fewer than k = 10, so no export is released."""
    url = create_database(pg_admin_url, "fatigue_test_seven")
    try:
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            seed_cohort(conn, seven("SEV", START))
        req = ExportRequest(project="seven", out=tmp_path / "e", master_key=bytes(32), key_version=1,
                            requester="t")
        with pytest.raises(ExportRefusedError) as info:
            run_export(url, req)
        assert info.value.rule == "k_anonymity" and not (tmp_path / "e").exists()
    finally:
        drop_database(pg_admin_url, url)


def test_withdrawal_mid_programme(env: tuple[str, Path, TestClient]) -> None:
    """A named officer withdraws during week 3: never named again, no flag from then on, and the weeks before
    keep their counts (an earlier report and a later one cannot be differenced)."""
    cohort = seven("WDR", START)
    quitter = Officer("WDR-Q1", START, True, ("red", "red", "red", "red"), withdrawn_on=START + timedelta(days=16))
    cohort.officers.append(quitter)
    out = outputs_of(env, cohort)
    assert attack(out) == [], [str(f) for f in attack(out)]
    assert "WDR-Q1" not in out.html and "WDR-Q1" not in "".join(out.csv.values())
    assert not any(f["staff_ref"] == "WDR-Q1" for f in out.api_flags)
    officers = {s["iso_week"]: s["officers"] for s in out.api_summaries if s and s["officers"]}
    assert officers == {"2026-W08": 8, "2026-W09": 8, "2026-W10": 7, "2026-W11": 7}
