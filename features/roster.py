"""Roster (duty) features for whole cohorts at once (science.md §5, TV-W1 in §8).

Duties are columnar arrays sorted by participant, then start: ``participant`` (int), ``start``/``end`` (int64
UTC epoch s, half-open), ``shift_type`` (int codes of :data:`SHIFT_TYPES`). Everything is elementwise, a
comparison with the previous duty of the same participant, a run-length ordinal (``np.maximum.accumulate`` of
run starts) or one ``np.searchsorted`` on participant-keyed times (``key = participant * span + (t - t_min)``).

References: UK Working Time Regulations 1998 (11 h daily rest; night time 23:00-06:00, >= 3 h); Police
Federation shift-rota guidance (<= 4 nights, forward rotation, 07:00 starts, shifts <= 12 h); Dawson & Reid 1997
Nature 388:235 and Van Dongen et al. 2003 SLEEP 26:117 (time awake).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from features.timeutil import DAY_S, HOUR_S, LONDON, local_day, local_hour, local_to_utc

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

SHIFT_TYPES: tuple[str, ...] = ("early", "late", "night", "day", "long_day", "office", "training", "other")
"""Shift-type codes: ``SHIFT_TYPES.index(name)`` (roster.csv vocabulary, docs/developing.md)."""
EARLY, LATE, NIGHT = 0, 1, 2
# rotation rank (early/day-type 0 < late 1 < night 2); office/training/other do not rotate
_ROTATION_RANK = np.array([0.0, 1.0, 2.0, 0.0, 0.0, np.nan, np.nan, np.nan])

__all__ = [
    "EARLY",
    "LATE",
    "NIGHT",
    "SHIFT_TYPES",
    "DutyDays",
    "DutyFeatures",
    "duty_day_grid",
    "duty_features",
    "night_overlap_h",
    "shift_codes",
    "time_awake_at",
]


@dataclass(frozen=True)
class DutyFeatures:
    """Per-duty arrays named like ``derived.duty_features``; hours are elapsed hours.

    ``consecutive_nights`` / ``consecutive_duty_days`` are the ordinal of the duty inside its current run
    (1, 2, ...; 0 for a non-night duty), so the weekly maximum is the longest run reached and the value never
    depends on later duties. ``forward_rotation`` is 1.0 (rank rises early -> late -> night), 0.0 (rank falls
    with < 48 h between the duties) or NaN (first duty, same rank, non-rotating type, or a change after >= 48 h
    of rest, which restarts the cycle) [ENG]. ``time_awake_main_end_h`` measures from the last main sleep.
    """

    length_h: F64
    long_shift: B
    rest_gap_h: F64
    quick_return: B
    night_overlap_h: F64
    night_duty: B
    consecutive_nights: I64
    consecutive_duty_days: I64
    early_start: B
    forward_rotation: F64
    time_awake_end_h: F64
    time_awake_main_end_h: F64


def shift_codes(names: npt.ArrayLike) -> npt.NDArray[np.int8]:
    """Map shift-type names to codes (unknown names -> ``other``)."""
    arr = np.asarray(names, dtype=str)
    uniq, inv = np.unique(arr, return_inverse=True)
    lut = np.array([SHIFT_TYPES.index(u) if u in SHIFT_TYPES else SHIFT_TYPES.index("other") for u in uniq],
                   dtype=np.int8)
    return lut[inv.reshape(arr.shape)] if uniq.size else np.zeros(arr.shape, np.int8)


def night_overlap_h(
    start: npt.ArrayLike, end: npt.ArrayLike, *, night: tuple[int, int] = (23, 6), tz: str = LONDON
) -> F64:
    """Elapsed overlap (h) of ``[start, end)`` with local night time (default 23:00-06:00, WTR 1998 reg 2).

    Night windows of the local dates from (start date - 1) to (start date + 3) are converted to UTC (so a night
    spanning a clock change is 6 or 8 h long) and ``sum max(0, min(e, w1) - max(s, w0))`` is taken; duties up to
    72 h are covered exactly.
    """
    s = np.asarray(start, dtype=np.int64)
    e = np.asarray(end, dtype=np.int64)
    d0 = local_day(s, tz)
    total = np.zeros(s.shape, dtype=np.float64)
    for k in range(-1, 4):  # fixed 5 candidate nights
        w0 = local_to_utc((d0 + k) * DAY_S + night[0] * HOUR_S, tz)
        w1 = local_to_utc((d0 + k + 1) * DAY_S + night[1] * HOUR_S, tz)
        total += np.maximum(0, np.minimum(e, w1) - np.maximum(s, w0))
    return total / HOUR_S


def _run_ordinal(new_run: B, increment: B) -> I64:
    """Ordinal inside runs: cumulative ``increment`` since the last ``new_run`` (inclusive, 1-based)."""
    cs = np.cumsum(increment)
    idx = np.arange(new_run.size)
    head = np.maximum.accumulate(np.where(new_run, idx, 0))
    return np.asarray(cs - cs[head] + 1, dtype=np.int64)


def time_awake_at(
    participant: npt.ArrayLike,
    t: npt.ArrayLike,
    sleep_participant: npt.ArrayLike,
    sleep_end: npt.ArrayLike,
) -> F64:
    """Hours from the latest ``sleep_end <= t`` of the same participant to ``t`` (NaN if none).

    One ``np.searchsorted`` on keys ``participant * span + (time - t_min)``; sleeps may be in any order.
    """
    p = np.asarray(participant, dtype=np.int64)
    tt = np.asarray(t, dtype=np.int64)
    sp = np.asarray(sleep_participant, dtype=np.int64)
    se = np.asarray(sleep_end, dtype=np.int64)
    if se.size == 0 or tt.size == 0:
        return np.full(tt.shape, np.nan)
    t_min = min(int(tt.min()), int(se.min()))
    span = max(int(tt.max()), int(se.max())) - t_min + 1
    keys = np.sort(sp * span + (se - t_min))
    q = p * span + (tt - t_min)
    k = np.searchsorted(keys, q, side="right") - 1
    kk = np.maximum(k, 0)
    same = (k >= 0) & (keys[kk] // span == p)
    return np.where(same, (q - keys[kk]) / HOUR_S, np.nan)


def duty_features(
    participant: npt.ArrayLike,
    start: npt.ArrayLike,
    end: npt.ArrayLike,
    shift_type: npt.ArrayLike,
    *,
    sleep_participant: npt.ArrayLike | None = None,
    sleep_start: npt.ArrayLike | None = None,
    sleep_end: npt.ArrayLike | None = None,
    sleep_is_main: npt.ArrayLike | None = None,
    min_sleep_min: float = 30.0,
    max_awake_h: float = 48.0,
    tz: str = LONDON,
) -> DutyFeatures:
    """Per-duty roster features (science §5, TV-W1).

    ``L = e - s``; long shift ``L > 12 h``; rest gap ``G_i = s_i - e_{i-1}`` (NaN for a participant's first
    duty); quick return ``G < 11 h``; night duty: >= 3 h overlap with 23:00-06:00 local; consecutive nights:
    night duties with ``G <= 24 h`` to the previous (night) duty; consecutive duty days: local start dates at
    most one day apart; early start: local start clock time < 07:00; time awake at end ``A = e - end of the
    last sleep episode >= 30 min ending by e``. [ENG] ``A`` is NaN when that sleep ended more than
    ``max_awake_h`` (48 h) before ``e``: such gaps are missing device data, not wakefulness.
    """
    p = np.asarray(participant, dtype=np.int64)
    s = np.asarray(start, dtype=np.int64)
    e = np.asarray(end, dtype=np.int64)
    code = np.asarray(shift_type, dtype=np.int64)
    n = p.size
    if n > 1 and np.any((p[1:] < p[:-1]) | ((p[1:] == p[:-1]) & (s[1:] < s[:-1]))):
        raise ValueError("duties must be sorted by participant, then start")
    same = np.zeros(n, dtype=np.bool_)
    same[1:] = p[1:] == p[:-1]
    gap = np.full(n, np.nan)
    gap[1:] = (s[1:] - e[:-1]) / HOUR_S
    gap = np.where(same, gap, np.nan)
    length = (e - s) / HOUR_S
    overlap = night_overlap_h(s, e, tz=tz)
    night = overlap >= 3.0
    prev_night = np.concatenate(([False], night[:-1]))
    cont_night = night & same & prev_night & (gap <= 24.0)
    nights = np.where(night, _run_ordinal(~cont_night, np.ones(n, np.bool_)), 0)
    date = local_day(s, tz)
    prev_date = np.concatenate(([np.int64(-(10**9))], date[:-1]))
    new_block = ~(same & (date - prev_date <= 1))
    duty_days = _run_ordinal(new_block, new_block | (date != prev_date))
    rank = _ROTATION_RANK[np.clip(code, 0, _ROTATION_RANK.size - 1)]
    prev_rank = np.concatenate(([np.nan], rank[:-1]))
    fwd = np.where(rank > prev_rank, 1.0, np.where((rank < prev_rank) & (gap < 48.0), 0.0, np.nan))
    fwd = np.where(same, fwd, np.nan)
    awake = np.full(n, np.nan)
    awake_main = np.full(n, np.nan)
    if sleep_end is not None and sleep_participant is not None:
        sp = np.asarray(sleep_participant, dtype=np.int64)
        se_ = np.asarray(sleep_end, dtype=np.int64)
        ss = se_ if sleep_start is None else np.asarray(sleep_start, dtype=np.int64)
        ok = (se_ - ss) >= 60 * min_sleep_min if sleep_start is not None else np.ones(se_.size, np.bool_)
        awake = time_awake_at(p, e, sp[ok], se_[ok])
        if sleep_is_main is not None:
            mm = np.asarray(sleep_is_main, dtype=np.bool_)
            awake_main = time_awake_at(p, e, sp[mm], se_[mm])
        awake = np.where(awake <= max_awake_h, awake, np.nan)
        awake_main = np.where(awake_main <= max_awake_h, awake_main, np.nan)
    return DutyFeatures(
        length_h=length,
        long_shift=length > 12.0,
        rest_gap_h=gap,
        quick_return=gap < 11.0,
        night_overlap_h=overlap,
        night_duty=night,
        consecutive_nights=nights.astype(np.int64),
        consecutive_duty_days=duty_days,
        early_start=local_hour(s, tz) < 7.0,
        forward_rotation=fwd,
        time_awake_end_h=awake,
        time_awake_main_end_h=awake_main,
    )


@dataclass(frozen=True)
class DutyDays:
    """(P, D) grids by local start date of duties: ``shift_on_day`` = code of the first duty starting on that
    date (-1 = no duty), ``night_on_day`` = a night duty starts on that date."""

    shift_on_day: I64
    night_on_day: B


def duty_day_grid(
    participant: npt.ArrayLike,
    start: npt.ArrayLike,
    shift_type: npt.ArrayLike,
    night_duty: npt.ArrayLike,
    *,
    n_participants: int,
    day0: npt.ArrayLike,
    n_days: int,
    tz: str = LONDON,
) -> DutyDays:
    """Scatter duties onto participant x programme-day grids (input for social jet lag and free days)."""
    p = np.asarray(participant, dtype=np.int64)
    d0 = np.asarray(day0, dtype=np.int64)
    day = local_day(start, tz) - (d0[p] if d0.ndim == 1 else d0)
    ok = (day >= 0) & (day < n_days)
    cell = (p * n_days + day)[ok]
    code = np.asarray(shift_type, dtype=np.int64)[ok]
    order = np.lexsort((np.asarray(start, dtype=np.int64)[ok], cell))
    _, first = np.unique(cell[order], return_index=True)
    shift = np.full(n_participants * n_days, -1, dtype=np.int64)
    shift[cell[order][first]] = code[order][first]
    night = np.zeros(n_participants * n_days, dtype=np.bool_)
    night[cell[np.asarray(night_duty, dtype=np.bool_)[ok]]] = True
    return DutyDays(shift_on_day=shift.reshape(n_participants, n_days),
                    night_on_day=night.reshape(n_participants, n_days))
