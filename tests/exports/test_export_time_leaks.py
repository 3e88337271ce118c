"""Exports without time leaks and checked across the exports of one project (issue 15).

A staggered cohort enrolled relative to *today* (the export's snapshot date): before issue 15 ``n_days`` and
each pid's last ``programme_day`` equalled the export date minus the programme start. Now rows stop at a horizon
band that is a quasi-identifier, recent starters are held back, and a second export of the same project that
would single out a few new participants by linking pids is refused.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest

from exports.checker_package import Release, check_cross_export
from exports.policy import POLICY_V1, ExportRefusedError
from tests.exports.export_cohort import _daily_rows, _flags, export

DAILY_COLS = ("participant_id, sleep_date, programme_day, valid_sleep_day, wear_h, n_episodes, tib_min, tst_min, "
              "main_tst_min, nap_min, se_pct, sol_min, waso_min, awakenings, midpoint_local_h, sleep_need_h, "
              "debt_net_7d_h, debt_gross_7d_h, debt_carry_h, sleep_performance_pct, sri_14d, sleep_consistency, "
              "valid_hrv_night, rmssd_ms, ln_rmssd, sdnn_ms, pnn50_pct, hrv_source, resting_hr_bpm, rhr_source, "
              "hrv_baseline_mean, hrv_baseline_sd, rhr_baseline_mean, recovery_score, algorithm_version")


def _enrol(conn: psycopg.Connection[Any], rng: np.random.Generator, today: date, ago_days: list[int]) -> list[str]:
    """Participants who started ``ago_days`` before today, all in one QI class, with data up to yesterday."""
    conn.execute("INSERT INTO core.forces (force_id) VALUES ('tf') ON CONFLICT DO NOTHING")
    ids = []
    for ago in ago_days:
        start = today - timedelta(days=ago)
        row = conn.execute("INSERT INTO core.participants (force_id, role_group, age_band, sex, programme_start, "
                           "consent_research) VALUES ('tf', 'response', '30-34', 'female', %s, true) "
                           "RETURNING participant_id::text", (start,)).fetchone()
        assert row is not None
        pid = str(row[0])
        ids.append(pid)
        with conn.cursor().copy(f"COPY derived.daily_features ({DAILY_COLS}) FROM STDIN") as copy:
            for r in _daily_rows(rng, pid, start)[:min(ago, 119)]:
                copy.write_row(r)
        with conn.cursor().copy("COPY risk.weekly_flags (participant_id, force_id, programme_week, week_start, "
                                "week_end, overall_level, criteria, programme_version, algorithm_version) "
                                "FROM STDIN") as copy:
            for r in _flags(rng, pid, "tf", start)[:ago // 7]:
                copy.write_row((*r, "programme-v1", "flags-1"))
    return ids


@pytest.fixture(scope="module")
def staggered(db_url: str) -> tuple[str, date, dict[str, int]]:
    rng = np.random.default_rng(11)
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT current_date").fetchone()
        assert row is not None
        today = row[0]
        ago = [int(a) for a in rng.integers(1, 160, 70)]  # staggered over five months, some started this week
        ids = _enrol(conn, rng, today, ago)
    return db_url, today, dict(zip(ids, ago, strict=True))


def test_no_column_gives_the_enrolment_date(staggered: tuple[str, date, dict[str, int]], tmp_path: Path) -> None:
    url, _today, ago = staggered
    run = export(url, tmp_path / "e1", "time-study")
    people, daily, flags = (run.tables[t] for t in ("participants", "daily_features", "weekly_flags"))
    assert "n_days" not in people.columns and set(people["weeks_band"]) <= set(POLICY_V1.horizon_weeks)
    held = sum(1 for a in ago.values() if a // 7 < POLICY_V1.horizon_weeks[0])
    assert len(people) + held + run.result.suppression["participants"] == len(ago) and held > 0
    assert any("held back" in n for n in run.result.notes)
    last_day = daily.groupby("pid")["programme_day"].max()
    band = people.set_index("pid")["weeks_band"]
    assert (last_day.to_numpy() <= band.reindex(last_day.index).to_numpy() * 7).all()
    last_week = flags.groupby("pid")["programme_week"].max()
    assert (last_week.to_numpy() <= band.reindex(last_week.index).to_numpy()).all()
    # the old leak: last programme day == days since the start (export date - start), for every released pid
    days_since_start = sorted(a for a in ago.values() if a // 7 >= POLICY_V1.horizon_weeks[0])
    assert sorted(last_day.tolist()) != days_since_start
    distinct_last = last_day.nunique()
    assert distinct_last <= len(POLICY_V1.horizon_weeks)
    # k counted over the quasi-identifiers including every time-derived column, and the last programme day
    k_with_time = people.groupby(list(POLICY_V1.quasi_identifiers)).size().min()
    k_last_day = pd.concat([people.set_index("pid"), last_day], axis=1).groupby(
        [*POLICY_V1.quasi_identifiers, "programme_day"]).size().min()
    assert k_with_time >= POLICY_V1.k and k_last_day >= POLICY_V1.k
    assert run.result.k_achieved == k_with_time
    print(f"\nfigures: held back {held}, released {len(people)}, bands {sorted(set(people['weeks_band']))}, "
          f"k (QIs + weeks_band) {k_with_time}, k (QIs + last programme day) {k_last_day}, "
          f"distinct last days {distinct_last}; before: {len(set(days_since_start))} distinct enrolment lengths")


def test_second_export_cannot_single_out_new_participants(staggered: tuple[str, date, dict[str, int]],
                                                          tmp_path: Path) -> None:
    url, today, _ago = staggered
    export(url, tmp_path / "p1", "diff-study")
    with psycopg.connect(url, autocommit=True) as conn:
        _enrol(conn, np.random.default_rng(5), today, [140, 141, 142])  # 3 new participants, same QIs and band
    with pytest.raises(ExportRefusedError, match="cross_export"):
        export(url, tmp_path / "p2", "diff-study")
    assert not (tmp_path / "p2").exists() or not any((tmp_path / "p2").iterdir())
    export(url, tmp_path / "other", "another-study")  # another project: nothing to link with, releasable


def test_cross_export_rule_links_by_pid_and_key_version() -> None:
    import pyarrow as pa
    pids = [f"{chr(65 + i)}" * 26 for i in range(20)]
    people = pa.table({"pid": pids, "force_group": ["all"] * 20, "role_group": ["all"] * 20,
                       "age_band": ["all"] * 20, "sex": ["female"] * 20, "weeks_band": [17] * 20})
    before = {p: ("all", "all", "18-39" if i < 4 else "40+", "female", 17) for i, p in enumerate(pids)}
    failures: list[tuple[str, str]] = []
    k = check_cross_export(people, 1, [Release(1, 1, before)], POLICY_V1, lambda r, m: failures.append((r, m)))
    assert k == 4 and failures and failures[0][0] == "cross_export"
    failures.clear()
    assert check_cross_export(people, 2, [Release(1, 1, before)], POLICY_V1,
                              lambda r, m: failures.append((r, m))) == 0 and not failures
