"""Sleep need, debt and performance (science.md §1.5, §2.2, §2.3, TV-D1)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from features.debt import (
    carry_over_debt,
    daily_sleep_need,
    free_sleep_days,
    personal_sleep_need,
    sleep_debt,
    sleep_need_series,
    sleep_performance,
)

# --- TV-D1 (science.md §8) ------------------------------------------------------------------------------------
TV_D1_TST = np.array([7.5, 6.0, 5.5, 6.0, 8.0, 9.0, 6.5, 5.0, 7.0, 8.5])
TV_D1_NET = [0.5, 2.5, 5, 7, 7, 6, 7.5, 10, 9, 6]
TV_D1_GROSS = [0.5, 2.5, 5, 7, 7, 7, 8.5, 11, 10, 7.5]
TV_D1_EW = [0.5, 2.4204, 4.5353, 5.8138, 4.8888, 3.1109, 4.1160, 6.4611, 6.4331, 4.9096]


def test_tv_d1() -> None:
    d = sleep_debt(TV_D1_TST[None, :], 8.0)
    np.testing.assert_allclose(d.deficit_h[0], [0.5, 2, 2.5, 2, 0, -1, 1.5, 3, 1, -0.5], atol=1e-12)
    np.testing.assert_allclose(d.net_7d_h[0], TV_D1_NET, atol=1e-6)
    np.testing.assert_allclose(d.gross_7d_h[0], TV_D1_GROSS, atol=1e-6)
    np.testing.assert_allclose(d.carry_h[0], TV_D1_EW, atol=5e-5)
    rho = 2 ** (-1 / 4)
    assert rho == pytest.approx(0.8408964153, abs=1e-10)
    assert TV_D1_TST[3:].mean() == pytest.approx(7.142857, abs=1e-6)
    ratio, pct = sleep_performance(TV_D1_TST[9], 8.0)
    assert ratio == pytest.approx(1.0625) and pct == 100.0


def _naive_ew(delta: np.ndarray, rho: float, skip: bool) -> np.ndarray:
    out = np.full(delta.size, np.nan)
    d, started = 0.0, False
    for i, x in enumerate(delta):
        if np.isfinite(x):
            d, started = max(0.0, rho * d + x), True
        elif not skip:
            d = rho * d
        out[i] = d if started else np.nan
    return out


finite_or_nan = st.one_of(st.floats(0.0, 14.0), st.just(np.nan))


@settings(max_examples=80, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 40)), elements=finite_or_nan),
       st.floats(6.0, 9.5), st.sampled_from(["skip", "decay"]))
def test_debt_never_negative_and_matches_recursion(tst: np.ndarray, need: float, missing: str) -> None:
    d = sleep_debt(tst, need, missing=missing)  # type: ignore[arg-type]
    for arr in (d.net_7d_h, d.gross_7d_h, d.carry_h):
        assert np.all(np.isnan(arr) | (arr >= 0.0))
    for i in range(tst.shape[0]):
        np.testing.assert_allclose(d.carry_h[i], _naive_ew(need - tst[i], 2 ** -0.25, missing == "skip"),
                                   atol=1e-9, equal_nan=True)
    assert np.all(np.isnan(d.net_7d_h) | (d.net_7d_h <= d.gross_7d_h + 1e-12))


def test_long_series_blocks_and_no_overflow() -> None:
    rng = np.random.default_rng(0)
    tst = rng.uniform(4, 10, (2, 3000))
    tst[rng.random(tst.shape) < 0.2] = np.nan
    got = carry_over_debt(8.0 - tst)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got[1], _naive_ew(8.0 - tst[1], 2 ** -0.25, True), atol=1e-9)


def test_missing_day_rule() -> None:
    tst = np.array([[6.0, np.nan, 6.0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan]])
    d = sleep_debt(tst, 8.0)
    np.testing.assert_allclose(d.net_7d_h[0, :9], [2, 2, 4, 4, 4, 4, 4, 2, 2])  # excluded, not zero-filled
    assert np.isnan(d.net_7d_h[0, 9]) and np.isnan(d.gross_7d_h[0, 9])  # no valid day in window
    assert d.carry_h[0, 1] == pytest.approx(2.0) and d.carry_h[0, 9] == d.carry_h[0, 2]  # skip: held, no decay
    assert np.isnan(sleep_debt(np.array([[np.nan, 7.0]]), 8.0).carry_h[0, 0])
    decay = sleep_debt(tst, 8.0, missing="decay").carry_h[0]
    assert decay[1] == pytest.approx(2 * 2 ** -0.25)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 29))
def test_late_data_and_row_order(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    tst = rng.uniform(4, 10, (4, 30))
    tst[rng.random(tst.shape) < 0.15] = np.nan
    ref = sleep_debt(tst, 8.0)
    late = tst.copy()
    late[2, k] = 3.0 if np.isnan(tst[2, k]) else np.nan  # a night arrives late (or is withdrawn)
    got = sleep_debt(late, 8.0)
    for name in ("net_7d_h", "gross_7d_h", "carry_h"):
        a, b = getattr(got, name), getattr(ref, name)
        np.testing.assert_array_equal(a[:, :k], b[:, :k])
        np.testing.assert_array_equal(a[[0, 1, 3]], b[[0, 1, 3]])
    np.testing.assert_array_equal(got.net_7d_h[2, k + 7 :], ref.net_7d_h[2, k + 7 :])
    perm = rng.permutation(4)
    np.testing.assert_array_equal(sleep_debt(tst[perm], 8.0).carry_h, ref.carry_h[perm])


def test_personal_need_and_series() -> None:
    n_d = 30
    tst = np.full((3, n_d), 7.5)
    free = np.zeros((3, n_d), bool)
    free[:, [2, 5, 9, 12]] = True
    tst[0, [2, 5, 9, 12]] = [8.5, 9.5, 8.0, 9.0]  # median 8.75
    tst[1, [2, 5, 9, 12]] = [5.0, 6.0, 5.5, 6.5]  # median 5.75 -> clipped to 7
    free[2] = False
    free[2, [2, 5]] = True  # only 2 free days -> population need
    tst[0, 20:] = np.nan
    need = personal_sleep_need(tst, free)
    np.testing.assert_allclose(need.need_base_h, [8.75, 7.0, 8.0])
    assert need.personal.tolist() == [True, True, False] and need.calib_end.tolist() == [14, 14, 14]
    series = sleep_need_series(need, n_d)
    assert (series[:, :14] == 8.0).all() and (series[0, 14:] == 8.75).all()
    sparse = tst.copy()
    sparse[:, :14:2] = np.nan  # 7 valid days in 1-14 -> calibration extends until 10 valid days
    assert personal_sleep_need(sparse, free).calib_end[1] == 17


def test_daily_need_and_free_days() -> None:
    carry = np.array([[np.nan, 2.0, 4.0]])
    np.testing.assert_allclose(daily_sleep_need(8.0, carry), [[8.0, 8.0, 8.5]])
    duty = np.array([[True, False, False, True]])
    night = np.array([[True, False, False, False]])
    assert free_sleep_days(duty, night).tolist() == [[False, False, True, False]]
