"""Resting heart rate: lowest 5-min rolling mean of minute-level HR within the main sleep, for many nights.

Science: ``science.md`` section 3.3 (default ``RHR_night``) and reference vector TV-H3. Heart rate in bpm.

Cohort layout as in `features.hrv`: minute HR of many nights concatenated, CSR ``offsets`` of length
``n_nights + 1``. A minute that is not artefact-free is NaN (or ``False`` in ``valid``).

References
----------
Oura, "Readiness Contributors" (support.ouraring.com): lowest heart rate of the night on 5-minute averages.
Speed C. et al. (2023). Measuring resting heart rate with a PPG wristband. PLOS Digital Health.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

RHR_WINDOW_MIN = 5
"""Rolling window length in samples (minutes) (science 3.3)."""
RHR_MIN_VALID = 4
"""Minimum valid minutes per rolling window (science 3.3)."""


def rolling_hr(hr_bpm: npt.ArrayLike, offsets: npt.ArrayLike, valid: Bool | None = None,
               window: int = RHR_WINDOW_MIN, min_valid: int = RHR_MIN_VALID) -> tuple[F64, I64]:
    """Rolling mean HR of every full window inside each night, from cumulative sums.

    For a window of ``w`` samples starting at sample ``i`` (entirely within its night):
    ``mean_i = (C[i+w] - C[i]) / (K[i+w] - K[i])`` with ``C`` the cumulative sum of valid HR and ``K`` the
    cumulative count of valid minutes; NaN unless ``K[i+w] - K[i] >= min_valid``.

    Parameters
    ----------
    hr_bpm : array_like
        Concatenated minute HR (bpm); NaN = missing or artefact.
    offsets : array_like of int
        Night boundaries (CSR), length ``n_nights + 1``.
    valid : numpy.ndarray of bool, optional
        Extra artefact-free mask (e.g. not ``suspect``).
    window, min_valid : int
        Window length (samples) and minimum valid samples in it.

    Returns
    -------
    means : numpy.ndarray of float64
        Rolling means (bpm), windows of all nights concatenated in order.
    night : numpy.ndarray of int64
        Night index of each window.
    """
    hr = np.asarray(hr_bpm, dtype=np.float64).ravel()
    off = np.asarray(offsets, dtype=np.int64)
    ok = np.isfinite(hr) if valid is None else np.isfinite(hr) & np.asarray(valid, dtype=np.bool_)
    c = np.concatenate(([0.0], np.cumsum(np.where(ok, hr, 0.0))))
    k = np.concatenate(([0], np.cumsum(ok, dtype=np.int64)))
    n_win = np.maximum(np.diff(off) - window + 1, 0)
    night = np.repeat(np.arange(n_win.size), n_win)
    start = np.arange(night.size) - np.repeat(np.cumsum(n_win) - n_win, n_win) + off[:-1][night]
    cnt = k[start + window] - k[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (c[start + window] - c[start]) / cnt
    means[cnt < min_valid] = np.nan
    return means, night


def resting_hr(hr_bpm: npt.ArrayLike, offsets: npt.ArrayLike, valid: Bool | None = None,
               window: int = RHR_WINDOW_MIN, min_valid: int = RHR_MIN_VALID) -> F64:
    """Nightly resting HR: minimum of the 5-min rolling mean of artefact-free minute HR (science 3.3).

    ``RHR_night = min_i mean(HR[i : i+5])`` over the windows inside the main sleep with >= 4 valid minutes
    (TV-H3: 53.4 bpm). Computed for all nights at once with cumulative sums (`rolling_hr`) and
    ``numpy.minimum.reduceat``; no loops over nights.

    Parameters
    ----------
    hr_bpm : array_like
        Concatenated minute HR (bpm) of each night's main sleep; NaN = missing or artefact.
    offsets : array_like of int
        Night boundaries (CSR), length ``n_nights + 1``.
    valid : numpy.ndarray of bool, optional
        Extra artefact-free mask.
    window, min_valid : int
        Window length (minutes) and minimum valid minutes per window.

    Returns
    -------
    numpy.ndarray of float64
        ``resting_hr_bpm`` per night; NaN when no window qualifies (then fall back to the device RHR,
        ``rhr_source = 'device'``, outside this kernel).
    """
    off = np.asarray(offsets, dtype=np.int64)
    means, night = rolling_hr(hr_bpm, off, valid, window, min_valid)
    n_nights = off.size - 1
    out = np.full(n_nights, np.nan)
    if means.size == 0:
        return out
    per = np.bincount(night, minlength=n_nights)
    has = per > 0
    first = (np.cumsum(per) - per)[has]
    mins = np.minimum.reduceat(np.where(np.isnan(means), np.inf, means), first)
    out[has] = np.where(np.isinf(mins), np.nan, mins)
    return out
