"""Missing data is never wakefulness: non-wear kernels and their database reader (science.md 6.3 revised)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest

from features.roster import duty_features
from features.wear import NonWear, awake_where_worn, days_worn, hr_gaps, nonwear_intervals, span_unknown, status_marks
from features.wear_io import read_nonwear

H = 3600
T0 = 1_700_000_000 // H * H  # an hour boundary, UTC epoch s


def _worn_all_day(p: int = 0) -> NonWear:
    """Heart rate continuously from T0 - 2 d to T0 + 3 d (one coverage interval)."""
    return hr_gaps([p], [T0 - 48 * H], [T0 + 72 * H], p + 1)


def test_continuous_wear_keeps_time_awake() -> None:
    awake = awake_where_worn([0], [T0 + 16 * H], [15.5], _worn_all_day())
    assert awake.tolist() == [15.5]


def test_nonwear_in_the_middle_of_a_wake_span_makes_it_unknown() -> None:
    # sleep ended at T0 (awake 20 h at the duty end T0 + 20 h); no HR from T0 + 8 h to T0 + 9 h 30
    cover = hr_gaps([0, 0], [T0 - 48 * H, T0 + 9 * H + 1800], [T0 + 8 * H, T0 + 72 * H], 1)
    assert awake_where_worn([0], [T0 + 20 * H], [20.0], cover).tolist() == [pytest.approx(np.nan, nan_ok=True)]
    # a 59-min hole is not non-wear: the time awake stands
    short = hr_gaps([0, 0], [T0 - 48 * H, T0 + 8 * H + 59 * 60], [T0 + 8 * H, T0 + 72 * H], 1)
    assert awake_where_worn([0], [T0 + 20 * H], [20.0], short).tolist() == [20.0]


def test_gap_outside_the_wake_span_does_not_matter() -> None:
    cover = hr_gaps([0, 0], [T0 - 48 * H, T0 - 3 * H], [T0 - 5 * H, T0 + 72 * H], 1)  # gap before sleep end T0
    assert awake_where_worn([0], [T0 + 12 * H], [12.0], cover).tolist() == [12.0]


def test_flat_battery_status_over_the_span_makes_it_unknown() -> None:
    marks = status_marks([0, 0], [T0 + 5 * H, T0 + 30 * H], [1.0, 1.0], [1.0, 80.0])  # 1 % = flat
    nonwear = nonwear_intervals(_worn_all_day(), marks)
    assert np.isnan(awake_where_worn([0], [T0 + 10 * H], [10.0], nonwear)[0])
    assert awake_where_worn([0], [T0 + 29 * H], [10.0], nonwear).tolist() == [10.0]  # span 19-29 h: no mark


def test_not_worn_status_makes_the_span_unknown_and_other_participants_are_untouched() -> None:
    marks = status_marks([1], [T0 + 5 * H], [0.0], [np.nan])
    cover = hr_gaps([0, 1], [T0 - 48 * H] * 2, [T0 + 72 * H] * 2, 2)
    nonwear = nonwear_intervals(cover, marks)
    got = awake_where_worn([0, 1], [T0 + 10 * H, T0 + 10 * H], [10.0, 10.0], nonwear)
    assert got[0] == 10.0 and np.isnan(got[1])


def test_data_ending_before_the_duty_end_is_unknown() -> None:
    cover = hr_gaps([0], [T0 - 48 * H], [T0 + 6 * H], 1)  # last HR sample 6 h after the sleep
    assert np.isnan(awake_where_worn([0], [T0 + 14 * H], [14.0], cover)[0])
    assert awake_where_worn([0], [T0 + 6 * H + 1800], [6.5], cover).tolist() == [6.5]  # 30 min: still worn


def test_participant_without_any_heart_rate_is_unknown() -> None:
    cover = hr_gaps(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), 1)
    assert np.isnan(awake_where_worn([0], [T0 + 10 * H], [10.0], cover)[0])


def test_span_unknown_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    n = 300
    iv = NonWear(rng.integers(0, 4, n), rng.integers(0, 1000, n), np.zeros(n, np.int64))
    iv = NonWear(iv.participant, iv.start, iv.start + rng.integers(1, 50, n))
    p = rng.integers(0, 5, 500)
    a = rng.integers(0, 1000, 500)
    b = a + rng.integers(1, 80, 500)
    got = span_unknown(p, a, b, iv)
    want = [bool(np.any((iv.participant == pp) & (iv.start < bb) & (iv.end > aa)))
            for pp, aa, bb in zip(p, a, b, strict=True)]
    assert got.tolist() == want


def test_duty_after_a_lost_night_is_not_48_hours_awake() -> None:
    """The reported 'awake 46 h 52 min': the watch came off overnight, so the last detected sleep is old."""
    sleep_end = np.array([T0])  # last detected sleep ended at T0; the next night was not recorded
    duty_s, duty_e = np.array([T0 + 38 * H]), np.array([T0 + 46 * H + 52 * 60])
    feats = duty_features([0], duty_s, duty_e, [0], sleep_participant=[0], sleep_start=sleep_end - 8 * H,
                          sleep_end=sleep_end)
    assert feats.time_awake_end_h[0] == pytest.approx(46.8667, abs=1e-3)
    cover = hr_gaps([0, 0], [T0 - 48 * H, T0 + 30 * H], [T0 + 14 * H, T0 + 72 * H], 1)  # off 14-30 h
    assert np.isnan(awake_where_worn([0], duty_e, feats.time_awake_end_h, cover)[0])


def _ts(s: int) -> datetime:
    return datetime.fromtimestamp(s, UTC)


def test_read_nonwear_from_the_raw_tables(db: psycopg.Connection[tuple[object, ...]]) -> None:
    pid = uuid.uuid4()
    runs = [(T0, list(range(0, 3600_000, 60_000))),  # 00:00-00:59 every minute
            (T0 + H, list(range(0, 3600_000, 60_000))),  # 01:00-01:59, contiguous
            (T0 + 4 * H, [0, 60_000, 3 * 3600_000])]  # 04:00, 04:01, then 07:00: inner gap of 3 h
    for start, offsets in runs:
        db.execute("INSERT INTO raw.hr_runs (device_id, start_ts, end_ts, participant_id, offsets_ms, bpm, suspect,"
                   " msg_id) VALUES ('dev', %s, %s, %s, %s, %s, %s, %s)",
                   (_ts(start), _ts(start + offsets[-1] // 1000 + 1), pid, offsets, [60] * len(offsets),
                    [False] * len(offsets), uuid.uuid4()))
    db.execute("INSERT INTO raw.device_status (device_id, ts, participant_id, battery_pct, worn, online) "
               "VALUES ('dev', %s, %s, 50, false, true), ('dev', %s, %s, 80, true, true)",
               (_ts(T0 + 30 * 60), pid, _ts(T0 + 90 * 60), pid))
    nonwear = read_nonwear(db, [uuid.uuid4(), pid])  # participant 0 has no data at all
    end = [T0 + 3 * H + 30 * 60, T0 + 6 * H, T0 + 100 * 60, T0 + 50 * 60, T0 + 7 * H + 1800, T0 + 118 * 60]
    start = [T0 + 10 * 60, T0 + 5 * H, T0 + 95 * 60, T0 + 20 * 60, T0 + 7 * H + 100, T0 + H]
    got = span_unknown([1] * 6, start, end, nonwear)
    # 01:59-04:00 gap; inner 04:01-07:00 gap; nothing 01:35-01:40; 00:30 not worn; 07:00-07:30 after last sample
    # is < 60 min; 01:00-01:58 covered
    assert got.tolist() == [True, True, False, True, False, False]
    assert span_unknown([0], [T0], [T0 + 60], nonwear).tolist() == [True]


def test_day_without_main_sleep_under_nonwear_is_unknown_not_a_nap_day() -> None:
    """Flat battery over a day sleep: only the nap was seen; the day is unknown, never '1 h of sleep'."""
    from features.sleep import DailySleep, with_unknown_days
    from features.timeutil import local_to_utc

    day0 = 20_000  # days since 1970-01-01
    midnight = int(local_to_utc(np.array([(day0 + 1) * 86_400]))[0])
    flat = status_marks([0], [midnight + 9 * H], [1.0], [0.0])  # battery flat at 09:00 on day 1
    cover = hr_gaps([0], [midnight - 3 * 86_400], [midnight + 5 * 86_400], 1)
    worn = days_worn(1, 3, [day0], nonwear_intervals(cover, flat))
    assert worn.tolist() == [[True, False, True]]
    nan = np.full((1, 3), np.nan)
    daily = DailySleep(tib_min=np.array([[480.0, 70.0, 470.0]]), tst_min=np.array([[420.0, 60.0, 410.0]]),
                       main_tst_min=np.array([[420.0, 0.0, 410.0]]), nap_min=np.array([[0.0, 60.0, 0.0]]),
                       se_pct=nan, sol_min=nan, waso_min=nan, awakenings=nan, midpoint_local_h=nan,
                       n_episodes=np.array([[1, 1, 1]]), valid_sleep_day=np.array([[True, True, True]]))
    out = with_unknown_days(daily, worn)
    assert out.valid_sleep_day.tolist() == [[True, False, True]]
    assert out.tst_min[0, 0] == 420.0 and np.isnan(out.tst_min[0, 1]) and out.tst_min[0, 2] == 410.0
    # a detected main sleep stands even if the watch came off later that day
    daily2 = DailySleep(**{**daily.__dict__, "main_tst_min": np.array([[420.0, 300.0, 410.0]])})
    assert with_unknown_days(daily2, worn).valid_sleep_day.all()
