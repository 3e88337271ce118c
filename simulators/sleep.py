"""Sleep driven by the roster: episode timing on the (participant, day) grid and 30-s epoch stages.

Main sleep of local day ``d`` ends on ``d`` (science.md 1.2, end-date rule). Three cases, figures from
science.md section 7:

- after a night duty ending on ``d``: day sleep ~ N(5.5, 1.2^2) h, starting 0.5-1 h after the duty;
- before a morning duty on ``d``: wake 1-1.5 h before the start, TST ~ N(6.2, 1.0^2) h, minus 1 h before a
  quick return (Oster et al. 2024), and never starting within 1 h of the previous duty's end;
- otherwise (rest day, late or night start): free sleep around the chronotype midpoint (03:30 local + shift),
  TST + 1.0 h, plus half the repayment ``D_ew(d-1) / 4`` of science.md 2.3, capped at 1.5 h [ENG].

Every main sleep also carries the officer's habitual effect (``Cohort.habitual_tst_h``: the at-risk subgroup
sleeps shorter and less efficiently, see :mod:`simulators.cohort`). A nap precedes a first night (p = 0.7) and
some rest days (p = 0.08). Stages follow ~95-min cycles with deep
sleep early and REM late; wake bouts are placed so that sleep efficiency ~ N(88, 5^2) %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from simulators.clock import Clock
from simulators.cohort import Cohort
from simulators.params import SimParams
from simulators.roster import SHIFTS, Roster

__all__ = ["DAY_KINDS", "Episodes", "ewma_debt", "make_sleep"]

#: Why the main sleep of a day is timed as it is: free (rest day, late or night start), before a morning
#: duty (``work``, the science.md "TST before a work day"), or day sleep after a night duty.
DAY_KINDS: tuple[str, ...] = ("free", "work", "after_night")

_NIGHT_CODES = np.array([i for i, s in enumerate(SHIFTS) if s[0] == "night"])
_P_NAP_FIRST_NIGHT = 0.85  # [ENG] most officers nap or sleep in before a first night shift
_P_NAP_REST = 0.08
_P_NAP_LATER_NIGHT = 0.6  # [ENG] prophylactic evening nap before a 2nd+ night shift
EPOCH_S = 30
_N_CYCLES = 8
_PHASE_BINS = 200


def _stage_table() -> npt.NDArray[np.int8]:
    """Stage by (cycle, phase bin): light, then deep (35 % of the first cycle, 10 % less each cycle), light,
    then REM (10 % of the first cycle, 7 % more each cycle, at most 40 %)."""
    c = np.arange(_N_CYCLES)[:, None]
    phase = (np.arange(_PHASE_BINS)[None, :] + 0.5) / _PHASE_BINS
    deep = np.clip(0.35 - 0.1 * c, 0.0, 0.35)
    rem = np.clip(0.10 + 0.07 * c, 0.10, 0.40)
    table = np.ones((_N_CYCLES, _PHASE_BINS), dtype=np.int8)
    table[(phase >= 0.1) & (phase < 0.1 + deep)] = 2
    table[phase >= 1.0 - rem] = 3
    return table


_STAGE_TABLE = _stage_table()
F = npt.NDArray[np.float64]
IntArr = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Episodes:
    """Flat sleep episodes sorted by participant and onset, with their concatenated 30-s stages.

    Attributes
    ----------
    participant, day : ndarray of int
        Owner and local sleep day (date of the episode end).
    onset_s, end_s : ndarray of int64
        In-bed interval, UTC epoch seconds; ``end - onset`` is a whole number of epochs.
    main : ndarray of bool
        Main sleep (``False`` = nap).
    offsets : ndarray of int64
        Start of each episode's stages in ``stages`` (length ``n + 1``).
    stages : ndarray of int8
        0 wake, 1 light, 2 deep, 3 REM per 30-s epoch.
    tst_min : ndarray of float
        Total sleep time (non-wake epochs x 0.5 min).
    day_kind : ndarray of int, shape (n, days)
        Index into :data:`DAY_KINDS` of each participant-day's main sleep.
    """

    participant: IntArr
    day: IntArr
    onset_s: IntArr
    end_s: IntArr
    main: npt.NDArray[np.bool_]
    offsets: IntArr
    stages: npt.NDArray[np.int8]
    tst_min: F
    day_kind: IntArr

    @property
    def n(self) -> int:
        """Number of episodes."""
        return int(self.participant.size)


def ewma_debt(deficit_h: F, half_life_d: float) -> F:
    """Exponentially weighted carry-over debt along the last axis (science.md 2.3, without the floor).

    ``D(d) = rho * D(d-1) + delta_d`` with ``rho = 2 ** (-1 / half_life)``; returns ``max(D, 0)``.
    """
    rho = 2.0 ** (-1.0 / half_life_d)
    return np.maximum(np.asarray(lfilter([1.0], [1.0, -rho], deficit_h, axis=-1), dtype=np.float64), 0.0)


def _shift_prev(a: npt.NDArray[np.generic], fill: object) -> npt.NDArray[np.generic]:
    out = np.empty_like(a)
    out[:, 0] = fill
    out[:, 1:] = a[:, :-1]
    return out


def _main_grid(params: SimParams, cohort: Cohort, roster: Roster, clock: Clock,
               rng: np.random.Generator) -> tuple[IntArr, IntArr, F, IntArr]:
    """Onset, end (UTC s), target efficiency and day kind (see DAY_KINDS) of every main sleep."""
    shape = roster.code.shape
    days = np.broadcast_to(np.arange(shape[1]), shape)
    night = np.isin(roster.code, _NIGHT_CODES)
    prev_night = _shift_prev(night, False).astype(bool)
    prev_end = _shift_prev(roster.end_s, 0).astype(np.int64)
    start_local_h = clock.local_hour(roster.start_s)
    morning = roster.on_duty & (start_local_h < 12.0) & ~prev_night
    gap_h = (roster.start_s - prev_end) / 3600.0
    quick = morning & (prev_end > 0) & (gap_h < 11.0)
    se_mean = params.se_mean_pct + cohort.se_shift_pct[:, None]
    se = np.clip(rng.normal(se_mean, params.se_sd_pct, shape), 60.0, 99.0) / 100.0
    z = rng.standard_normal(shape)
    tst_work = params.tst_work_h + params.tst_work_sd_h * z - params.quick_return_penalty_h * quick
    tst_night = params.tst_after_night_h + params.tst_after_night_sd_h * z
    tst_free = params.tst_work_h + params.free_day_extra_h + params.tst_work_sd_h * z
    target = np.where(prev_night, tst_night, np.where(morning, tst_work, tst_free)) + cohort.habitual_tst_h[:, None]
    debt = ewma_debt(cohort.sleep_need_h[:, None] - np.clip(target, 3.0, 11.0), params.debt_half_life_d)
    free = ~prev_night & ~morning
    target = target + free * np.clip(_shift_prev(debt, 0.0).astype(np.float64) / 8.0, 0.0, 1.5)
    tib_s = (np.clip(target, 2.5, 11.0) / se * 3600).astype(np.int64)
    after_night_onset = prev_end + rng.integers(1800, 3600, shape)
    wake_work = roster.start_s - rng.integers(3600, 5400, shape)
    mid_h = 3.5 + cohort.chronotype_h[:, None] + rng.normal(0.0, 0.5, shape)
    mid_free = clock.to_utc(clock.local_naive_of_day(days, mid_h))
    onset = np.where(prev_night, after_night_onset, np.where(morning, wake_work - tib_s, mid_free - tib_s // 2))
    floor = np.where(prev_end > 0, prev_end + 3600, 0)
    onset = np.where(prev_night, onset, np.maximum(onset, floor))
    end = onset + tib_s
    end = np.where(morning, np.minimum(end, wake_work), end)
    cap = np.where(roster.on_duty & ~morning, roster.start_s - 3600, np.iinfo(np.int64).max)
    end = np.minimum(end, cap)
    n_ep = np.maximum((end - onset) // EPOCH_S, 60)
    kind = np.where(prev_night, 2, np.where(morning, 1, 0)).astype(np.int64)
    return onset, onset + n_ep * EPOCH_S, se, kind


def _nap_grid(roster: Roster, clock: Clock, rng: np.random.Generator) -> tuple[IntArr, IntArr, IntArr, IntArr]:
    """Naps: before a first night (afternoon), before later nights (evening, p = 0.6 [ENG]: prophylactic
    napping before night shifts is common practice and recommended guidance) and on some rest days."""
    shape = roster.code.shape
    night = np.isin(roster.code, _NIGHT_CODES)
    prev_night = _shift_prev(night, False).astype(bool)
    u = rng.random(shape)
    first_night = night & ~prev_night & (u < _P_NAP_FIRST_NIGHT)
    later_night = night & prev_night & (u < _P_NAP_LATER_NIGHT)
    rest_nap = ~roster.on_duty & ~prev_night & (u < _P_NAP_REST)
    p, d = np.nonzero(first_night | later_night | rest_nap)
    long_nap = first_night[p, d]
    evening = later_night[p, d]
    start_h = np.where(long_nap, rng.uniform(13.5, 16.0, p.size), rng.uniform(13.0, 16.0, p.size))
    start_h = np.where(evening, start_h + 4.5, start_h)  # 17:30-20:30, before a 21:00-22:00 start
    n_ep = np.where(long_nap, rng.integers(120, 241, p.size), rng.integers(40, 121, p.size))
    n_ep = np.where(evening, np.minimum(n_ep + 60, 150), n_ep)
    onset = clock.to_utc(clock.local_naive_of_day(d, start_h))
    return p.astype(np.int64), d.astype(np.int64), onset, onset + n_ep * EPOCH_S


def _stages(n_epochs: IntArr, se: F, rng: np.random.Generator) -> tuple[IntArr, npt.NDArray[np.int8]]:
    """Concatenated 30-s stages for episodes of ``n_epochs`` epochs with target efficiency ``se``."""
    offsets = np.r_[0, np.cumsum(n_epochs)].astype(np.int64)
    ep = np.repeat(np.arange(n_epochs.size, dtype=np.int32), n_epochs)
    k = np.arange(offsets[-1], dtype=np.int32) - offsets[:-1].astype(np.int32)[ep]
    sol = np.minimum(np.round(rng.lognormal(np.log(20.0), 0.6, n_epochs.size)), n_epochs // 4).astype(np.int64)
    inv_cyc = (1.0 / np.clip(rng.normal(190.0, 16.0, n_epochs.size), 150.0, 230.0)).astype(np.float32)
    t = (k - sol.astype(np.int32)[ep]).astype(np.float32)
    t *= inv_cyc[ep]
    np.clip(t, 0.0, _N_CYCLES - 1e-3, out=t)
    t *= _PHASE_BINS
    st = _STAGE_TABLE.ravel()[t.astype(np.int32)]
    wake_total = np.maximum(np.round(n_epochs * (1.0 - se)).astype(np.int64) - sol, 0)
    bouts = np.where(wake_total > 0, 1 + wake_total // 6, 0)
    b_ep = np.repeat(np.arange(n_epochs.size), bouts)
    b_len = -(-wake_total[b_ep] // bouts[b_ep])
    room = np.maximum(n_epochs[b_ep] - b_len - sol[b_ep], 1)
    b_start = offsets[b_ep] + sol[b_ep] + (rng.random(b_ep.size) * room).astype(np.int64)
    mark = (np.bincount(b_start, minlength=k.size + 1)
            - np.bincount(np.minimum(b_start + b_len, offsets[b_ep + 1]), minlength=k.size + 1))
    st[(np.cumsum(mark[:-1]) > 0) | (k < sol[ep])] = 0
    return offsets, st


def make_sleep(params: SimParams, cohort: Cohort, roster: Roster, clock: Clock,
               rng: np.random.Generator) -> Episodes:
    """Generate every sleep episode of the cohort, with stages.

    Parameters
    ----------
    params, cohort, roster, clock
        Simulation parameters, participants, their duties and the London clock.
    rng : numpy.random.Generator
        Seeded generator.

    Returns
    -------
    Episodes
    """
    m_on, m_end, m_se, m_kind = _main_grid(params, cohort, roster, clock, rng)
    n_p, n_d = m_on.shape
    mp = np.arange(n_p * n_d) // n_d
    np_, _nd, n_on, n_end = _nap_grid(roster, clock, rng)
    part = np.r_[mp, np_]
    onset = np.r_[m_on.ravel(), n_on]
    end = np.r_[m_end.ravel(), n_end]
    main = np.r_[np.ones(mp.size, bool), np.zeros(np_.size, bool)]
    se = np.r_[m_se.ravel(), rng.uniform(0.85, 0.97, np_.size)]
    order = np.lexsort((onset, part))
    part, onset, end, main, se = part[order], onset[order], end[order], main[order], se[order]
    prev_end = np.r_[np.iinfo(np.int64).min, end[:-1]]
    onset = np.where(np.r_[False, part[1:] == part[:-1]], np.maximum(onset, prev_end + EPOCH_S), onset)
    n_epochs = np.maximum((end - onset) // EPOCH_S, 0)
    keep = n_epochs >= 20
    part, onset, main, n_epochs, se = part[keep], onset[keep], main[keep], n_epochs[keep], se[keep]
    end = onset + n_epochs * EPOCH_S
    offsets, stages = _stages(n_epochs, se, rng)
    asleep = np.r_[0, np.cumsum(stages > 0)]
    tst = (asleep[offsets[1:]] - asleep[offsets[:-1]]) * (EPOCH_S / 60.0)
    return Episodes(part.astype(np.int64), clock.local_day(end - 1), onset, end, main, offsets, stages,
                    tst.astype(np.float64), m_kind)
