"""UK police rosters with disruptions, on a (participant, day) grid in Europe/London wall-clock time.

Patterns (science.md section 5, "UK police context"): the Home Office 2-2-2 (two earlies, two lates, two
nights, four rest days), 4-on-4-off 10-hour shifts (two days, two nights), a 5-week variable shift arrangement
(early 06:00, late 14:00, super late 18:00, nights, training; one late -> early changeover per cycle, i.e. a
quick return by design) and office hours. Disruptions: overtime extensions, long shifts, cancelled rest days
(Oscar Kilo 2019: 49 % had >= 2 cancelled in 12 months), recalls and short-notice changes to an early after a
late (quick returns). At most one duty starts per local day.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulators.clock import Clock
from simulators.cohort import Cohort
from simulators.params import SimParams

__all__ = ["SHIFTS", "Roster", "duty_facts", "make_roster"]

#: code -> (shift_type, local start hour, length h); code 0 is a rest day.
SHIFTS: tuple[tuple[str, float, float], ...] = (
    ("rest", 0.0, 0.0),
    ("early", 7.0, 8.0), ("late", 15.0, 8.0), ("night", 22.0, 9.0),      # 1-3: 2-2-2
    ("day", 7.0, 10.0), ("night", 21.0, 10.0),                             # 4-5: 4-on-4-off
    ("early", 6.0, 8.0), ("late", 14.0, 8.0), ("late", 18.0, 9.0),        # 6-8: VSA (8 = super late)
    ("night", 22.0, 8.0), ("training", 9.0, 8.0),                          # 9-10
    ("office", 8.5, 8.0), ("day", 8.0, 10.0), ("other", 14.0, 6.0),       # 11 office, 12 cancelled rest, 13 recall
)
_TEMPLATES: tuple[tuple[int, ...], ...] = (
    (1, 1, 2, 2, 3, 3, 0, 0, 0, 0),
    (4, 4, 5, 5, 0, 0, 0, 0),
    (6, 6, 6, 6, 6, 0, 0, 7, 7, 7, 6, 6, 0, 0, 9, 9, 9, 9, 0, 0, 0,
     0, 7, 7, 7, 8, 8, 0, 10, 7, 7, 7, 7, 0, 0),
    (),  # office: by weekday
)
_LATE_CODES = np.array([2, 7, 8])
_P_CHANGE_TO_EARLY = 0.04
_P_CANCEL_REST = 0.03
_P_RECALL = 0.01
_P_OVERTIME = 0.10
_P_LONG = 0.02
_MIN_REST_BETWEEN_H = 0.5
IntArr = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Roster:
    """Duties on the (participant, day) grid; ``code == 0`` is a rest day.

    Attributes
    ----------
    code : ndarray of int, shape (n, days)
        Index into :data:`SHIFTS`.
    start_s, end_s : ndarray of int64, shape (n, days)
        UTC epoch seconds of the duty (0 on rest days).
    overtime : ndarray of bool, shape (n, days)
        Duty extended or added at short notice.
    """

    code: IntArr
    start_s: IntArr
    end_s: IntArr
    overtime: B

    @property
    def on_duty(self) -> B:
        """Days with a duty starting."""
        return self.code > 0

    def shift_type(self) -> npt.NDArray[np.str_]:
        """Shift type name per grid cell ("rest" on rest days)."""
        return np.array([s[0] for s in SHIFTS])[self.code]


def _base_codes(params: SimParams, cohort: Cohort) -> IntArr:
    days = np.arange(params.n_days)
    lengths = np.array([max(len(t), 1) for t in _TEMPLATES])
    table = np.zeros((len(_TEMPLATES), lengths.max()), dtype=np.int64)
    for i, t in enumerate(_TEMPLATES):
        table[i, :len(t)] = t
    pos = (days[None, :] + cohort.roster_phase[:, None]) % lengths[cohort.pattern][:, None]
    codes = table[cohort.pattern[:, None], pos]
    weekday = (params.start_date.weekday() + days) % 7
    office = np.where(weekday < 5, 11, 0)
    return np.where((cohort.pattern == 3)[:, None], office[None, :], codes)


def _disrupt(codes: IntArr, rng: np.random.Generator) -> tuple[IntArr, B, npt.NDArray[np.float64]]:
    """Short-notice changes, cancelled rest days and recalls; returns codes, overtime and extra hours."""
    prev = np.zeros_like(codes)
    prev[:, 1:] = codes[:, :-1]
    starts = np.array([s[1] for s in SHIFTS])
    change = (np.isin(prev, _LATE_CODES) & (starts[codes] >= 12.0) & (codes > 0)
              & (rng.random(codes.shape) < _P_CHANGE_TO_EARLY))
    codes = np.where(change, 6, codes)
    u = rng.random(codes.shape)
    rest = codes == 0
    cancel = rest & (u < _P_CANCEL_REST)
    recall = rest & (u >= _P_CANCEL_REST) & (u < _P_CANCEL_REST + _P_RECALL)
    codes = np.where(cancel, 12, np.where(recall, 13, codes))
    u2 = rng.random(codes.shape)
    extra = np.where(u2 < _P_OVERTIME, rng.choice([1.0, 1.0, 2.0, 2.0, 3.0, 4.0], size=codes.shape), 0.0)
    long_total = rng.uniform(12.5, 15.0, codes.shape)
    lengths = np.array([s[2] for s in SHIFTS])[codes]
    extra = np.where(u2 > 1.0 - _P_LONG, np.maximum(long_total - lengths, 0.0), extra)
    extra = np.where(codes > 0, extra, 0.0)
    overtime = (codes > 0) & ((extra > 0) | cancel | recall | change)
    return codes, overtime, extra


def make_roster(params: SimParams, cohort: Cohort, clock: Clock, rng: np.random.Generator) -> Roster:
    """Build the roster grid (base pattern + disruptions) and convert it to UTC.

    Parameters
    ----------
    params : SimParams
        Programme length and start date.
    cohort : Cohort
        Pattern and phase per participant.
    clock : Clock
        London offset tables.
    rng : numpy.random.Generator
        Seeded generator.

    Returns
    -------
    Roster
    """
    codes, overtime, extra = _disrupt(_base_codes(params, cohort), rng)
    start_h = np.array([s[1] for s in SHIFTS])[codes]
    start_h = np.where(codes == 13, rng.integers(10, 20, codes.shape).astype(np.float64), start_h)
    length_h = np.array([s[2] for s in SHIFTS])[codes] + extra
    days = np.broadcast_to(np.arange(params.n_days), codes.shape)
    start_s = clock.to_utc(clock.local_naive_of_day(days, start_h))
    end_s = clock.to_utc(clock.local_naive_of_day(days, start_h + length_h))
    nxt = np.full_like(start_s, np.iinfo(np.int64).max)
    nxt[:, :-1] = np.where(codes[:, 1:] > 0, start_s[:, 1:], nxt[:, :-1])
    end_s = np.minimum(end_s, nxt - int(_MIN_REST_BETWEEN_H * 3600))
    on = codes > 0
    return Roster(codes, np.where(on, start_s, 0), np.where(on, end_s, 0), overtime & on)


def duty_facts(roster: Roster, clock: Clock) -> dict[str, npt.NDArray[np.generic]]:
    """Per-duty roster facts (science.md section 5) as flat columns in (participant, start) order.

    Returns
    -------
    dict
        ``participant, day, start_s, end_s, shift_type, overtime, length_h, rest_gap_h, quick_return
        (gap < 11 h), long_shift (> 12 h), night (>= 3 h inside 23:00-06:00 local), early_start (< 07:00)``.
    """
    p, d = np.nonzero(roster.on_duty)
    start, end = roster.start_s[p, d], roster.end_s[p, d]
    gap = np.full(p.size, np.nan)
    same = np.r_[False, p[1:] == p[:-1]]
    gap[same] = (start[1:][same[1:]] - end[:-1][same[1:]]) / 3600.0
    ls, le = clock.to_local(start), clock.to_local(end)
    day0 = (ls // 86400) * 86400
    night_s = np.zeros(p.size, dtype=np.int64)
    for k in (-1, 0, 1):
        w0 = day0 + k * 86400 + 23 * 3600
        night_s += np.clip(np.minimum(le, w0 + 7 * 3600) - np.maximum(ls, w0), 0, None)
    return {
        "participant": p, "day": d, "start_s": start, "end_s": end,
        "shift_type": roster.shift_type()[p, d], "overtime": roster.overtime[p, d],
        "length_h": (end - start) / 3600.0, "rest_gap_h": gap, "quick_return": gap < 11.0,
        "long_shift": (end - start) > 12 * 3600, "night": night_s >= 3 * 3600,
        "early_start": (ls - day0) < 7 * 3600,
    }
