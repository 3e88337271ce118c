"""features.baseline: TV-H4 (science.md section 8), no leakage, calibration rule, loop reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from features.baseline import (
    SOURCE_CALIBRATION,
    SOURCE_NONE,
    SOURCE_ROLLING,
    personal_baseline,
    rolling_cv,
    rolling_mean,
    window_stats,
    z_score,
)

TV = json.loads((Path(__file__).parents[1] / "data" / "science_tv_hrv.json").read_text())

nightly = arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 90)),
                 elements=st.one_of(st.floats(3.0, 5.0), st.just(np.nan)))


def test_tv_h4_swc() -> None:
    """TV-H4: baseline of 14 nights, SWC band, CV; week L7 below the band, z and week CV."""
    tv = TV["TV-H4"]
    x = np.log(np.array([tv["baseline_rmssd_ms"] + tv["week_rmssd_ms"]], dtype=np.float64))
    b = personal_baseline(x)
    d = 20  # day 21: window [1, 14] holds the 14 baseline nights
    assert b.source[0, d] == SOURCE_ROLLING and b.n_nights[0, d] == 14
    assert b.mean[0, d] == pytest.approx(tv["mu_b"], abs=1e-6)
    assert b.sd[0, d] == pytest.approx(tv["sigma_b"], abs=1e-6)
    assert b.cv_pct[0, d] == pytest.approx(tv["cv_pct"], abs=1e-6)
    assert [b.swc_low[0, d], b.swc_high[0, d]] == pytest.approx(tv["band"], abs=1e-6)
    l7 = rolling_mean(x)[0, d]
    assert l7 == pytest.approx(tv["l7"], abs=1e-6)
    assert l7 < b.swc_low[0, d]
    assert z_score(l7, b.mean[0, d], b.sd[0, d], 0.05) == pytest.approx(tv["z"], abs=1e-6)
    assert rolling_cv(x)[0, d] == pytest.approx(tv["week_cv_pct"], abs=1e-6)


def test_calibration_phases() -> None:
    """Days <= 14 calibrating; calibration baseline until 14 rolling nights; extension to day 28."""
    x = np.full((2, 40), 4.0) + np.tile([0.0, 0.1], 20)
    x[1, :14] = np.nan  # second participant: no nights in days 1-14
    x[1, 14:24] = 4.0  # 10 nights on days 15-24 -> calibration ends on day 24
    b = personal_baseline(x)
    assert (b.source[0, :14] == SOURCE_NONE).all() and (b.source[0, 14:20] == SOURCE_CALIBRATION).all()
    assert (b.source[0, 20:] == SOURCE_ROLLING).all()  # day 21: window [1, 14] has 14 nights
    assert (b.source[1, :24] == SOURCE_NONE).all() and b.source[1, 24] == SOURCE_CALIBRATION
    assert b.mean[1, 24] == pytest.approx(4.0) and b.n_nights[1, 24] == 10


def _loop_window(x: np.ndarray, lo_lag: int, hi_lag: int) -> tuple[np.ndarray, np.ndarray]:
    mean, sd = np.full(x.shape, np.nan), np.full(x.shape, np.nan)
    for p in range(x.shape[0]):
        for d in range(x.shape[1]):
            v = x[p, max(0, d - lo_lag):max(0, d - hi_lag + 1)]
            v = v[np.isfinite(v)]
            mean[p, d] = v.mean() if v.size else np.nan
            sd[p, d] = v.std(ddof=1) if v.size > 1 else np.nan
    return mean, sd


@settings(max_examples=60, deadline=None)
@given(nightly)
def test_window_stats_match_loop(x: np.ndarray) -> None:
    """Cumulative-sum window statistics == a plain loop over participants and days."""
    s = window_stats(x, 60, 7)
    mean, sd = _loop_window(x, 60, 7)
    np.testing.assert_allclose(s.mean, mean, rtol=1e-9, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(s.sd, sd, rtol=1e-6, atol=1e-7, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(nightly, st.data())
def test_no_leakage(x: np.ndarray, data: st.DataObject) -> None:
    """Changing day d never changes rolling baselines of days <= d+6, nor any baseline of days <= d."""
    d = data.draw(st.integers(0, x.shape[1] - 1))
    y = x.copy()
    y[:, d] = data.draw(st.one_of(st.floats(3.0, 5.0), st.just(np.nan)))
    a, b = window_stats(x, 60, 7), window_stats(y, 60, 7)
    for f in ("n", "mean", "sd"):
        np.testing.assert_array_equal(getattr(a, f)[:, :d + 7], getattr(b, f)[:, :d + 7])
    pa, pb = personal_baseline(x), personal_baseline(y)
    for f in ("mean", "sd", "n_nights", "source"):
        np.testing.assert_array_equal(getattr(pa, f)[:, :d + 1], getattr(pb, f)[:, :d + 1])
    rolling = pa.source[:, :d + 7] == SOURCE_ROLLING
    np.testing.assert_array_equal(pa.mean[:, :d + 7][rolling], pb.mean[:, :d + 7][rolling])


@settings(max_examples=40, deadline=None)
@given(nightly)
def test_independent_of_participant_order(x: np.ndarray) -> None:
    """Rows are independent: permuting participants permutes the baselines."""
    order = np.random.default_rng(x.shape[0] * 7 + x.shape[1]).permutation(x.shape[0])
    a, b = personal_baseline(x), personal_baseline(x[order])
    for f in ("mean", "sd", "swc_low", "cv_pct", "n_nights", "source"):
        np.testing.assert_array_equal(getattr(a, f)[order], getattr(b, f))
