"""features.heart.resting_hr: TV-H3 (science.md section 8), NaN rule, cohort layout, pandas reference."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.heart import resting_hr, rolling_hr

TV = json.loads((Path(__file__).parents[1] / "data" / "science_tv_hrv.json").read_text())


def test_tv_h3_resting_hr() -> None:
    """TV-H3: 5-min rolling means and RHR 53.4 bpm (single-minute minimum 52 is not the RHR)."""
    tv = TV["TV-H3"]
    means, night = rolling_hr(tv["hr_bpm"], [0, 16])
    np.testing.assert_allclose(means, tv["rolling_5min"], atol=1e-9)
    assert night.tolist() == [0] * 12
    assert resting_hr(tv["hr_bpm"], [0, 16])[0] == pytest.approx(tv["rhr_bpm"], abs=1e-9)


def test_missing_minutes_rule() -> None:
    """Windows need >= 4 valid minutes; short, empty and all-missing nights give NaN."""
    hr = np.array([60, np.nan, 50, 50, 50, 70, np.nan, np.nan, 40, 40, 40, 40, 99])
    # [60, nan, 50, 50, 50] -> 52.5 and [nan, 40, 40, 40, 40] -> 40 qualify; [70, nan, nan, 40, 40] does not
    out = resting_hr(np.r_[hr, [55, 56, 57], [np.nan] * 6], [0, 13, 13, 16, 22])
    assert out[0] == pytest.approx(40.0)
    assert np.isnan(out[1:]).all()
    masked = resting_hr(hr, [0, 13], valid=np.arange(13) < 6)
    assert masked[0] == pytest.approx(52.5)


def _reference(hr: np.ndarray, off: np.ndarray) -> list[float]:
    out = []
    for lo, hi in itertools.pairwise(off):
        means = pd.Series(hr[lo:hi]).rolling(5, min_periods=4).mean().iloc[4:]
        out.append(float(means.min()) if means.notna().any() else np.nan)
    return out


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.one_of(st.floats(35.0, 120.0), st.just(np.nan)), max_size=40), max_size=6))
def test_matches_pandas_rolling(nights: list[list[float]]) -> None:
    """Cumulative-sum kernel == pandas rolling(5, min_periods=4) per night, for any stacking."""
    hr = np.array([v for n in nights for v in n], dtype=np.float64)
    off = np.concatenate(([0], np.cumsum([len(n) for n in nights]))).astype(np.int64)
    np.testing.assert_allclose(resting_hr(hr, off), _reference(hr, off), rtol=1e-9, equal_nan=True)
    order = np.arange(len(nights))[::-1]
    hr2 = np.array([v for i in order for v in nights[i]], dtype=np.float64)
    off2 = np.concatenate(([0], np.cumsum([len(nights[i]) for i in order]))).astype(np.int64)
    np.testing.assert_allclose(resting_hr(hr2, off2), resting_hr(hr, off)[order], rtol=1e-9, equal_nan=True)
