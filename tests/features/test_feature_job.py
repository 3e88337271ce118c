"""The daily feature job end to end: simulated cohort -> ingester write path -> features -> ground truth."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import psycopg
import pytest

from features.job import run_features
from risk.validation.pipeline import write_log
from simulators.params import FaultRates, SimParams
from simulators.run import simulate_to_dir
from store.enrolment import import_participants, import_roster
from store.migrate import migrate
from tests.conftest import create_database, drop_database

TZ = "Europe/London"
DAYS = 28
Conn = psycopg.Connection[tuple[object, ...]]


def _load(url: str, out: Path) -> None:
    with psycopg.connect(url) as conn:
        import_participants(conn, out / "participants.csv", ZoneInfo(TZ))
        import_roster(conn, out / "roster.csv")
        conn.commit()
        write_log(conn, out / "messages.bin", TZ, batch_size=500)


@pytest.fixture(scope="module")
def cohort(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    url = create_database(pg_admin_url, "fatigue_features")
    migrate(url)
    out = tmp_path_factory.mktemp("sim")
    start = date.today() - timedelta(days=DAYS + 2)
    params = replace(SimParams(n_participants=6, n_days=DAYS, start_date=start, seed=11),
                     faults=FaultRates(malformed=0.0))
    simulate_to_dir(params, out)
    _load(url, out)
    yield url, out
    drop_database(pg_admin_url, url)


def _snapshot(url: str) -> pd.DataFrame:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT * FROM derived.daily_features ORDER BY participant_id, sleep_date").fetchall()
        names = [d.name for d in conn.execute("SELECT * FROM derived.daily_features LIMIT 0").description or []]
    return pd.DataFrame(rows, columns=names).drop(columns=["computed_at"])


def test_features_match_ground_truth(cohort: tuple[str, Path]) -> None:
    url, out = cohort
    summary = run_features(url, TZ)
    assert summary.participants == 6
    assert summary.days_written == 6 * (DAYS + 3)  # every programme day up to today, data or not
    frame = _snapshot(url)
    truth = pd.read_parquet(out / "truth" / "days.parquet")
    with psycopg.connect(url) as conn:
        staff = dict(conn.execute("SELECT participant_id, staff_ref FROM core.identities").fetchall())
    frame["staff_ref"] = frame["participant_id"].map(staff)
    merged = frame.merge(truth, on=["staff_ref", "sleep_date"], suffixes=("", "_true"))
    assert len(merged) == 6 * DAYS
    main = merged[merged.valid_sleep_day & merged.main_tst_min_true.notna() & (merged.main_tst_min > 0)]
    assert len(main) > 0.6 * len(merged)
    # main-sleep TST from 30-s stages: the simulator's own staging, so agreement within a minute
    assert np.median(np.abs(main.main_tst_min - main.main_tst_min_true)) < 1.0
    hrv = merged[merged.valid_hrv_night & np.isfinite(merged.rmssd_ms_true)]
    assert len(hrv) > 0.5 * len(main)
    rel = np.abs(hrv.rmssd_ms - hrv.rmssd_ms_true) / hrv.rmssd_ms_true
    assert np.median(rel) < 0.15, "nightly RMSSD within 15 % of the simulator's clean RMSSD"
    rhr = merged[np.isfinite(merged.resting_hr_bpm) & np.isfinite(merged.resting_hr_bpm_true)]
    assert np.median(np.abs(rhr.resting_hr_bpm - rhr.resting_hr_bpm_true)) < 4.0
    assert ((frame.hrv_source == "rr") == frame.valid_hrv_night).all()
    assert ((frame.rhr_source == "rr") == frame.resting_hr_bpm.notna()).all()
    assert (frame.debt_net_7d_h.dropna() >= 0).all()
    assert set(frame.algorithm_version) == {"features-1.0"}
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM ingest.dirty_days").fetchone() == (0,)
        duties = conn.execute("SELECT count(*), count(*) FILTER (WHERE quick_return) FROM derived.duty_features"
                              ).fetchone()
    assert duties is not None and int(str(duties[0])) > 6 * 10


def test_running_twice_changes_nothing(cohort: tuple[str, Path]) -> None:
    url, _ = cohort
    run_features(url, TZ, full=True)
    first = _snapshot(url)
    assert run_features(url, TZ).participants == 0  # nothing dirty: nothing to do
    run_features(url, TZ, full=True)
    pd.testing.assert_frame_equal(first, _snapshot(url))


def test_late_night_changes_that_day_and_windows_after(cohort: tuple[str, Path]) -> None:
    url, _ = cohort
    run_features(url, TZ, full=True)
    before = _snapshot(url)
    with psycopg.connect(url) as conn:
        pid, start = conn.execute("SELECT participant_id, programme_start FROM core.participants "
                                  "ORDER BY participant_id LIMIT 1").fetchone()  # type: ignore[misc]
        day = start + timedelta(days=10)
        # a late 2-hour nap ending at 16:00 local on programme day 11, arriving days late
        conn.execute("INSERT INTO raw.sleep_episodes (device_id, start_ts, end_ts, participant_id, in_bed, "
                     "device_tst_min, msg_id) VALUES ('late-dev', %s::timestamp AT TIME ZONE 'Europe/London', "
                     "%s::timestamp AT TIME ZONE 'Europe/London', %s, false, 120, gen_random_uuid())",
                     (f"{day} 14:00", f"{day} 16:00", pid))
        conn.execute("INSERT INTO ingest.dirty_days VALUES (%s, %s)", (pid, day))
        conn.commit()
    assert run_features(url, TZ).participants == 1
    after = _snapshot(url)
    changed = (before != after) & ~(before.isna() & after.isna())
    rows = changed.any(axis=1)
    assert set(after.participant_id[rows]) == {pid}
    assert set(after.sleep_date[rows]) >= {day}
    assert min(after.sleep_date[rows]) == day, "nothing before the late night changes"
    assert after.loc[(after.participant_id == pid) & (after.sleep_date == day), "nap_min"].iloc[0] >= 120
