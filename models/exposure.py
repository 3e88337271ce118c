"""Duty exposure to predicted sleepiness from the three-process model (science.md §4.1 "Service usage", §5, §6.3).

For each rostered duty ``[start, end)`` the TPM (FIPS parameters, 5-min grid, Europe/London clock) gives:

* ``minutes_kss_ge7`` / ``minutes_kss_ge8`` = 5 min × number of grid epochs with start in the duty and
  predicted KSS >= 7 / >= 8 (KSS >= 7 ⇔ S + C + U + W <= 6.0);
* ``peak_kss`` = max predicted KSS over those epochs;
* ``minutes_to_kss7`` = (start of the first such epoch with KSS >= 7) - duty start, in minutes; NaN if never.

Counts, first crossings and peaks use cumulative sums / ``reduceat`` over the flattened (participant × grid)
arrays, never a loop over duties or epochs.

Gap rule [ENG] (science.md §4.1): a gap between measured sleep episodes longer than 24 h (also before the first
and after the last episode of a participant within the simulated span) is filled with roster-predicted sleep,
one candidate per local night (see `SleepRule`). A duty is ``estimated`` when ``[start - 72 h, end)`` overlaps
a filled gap (science.md §6.3: device sleep for >= 72 h before each duty).

Warm-up [ENG]: S starts at ``S0 = 7.96`` (FIPS), which biases the first days; duties that start less than
``warmup_days`` (>= 4, science.md §4.1) after the simulation start get NaN exposure and ``warmup = True``.

References
----------
Åkerstedt T et al. (2014) J Sleep Res 23:240 (KSS >= 7); Ingre M et al. (2014) PLoS ONE 9:e108679; FIPS v0.2.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from models.three_process import DEFAULT_PARAMS, EPOCH_S, TPMParams, simulate, utc_offsets

MODEL_VERSION = "tpm-fips-0.2.1+exposure-1"
H = 3600
DAY = 86400

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class SleepRule:
    """Roster-predicted sleep for one local night (local clock hours) [ENG].

    1. Nominal night sleep ``night_start_h`` (23:00) -> ``night_end_h`` (07:00 next day).
    2. Early start: if a duty starts between ``early_from_h`` (04:00) and ``night_end_h + margin_h`` (08:00),
       sleep ``early_sleep_h`` (7.5 h) ending ``margin_h`` (1 h) before that duty.
    3. If that sleep overlaps a duty (a night shift), sleep ``day_start_h`` (08:00) -> ``day_end_h`` (14:00)
       the next day instead (science.md §4.1); if that overlaps a duty too, no predicted sleep.
    """

    night_start_h: float = 23.0
    night_end_h: float = 7.0
    early_from_h: float = 4.0
    early_sleep_h: float = 7.5
    margin_h: float = 1.0
    day_start_h: float = 8.0
    day_end_h: float = 14.0
    gap_h: float = 24.0
    lookback_h: float = 72.0


DEFAULT_RULE = SleepRule()


@dataclass(frozen=True)
class DutyExposure:
    """One row per duty, in input order; names follow ``derived.duty_exposure``.

    ``participant_id`` is the participant index given to `duty_exposure` (the job maps it to the UUID);
    ``start_ts``/``end_ts`` are UTC epoch seconds; minutes and KSS are NaN for warm-up duties.
    """

    participant_id: IntArray
    start_ts: IntArray
    end_ts: IntArray
    minutes_kss_ge7: FloatArray
    minutes_kss_ge8: FloatArray
    peak_kss: FloatArray
    minutes_to_kss7: FloatArray
    estimated: BoolArray
    warmup: BoolArray
    model_version: str


@dataclass(frozen=True)
class FilledSleep:
    """Measured plus predicted sleep episodes (sorted by participant, start) and the filled gaps."""

    participant: IntArray
    start: IntArray
    end: IntArray
    predicted: BoolArray
    gap_participant: IntArray
    gap_start: IntArray
    gap_end: IntArray


def local_to_utc(local: ArrayLike, tz: str = "Europe/London") -> IntArray:
    """UTC epoch seconds of local wall-clock instants (seconds since 1970-01-01 00:00 local).

    Like ``datetime(..., fold=0)``: an ambiguous wall time (the repeated autumn hour) maps to its first
    occurrence; a non-existent one (the skipped spring hour) is read with the offset in force the day before.
    Offsets come from `models.three_process.utc_offsets` (zone transitions found once, then searchsorted).
    """
    x = np.asarray(local, dtype=np.int64)
    if x.size == 0:
        return np.zeros(x.shape, dtype=np.int64)
    near = utc_offsets(np.concatenate([x - 15 * H, x + 15 * H]), tz)  # every offset a wall time can map to
    best = np.full(x.shape, np.iinfo(np.int64).max, dtype=np.int64)
    for offset in np.unique(near):  # a handful of distinct offsets (two for Europe/London)
        utc = x - offset
        best = np.where((utc_offsets(utc, tz) == offset) & (utc < best), utc, best)
    skipped = best == np.iinfo(np.int64).max
    return np.asarray(np.where(skipped, x - utc_offsets(x - DAY, tz), best), dtype=np.int64)


class _Intervals:
    """Half-open intervals per participant, searchable by (participant, time) with one key array."""

    def __init__(self, participant: IntArray, start: IntArray, end: IntArray, origin: int, stride: int) -> None:
        order = np.lexsort((start, participant))
        self.p, self.s, self.e = participant[order], start[order], end[order]
        self.origin, self.stride = origin, stride
        self.start_key = self.key(self.p, self.s)
        self.reach = np.maximum.accumulate(self.key(self.p, self.e)) if self.p.size else self.start_key

    def key(self, p: IntArray, t: IntArray) -> IntArray:
        return np.asarray(p * self.stride + (t - self.origin), dtype=np.int64)

    def overlaps(self, p: IntArray, a: IntArray, b: IntArray) -> BoolArray:
        """True where ``[a, b)`` overlaps an interval of participant ``p``."""
        j = np.searchsorted(self.start_key, self.key(p, b), side="left") - 1
        jc = np.clip(j, 0, None)
        if self.p.size == 0:
            return np.zeros(p.shape, dtype=bool)
        return np.asarray((j >= 0) & (self.p[jc] == p) & (self.reach[jc] > self.key(p, a)))

    def next_start(self, p: IntArray, t: IntArray) -> IntArray:
        """Start of the first interval of ``p`` starting at or after ``t`` (int64 max if none)."""
        if self.p.size == 0:
            return np.full(p.shape, np.iinfo(np.int64).max, dtype=np.int64)
        j = np.searchsorted(self.start_key, self.key(p, t), side="left")
        jc = np.clip(j, 0, self.p.size - 1)
        ok = (j < self.p.size) & (self.p[jc] == p)
        return np.asarray(np.where(ok, self.s[jc], np.iinfo(np.int64).max), dtype=np.int64)


def _gaps(sleep: _Intervals, n_participants: int, start: int, end: int, min_gap_s: float
          ) -> tuple[IntArray, IntArray, IntArray]:
    """Gaps between measured sleep (incl. leading/trailing within [start, end)) longer than ``min_gap_s``."""
    p, s = sleep.p, sleep.s
    prev_end = sleep.reach - p * sleep.stride + sleep.origin  # running max of ends within the participant
    first = np.ones(p.size, dtype=bool)
    first[1:] = p[1:] != p[:-1]
    last = np.ones(p.size, dtype=bool)
    last[:-1] = p[1:] != p[:-1]
    gap_start = np.where(first, start, np.concatenate([[start], prev_end[:-1]]))
    empty = np.setdiff1d(np.arange(n_participants), p)
    gp = np.concatenate([p, p[last], empty])
    ga = np.concatenate([gap_start, prev_end[last], np.full(empty.size, start)])
    gb = np.concatenate([s, np.full(int(last.sum()), end), np.full(empty.size, end)])
    ga, gb = np.clip(ga, start, end), np.clip(gb, start, end)
    keep = (gb - ga) > min_gap_s
    return gp[keep], ga[keep], gb[keep]


def _candidates(duties: _Intervals, n_participants: int, start: int, end: int, tz: str, rule: SleepRule
                ) -> tuple[IntArray, IntArray, IntArray]:
    """One roster-predicted sleep per participant and local night over the span (`SleepRule`)."""
    first_day = (start + int(utc_offsets(np.asarray([start]), tz)[0])) // DAY - 1
    last_day = (end + int(utc_offsets(np.asarray([end]), tz)[0])) // DAY + 1
    midnight = np.arange(first_day, last_day + 1, dtype=np.int64) * DAY

    def at(hours: float, day_shift: int = 0) -> IntArray:
        local = np.tile(midnight + day_shift * DAY + round(hours * H), n_participants)
        return local_to_utc(local, tz)

    p = np.repeat(np.arange(n_participants, dtype=np.int64), midnight.size)
    night_a, night_b = at(rule.night_start_h), at(rule.night_end_h, 1)
    duty_next = duties.next_start(p, night_a)
    early = (duty_next >= at(rule.early_from_h, 1)) & (duty_next < night_b + int(rule.margin_h * H))
    b = np.where(early, duty_next - int(rule.margin_h * H), night_b)
    a = np.where(early, b - int(rule.early_sleep_h * H), night_a)
    working = duties.overlaps(p, a, b)
    a = np.where(working, at(rule.day_start_h, 1), a)
    b = np.where(working, at(rule.day_end_h, 1), b)
    keep = ~(working & duties.overlaps(p, a, b))
    return p[keep], a[keep], b[keep]


def fill_sleep_gaps(sleep_participant: ArrayLike, sleep_start: ArrayLike, sleep_end: ArrayLike,
                    duty_participant: ArrayLike, duty_start: ArrayLike, duty_end: ArrayLike, *,
                    n_participants: int, start: int, end: int, tz: str = "Europe/London",
                    rule: SleepRule = DEFAULT_RULE) -> FilledSleep:
    """Add roster-predicted sleep inside measured-sleep gaps longer than ``rule.gap_h`` (UTC epoch seconds).

    A predicted episode is kept only if it lies entirely inside a filled gap and overlaps no duty.
    """
    stride = (end - start) + 30 * DAY
    sp, ss, se = (np.asarray(x, dtype=np.int64).ravel() for x in (sleep_participant, sleep_start, sleep_end))
    dp, ds, de = (np.asarray(x, dtype=np.int64).ravel() for x in (duty_participant, duty_start, duty_end))
    sleep = _Intervals(sp, ss, se, start - 15 * DAY, stride)
    duties = _Intervals(dp, ds, de, start - 15 * DAY, stride)
    gp, ga, gb = _gaps(sleep, n_participants, start, end, rule.gap_h * H)
    gaps = _Intervals(gp, ga, gb, start - 15 * DAY, stride)
    cp, ca, cb = _candidates(duties, n_participants, start, end, tz, rule)
    j = np.searchsorted(gaps.start_key, gaps.key(cp, ca), side="right") - 1
    jc = np.clip(j, 0, max(gaps.p.size - 1, 0))
    inside = (j >= 0) & (gaps.p[jc] == cp) & (gaps.e[jc] >= cb) if gaps.p.size else np.zeros(cp.size, bool)
    p = np.concatenate([sleep.p, cp[inside]])
    a, b = np.concatenate([sleep.s, ca[inside]]), np.concatenate([sleep.e, cb[inside]])
    predicted = np.concatenate([np.zeros(sleep.p.size, bool), np.ones(int(inside.sum()), bool)])
    order = np.lexsort((a, p))
    return FilledSleep(p[order], a[order], b[order], predicted[order], gaps.p, gaps.s, gaps.e)


def _batches(n_participants: int, batch_size: int) -> Iterator[tuple[int, int]]:
    for lo in range(0, n_participants, batch_size):
        yield lo, min(n_participants, lo + batch_size)


def _window_stats(kss: FloatArray, a: IntArray, b: IntArray) -> tuple[FloatArray, FloatArray, FloatArray,
                                                                         FloatArray]:
    """Counts >= 7, >= 8, first index >= 7 (relative, NaN if none) and max over flat windows ``[a, b)``."""
    flat = kss.ravel()
    counts7 = np.concatenate([[0], np.cumsum(flat >= 7.0, dtype=np.int64)])
    counts8 = np.concatenate([[0], np.cumsum(flat >= 8.0, dtype=np.int64)])
    n7 = (counts7[b] - counts7[a]).astype(np.float64)
    first = np.searchsorted(counts7, counts7[a] + 1, side="left") - 1 - a
    nonempty = b > a
    peak = np.full(a.shape, np.nan)
    if nonempty.any():
        pairs = np.stack([a[nonempty], np.minimum(b[nonempty], flat.size - 1)], axis=1).ravel()
        peak_ne = np.maximum.reduceat(flat, pairs)[::2]
        tail = b[nonempty] == flat.size  # reduceat cannot include the last element as an end bound
        peak_ne = np.where(tail, np.maximum(peak_ne, flat[-1]), peak_ne)
        peak[nonempty] = peak_ne
    to7 = np.where(n7 > 0, first.astype(np.float64), np.nan)
    return n7, (counts8[b] - counts8[a]).astype(np.float64), to7, peak


def kss_exposure(kss: FloatArray, grid_start: int, row: ArrayLike, duty_start: ArrayLike, duty_end: ArrayLike
                 ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Exposure of duties to a (participant × grid) KSS array on the 5-min grid starting at ``grid_start``.

    Epoch ``k`` (start ``t_k = grid_start + 300·k``) belongs to duty ``[s, e)`` iff ``s <= t_k < e``; the part
    of a duty outside the grid is ignored.

    Returns
    -------
    minutes_kss_ge7, minutes_kss_ge8, peak_kss, minutes_to_kss7 : ndarray of float64
        ``5·#{KSS >= 7}``, ``5·#{KSS >= 8}`` (min), ``max KSS`` (NaN for an empty window) and
        ``t_first(KSS >= 7) - s`` (min, NaN if never).
    """
    n_grid = kss.shape[1]
    ds, de = np.asarray(duty_start, dtype=np.int64), np.asarray(duty_end, dtype=np.int64)
    first_epoch = np.clip(-(-(ds - grid_start) // EPOCH_S), 0, n_grid)
    end_epoch = np.maximum(np.clip(-(-(de - grid_start) // EPOCH_S), 0, n_grid), first_epoch)
    base = np.asarray(row, dtype=np.int64) * n_grid
    c7, c8, f7, peak = _window_stats(kss, base + first_epoch, base + end_epoch)
    to7 = (grid_start + (first_epoch + f7) * EPOCH_S - ds) / 60.0
    return c7 * 5.0, c8 * 5.0, peak, to7


def duty_exposure(duty_participant: ArrayLike, duty_start: ArrayLike, duty_end: ArrayLike,
                  sleep_participant: ArrayLike, sleep_start: ArrayLike, sleep_end: ArrayLike, *,
                  n_participants: int, start: int | None = None, end: int | None = None,
                  warmup_days: float = 4.0, params: TPMParams = DEFAULT_PARAMS, tz: str = "Europe/London",
                  rule: SleepRule = DEFAULT_RULE, batch_size: int = 250) -> DutyExposure:
    """Minutes at predicted KSS >= 7 / >= 8, peak KSS and minutes to KSS >= 7 for every duty.

    Parameters
    ----------
    duty_participant, duty_start, duty_end : array_like of int
        Duties (participant index, UTC epoch seconds, half-open).
    sleep_participant, sleep_start, sleep_end : array_like of int
        Measured sleep episodes (participant index, UTC epoch seconds, half-open).
    n_participants : int
        Number of participants (indices 0 .. n-1).
    start, end : int, optional
        Simulated span (UTC epoch s).  Default: from ``warmup_days`` before the first duty (floored to 5 min)
        to the end of the last duty.
    warmup_days : float
        Duties starting before ``start + warmup_days`` are reported as NaN with ``warmup = True``; >= 4.
    params, tz, rule : TPMParams, str, SleepRule
        Model parameters, clock zone for C/U and local rules, gap-filling rule.
    batch_size : int
        Participants simulated at once (memory ~ 60 bytes × batch_size × epochs); results do not depend on it.

    Returns
    -------
    DutyExposure
        One row per duty, input order.
    """
    if warmup_days < 4.0:
        raise ValueError("warmup_days must be >= 4 (science.md §4.1: S converges within ~4 days)")
    dp, ds, de = (np.asarray(x, dtype=np.int64).ravel() for x in (duty_participant, duty_start, duty_end))
    if start is None:
        start = (int(ds.min()) - int(warmup_days * DAY)) // EPOCH_S * EPOCH_S if ds.size else 0
    if end is None:
        end = int(de.max()) if ds.size else start
    filled = fill_sleep_gaps(sleep_participant, sleep_start, sleep_end, dp, ds, de, n_participants=n_participants,
                             start=start, end=end, tz=tz, rule=rule)
    gaps = _Intervals(filled.gap_participant, filled.gap_start, filled.gap_end, start - 15 * DAY,
                      end - start + 30 * DAY)
    estimated = gaps.overlaps(dp, ds - int(rule.lookback_h * H), de)
    warmup = ds < start + warmup_days * DAY
    n7, n8, to7, peak = (np.full(dp.size, np.nan) for _ in range(4))
    for lo, hi in _batches(n_participants, batch_size):
        in_sleep = slice(*np.searchsorted(filled.participant, [lo, hi]))
        rows = np.flatnonzero((dp >= lo) & (dp < hi) & ~warmup)
        if rows.size == 0:
            continue
        res = simulate(filled.participant[in_sleep] - lo, filled.start[in_sleep], filled.end[in_sleep],
                       n_participants=hi - lo, start=start, end=end, params=params, tz=tz)
        n7[rows], n8[rows], peak[rows], to7[rows] = kss_exposure(res.kss, start, dp[rows] - lo, ds[rows], de[rows])
    return DutyExposure(dp, ds, de, n7, n8, peak, to7, estimated, warmup, MODEL_VERSION)
