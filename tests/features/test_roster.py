"""Roster features (science.md §5, TV-W1)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.roster import (
    EARLY,
    LATE,
    NIGHT,
    duty_day_grid,
    duty_features,
    night_overlap_h,
    shift_codes,
    time_awake_at,
)

LONDON = ZoneInfo("Europe/London")


def utc(local_iso: str) -> int:
    return int(datetime.fromisoformat(local_iso).replace(tzinfo=LONDON).timestamp())


# --- TV-W1 (science.md §8), 2024 -----------------------------------------------------------------------------
TV_W1 = [
    ("03-04T07:00", "03-04T17:00", EARLY), ("03-05T07:00", "03-05T17:00", EARLY),
    ("03-06T14:00", "03-07T00:00", LATE), ("03-07T07:00", "03-07T17:00", EARLY),
    ("03-08T22:00", "03-09T07:00", NIGHT), ("03-09T22:00", "03-10T07:00", NIGHT),
    ("03-10T22:00", "03-11T07:00", NIGHT), ("03-11T22:00", "03-12T07:00", NIGHT),
    ("03-12T22:00", "03-13T11:00", NIGHT),
]
TV_W1_SLEEP = [("2024-03-07T23:30", "2024-03-08T07:30", True), ("2024-03-08T15:00", "2024-03-08T16:30", False)]


def _tv_w1() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    s = np.array([utc("2024-" + a) for a, _, _ in TV_W1])
    e = np.array([utc("2024-" + b) for _, b, _ in TV_W1])
    return np.zeros(9, np.int64), s, e, np.array([c for _, _, c in TV_W1])


def test_tv_w1() -> None:
    p, s, e, c = _tv_w1()
    f = duty_features(p, s, e, c, sleep_participant=[0, 0], sleep_start=[utc(a) for a, _, _ in TV_W1_SLEEP],
                      sleep_end=[utc(b) for _, b, _ in TV_W1_SLEEP], sleep_is_main=[m for *_, m in TV_W1_SLEEP])
    np.testing.assert_allclose(f.length_h, [10, 10, 10, 10, 9, 9, 9, 9, 13])
    np.testing.assert_allclose(f.rest_gap_h, [np.nan, 14, 21, 7, 29, 15, 15, 15, 15])
    assert f.quick_return.tolist() == [False, False, False, True, False, False, False, False, False]
    assert int(f.quick_return.sum()) == 1 and int(f.long_shift.sum()) == 1 and f.long_shift[8]
    np.testing.assert_allclose(f.night_overlap_h, [0, 0, 1, 0, 7, 7, 7, 7, 7])
    assert f.night_duty.tolist() == [False] * 4 + [True] * 5
    assert f.consecutive_nights.tolist() == [0, 0, 0, 0, 1, 2, 3, 4, 5] and f.consecutive_nights.max() == 5
    assert f.time_awake_end_h[4] == pytest.approx(14.5)
    assert f.time_awake_main_end_h[4] == pytest.approx(23.5)
    assert not f.early_start.any()
    np.testing.assert_allclose(f.forward_rotation, [np.nan, np.nan, 1, 0, 1, np.nan, np.nan, np.nan, np.nan])
    assert f.consecutive_duty_days.tolist() == list(range(1, 10))


@pytest.mark.parametrize(
    ("start", "end", "length", "overlap"),
    [
        ("2024-10-26T22:00", "2024-10-27T07:00", 10.0, 8.0),  # clocks back: 23:00-06:00 lasts 8 h
        ("2024-03-30T22:00", "2024-03-31T07:00", 8.0, 6.0),  # clocks forward: 6 h of night time
        ("2024-03-31T05:00", "2024-03-31T13:00", 8.0, 1.0),
    ],
)
def test_dst_lengths_and_night_overlap(start: str, end: str, length: float, overlap: float) -> None:
    s, e = np.array([utc(start)]), np.array([utc(end)])
    f = duty_features([0], s, e, [NIGHT])
    assert f.length_h[0] == length and f.night_overlap_h[0] == overlap
    assert night_overlap_h(s, e)[0] == overlap


def test_early_start_local_clock() -> None:
    s = np.array([utc("2024-03-31T06:30"), utc("2024-07-01T07:00"), utc("2024-12-01T06:59")])
    f = duty_features([0, 0, 0], s, s + 8 * 3600, [EARLY] * 3)
    assert f.early_start.tolist() == [True, False, True]


def test_unsorted_duties_rejected() -> None:
    with pytest.raises(ValueError, match="sorted"):
        duty_features([0, 0], [100, 50], [200, 90], [0, 0])


def _random_roster(rng: np.random.Generator, n_p: int) -> tuple[np.ndarray, ...]:
    n = rng.integers(1, 15, n_p)
    p = np.repeat(np.arange(n_p), n)
    gaps = rng.integers(6 * 3600, 60 * 3600, p.size)
    s = utc("2024-10-20T06:00") + np.cumsum(gaps)
    s = s - np.repeat(np.concatenate(([0], np.cumsum(gaps)[np.cumsum(n)[:-1] - 1])), n)
    e = s + rng.integers(6 * 3600, 14 * 3600, p.size)
    return p, s, e, rng.integers(0, 8, p.size)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 6))
def test_participant_stacking_order(seed: int, n_p: int) -> None:
    rng = np.random.default_rng(seed)
    p, s, e, c = _random_roster(rng, n_p)
    ss = s - rng.integers(4 * 3600, 10 * 3600, p.size)
    ref = duty_features(p, s, e, c, sleep_participant=p, sleep_start=ss, sleep_end=ss + 3 * 3600)
    perm = rng.permutation(n_p)
    q = perm[p]
    order = np.lexsort((s, q))
    got = duty_features(q[order], s[order], e[order], c[order], sleep_participant=q[::-1],
                        sleep_start=ss[::-1], sleep_end=ss[::-1] + 3 * 3600)
    for name, arr in ref.__dict__.items():
        np.testing.assert_array_equal(getattr(got, name), arr[order], err_msg=name)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_time_awake_matches_naive(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sp = rng.integers(0, 4, 30)
    se = rng.integers(0, 500_000, 30)
    p = rng.integers(0, 5, 20)
    t = rng.integers(0, 600_000, 20)
    got = time_awake_at(p, t, sp, se)
    for i in range(20):
        prior = se[(sp == p[i]) & (se <= t[i])]
        want = (t[i] - prior.max()) / 3600 if prior.size else np.nan
        np.testing.assert_allclose(got[i], want, equal_nan=True)


def test_earlier_duties_do_not_depend_on_later_ones() -> None:
    p, s, e, c = _tv_w1()
    full = duty_features(p, s, e, c)
    part = duty_features(p[:6], s[:6], e[:6], c[:6])
    for name, arr in part.__dict__.items():
        np.testing.assert_array_equal(arr, getattr(full, name)[:6], err_msg=name)


def test_duty_day_grid_and_codes() -> None:
    p, s, e, c = _tv_w1()
    f = duty_features(p, s, e, c)
    d0 = int(np.datetime64("2024-03-04", "D").astype(np.int64))
    g = duty_day_grid(p, s, c, f.night_duty, n_participants=1, day0=d0, n_days=10)
    assert g.shift_on_day[0].tolist() == [0, 0, 1, 0, 2, 2, 2, 2, 2, -1]
    assert g.night_on_day[0].tolist() == [False] * 4 + [True] * 5 + [False]
    assert shift_codes(["night", "early", "bogus", "long_day"]).tolist() == [2, 0, 7, 4]
