"""Compliance kernels: arrays in, arrays out (no I/O, no clock, no loops over participants or samples).

Two steps:

1. :func:`wear_minutes` turns heart-rate samples into worn minutes per participant and local day. Each sample
   stands for the time to the next sample of its run (the last one for the step before it), at most ``cap_s``
   (60 s): a device sampling once a minute gives one minute per sample, a 1-Hz device one second per sample,
   and a gap longer than a minute inside a run is not counted as worn. A device status saying *not worn*
   discounts the rest of the run the device was recording when it said so (until the next status, at most
   ``status_hold_s``): the device's own wear sensor wins over a heart rate read off a charger. A run that
   *starts* after the status counts again: the device found a pulse anew, so a status taken hours earlier does
   not hide the officer putting it back on.
2. :func:`evaluate` turns the state (last message, last worn sample, battery, worn minutes and sleep episodes
   per day) into a level ``ok / watch / lapsed`` with its reasons and the three alert conditions, using the
   thresholds of :class:`compliance.rules.ComplianceRules` (the rules are described there).

References: valid day 16 h of wear (GGIR ``includedaycrit``; science.md 1.2); weekly minimum of 4 valid
days/nights (science.md 6.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from compliance.rules import ComplianceRules

__all__ = ["LEVELS", "REASONS", "Evaluation", "evaluate", "unworn_intervals", "valid_nights", "wear_minutes"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

#: Level codes 0, 1, 2.
LEVELS: tuple[str, ...] = ("ok", "watch", "lapsed")
#: Reason codes, the columns of :attr:`Evaluation.reasons`.
REASONS: tuple[str, ...] = ("silent", "unworn", "battery", "nights")
_BIG = np.float64(2.0**40)


def unworn_intervals(status_row: I64, status_device: I64, status_t_s: F64, status_worn: npt.NDArray[np.int8],
                     status_hold_s: float = 86_400.0) -> tuple[I64, F64, F64]:
    """Intervals in which a device status said the device was not worn.

    Parameters
    ----------
    status_row : ndarray of int
        Participant row of each status.
    status_device : ndarray of int
        Device code of each status (any integer coding).
    status_t_s : ndarray of float
        Status time, UTC epoch seconds.
    status_worn : ndarray of int8
        1 worn, 0 not worn, -1 not reported.
    status_hold_s : float
        Longest time a "not worn" status holds without a following status (s).

    Returns
    -------
    (row, start_s, end_s) : tuple of ndarray
        One half-open interval per "not worn" status, sorted by row then start.
    """
    order = np.lexsort((status_t_s, status_device))
    dev, t, worn, row = status_device[order], status_t_s[order], status_worn[order], status_row[order]
    nxt = np.r_[t[1:], np.inf]
    same = np.r_[dev[1:] == dev[:-1], False]
    end = np.minimum(np.where(same, nxt, np.inf), t + status_hold_s)
    off = worn == 0
    r, s, e = row[off], t[off], end[off]
    o = np.lexsort((s, r))
    return r[o].astype(np.int64), s[o], e[o]


def wear_minutes(sample_row: I64, sample_run: I64, sample_t_s: F64, n_rows: int, day_edges_s: F64,
                 unworn: tuple[I64, F64, F64] | None = None, cap_s: float = 60.0) -> F64:
    """Worn minutes per participant row and local day from heart-rate samples.

    Parameters
    ----------
    sample_row : ndarray of int
        Participant row (0..n_rows-1) of each sample.
    sample_run : ndarray of int
        Run (message) id of each sample; samples of one run are contiguous and in time order.
    sample_t_s : ndarray of float
        Sample time, UTC epoch seconds.
    n_rows : int
        Number of participant rows.
    day_edges_s : ndarray of float, shape (n_days + 1,)
        UTC epoch seconds of the local midnights bounding the days (DST-aware, built by the caller).
    unworn : tuple of ndarray, optional
        ``(row, start_s, end_s)`` from :func:`unworn_intervals`; samples inside are not counted.
    cap_s : float
        Longest time one sample stands for (s).

    Returns
    -------
    ndarray of float, shape (n_rows, n_days)
        Worn minutes; NaN where no sample fell in the day (no wear signal), 0 where every sample was
        discounted by a "not worn" status.
    """
    n_days = day_edges_s.size - 1
    out = np.zeros(n_rows * n_days)
    if sample_t_s.size == 0 or n_days <= 0:
        return np.full((n_rows, n_days), np.nan)
    step = np.diff(sample_t_s)
    same_next = np.r_[sample_run[1:] == sample_run[:-1], False]
    same_prev = np.r_[False, sample_run[1:] == sample_run[:-1]]
    # The last sample of a run stands for the step before it (one sample alone: cap_s).
    gap = np.where(same_next, np.r_[step, 0.0], np.where(same_prev, np.r_[0.0, step], cap_s))
    cover = np.clip(gap, 0.0, cap_s)
    if unworn is not None and unworn[0].size:
        first = np.r_[True, sample_run[1:] != sample_run[:-1]]
        run_start = sample_t_s[np.maximum.accumulate(np.where(first, np.arange(sample_t_s.size), 0))]
        cover = np.where(_inside(sample_row, sample_t_s, run_start, *unworn), 0.0, cover)
    day = np.searchsorted(day_edges_s, sample_t_s, side="right") - 1
    ok = (day >= 0) & (day < n_days)
    cells = sample_row[ok] * n_days + day[ok]
    np.add.at(out, cells, cover[ok] / 60.0)
    seen = np.bincount(cells, minlength=n_rows * n_days) > 0
    return np.where(seen, out, np.nan).reshape(n_rows, n_days)


def _inside(row: I64, t: F64, run_start: F64, i_row: I64, i_start: F64, i_end: F64) -> B:
    """True where ``(row, t)`` falls in an interval (sorted by row then start) that began after its run did."""
    keys = i_row.astype(np.float64) * _BIG + i_start
    i = np.searchsorted(keys, row.astype(np.float64) * _BIG + t, side="right") - 1
    ok = i >= 0
    i = np.maximum(i, 0)
    # Intervals of one row may overlap (two devices): also test the running maximum of the ends.
    run_end = _running_max_by_row(i_row, i_end)
    inside: B = ok & (i_row[i] == row) & (t < run_end[i]) & (run_start <= i_start[i])
    return inside


def _running_max_by_row(row: I64, end: F64) -> F64:
    """Cumulative maximum of ``end`` restarted at each new row (rows sorted)."""
    if end.size == 0:
        return end
    shifted = end + row.astype(np.float64) * _BIG
    return np.maximum.accumulate(shifted) - row.astype(np.float64) * _BIG


def valid_nights(wear_min: F64, sleep_n: I64, rules: ComplianceRules) -> B:
    """Valid night per cell: a sleep episode ends that local day and the day has ``min_wear_h`` of wear, or no
    wear signal at all (NaN: the device sent sleep but no heart rate), as the feature job's valid sleep day
    (science.md 1.2), so that this view predicts the flags' "insufficient data" weeks."""
    with np.errstate(invalid="ignore"):
        valid: B = (sleep_n >= 1) & ((wear_min >= rules.min_wear_h * 60.0) | np.isnan(wear_min))
    return valid


def _week_hours(wear_min: F64, week: B) -> F64:
    """Worn hours over the week's columns; NaN when no day of it has a wear signal."""
    w = wear_min[:, week]
    known = np.isfinite(w).any(axis=1)
    hours: F64 = np.where(known, np.nansum(np.where(np.isfinite(w), w, 0.0), axis=1) / 60.0, np.nan)
    return hours


@dataclass(frozen=True)
class Evaluation:
    """Per-participant result of :func:`evaluate` (arrays of length P unless stated).

    Attributes
    ----------
    level : ndarray of int8
        Index into :data:`LEVELS`.
    reasons : ndarray of bool, shape (P, len(REASONS))
        Which rules raised the level.
    silent_h, unworn_h : ndarray of float
        Hours since the last message of any stream, and since the last heart-rate sample.
    wear_h_today, wear_h_7d : ndarray of float
        Worn hours today so far, and over the last 7 complete days.
    nights_sleep_7d, valid_nights_7d, expected_nights_7d : ndarray of int
        Days with a detected sleep episode, valid nights, and programme days, in the last 7 complete days.
    days_since_valid_night : ndarray of float
        Days from the last valid night to today (NaN: none in the window).
    alert_silent, alert_battery, alert_nights : ndarray of bool
        Alert conditions.
    """

    level: npt.NDArray[np.int8]
    reasons: B
    silent_h: F64
    unworn_h: F64
    wear_h_today: F64
    wear_h_7d: F64
    nights_sleep_7d: I64
    valid_nights_7d: I64
    expected_nights_7d: I64
    days_since_valid_night: F64
    alert_silent: B
    alert_battery: B
    alert_nights: B


def evaluate(now_s: float, last_seen_s: F64, last_worn_s: F64, silent_from_s: F64, battery_pct: F64,
             battery_alert_open: B, wear_min: F64, sleep_n: I64, first_col: I64,
             rules: ComplianceRules) -> Evaluation:
    """Compliance level, reasons and alert conditions of each participant.

    Parameters
    ----------
    now_s : float
        Evaluation time, UTC epoch seconds.
    last_seen_s, last_worn_s : ndarray of float
        Latest data time of any stream, and of heart rate (UTC epoch s; NaN: never).
    silent_from_s : ndarray of float
        When silence starts counting for a participant never heard from (programme start or assignment).
    battery_pct : ndarray of float
        Last reported battery (NaN: never reported).
    battery_alert_open : ndarray of bool
        A battery alert is open (it then ends only at ``alert_battery_clear_pct``).
    wear_min : ndarray of float, shape (P, W)
        Worn minutes per local day, NaN without a wear signal; column ``W - 1`` is today, column ``W - 1 - k``
        is k days ago (W >= 8).
    sleep_n : ndarray of int, shape (P, W)
        Sleep episodes ending on each local day.
    first_col : ndarray of int
        Column of programme day 1 (negative if it is before the window); earlier days are not expected.
    rules : ComplianceRules
        Thresholds.

    Returns
    -------
    Evaluation
    """
    W = wear_min.shape[1]
    cols = np.arange(W)
    valid = valid_nights(wear_min, sleep_n, rules)
    week = (cols >= W - 8) & (cols <= W - 2)
    expected_mask = week[None, :] & (cols[None, :] >= first_col[:, None])
    expected = expected_mask.sum(axis=1).astype(np.int64)
    n_valid = (valid & expected_mask).sum(axis=1).astype(np.int64)
    missing = expected - n_valid
    last_valid = np.where(valid.any(axis=1), W - 1 - np.argmax(valid[:, ::-1], axis=1), -1)
    since_valid = np.where(last_valid >= 0, (W - 1 - last_valid).astype(np.float64), np.nan)
    silent_h = np.maximum(now_s - np.where(np.isfinite(last_seen_s), last_seen_s, silent_from_s), 0.0) / 3600.0
    unworn_h = np.maximum(now_s - np.where(np.isfinite(last_worn_s), last_worn_s, silent_from_s), 0.0) / 3600.0
    low = np.isfinite(battery_pct) & (battery_pct < rules.alert_battery_pct)
    still_low = np.isfinite(battery_pct) & (battery_pct < rules.alert_battery_clear_pct) & battery_alert_open
    nights_level = np.where(missing > 7 - rules.lapsed_valid_nights, 2,
                            np.where(missing > 7 - rules.watch_valid_nights, 1, 0))
    silent_level = np.where(silent_h >= rules.lapsed_silent_h, 2, np.where(silent_h >= rules.watch_silent_h, 1, 0))
    unworn_level = (unworn_h >= rules.watch_unworn_h).astype(np.int64)
    reasons = np.stack([silent_level > 0, unworn_level > 0, low, nights_level > 0], axis=1)
    level = np.maximum.reduce([silent_level, unworn_level, low.astype(np.int64), nights_level]).astype(np.int8)
    return Evaluation(
        level=level, reasons=reasons, silent_h=silent_h, unworn_h=unworn_h,
        wear_h_today=wear_min[:, W - 1] / 60.0, wear_h_7d=_week_hours(wear_min, week),
        nights_sleep_7d=((sleep_n >= 1) & expected_mask).sum(axis=1).astype(np.int64),
        valid_nights_7d=n_valid, expected_nights_7d=expected, days_since_valid_night=since_valid,
        alert_silent=silent_h >= rules.alert_silent_h, alert_battery=low | still_low,
        alert_nights=missing > 7 - rules.alert_min_valid_nights,
    )
