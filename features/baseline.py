"""Personal baselines, smallest worthwhile change (SWC) band, CV and 7-day rolling values.

Science: ``science.md`` section 3.4 (baseline window, SWC, CV, L7, RHR7) and 6.2 (calibration baseline);
reference vector TV-H4. Inputs are participant x day arrays (rows = participants, column ``c`` = programme day
``c + 1``) of nightly values (e.g. lnRMSSD, RHR) with NaN for invalid nights. Every statistic is computed from
NaN-aware cumulative sums along the day axis: no loops over participants or days.

References
----------
Plews D.J., Laursen P.B., Kilding A.E., Buchheit M. (2012). Eur J Appl Physiol 112:3729 (7-day lnRMSSD, CV).
HRV4Training, "Custom desirable range/SWC" (60-day normal values, 0.5 SD band).
Javaloyes A. et al. (2019). IJSPP 14:23 (4-week baseline).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]

BASELINE_MAX_LAG = 60
"""Oldest baseline night is ``d - 60`` (science 3.4 [ENG])."""
BASELINE_MIN_LAG = 7
"""Newest baseline night is ``d - 7``, excluding the evaluated week (science 3.4 [ENG])."""
BASELINE_MIN_NIGHTS = 14
"""Minimum valid nights for the rolling baseline (science 3.4 [ENG])."""
CALIBRATION_DAYS = 14
"""Calibration phase, days 1-14 (science 6.2)."""
CALIBRATION_MIN_NIGHTS = 10
"""Valid nights needed in the calibration phase (science 6.2 [ENG])."""
CALIBRATION_MAX_DAYS = 28
"""Calibration is extended day by day up to day 28 (science 6.2)."""
SWC_FACTOR = 0.5
"""SWC band half-width in baseline SDs (science 3.4)."""
WEEK_DAYS = 7
WEEK_MIN_NIGHTS = 4
"""Minimum valid nights in ``[d-6, d]`` for L7 / RHR7 / CV7 (science 3.4 [ENG])."""

SOURCE_NONE = 0
"""No baseline yet ("calibrating")."""
SOURCE_CALIBRATION = 1
"""Calibration baseline (days 1..E, E in 14..28)."""
SOURCE_ROLLING = 2
"""Rolling baseline over ``[max(1, d-60), d-7]``."""


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Count, mean and SD (ddof 1) of valid values in a day window, per participant x day."""

    n: I64
    mean: F64
    sd: F64


@dataclass(frozen=True, slots=True)
class Baseline:
    """Personal baseline per participant x day (science 3.4).

    Attributes
    ----------
    mean, sd : numpy.ndarray of float64
        ``mu_b`` and ``sigma_b`` (ddof 1) of the baseline nights (units of the input); NaN when calibrating.
    swc_low, swc_high : numpy.ndarray of float64
        SWC band ``mu_b -/+ 0.5 sigma_b``.
    cv_pct : numpy.ndarray of float64
        ``100 sigma_b / mu_b`` (%).
    n_nights : numpy.ndarray of int64
        Number of baseline nights used.
    source : numpy.ndarray of int8
        `SOURCE_NONE`, `SOURCE_CALIBRATION` or `SOURCE_ROLLING`.
    """

    mean: F64
    sd: F64
    swc_low: F64
    swc_high: F64
    cv_pct: F64
    n_nights: I64
    source: I8


def window_stats(values: npt.ArrayLike, max_lag: int, min_lag: int) -> WindowStats:
    """Statistics over the valid values of days ``[max(1, d - max_lag), d - min_lag]`` for every day ``d``.

    With ``C`` the cumulative sums of ``x - shift`` (NaN as 0) and ``K`` of the valid counts along days,
    the window sums are ``C[hi + 1] - C[lo]``; ``var = (S2 - S1^2 / n) / (n - 1)``. ``shift`` is the
    participant's first valid value (numerical conditioning only). The result for day ``d`` depends only on
    days ``<= d - min_lag`` (no leakage).

    Parameters
    ----------
    values : array_like, shape (n_participants, n_days)
        Nightly values; NaN = invalid night.
    max_lag, min_lag : int
        Window ``[d - max_lag, d - min_lag]`` in days (``min_lag = 0`` includes day ``d``).

    Returns
    -------
    WindowStats
        ``mean`` NaN when ``n == 0``, ``sd`` NaN when ``n < 2``.
    """
    x = np.atleast_2d(np.asarray(values, dtype=np.float64))
    ok = np.isfinite(x)
    first = np.argmax(ok, axis=1)
    shift = np.where(ok.any(axis=1), x[np.arange(x.shape[0]), first], 0.0)[:, None]
    dx = np.where(ok, x - shift, 0.0)
    zero = np.zeros((x.shape[0], 1))
    c1 = np.concatenate((zero, np.cumsum(dx, axis=1)), axis=1)
    c2 = np.concatenate((zero, np.cumsum(dx * dx, axis=1)), axis=1)
    k = np.concatenate((zero.astype(np.int64), np.cumsum(ok, axis=1, dtype=np.int64)), axis=1)
    day = np.arange(x.shape[1])
    hi = np.clip(day - min_lag + 1, 0, None)
    lo = np.minimum(np.clip(day - max_lag, 0, None), hi)
    n = k[:, hi] - k[:, lo]
    s1 = c1[:, hi] - c1[:, lo]
    s2 = c2[:, hi] - c2[:, lo]
    # Differences of running sums carry a rounding error of about eps * |C2|; a sum of squares below that
    # floor is indistinguishable from zero (e.g. a window of identical values) and is set to 0.
    floor = 64 * np.finfo(np.float64).eps * np.maximum(np.abs(c2[:, hi]), np.abs(c2[:, lo]))
    with np.errstate(invalid="ignore", divide="ignore"):
        m = s1 / n
        ss = s2 - s1 * m
        var = np.where(ss <= floor, 0.0, ss) / (n - 1)
    return WindowStats(n, np.where(n > 0, m + shift, np.nan), np.where(n > 1, np.sqrt(var), np.nan))


def personal_baseline(values: npt.ArrayLike, max_lag: int = BASELINE_MAX_LAG, min_lag: int = BASELINE_MIN_LAG,
                      min_nights: int = BASELINE_MIN_NIGHTS, swc_factor: float = SWC_FACTOR, *,
                      calib_days: int = CALIBRATION_DAYS, max_calib_days: int = CALIBRATION_MAX_DAYS,
                      calib_min_nights: int = CALIBRATION_MIN_NIGHTS) -> Baseline:
    """Personal baseline ``B(d)``: valid nights in ``[max(1, d-60), d-7]`` if >= 14, else calibration baseline.

    Calibration baseline (science 6.2): the valid nights of days ``1..E`` where ``E`` is the first day in
    14..28 with >= 10 valid nights in ``1..E``; it applies to days ``d > E`` (days ``<= E`` are "calibrating",
    NaN). Then ``SWC = [mu_b - 0.5 sigma_b, mu_b + 0.5 sigma_b]`` and ``CV = 100 sigma_b / mu_b``.

    The rolling baseline of day ``d`` uses only days ``<= d - 7``; the calibration fallback uses days
    ``<= E < d``. The SD floors of science 3.4 (0.05 ln-units, 1 bpm) are applied where z-scores are formed
    (`z_score`, `features.recovery`), not here, so the reported SD is the raw one.

    Parameters
    ----------
    values : array_like, shape (n_participants, n_days)
        Nightly values (e.g. ``ln_rmssd``, ``resting_hr_bpm``) of one source only; NaN = invalid night.
    max_lag, min_lag, min_nights : int
        Rolling window and minimum nights.
    swc_factor : float
        Band half-width in SDs.
    calib_days, max_calib_days, calib_min_nights : int
        Calibration window of the programme file (14, extended up to 28, >= 10 valid nights).

    Returns
    -------
    Baseline
    """
    x = np.atleast_2d(np.asarray(values, dtype=np.float64))
    roll = window_stats(x, max_lag, min_lag)
    cal_n, cal_mean, cal_sd, cal_end = _calibration(x, calib_days, max_calib_days, calib_min_nights)
    day = np.arange(1, x.shape[1] + 1)
    use_roll = roll.n >= min_nights
    use_cal = ~use_roll & (day[None, :] > cal_end[:, None])
    source = np.where(use_roll, SOURCE_ROLLING, np.where(use_cal, SOURCE_CALIBRATION, SOURCE_NONE)).astype(np.int8)
    mean = np.where(use_roll, roll.mean, np.where(use_cal, cal_mean[:, None], np.nan))
    sd = np.where(use_roll, roll.sd, np.where(use_cal, cal_sd[:, None], np.nan))
    n = np.where(use_roll, roll.n, np.where(use_cal, cal_n[:, None], 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = 100.0 * sd / mean
    return Baseline(mean, sd, mean - swc_factor * sd, mean + swc_factor * sd, cv, n.astype(np.int64), source)


def _calibration(x: F64, calib_days: int = CALIBRATION_DAYS, max_days: int = CALIBRATION_MAX_DAYS,
                 min_nights: int = CALIBRATION_MIN_NIGHTS) -> tuple[I64, F64, F64, I64]:
    """Calibration baseline per participant: count, mean, SD over days ``1..E`` and ``E`` (a huge day if none)."""
    n_p, n_d = x.shape
    stats = window_stats(x, max_lag=n_d + 1, min_lag=0)
    ends = np.arange(calib_days, min(max_days, n_d) + 1)
    never = np.iinfo(np.int64).max
    if ends.size == 0:
        return np.zeros(n_p, np.int64), np.full(n_p, np.nan), np.full(n_p, np.nan), np.full(n_p, never)
    enough = stats.n[:, ends - 1] >= min_nights
    has = enough.any(axis=1)
    col = ends[np.argmax(enough, axis=1)] - 1
    rows = np.arange(n_p)
    end = np.where(has, col + 1, never)
    return (np.where(has, stats.n[rows, col], 0), np.where(has, stats.mean[rows, col], np.nan),
            np.where(has, stats.sd[rows, col], np.nan), end)


def rolling_mean(values: npt.ArrayLike, days: int = WEEK_DAYS, min_valid: int = WEEK_MIN_NIGHTS) -> F64:
    """Mean over valid nights in ``[d - days + 1, d]`` (``L7`` of lnRMSSD, ``RHR7``), NaN if < ``min_valid``.

    Parameters
    ----------
    values : array_like, shape (n_participants, n_days)
        Nightly values; NaN = invalid.
    days, min_valid : int
        Window length and minimum valid nights (science 3.4: 7 and 4 [ENG]).

    Returns
    -------
    numpy.ndarray of float64
    """
    s = window_stats(values, days - 1, 0)
    return np.where(s.n >= min_valid, s.mean, np.nan)


def rolling_cv(values: npt.ArrayLike, days: int = WEEK_DAYS, min_valid: int = WEEK_MIN_NIGHTS) -> F64:
    """``CV7 = 100 SD / mean`` (%, SD ddof 1) over valid nights in ``[d - 6, d]`` (Plews et al. 2012).

    Parameters
    ----------
    values : array_like, shape (n_participants, n_days)
        Nightly values (lnRMSSD); NaN = invalid.
    days, min_valid : int
        Window length and minimum valid nights.

    Returns
    -------
    numpy.ndarray of float64
    """
    s = window_stats(values, days - 1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s.n >= min_valid, 100.0 * s.sd / s.mean, np.nan)


def z_score(x: npt.ArrayLike, mean: npt.ArrayLike, sd: npt.ArrayLike, sd_floor: float = 0.0) -> F64:
    """``z = (x - mean) / max(sd, sd_floor)`` (science 3.4: ``z_HRV = (L7 - mu_b) / sigma_b``, floors 0.05 / 1).

    Parameters
    ----------
    x, mean, sd : array_like
        Broadcastable arrays (same units).
    sd_floor : float
        Lower bound of the SD (0.05 ln-units for lnRMSSD, 1 bpm for RHR [ENG]).

    Returns
    -------
    numpy.ndarray of float64
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.asarray(x, np.float64) - np.asarray(mean, np.float64)) / np.fmax(np.asarray(sd, np.float64),
                                                                                     sd_floor)
