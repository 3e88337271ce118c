"""Sleep kernels: episode metrics from 30-s epochs, sleep-day assignment and per participant-day totals.

Episodes are columnar arrays (one element per episode, any participant order): ``participant`` (int),
``start``/``end`` (int64 UTC epoch s, half-open ``[start, end)``). Staging, where present, is one concatenated
``int8`` array ``stages`` with ``offsets`` (length ``n + 1``, ``offsets[0] == 0``, ``offsets[-1] == stages.size``):
episode ``i`` owns ``stages[offsets[i]:offsets[i+1]]``, epoch ``k`` covering ``[start + 30k, start + 30(k+1))``.
Stage codes: ``> 0`` asleep (any stage: light/deep/REM), ``0`` awake, ``< 0`` unknown (counted as not asleep).
An episode with no epochs (``offsets[i] == offsets[i+1]``) is "unstaged" and uses the device summary path.

All episode work is done on a run-length encoding of the sleep epochs (:func:`sleep_runs`), so the cost after one
streaming pass over ``stages`` is proportional to the number of sleep runs, not epochs.

References
----------
science.md §1.1 (continuity definitions: BJSM sleep-definitions table; Ohayon et al. 2017 Sleep Health 3:6),
§1.2 (end-date sleep day: Fitbit ``dateOfSleep``; main sleep = longest, Google Health ``main_sleep``),
§6.3 (valid sleep day, revised 2026-12: >= 1 detected episode and GGIR ``includedaycrit`` 16 h wear where
wear is known).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from features.regularity import sleep_regularity_index, sri_14d
from features.timeutil import LONDON, local_day, local_hour

__all__ = [
    "DailySleep",
    "EpisodeDays",
    "EpisodeMetrics",
    "SleepRuns",
    "assign_sleep_days",
    "daily_sleep",
    "episode_metrics",
    "sleep_intervals",
    "sleep_regularity_index",
    "sleep_runs",
    "sri_14d",
    "with_unknown_days",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]
EPOCH_S = 30
_BLOCK = 1 << 22  # epochs per streaming block (memory/cache bound, not a loop over episodes)


@dataclass(frozen=True)
class SleepRuns:
    """Maximal runs of sleep epochs, cut at episode boundaries, sorted by position.

    Attributes
    ----------
    episode : int64 (r,)  episode index of each run.
    first, stop : int64 (r,)  global epoch indices into ``stages``; the run is ``[first, stop)``.
    """

    episode: I64
    first: I64
    stop: I64


@dataclass(frozen=True)
class EpisodeMetrics:
    """Per-episode metrics (science §1.1). Durations in min; instants UTC epoch s (float, NaN = none).

    ``tib_min`` = end - start; ``tst_min`` = 0.5 * sleep epochs (or device TST); ``se_pct`` = 100 TST/TIB;
    ``sol_min`` = k_on * 0.5 (only with a true in-bed start); ``spt_min`` = (k_off - k_on) * 0.5;
    ``waso_min`` = SPT - TST; ``awakenings`` = wake runs strictly between onset and final awakening;
    ``lps_min`` = latency to the first run of >= 20 sleep epochs; ``midpoint_ts`` = t_bed + 30 (k_on + k_off)/2.
    """

    tib_min: F64
    tst_min: F64
    se_pct: F64
    sol_min: F64
    spt_min: F64
    waso_min: F64
    awakenings: F64
    lps_min: F64
    onset_ts: F64
    final_wake_ts: F64
    midpoint_ts: F64
    staged: B


def _as_offsets(offsets: npt.ArrayLike | None, n: int, m: int) -> I64:
    if offsets is None:
        return np.zeros(n + 1, dtype=np.int64)
    off = np.asarray(offsets, dtype=np.int64)
    if off.shape != (n + 1,) or off[0] != 0 or off[-1] != m or np.any(np.diff(off) < 0):
        raise ValueError("offsets must have length n+1, start at 0, end at stages.size and be non-decreasing")
    return off


def sleep_runs(stages: npt.ArrayLike, offsets: npt.ArrayLike) -> SleepRuns:
    """Run-length encode the asleep epochs (stage > 0) of all episodes at once.

    Change points come from ``np.diff`` of the 0/1 asleep series (+1 = run start, -1 = run stop); episode
    boundaries with asleep epochs on both sides are then inserted as a stop and a start (``np.insert`` at
    ``np.searchsorted`` positions, no sort). ``stages`` is streamed in fixed blocks of 2**22 epochs so
    temporary memory stays bounded for cohort-sized inputs; every block covers thousands of episodes.
    """
    st = np.asarray(stages)
    m = st.size
    off = _as_offsets(offsets, np.asarray(offsets).size - 1, m)
    rises: list[I64] = [np.zeros(int(m > 0 and st[0] > 0), np.int64)]
    falls: list[I64] = []
    x_buf = np.empty(min(m, _BLOCK + 1), dtype=np.bool_)  # reused buffers: no page faults per block
    d_buf = np.empty(max(x_buf.size - 1, 0), dtype=np.int8)
    c_buf = np.empty(d_buf.size, dtype=np.bool_)
    for a in range(0, m, _BLOCK):
        lo = max(a - 1, 0)
        hi = min(m, a + _BLOCK)
        x = np.greater(st[lo:hi], 0, out=x_buf[: hi - lo]).view(np.int8)
        d = np.subtract(x[1:], x[:-1], out=d_buf[: hi - lo - 1])
        ch = np.flatnonzero(np.not_equal(d, 0, out=c_buf[: d.size]))
        pos = ch.astype(np.int64) + (lo + 1)
        up = d[ch] > 0
        rises.append(pos[up])
        falls.append(pos[~up])
    falls.append(np.full(int(m > 0 and st[m - 1] > 0), m, np.int64))
    first = np.concatenate(rises)
    stop = np.concatenate(falls)
    inner = off[1:-1][np.diff(off[:-1]) > 0] if off.size > 2 else off[:0]  # distinct inner boundaries
    inner = inner[(inner > 0) & (inner < m)]
    extra = inner[(st[inner] > 0) & (st[inner - 1] > 0)]
    if extra.size:
        first = np.insert(first, np.searchsorted(first, extra), extra)
        stop = np.insert(stop, np.searchsorted(stop, extra), extra)
    episode = np.searchsorted(off, first, side="right").astype(np.int64) - 1
    return SleepRuns(episode=episode, first=first, stop=stop)


def _first_last(runs: SleepRuns, n: int) -> tuple[I64, I64, B]:
    """Index of the first and last run of every episode and whether it has any run."""
    idx = np.arange(n)
    lo = np.searchsorted(runs.episode, idx, side="left")
    hi = np.searchsorted(runs.episode, idx, side="right") - 1
    has = hi >= lo
    return np.where(has, lo, 0), np.where(has, hi, 0), has


def episode_metrics(
    start: npt.ArrayLike,
    end: npt.ArrayLike,
    stages: npt.ArrayLike | None = None,
    offsets: npt.ArrayLike | None = None,
    *,
    in_bed: npt.ArrayLike | bool = True,
    device_tst_min: npt.ArrayLike | None = None,
    runs: SleepRuns | None = None,
    min_awakening_min: float = 0.0,
    persistent_epochs: int = 20,
) -> EpisodeMetrics:
    """Sleep-continuity metrics for many episodes at once (science §1.1, TV-S1).

    Parameters
    ----------
    start, end : int64 (n,)  UTC epoch s of in-bed start and end; TIB = (end - start)/60 min.
    stages, offsets : int8 (m,), int64 (n+1,)  concatenated 30-s epochs (see module docstring) or ``None``.
    in_bed : bool or bool (n,)  True where ``start`` is a real bedtime/lights-out; else SOL (and LPS) are NaN
        because the device started the episode at sleep onset (science §1.1: store NaN, never 0).
    device_tst_min : float (n,), optional  device TST used for unstaged episodes (else NaN there).
    runs : precomputed :func:`sleep_runs` output (saves one pass over ``stages``).
    min_awakening_min : only wake runs longer than this count as awakenings (0 = all; NSF uses 5 min).
    persistent_epochs : run length defining persistent sleep onset (20 epochs = 10 min, Dreem).

    Returns
    -------
    EpisodeMetrics
        Unstaged episodes: TIB = end - start, TST = device TST, SOL/SPT/WASO/awakenings/LPS NaN, midpoint =
        start + (end - start)/2. Staged episodes without any sleep epoch: TST 0, the rest NaN.
    """
    s = np.asarray(start, dtype=np.int64)
    e = np.asarray(end, dtype=np.int64)
    n = s.size
    st = np.zeros(0, np.int8) if stages is None else np.asarray(stages)
    off = _as_offsets(offsets, n, st.size)
    if runs is None:
        runs = sleep_runs(st, off)
    dt_min = EPOCH_S / 60.0
    staged = np.diff(off) > 0
    length = runs.stop - runs.first
    tst_ep = np.bincount(runs.episode, weights=length, minlength=n)[:n]
    lo, hi, has = _first_last(runs, n)
    if runs.first.size:
        k_on, k_off = runs.first[lo] - off[:-1], runs.stop[hi] - off[:-1]
    else:
        k_on = k_off = np.zeros(n, np.int64)
    gap_min = (runs.first[1:] - runs.stop[:-1]) * dt_min
    inner = (runs.episode[1:] == runs.episode[:-1]) & (gap_min > min_awakening_min)
    awak = np.bincount(runs.episode[:-1][inner], minlength=n)[:n].astype(np.float64)
    lng = length >= persistent_epochs
    long_runs = SleepRuns(runs.episode[lng], runs.first[lng], runs.stop[lng])
    lo_l, _, has_l = _first_last(long_runs, n)
    k_lps = long_runs.first[lo_l] - off[:-1] if long_runs.first.size else np.zeros(n, np.int64)

    bed = np.broadcast_to(np.asarray(in_bed, dtype=np.bool_), (n,))
    ok = staged & has
    tib = (e - s) / 60.0
    dev = np.full(n, np.nan) if device_tst_min is None else np.asarray(device_tst_min, dtype=np.float64)
    tst = np.where(staged, tst_ep * dt_min, dev)
    spt = np.where(ok, (k_off - k_on) * dt_min, np.nan)
    mid_unstaged = s + (e - s) / 2.0
    midpoint = np.where(ok, s + EPOCH_S * (k_on + k_off) / 2.0, np.where(staged, np.nan, mid_unstaged))
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.where(tib > 0, 100.0 * tst / tib, np.nan)
    return EpisodeMetrics(
        tib_min=tib,
        tst_min=tst,
        se_pct=se,
        sol_min=np.where(ok & bed, k_on * dt_min, np.nan),
        spt_min=spt,
        waso_min=spt - tst,
        awakenings=np.where(ok, awak, np.nan),
        lps_min=np.where(ok & bed & has_l, k_lps * dt_min, np.nan),
        onset_ts=np.where(ok, s + EPOCH_S * k_on, np.nan),
        final_wake_ts=np.where(ok, s + EPOCH_S * k_off, np.nan),
        midpoint_ts=midpoint,
        staged=staged,
    )


def sleep_intervals(
    start: npt.ArrayLike,
    end: npt.ArrayLike,
    offsets: npt.ArrayLike | None,
    runs: SleepRuns,
) -> tuple[I64, I64, I64]:
    """Asleep intervals ``(episode, t0, t1)`` in UTC epoch s: every sleep run of staged episodes and, for
    unstaged episodes, the whole ``[start, end)`` (approximation: the device gave no wake information)."""
    s = np.asarray(start, dtype=np.int64)
    e = np.asarray(end, dtype=np.int64)
    off = np.zeros(s.size + 1, np.int64) if offsets is None else np.asarray(offsets, dtype=np.int64)
    base = s[runs.episode] - EPOCH_S * off[runs.episode]
    un = np.flatnonzero(np.diff(off) == 0)
    ep = np.concatenate((runs.episode, un)).astype(np.int64)
    t0 = np.concatenate((base + EPOCH_S * runs.first, s[un]))
    t1 = np.concatenate((base + EPOCH_S * runs.stop, e[un]))
    return ep, t0, t1


@dataclass(frozen=True)
class EpisodeDays:
    """Per-episode sleep day (science §1.2). ``day`` = local end date - participant's day 0 (-1 = outside the
    programme window); ``is_main`` marks the main sleep of its day."""

    day: I64
    is_main: B


def _day0_per_episode(participant: I64, day0: npt.ArrayLike) -> I64:
    d0 = np.asarray(day0, dtype=np.int64)
    return d0[participant] if d0.ndim == 1 else np.broadcast_to(d0, participant.shape)


def assign_sleep_days(
    participant: npt.ArrayLike,
    end: npt.ArrayLike,
    tst_min: npt.ArrayLike,
    *,
    day0: npt.ArrayLike,
    n_days: int,
    main_min_h: float = 3.0,
    tz: str = LONDON,
) -> EpisodeDays:
    """Sleep day = local (``tz``) date of the episode end; main sleep = largest TST of the day (ties: earlier
    end), only if TST >= ``main_min_h`` [ENG 3 h]; all other episodes are naps (science §1.2, TV-S2).

    ``day0`` is the programme day 0 as days since 1970-01-01 (scalar or one per participant). Days outside
    ``[0, n_days)`` get -1. Episodes with NaN TST can never be main sleep.
    """
    p = np.asarray(participant, dtype=np.int64)
    e = np.asarray(end, dtype=np.int64)
    tst = np.asarray(tst_min, dtype=np.float64)
    # end is exclusive: an episode ending exactly at 00:00 belongs to the previous date
    day = local_day(e - 1, tz) - _day0_per_episode(p, day0)
    inside = (day >= 0) & (day < n_days)
    day = np.where(inside, day, -1)
    cell = np.where(inside, p * n_days + day, -1)
    order = np.lexsort((e, -np.nan_to_num(tst, nan=-np.inf), cell))
    c_sorted = cell[order]
    head = np.ones(order.size, dtype=np.bool_)
    head[1:] = c_sorted[1:] != c_sorted[:-1]
    is_main = np.zeros(p.size, dtype=np.bool_)
    is_main[order[head]] = True
    is_main &= inside & (tst >= 60.0 * main_min_h)
    return EpisodeDays(day=day, is_main=is_main)


@dataclass(frozen=True)
class DailySleep:
    """Participant x day arrays named like ``derived.daily_features`` (shape ``(P, n_days)``).

    Totals (``tib_min``, ``tst_min`` = main + naps, ``main_tst_min``, ``nap_min``) are NaN on a day without any
    detected episode, worn or not: a dropped or unsynced episode is far likelier than a day without sleep, so
    missing data never reads as 0 h (science §6.3, revised 2026-12). ``main_tst_min`` is 0 when episodes exist
    but none qualifies as main sleep (a real outcome, science §1.2). ``se_pct``, ``sol_min``, ``waso_min``,
    ``awakenings`` and ``midpoint_local_h`` describe the main sleep (NaN without one): S3 flags the SE of main
    sleeps and recovery attaches to the main sleep. ``valid_sleep_day``: >= 1 detected episode and, where a wear signal
    exists, wear >= 16 h (science §1.2, §6.3 revised 2026-12).
    """

    tib_min: F64
    tst_min: F64
    main_tst_min: F64
    nap_min: F64
    se_pct: F64
    sol_min: F64
    waso_min: F64
    awakenings: F64
    midpoint_local_h: F64
    n_episodes: I64
    valid_sleep_day: B


def daily_sleep(
    participant: npt.ArrayLike,
    end: npt.ArrayLike,
    metrics: EpisodeMetrics,
    *,
    n_participants: int,
    day0: npt.ArrayLike,
    n_days: int,
    wear_h: npt.ArrayLike | None = None,
    days: EpisodeDays | None = None,
    main_min_h: float = 3.0,
    min_wear_h: float = 16.0,
    tz: str = LONDON,
) -> DailySleep:
    """Aggregate episode metrics into participant x sleep-day arrays with ``np.bincount`` (science §1.2).

    ``TST_day = sum of TST over the day's episodes`` (NaN if any episode's TST is unknown). ``wear_h`` is a
    ``(P, n_days)`` array of device wear hours, NaN where the device exports no wear signal.
    """
    p = np.asarray(participant, dtype=np.int64)
    shape = (n_participants, n_days)
    size = n_participants * n_days
    if days is None:
        days = assign_sleep_days(p, end, metrics.tst_min, day0=day0, n_days=n_days, main_min_h=main_min_h, tz=tz)
    ins = days.day >= 0
    cell = (p * n_days + days.day)[ins]

    def total(x: F64) -> F64:
        return np.asarray(np.bincount(cell, weights=x[ins], minlength=size), np.float64).reshape(shape)

    def of_main(x: npt.ArrayLike) -> F64:
        out = np.full(size, np.nan)
        sel = days.is_main
        out[(p * n_days + days.day)[sel]] = np.asarray(x, dtype=np.float64)[sel]
        return out.reshape(shape)

    n_ep = np.bincount(cell, minlength=size).reshape(shape).astype(np.int64)
    known = n_ep > 0  # a day without a detected episode is unknown, never 0 h (science 6.3, revised 2026-12)
    if wear_h is None:
        valid = known
    else:
        w = np.asarray(wear_h, dtype=np.float64)
        valid = known & np.where(np.isfinite(w), w >= min_wear_h, True)
    tst = np.where(known, total(metrics.tst_min), np.nan)
    main = np.where(known, np.nan_to_num(of_main(metrics.tst_min), nan=0.0), np.nan)
    mid = of_main(metrics.midpoint_ts)
    mid_h = np.full(shape, np.nan)
    fin = np.isfinite(mid)
    mid_h[fin] = local_hour(np.floor(mid[fin]).astype(np.int64), tz) + np.mod(mid[fin], 1.0) / 3600.0
    return DailySleep(
        tib_min=np.where(known, total(metrics.tib_min), np.nan),
        tst_min=tst,
        main_tst_min=main,
        nap_min=tst - main,
        se_pct=of_main(metrics.se_pct),
        sol_min=of_main(metrics.sol_min),
        waso_min=of_main(metrics.waso_min),
        awakenings=of_main(metrics.awakenings),
        midpoint_local_h=mid_h,
        n_episodes=n_ep,
        valid_sleep_day=valid,
    )


def with_unknown_days(daily: DailySleep, worn: B) -> DailySleep:
    """Invalidate days without a detected main sleep whose sleep opportunity was not continuously worn.

    Such a day has seen at most a nap: its total is unknown, not short (science 6.3, revised 2026-12). Totals
    become NaN and ``valid_sleep_day`` False; days with a detected main sleep are unchanged.
    """
    unknown = ~(daily.main_tst_min > 0) & ~np.asarray(worn, dtype=np.bool_)
    nan = np.where(unknown, np.nan, 1.0)
    return DailySleep(
        tib_min=daily.tib_min * nan, tst_min=daily.tst_min * nan, main_tst_min=daily.main_tst_min * nan,
        nap_min=daily.nap_min * nan, se_pct=daily.se_pct, sol_min=daily.sol_min, waso_min=daily.waso_min,
        awakenings=daily.awakenings, midpoint_local_h=daily.midpoint_local_h, n_episodes=daily.n_episodes,
        valid_sleep_day=daily.valid_sleep_day & ~unknown)
