"""Physiology: nightly HRV and resting HR driven by sleep debt, minute heart rate and RR intervals.

Nightly state (science.md section 7 [ENG]): ``ln RMSSD = ln_base - a * D_ew + e``, ``e ~ N(0, (0.054 *
ln_base)^2)`` (Bellenger 2022); ``RHR = rhr_base + b * D_ew + N(0, 3^2)``. Minute heart rate is the night's RHR
plus 2.5 bpm in bed, and ``RHR + 10 + 4 cos(2 pi (h - 16) / 24)`` awake, + 15 on duty, with AR(1) noise.
RR intervals are an AR(1) series around ``60000 / HR`` whose innovation SD gives the night's RMSSD:
``RMSSD^2 = 2 s^2 / (1 + phi)``, then ectopic beats (premature + compensatory) and artefacts are added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from simulators.clock import Clock
from simulators.cohort import Cohort
from simulators.params import SimParams
from simulators.sleep import Episodes, ewma_debt

__all__ = ["HeartGrid", "Nightly", "RRWindows", "daily_tst_h", "make_heart_rate", "make_nightly", "make_rr"]

F = npt.NDArray[np.float64]
IntArr = npt.NDArray[np.int64]
_PHI_RR = 0.5
_P_ECTOPIC = 0.002
_P_MISSED = 0.002
_P_SPIKE = 0.0005
_BLOCK = 16


@dataclass(frozen=True)
class Nightly:
    """Per participant-day true state: debt, target ln RMSSD and resting HR (shape ``(n, days)``)."""

    tst_h: F
    debt_ew_h: F
    ln_rmssd: F
    rhr_bpm: F


@dataclass(frozen=True)
class HeartGrid:
    """Minute heart rate, shape ``(n, n_min)``, int16 bpm with 0 where nothing was recorded."""

    bpm: npt.NDArray[np.int16]


@dataclass(frozen=True)
class RRWindows:
    """Recorded RR windows during main sleep.

    Attributes
    ----------
    participant, day, start_s : ndarray of int64
        Owner, sleep day and UTC start (s) of each window.
    offsets : ndarray of int64
        Start of each window's beats in ``rr_ms`` (length ``n + 1``).
    rr_ms : ndarray of int16
        Recorded RR intervals (with ectopics and artefacts).
    clean_rmssd_ms : ndarray of float, shape (n_p, days)
        RMSSD of the clean series over the night's windows (NaN when no window).
    """

    participant: IntArr
    day: IntArr
    start_s: IntArr
    offsets: IntArr
    rr_ms: npt.NDArray[np.int16]
    clean_rmssd_ms: F


def daily_tst_h(ep: Episodes, n: int, days: int) -> F:
    """Total sleep per participant and sleep day (h), main sleep and naps."""
    out = np.zeros((n, days))
    ok = (ep.day >= 0) & (ep.day < days)
    np.add.at(out, (ep.participant[ok], ep.day[ok]), ep.tst_min[ok] / 60.0)
    return out


def make_nightly(params: SimParams, cohort: Cohort, ep: Episodes, rng: np.random.Generator) -> Nightly:
    """Draw each night's ln RMSSD and RHR from the participant baselines and the carried-over debt."""
    tst = daily_tst_h(ep, cohort.n, params.n_days)
    debt = ewma_debt(cohort.sleep_need_h[:, None] - tst, params.debt_half_life_d)
    shape = tst.shape
    sd = params.rmssd_within_cv * cohort.ln_rmssd[:, None]
    ln = cohort.ln_rmssd[:, None] - params.rmssd_per_debt_h * debt + sd * rng.standard_normal(shape)
    rhr = (cohort.rhr_bpm[:, None] + params.rhr_per_debt_h * debt
           + params.rhr_within_sd_bpm * rng.standard_normal(shape))
    return Nightly(tst, debt, ln, rhr)


def _episode_minutes(ep: Episodes, t0_s: int, n_min: int) -> tuple[IntArr, IntArr, IntArr]:
    """(participant, minute, day) of every in-bed minute."""
    m0 = (ep.onset_s - t0_s) // 60
    length = np.maximum((ep.end_s - ep.onset_s) // 60, 0)
    idx = np.repeat(np.arange(ep.n), length)
    minute = m0[idx] + np.arange(idx.size) - np.repeat(np.cumsum(length) - length, length)
    ok = (minute >= 0) & (minute < n_min)
    return ep.participant[idx][ok], minute[ok], np.clip(ep.day[idx][ok], 0, None)


def make_heart_rate(params: SimParams, ep: Episodes, duty_mask: npt.NDArray[np.bool_], nightly: Nightly,
                    worn: npt.NDArray[np.bool_], clock: Clock, rng: np.random.Generator) -> HeartGrid:
    """Minute heart rate of the cohort, computed in blocks of participants to bound memory.

    Parameters
    ----------
    params : SimParams
        Programme length.
    ep : Episodes
        Sleep episodes (in-bed minutes get the night's RHR level).
    duty_mask : ndarray of bool, shape (n, n_min)
        Minutes on duty.
    nightly : Nightly
        Nightly RHR per participant-day.
    worn : ndarray of bool, shape (n, n_min)
        Minutes when the device recorded.
    clock : Clock
        London clock (minute 0 = ``clock.t0_s``).
    rng : numpy.random.Generator
        Seeded generator.
    """
    n, n_min = worn.shape
    p_bed, m_bed, d_bed = _episode_minutes(ep, clock.t0_s, n_min)
    in_bed = np.zeros((n, n_min), dtype=bool)
    in_bed[p_bed, m_bed] = True
    bed_day = np.zeros((n, n_min), dtype=np.int16)
    bed_day[p_bed, m_bed] = np.minimum(d_bed, params.n_days - 1)
    minutes_s = clock.t0_s + np.arange(n_min, dtype=np.int64) * 60
    circ = 4.0 * np.cos(2 * np.pi * (clock.local_hour(minutes_s) - 16.0) / 24.0)
    day_of_min = np.minimum(clock.local_day(minutes_s), params.n_days - 1)
    out = np.zeros((n, n_min), dtype=np.int16)
    for b in range(0, n, _BLOCK):
        sl = slice(b, min(b + _BLOCK, n))
        rows = np.arange(sl.start, sl.stop)[:, None]
        day = np.where(in_bed[sl], bed_day[sl], day_of_min[None, :])
        level = nightly.rhr_bpm[rows, day] + np.where(in_bed[sl], 2.5, 10.0 + circ[None, :] + 15.0 * duty_mask[sl])
        scale = np.where(in_bed[sl], 0.8, 2.5)
        noise = lfilter([1.0], [1.0, -0.8], scale * rng.standard_normal(level.shape), axis=1)
        bpm = np.clip(np.round(level + noise), 30, 220).astype(np.int16)
        out[sl] = np.where(worn[sl], bpm, 0)
    return HeartGrid(out)


def _windows(params: SimParams, ep: Episodes, worn: npt.NDArray[np.bool_], t0_s: int) -> tuple[IntArr, IntArr, IntArr]:
    """(participant, day, start minute) of RR windows fully inside worn main sleep, after 20 min asleep."""
    main = ep.main & (ep.day >= 0) & (ep.day < params.n_days)
    m0 = (ep.onset_s[main] - t0_s) // 60 + 20
    usable = (ep.end_s[main] - t0_s) // 60 - params.rr_window_min - m0
    count = np.where(usable >= 0, usable // params.rr_every_min + 1, 0)
    idx = np.repeat(np.arange(m0.size), count)
    k = np.arange(idx.size) - np.repeat(np.cumsum(count) - count, count)
    start = m0[idx] + k * params.rr_every_min
    p = ep.participant[main][idx]
    span = start[:, None] + np.arange(params.rr_window_min)[None, :]
    n_min = worn.shape[1]
    ok = (start >= 0) & (start + params.rr_window_min <= n_min)
    ok[ok] = worn[p[ok][:, None], span[ok]].all(axis=1)
    return p[ok], ep.day[main][idx][ok], start[ok]


def _night_rmssd(clean: npt.NDArray[np.float32], offsets: IntArr, night: IntArr, n_nights: int) -> F:
    """RMSSD of the clean series per night, differences across window boundaries excluded."""
    dif = np.diff(clean, prepend=clean[:1])
    dif[offsets[:-1]] = 0.0
    dif *= dif
    per_window = np.add.reduceat(dif, offsets[:-1]).astype(np.float64)
    n_diff = np.maximum(np.diff(offsets) - 1, 0)
    sums = np.bincount(night, weights=per_window, minlength=n_nights)
    cnt = np.bincount(night, weights=n_diff, minlength=n_nights)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, np.sqrt(sums / cnt), np.nan)


def _corrupt(clean: npt.NDArray[np.float32], offsets: IntArr, rng: np.random.Generator) -> npt.NDArray[np.int16]:
    """Ectopic beats (0.7 x then 1.3 x), missed beats (2 x) and short spikes (120-190 ms), at rare positions."""
    n = clean.size
    rec = clean.copy()
    last = np.zeros(n, dtype=bool)
    last[offsets[1:] - 1] = True
    ect = rng.integers(0, n, rng.binomial(n, _P_ECTOPIC))
    ect = ect[~last[ect]]
    rec[ect] *= 0.7
    rec[ect + 1] *= 1.3
    rec[rng.integers(0, n, rng.binomial(n, _P_MISSED))] *= 2.0
    spikes = rng.integers(0, n, rng.binomial(n, _P_SPIKE))
    rec[spikes] = rng.uniform(120.0, 190.0, spikes.size)
    return np.clip(np.round(rec), 1, 32767).astype(np.int16)


def make_rr(params: SimParams, ep: Episodes, nightly: Nightly, worn: npt.NDArray[np.bool_], t0_s: int,
            rng: np.random.Generator) -> RRWindows:
    """RR windows of main sleep with the night's RMSSD, ectopic beats and artefacts."""
    p, d, start_min = _windows(params, ep, worn, t0_s)
    mean_rr = 60000.0 / (nightly.rhr_bpm[p, d] + 2.5)
    n_beats = np.minimum((params.rr_window_min * 60000.0 / mean_rr).astype(np.int64), 3600)
    offsets = np.r_[0, np.cumsum(n_beats)].astype(np.int64)
    s = (np.exp(nightly.ln_rmssd[p, d]) * np.sqrt((1.0 + _PHI_RR) / 2.0)).astype(np.float32)
    e = rng.standard_normal(int(offsets[-1]), dtype=np.float32)
    e *= np.repeat(s, n_beats)
    clean = lfilter(np.ones(1, np.float32), np.array([1.0, -_PHI_RR], np.float32), e).astype(np.float32, copy=False)
    del e
    clean += np.repeat(mean_rr.astype(np.float32), n_beats)
    shape = nightly.ln_rmssd.shape
    rmssd = _night_rmssd(clean, offsets, p * shape[1] + d, shape[0] * shape[1]).reshape(shape)
    return RRWindows(p, d, t0_s + start_min * 60, offsets, _corrupt(clean, offsets, rng), rmssd)
