"""SRI, rolling cohort SRI, sleep consistency and social jet lag (science.md §1.3-§1.5, TV-S3, TV-S4)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.regularity import (
    circdiff_h,
    circular_mean_h,
    mctq_social_jet_lag,
    pair_agreement,
    sleep_consistency,
    sleep_regularity_index,
    social_jet_lag,
    sri_14d,
    sri_and_days,
    window_sri,
)
from features.sleep import sleep_regularity_index as reexported

# --- TV-S3 (science.md §8): 1-h epochs, 3 days -----------------------------------------------------------------
DAY12 = np.zeros(24)
DAY12[[0, 1, 2, 3, 4, 5, 6, 23]] = 1
DAY3 = np.zeros(24)
DAY3[1:9] = 1
TV_S3 = np.concatenate([DAY12, DAY12, DAY3])


def test_tv_s3_sri() -> None:
    assert reexported is sleep_regularity_index
    sri, days = sri_and_days(TV_S3, 24)
    assert sri == pytest.approx(83.3333, abs=1e-4) and days == 2.0
    w = TV_S3.copy()
    w[24 + 5] = np.nan
    w[48 + 10] = np.nan
    sri, days = sri_and_days(w, 24)
    assert sri == pytest.approx(82.2222, abs=1e-4) and days == pytest.approx(1.875)
    assert sleep_regularity_index(np.tile(DAY12, 3), 24) == 100.0
    assert sleep_regularity_index(np.concatenate([DAY12, 1 - DAY12]), 24) == -100.0
    assert np.isnan(sleep_regularity_index(TV_S3, 24, min_days=5))


def _intervals(series: np.ndarray, epoch_s: int, origin: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate(([0], (np.nan_to_num(series) > 0).astype(int), [0]))
    d = np.diff(x)
    return origin + epoch_s * np.flatnonzero(d == 1), origin + epoch_s * np.flatnonzero(d == -1)


def test_tv_s3_cohort_path_and_consistency() -> None:
    t0, t1 = _intervals(TV_S3, 3600)
    pairs = pair_agreement(np.zeros(t0.size, int), t0, t1, np.ones((1, 3), bool), 0, epoch_s=3600)
    np.testing.assert_allclose(pairs.match[0], [0, 24, 20])
    sri, days = window_sri(pairs, 3, 0.0)
    assert sri[0, 2] == pytest.approx(83.3333, abs=1e-4) and days[0, 2] == 2.0
    assert sleep_consistency(pairs)[0, 2] == pytest.approx(91.6667, abs=1e-4)


def _grid(rng: np.random.Generator, n_p: int, n_d: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    states = (rng.random((n_p, n_d, m)) < 0.05).astype(float)
    states = np.maximum.accumulate(states, axis=2) * (rng.random((n_p, n_d, 1)) < 0.9)  # a block of sleep
    states = np.where(rng.random((n_p, n_d, m)) < 0.1, 1 - states, states)
    valid = rng.random((n_p, n_d)) < 0.85
    return states, valid


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 100_000), st.integers(1, 4), st.integers(2, 9), st.sampled_from([30, 1800, 3600]))
def test_cohort_sri_equals_phillips_on_materialised_series(seed: int, n_p: int, n_d: int, epoch_s: int) -> None:
    rng = np.random.default_rng(seed)
    m = 86_400 // epoch_s
    states, valid = _grid(rng, n_p, n_d, m)
    origin = rng.integers(1_700_000_000, 1_800_000_000, n_p)
    ps, t0s, t1s = [], [], []
    for i in range(n_p):  # test fixture only
        a, b = _intervals(states[i].ravel(), epoch_s, int(origin[i]))
        ps.append(np.full(a.size, i))
        t0s.append(a)
        t1s.append(b)
    pairs = pair_agreement(np.concatenate(ps), np.concatenate(t0s), np.concatenate(t1s), valid, origin,
                           epoch_s=epoch_s)
    window = min(n_d, 4)
    sri, days = window_sri(pairs, window, 0.0)
    for i in range(n_p):
        for d in range(n_d):
            lo = max(0, d - window + 1)
            series = np.where(valid[i, lo : d + 1, None], states[i, lo : d + 1], np.nan).ravel()
            want, want_days = sri_and_days(series, m)
            assert days[i, d] == pytest.approx(want_days)
            np.testing.assert_allclose(sri[i, d], want, atol=1e-9, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, np.nan]), min_size=2, max_size=12), st.integers(1, 6))
def test_sri_bounds_and_identical_days(day: list[float], n_days: int) -> None:
    arr = np.array(day)
    sri = sleep_regularity_index(np.tile(arr, n_days + 1), arr.size)
    assert sri == 100.0 or (np.isnan(sri) and np.isnan(arr).all())
    rng = np.random.default_rng(len(day) * 7 + n_days)
    rand = rng.choice([0.0, 1.0, np.nan], size=arr.size * (n_days + 1))
    val = sleep_regularity_index(rand, arr.size)
    assert np.isnan(val) or -100.0 <= val <= 100.0


def test_rolling_window_min_days_order_and_late_data() -> None:
    rng = np.random.default_rng(11)
    n_p, n_d, m = 3, 20, 48
    states, valid = _grid(rng, n_p, n_d, m)
    valid[:] = True
    ps, t0s, t1s = [], [], []
    for i in range(n_p):
        a, b = _intervals(states[i].ravel(), 1800)
        ps.append(np.full(a.size, i))
        t0s.append(a)
        t1s.append(b)
    p, t0, t1 = np.concatenate(ps), np.concatenate(t0s), np.concatenate(t1s)
    ref = sri_14d(pair_agreement(p, t0, t1, valid, 0, epoch_s=1800))
    assert np.isnan(ref[:, :5]).all() and np.isfinite(ref[:, 5:]).all()  # Days >= 5 needs 6 days
    perm = np.array([2, 0, 1])
    order = rng.permutation(p.size)
    got = sri_14d(pair_agreement(perm[p][order], t0[order], t1[order], valid[np.argsort(perm)], 0, epoch_s=1800))
    np.testing.assert_array_equal(got[perm], ref)
    # late data: add a sleep interval on day 9 of participant 1 -> days < 9 unchanged, 9..22 may change
    late = pair_agreement(np.append(p, 1), np.append(t0, 9 * 86_400 + 3600), np.append(t1, 9 * 86_400 + 7200),
                          valid, 0, epoch_s=1800)
    changed = sri_14d(late)
    np.testing.assert_array_equal(changed[:, :9], ref[:, :9])
    np.testing.assert_array_equal(changed[[0, 2]], ref[[0, 2]])
    assert not np.allclose(changed[1, 9:11], ref[1, 9:11])


# --- TV-S4 (science.md §8): MCTQ social jet lag ------------------------------------------------------------------
def test_tv_s4_mctq() -> None:
    r = mctq_social_jet_lag(2.75, 5.0, 7.5, 9.0, 5)
    assert r.sjl_rel_h == pytest.approx(2.25) and r.sjl_h == pytest.approx(2.25)
    assert r.sd_week_h == pytest.approx(7.928571, abs=1e-6)
    assert r.msf_sc_h == pytest.approx(4.464286, abs=1e-6)
    assert abs(r.msf_sc_h - 2.75) == pytest.approx(1.714286, abs=1e-6)


def test_circular_helpers() -> None:
    mean, n = circular_mean_h(np.array([[23.5, 0.5, 7.0]]), np.array([[True, True, False]]))
    assert mean[0] == pytest.approx(0.0, abs=1e-9) or mean[0] == pytest.approx(24.0)
    assert n[0] == 2
    assert circdiff_h(1.0, 23.0) == pytest.approx(2.0) and circdiff_h(23.0, 1.0) == pytest.approx(-2.0)


def test_social_jet_lag_per_shift_type() -> None:
    # days: early, early, late, free(after late), night, free(after night)
    shift = np.array([[0, 0, 1, -1, 2, -1]])
    mid = np.array([[2.0, 2.5, 4.0, 5.0, 3.0, 12.0]])
    r = social_jet_lag(mid, shift)
    assert r.msf_h[0] == pytest.approx(5.0)  # only the free day after a late shift is used
    np.testing.assert_allclose(r.msw_h[0], [2.25, 4.0, 3.0], atol=1e-9)
    np.testing.assert_allclose(r.sjl_h[0], [2.75, 1.0, 2.0], atol=1e-9)
    assert r.n_days[0].tolist() == [2, 1, 1]
    assert r.sjl_weighted_h[0] == pytest.approx((2 * 2.75 + 1.0 + 2.0) / 4)
