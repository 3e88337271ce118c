"""features.recovery: TV-R1 (science.md section 8), bands, renormalisation, cohort wrapper."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.recovery import (
    BAND_AMBER,
    BAND_GREEN,
    BAND_MISSING,
    BAND_RED,
    daily_recovery,
    recovery_band,
    recovery_score,
)

TV = json.loads((Path(__file__).parents[1] / "data" / "science_tv_hrv.json").read_text())
BANDS = {"red": BAND_RED, "amber": BAND_AMBER, "green": BAND_GREEN}


def test_tv_r1() -> None:
    """TV-R1: component z, composite Z, score R and band for the three published cases."""
    tv = TV["TV-R1"]
    cases = tv["cases"]
    r = recovery_score(np.log([c["rmssd_ms"] for c in cases]), [c["rhr_bpm"] for c in cases],
                       [c["sp"] for c in cases], tv["mu_ln"], tv["sigma_ln"], tv["mu_rhr"], tv["sigma_rhr"],
                       tv["mu_sp"], tv["sigma_sp"], tv["s_z"])
    for i, c in enumerate(cases):
        assert r.composite[i] == pytest.approx(c["Z"], abs=1e-6)
        assert r.score[i] == pytest.approx(c["R"], abs=1e-4)
        assert r.band[i] == BANDS[c["band"]]
        if "z" in c:
            assert [r.z_hrv[i], r.z_rhr[i], r.z_sleep[i]] == pytest.approx(c["z"], abs=1e-6)
    assert not r.partial.any()


def test_bands_edges_and_missing() -> None:
    """Green >= 67, red <= 33 on the rounded score; NaN is missing."""
    assert recovery_band([66.4, 66.5, 67, 33.4, 33.5, 34, np.nan]).tolist() == [
        BAND_AMBER, BAND_GREEN, BAND_GREEN, BAND_RED, BAND_AMBER, BAND_AMBER, BAND_MISSING]


def test_at_baseline_is_50_and_renormalised() -> None:
    """A night at baseline scores 50; a missing component renormalises weights and marks partial."""
    r = recovery_score([4.0, 4.0 + 0.12, np.nan], [54.0, np.nan, np.nan], [0.9, 0.9, np.nan],
                       4.0, 0.12, 54.0, 2.5, 0.9, 0.08)
    assert r.score[0] == pytest.approx(50.0)
    assert r.composite[1] == pytest.approx(0.4 * 1.0 / 0.7)
    assert r.partial.tolist() == [False, True, True] and r.n_components.tolist() == [3, 2, 0]
    assert np.isnan(r.score[2]) and r.band[2] == BAND_MISSING


def test_floors_and_clip() -> None:
    """SD floors (0.05 ln, 1 bpm, 0.05) and clipping at +/-3."""
    r = recovery_score(4.1, 50.0, 2.0, 4.0, 0.001, 54.0, 0.1, 0.9, 0.0)
    assert float(r.z_hrv) == pytest.approx(2.0)
    assert float(r.z_rhr) == pytest.approx(3.0)
    assert float(r.z_sleep) == pytest.approx(3.0)  # (min(2, 1.2) - 0.9) / 0.05 = 6 -> 3


def _cohort(seed: int, n: int = 4, days: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ln = rng.normal(4.0, 0.1, (n, days))
    rhr = rng.normal(55.0, 2.0, (n, days))
    sp = rng.normal(0.95, 0.1, (n, days))
    ln[rng.random((n, days)) < 0.2] = np.nan
    return ln, rhr, sp


def test_daily_recovery_phases() -> None:
    """Calibrating days have no score; later days are scored in [0, 100] with a band."""
    ln, rhr, sp = _cohort(1)
    r = daily_recovery(ln, rhr, sp)
    assert r.score.shape == ln.shape
    assert np.isnan(r.score[:, :14]).all()
    later = r.score[:, 30:]
    assert np.isfinite(later).all() and ((later >= 0) & (later <= 100)).all()
    assert (r.band[:, 30:] >= BAND_RED).all()


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_daily_recovery_independent_of_order(seed: int) -> None:
    """Permuting participants permutes the scores."""
    ln, rhr, sp = _cohort(seed, n=3, days=60)
    order = np.array([2, 0, 1])
    a, b = daily_recovery(ln, rhr, sp), daily_recovery(ln[order], rhr[order], sp[order])
    np.testing.assert_array_equal(a.score[order], b.score)
