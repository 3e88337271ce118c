"""Sleep episode metrics, sleep-day assignment and daily aggregation (science.md §1.1, §1.2, §6.3, TV-S1/TV-S2)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.sleep import assign_sleep_days, daily_sleep, episode_metrics, sleep_intervals, sleep_runs
from features.timeutil import local_hour

LONDON = ZoneInfo("Europe/London")


def utc(local_iso: str) -> int:
    """UTC epoch s of a Europe/London wall-clock time (independent of features.timeutil)."""
    return int(datetime.fromisoformat(local_iso).replace(tzinfo=LONDON).timestamp())


def day_index(iso_date: str) -> int:
    return int(np.datetime64(iso_date, "D").astype(np.int64))


# --- TV-S1 (science.md §8): 960 epochs, 40 wake, 400 sleep, 20 wake, 480 sleep, 20 wake -----------------------
TV_S1 = np.concatenate([np.zeros(40), np.ones(400), np.zeros(20), np.ones(480), np.zeros(20)]).astype(np.int8)


def test_tv_s1_episode_metrics() -> None:
    s = utc("2024-03-04T23:00")
    m = episode_metrics([s], [s + 960 * 30], TV_S1, [0, 960])
    assert m.tib_min[0] == pytest.approx(480.0)
    assert m.tst_min[0] == pytest.approx(440.0)
    assert m.tst_min[0] / 60 == pytest.approx(7.3333, abs=1e-4)
    assert m.se_pct[0] == pytest.approx(91.6667, abs=1e-4)
    assert m.sol_min[0] == pytest.approx(20.0)
    assert m.spt_min[0] == pytest.approx(450.0)
    assert m.waso_min[0] == pytest.approx(10.0)
    assert m.awakenings[0] == 1
    assert m.lps_min[0] == pytest.approx(20.0)  # persistent onset = epoch 40
    assert m.onset_ts[0] == utc("2024-03-04T23:20")
    assert m.final_wake_ts[0] == utc("2024-03-05T06:50")
    assert m.midpoint_ts[0] == utc("2024-03-05T03:05")


def test_stage_codes_and_awakening_threshold() -> None:
    # light/deep/REM codes count as asleep; a 4-min wake run is not an awakening > 5 min
    st_ = np.array([0, 1, 2, 3] + [0] * 8 + [2] * 10 + [0] * 12 + [3] * 5 + [0], dtype=np.int8)
    m = episode_metrics([0], [30 * st_.size], st_, [0, st_.size], min_awakening_min=5.0)
    assert m.awakenings[0] == 1
    assert episode_metrics([0], [30 * st_.size], st_, [0, st_.size]).awakenings[0] == 2
    assert m.tst_min[0] == pytest.approx(0.5 * 18)


def test_unstaged_and_not_in_bed() -> None:
    s = np.array([0, 10_000, 50_000])
    e = np.array([28_800, 20_000, 60_000])
    st_ = TV_S1[:100]
    off = np.array([0, 0, 100, 100])  # episode 1 staged, 0 and 2 unstaged
    m = episode_metrics(s, e, st_, off, in_bed=[True, False, True], device_tst_min=[420.0, 1.0, np.nan])
    assert m.tib_min.tolist() == [480.0, 10_000 / 60, 10_000 / 60]
    assert m.tst_min[0] == 420.0 and np.isnan(m.tst_min[2])
    assert m.tst_min[1] == pytest.approx(30.0)  # staged: device value ignored
    assert np.isnan(m.sol_min).all()  # unstaged -> NaN, staged but not in bed -> NaN
    assert np.isnan(m.waso_min[[0, 2]]).all() and m.waso_min[1] == 0.0
    assert m.midpoint_ts[0] == 14_400 and m.midpoint_ts[2] == 55_000
    assert m.se_pct[0] == pytest.approx(87.5)


def test_all_wake_episode() -> None:
    m = episode_metrics([0], [3000], np.zeros(100, np.int8), [0, 100])
    assert m.tst_min[0] == 0.0 and np.isnan(m.sol_min[0]) and np.isnan(m.midpoint_ts[0])


def _naive_metrics(stages: np.ndarray) -> tuple[float, float, float, float]:
    idx = np.flatnonzero(stages > 0)
    if idx.size == 0:
        return 0.0, np.nan, np.nan, np.nan
    k_on, k_off = idx[0], idx[-1] + 1
    seg = stages[k_on:k_off] > 0
    awak = int(np.sum(seg[1:] & ~seg[:-1]))
    tst = 0.5 * idx.size
    return tst, 0.5 * k_on, 0.5 * (k_off - k_on) - tst, float(awak)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(-1, 3), min_size=0, max_size=40), min_size=1, max_size=12))
def test_runs_match_naive_per_episode(episodes: list[list[int]]) -> None:
    stages = np.array([x for ep in episodes for x in ep], dtype=np.int8)
    off = np.concatenate(([0], np.cumsum([len(ep) for ep in episodes])))
    n = len(episodes)
    start = np.arange(n) * 10_000
    m = episode_metrics(start, start + 30 * np.maximum(np.diff(off), 1), stages, off)
    for i, ep in enumerate(episodes):
        if not ep:
            assert np.isnan(m.tst_min[i])
            continue
        tst, sol, waso, awak = _naive_metrics(np.array(ep))
        np.testing.assert_allclose([m.tst_min[i], m.sol_min[i], m.waso_min[i], m.awakenings[i]],
                                   [tst, sol, waso, awak], equal_nan=True)
    _, t0, t1 = sleep_intervals(start, start, off, sleep_runs(stages, off))
    assert np.sum(t1 - t0) == 30 * np.count_nonzero(stages > 0)


# --- TV-S2 (science.md §8): end-date rule, main sleep and naps -----------------------------------------------
TV_S2 = [
    ("2024-03-07T23:30", "2024-03-08T07:30"),  # A main 03-08
    ("2024-03-08T15:00", "2024-03-08T16:30"),  # B nap 03-08
    ("2024-03-09T08:00", "2024-03-09T14:00"),  # C main 03-09
    ("2024-03-09T21:00", "2024-03-09T21:40"),  # D nap 03-09
    ("2024-03-10T08:00", "2024-03-10T10:30"),  # E < 3 h: nap, no main sleep on 03-10
]


def _tv_s2() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.array([utc(a) for a, _ in TV_S2])
    e = np.array([utc(b) for _, b in TV_S2])
    return np.zeros(5, np.int64), s, e


def test_tv_s2_sleep_days() -> None:
    p, s, e = _tv_s2()
    tst = (e - s) / 60.0
    m = episode_metrics(s, e, device_tst_min=tst)
    d0 = day_index("2024-03-08")
    days = assign_sleep_days(p, e, m.tst_min, day0=d0, n_days=3)
    assert days.day.tolist() == [0, 0, 1, 1, 2]
    assert days.is_main.tolist() == [True, False, True, False, False]
    daily = daily_sleep(p, e, m, n_participants=1, day0=d0, n_days=3)
    np.testing.assert_allclose(daily.tst_min[0] / 60, [9.5, 6.0 + 40 / 60, 2.5])
    np.testing.assert_allclose(daily.main_tst_min[0] / 60, [8.0, 6.0, 0.0])
    np.testing.assert_allclose(daily.nap_min[0] / 60, [1.5, 40 / 60, 2.5])
    assert daily.n_episodes[0].tolist() == [2, 2, 1]
    assert daily.valid_sleep_day[0].all()
    np.testing.assert_allclose(daily.midpoint_local_h[0, :2], [3.5, 11.0])
    assert np.isnan(daily.midpoint_local_h[0, 2]) and np.isnan(daily.se_pct[0, 2])


def test_main_sleep_tie_goes_to_earlier_end() -> None:
    s = np.array([0, 40_000]) + utc("2024-05-01T00:00")
    e = s + 4 * 3600
    days = assign_sleep_days([0, 0], e, [240.0, 240.0], day0=day_index("2024-05-01"), n_days=1)
    assert days.is_main.tolist() == [True, False]


def test_valid_day_rules_with_wear() -> None:
    p, s, e = _tv_s2()
    m = episode_metrics(s, e, device_tst_min=(e - s) / 60.0)
    wear = np.array([[20.0, 10.0, np.nan, 18.0, np.nan]])
    d = daily_sleep(p, e, m, n_participants=1, day0=day_index("2024-03-08"), n_days=5, wear_h=wear)
    assert d.valid_sleep_day[0].tolist() == [True, False, True, False, False]
    # worn day (18 h) without a detected episode: unknown, never 0 h (science 6.3 revised 2026-12)
    assert np.isnan(d.tst_min[0, 3]) and np.isnan(d.main_tst_min[0, 3]) and np.isnan(d.tib_min[0, 3])
    assert np.isnan(d.tst_min[0, 4]) and np.isnan(d.main_tst_min[0, 4])  # no data at all
    assert d.tst_min[0, 1] == pytest.approx(400.0)  # computed, flagged invalid


# --- Europe/London clock changes --------------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(["2024-03-30", "2024-10-26", "2025-03-29", "2025-10-25", "2023-03-25", "2023-10-28"]),
    st.integers(18 * 60, 26 * 60 + 30),  # local start, minutes after 00:00 Saturday (to 02:30 Sunday)
    st.integers(60, 14 * 60),  # true elapsed duration in minutes
)
def test_sleep_day_across_dst(saturday: str, start_min: int, dur_min: int) -> None:
    sat = datetime.fromisoformat(saturday + "T00:00")
    t0 = int((sat + timedelta(minutes=start_min)).replace(tzinfo=LONDON).timestamp())
    t1 = t0 + 60 * dur_min
    end_local = datetime.fromtimestamp(t1 - 1, LONDON)
    m = episode_metrics([t0], [t1], device_tst_min=[float(dur_min)])
    assert m.tib_min[0] == dur_min
    d0 = day_index(saturday)
    days = assign_sleep_days([0], [t1], m.tst_min, day0=d0, n_days=4)
    assert days.day[0] == (end_local.date() - sat.date()).days
    daily = daily_sleep([0], [t1], m, n_participants=1, day0=d0, n_days=4)
    assert np.nansum(daily.tst_min) == dur_min
    mid = datetime.fromtimestamp(t0 + (t1 - t0) / 2, LONDON)
    expect_h = mid.hour + mid.minute / 60 + (mid.second + mid.microsecond / 1e6) / 3600
    if dur_min >= 180:
        assert np.nanmax(daily.midpoint_local_h) == pytest.approx(expect_h, abs=1e-9)
    assert local_hour(np.int64(t1)) == pytest.approx(
        datetime.fromtimestamp(t1, LONDON).hour + datetime.fromtimestamp(t1, LONDON).minute / 60)


def _cohort(rng: np.random.Generator, n_p: int, n_d: int) -> tuple[np.ndarray, ...]:
    n = n_p * n_d
    p = np.repeat(np.arange(n_p), n_d)
    d = np.tile(np.arange(n_d), n_p)
    base = utc("2024-03-20T00:00")
    s = base + d * 86_400 + rng.integers(-4 * 3600, 16 * 3600, n)
    n_ep = rng.integers(0, 30, n)
    e = s + 30 * np.maximum(n_ep, 1) * 40
    stages = rng.integers(0, 3, int(n_ep.sum())).astype(np.int8)
    off = np.concatenate(([0], np.cumsum(n_ep)))
    return p, s, e, stages, off


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 6))
def test_independent_of_participant_order(seed: int, n_p: int) -> None:
    rng = np.random.default_rng(seed)
    p, s, e, stages, off = _cohort(rng, n_p, 12)
    d0 = day_index("2024-03-20")
    ref = daily_sleep(p, e, episode_metrics(s, e, stages, off), n_participants=n_p, day0=d0, n_days=14)
    perm = rng.permutation(n_p)  # relabel participants and restack episodes in a shuffled order
    order = rng.permutation(p.size)
    segs = [stages[off[i]:off[i + 1]] for i in order]
    off2 = np.concatenate(([0], np.cumsum([len(x) for x in segs])))
    st2 = np.concatenate(segs) if segs else stages
    m2 = episode_metrics(s[order], e[order], st2, off2)
    got = daily_sleep(perm[p[order]], e[order], m2, n_participants=n_p, day0=d0, n_days=14)
    for name in ("tst_min", "main_tst_min", "se_pct", "waso_min", "midpoint_local_h", "n_episodes"):
        np.testing.assert_array_equal(getattr(got, name)[perm], getattr(ref, name), err_msg=name)


def test_late_data_changes_only_that_day() -> None:
    rng = np.random.default_rng(3)
    p, s, e, stages, off = _cohort(rng, 3, 10)
    d0 = day_index("2024-03-20")
    ref = daily_sleep(p, e, episode_metrics(s, e, stages, off), n_participants=3, day0=d0, n_days=12)
    k = 14  # participant 1, one night
    st2 = stages.copy()
    st2[off[k]:off[k + 1]] = 1
    got = daily_sleep(p, e, episode_metrics(s, e, st2, off), n_participants=3, day0=d0, n_days=12)
    day = assign_sleep_days(p, e, np.ones(p.size), day0=d0, n_days=12).day[k]
    diff = ~np.isclose(got.tst_min, ref.tst_min, equal_nan=True)
    assert diff.sum() == 1 and diff[1, day]
