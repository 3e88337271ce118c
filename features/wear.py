"""Non-wear kernels: where the device could not see the officer, time awake is unknown (science.md 6.3).

Revised 2026-12 rule: time awake at the end of a duty (W4) is measured only across continuously worn time since
the last detected sleep. The span ``[last sleep end, duty end)`` is *unknown* when it overlaps a non-wear
interval, which is

* a gap of at least :data:`MIN_GAP_S` (60 min) without heart-rate samples, including the time before a
  participant's first sample and after the last one, or
* a device status saying the device is not worn, or that its battery is flat (``battery_pct <=``
  :data:`FLAT_BATTERY_PCT`), taken as a one-second mark at the status time.

Intervals are columnar arrays ``(participant, start, end)`` in UTC epoch s, half-open. The overlap test is one
``np.searchsorted`` on participant-keyed times (``key = participant * span + t``), no loop over duties.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from features.timeutil import DAY_S, HOUR_S, LONDON, local_to_utc

__all__ = ["FLAT_BATTERY_PCT", "MIN_GAP_S", "NonWear", "awake_where_worn", "days_worn", "hr_gaps",
           "nonwear_intervals", "span_unknown", "status_marks"]

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]
#: A gap without heart-rate samples at least this long is non-wear (science.md 6.3: >= 60 min).
MIN_GAP_S = 3600
#: A status with this battery level or lower says "battery flat" [ENG: devices shut down at 0-2 %].
FLAT_BATTERY_PCT = 2
_FAR = np.int64(1) << 40  # "minus/plus infinity" in epoch seconds for head and tail gaps


@dataclass(frozen=True)
class NonWear:
    """Non-wear intervals of a cohort, half-open ``[start, end)`` UTC epoch s, any order."""

    participant: I64
    start: I64
    end: I64


def hr_gaps(participant: npt.ArrayLike, first: npt.ArrayLike, last: npt.ArrayLike, n_participants: int,
            *, min_gap_s: int = MIN_GAP_S) -> NonWear:
    """Gaps of at least ``min_gap_s`` between heart-rate coverage intervals ``[first, last]``.

    Parameters
    ----------
    participant, first, last : array_like of int (k,)
        Coverage intervals (e.g. one per ``raw.hr_runs`` row without an inner gap, or the parts of a run
        either side of one), UTC epoch s of the first and last sample; any order, overlaps allowed.
    n_participants : int
        Cohort size; a participant without any interval is unworn throughout.
    min_gap_s : int
        Minimum gap length in seconds (default 3,600).

    Returns
    -------
    NonWear
        The gaps, and before the first / after the last sample of every participant the intervals
        ``(-inf, first - min_gap_s]`` and ``[last + min_gap_s, +inf)``: a span overlaps them only when it has at
        least ``min_gap_s`` unobserved before the first or after the last sample.
    """
    p = np.asarray(participant, dtype=np.int64)
    f = np.asarray(first, dtype=np.int64)
    la = np.asarray(last, dtype=np.int64)
    order = np.lexsort((f, p))
    p, f, la = p[order], f[order], la[order]
    head = np.r_[True, p[1:] != p[:-1]] if p.size else np.zeros(0, np.bool_)
    reach = _running_max(la, head)  # latest sample so far inside the participant
    gap_start = np.r_[np.int64(0), reach[:-1]] if p.size else reach
    inner = ~head & (f - gap_start >= min_gap_s)
    tail = np.r_[head[1:], True] if p.size else head
    everyone = np.arange(n_participants, dtype=np.int64)
    seen = np.zeros(n_participants, np.bool_)
    seen[p] = True
    never = everyone[~seen]
    return NonWear(
        participant=np.concatenate((p[inner], p[head], p[tail], never)),
        start=np.concatenate((gap_start[inner], np.full(int(head.sum()), -_FAR), reach[tail] + min_gap_s,
                              np.full(never.size, -_FAR))),
        end=np.concatenate((f[inner], f[head] - min_gap_s + 1, np.full(int(tail.sum()), _FAR),
                            np.full(never.size, _FAR))),
    )


def _running_max(x: I64, head: B) -> I64:
    """Cumulative maximum of ``x`` restarted at every ``head`` (vectorised via an offset per group)."""
    if x.size == 0:
        return x
    group = np.cumsum(head) - 1
    lift = group.astype(np.int64) * (np.int64(1) << 42)  # groups never mix: later groups sit higher
    return np.asarray(np.maximum.accumulate(x + lift) - lift, dtype=np.int64)


def status_marks(participant: npt.ArrayLike, ts: npt.ArrayLike, worn: npt.ArrayLike,
                 battery_pct: npt.ArrayLike) -> NonWear:
    """One-second non-wear marks from device statuses saying not worn or battery flat.

    ``worn`` is a float/object array where NaN/None means "not reported"; ``battery_pct`` likewise.
    """
    w = np.asarray(worn, dtype=np.float64)
    bat = np.asarray(battery_pct, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = (w == 0.0) | (bat <= FLAT_BATTERY_PCT)
    t = np.asarray(ts, dtype=np.int64)[bad]
    return NonWear(np.asarray(participant, dtype=np.int64)[bad], t, t + 1)


def nonwear_intervals(*parts: NonWear) -> NonWear:
    """Concatenate non-wear sources."""
    return NonWear(*(np.concatenate([getattr(x, k) for x in parts]) if parts else np.zeros(0, np.int64)
                     for k in ("participant", "start", "end")))


def span_unknown(participant: npt.ArrayLike, a: npt.ArrayLike, b: npt.ArrayLike, nonwear: NonWear) -> B:
    """True where ``[a, b)`` (``a < b``) of the same participant overlaps any non-wear interval.

    ``[a, b)`` overlaps ``[s, e)`` iff ``s < b`` and ``e > a``. Every interval with ``e <= a`` also has
    ``s < b``, so the number overlapping is #(``s < b``) - #(``e <= a``): two ``np.searchsorted`` calls on
    sorted participant-keyed starts and ends, whatever the intervals' order or overlaps.
    """
    p = np.asarray(participant, dtype=np.int64)
    lo = np.asarray(a, dtype=np.int64)
    hi = np.asarray(b, dtype=np.int64)
    if p.size == 0 or nonwear.participant.size == 0:
        return np.zeros(p.shape, np.bool_)
    span = np.int64(1) << 43  # > 3 * _FAR: a participant's keys never reach the next one's
    starts = np.sort(nonwear.participant * span + (nonwear.start + 2 * _FAR))
    ends = np.sort(nonwear.participant * span + (nonwear.end + 2 * _FAR))
    floor = p * span
    n_started = np.searchsorted(starts, floor + (hi + 2 * _FAR), side="left") - np.searchsorted(starts, floor)
    n_ended = np.searchsorted(ends, floor + (lo + 2 * _FAR), side="right") - np.searchsorted(ends, floor)
    return np.asarray(n_started - n_ended > 0, dtype=np.bool_)


def awake_where_worn(participant: npt.ArrayLike, duty_end: npt.ArrayLike, awake_h: npt.ArrayLike,
                     nonwear: NonWear) -> npt.NDArray[np.float64]:
    """Time awake at duty end (h), NaN where the span since the last sleep crosses non-wear (science 6.3).

    Parameters
    ----------
    participant, duty_end : array_like of int (n,)
        Duty owner and end (UTC epoch s).
    awake_h : array_like of float (n,)
        Hours since the end of the last detected sleep (NaN when unknown already).
    nonwear : NonWear
        Non-wear intervals of the same participants.

    Returns
    -------
    ndarray of float (n,)
        ``awake_h`` where ``[duty_end - awake_h, duty_end)`` was continuously worn, else NaN.
    """
    e = np.asarray(duty_end, dtype=np.int64)
    h = np.asarray(awake_h, dtype=np.float64)
    known = np.isfinite(h)
    a = e - np.round(np.where(known, h, 0.0) * HOUR_S).astype(np.int64)
    unknown = span_unknown(participant, a, np.maximum(e, a + 1), nonwear)
    return np.where(known & ~unknown, h, np.nan)


#: Hours before local midnight that belong to a day's sleep opportunity (an evening bedtime) [ENG].
OPPORTUNITY_LEAD_H = 6


def days_worn(n_participants: int, n_days: int, day0: npt.ArrayLike, nonwear: NonWear,
              tz: str = LONDON) -> B:
    """``(P, n_days)`` True where the day's sleep opportunity was continuously worn.

    The opportunity of local day ``d`` is ``[d 00:00 - 6 h, d+1 00:00)`` (end-date sleep days, science 1.2): a
    day whose main sleep was not detected counts as a valid sleep day only when no non-wear interval overlaps
    it, so a main sleep hidden by non-wear is unknown rather than "slept only the nap" (science 6.3 revised).
    """
    d0 = np.asarray(day0, dtype=np.int64)
    p = np.repeat(np.arange(n_participants, dtype=np.int64), n_days)
    day = (d0[p] if d0.ndim else np.full(p.size, int(d0))) + np.tile(np.arange(n_days, dtype=np.int64),
                                                                     n_participants)
    a = local_to_utc(day * DAY_S, tz) - OPPORTUNITY_LEAD_H * HOUR_S
    b = local_to_utc((day + 1) * DAY_S, tz)
    return ~span_unknown(p, a, b, nonwear).reshape(n_participants, n_days)
