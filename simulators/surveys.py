"""Self-reported sleepiness (KSS, Samn-Perelli) at shift starts and ends, driven by true sleepiness.

True sleepiness is a simple homeostatic + circadian estimate [ENG]::

    KSS_true = 2.8 + 0.25 * min(time_awake_h, 24) + 1.5 * cos(2 pi (h_local - 4.5) / 24) + 0.2 * D_ew

(peak circadian sleepiness near 04:30; 17 h awake at 07:00 after a night gives about 8 plus the debt term).
The answer is ``round(KSS_true + N(0, 0.8^2))`` clipped to 1..9; Samn-Perelli (1..7) is answered on 40 % of occasions as
``round(1 + 0.75 * (KSS - 1) + N(0, 0.5^2))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulators.clock import Clock
from simulators.sleep import Episodes

__all__ = ["Answers", "make_answers", "true_kss"]

F = npt.NDArray[np.float64]
IntArr = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Answers:
    """Survey answers in (participant, time) order."""

    participant: IntArr
    t_s: IntArr
    context: npt.NDArray[np.str_]
    kss_true: F
    kss: npt.NDArray[np.int8]
    samn_perelli: npt.NDArray[np.int8]
    time_awake_h: F


def true_kss(time_awake_h: F, local_h: F, debt_h: F) -> F:
    """Homeostatic + circadian sleepiness on the KSS scale (unclipped), see the module docstring."""
    return (2.8 + 0.25 * np.minimum(time_awake_h, 24.0)
            + 1.5 * np.cos(2 * np.pi * (local_h - 4.5) / 24.0) + 0.2 * debt_h)


def _time_awake_h(ep: Episodes, p: IntArr, t_s: IntArr) -> F:
    big = np.int64(1) << 40
    keys = ep.participant * big + ep.end_s
    i = np.searchsorted(keys, p * big + t_s, side="right") - 1
    ok = (i >= 0) & (ep.participant[np.maximum(i, 0)] == p)
    last_end = ep.end_s[np.maximum(i, 0)]
    return np.where(ok, (t_s - last_end) / 3600.0, 16.0)


def make_answers(duties: dict[str, npt.NDArray[np.generic]], ep: Episodes, debt_ew_h: F, clock: Clock,
                 p_answer: float, rng: np.random.Generator) -> Answers:
    """Answers at shift start (+5 min) and end (-5 min), each given with probability ``p_answer``.

    Parameters
    ----------
    duties : dict
        Output of :func:`simulators.roster.duty_facts`.
    ep : Episodes
        Sleep episodes (for time awake).
    debt_ew_h : ndarray, shape (n, days)
        Exponentially weighted debt per participant-day.
    clock : Clock
        London clock.
    p_answer : float
        Response probability per occasion.
    rng : numpy.random.Generator
        Seeded generator.
    """
    p_all = np.asarray(duties["participant"], dtype=np.int64)
    start = np.asarray(duties["start_s"], dtype=np.int64) + 300
    end = np.asarray(duties["end_s"], dtype=np.int64) - 300
    p = np.r_[p_all, p_all]
    t = np.r_[start, end]
    ctx = np.r_[np.full(start.size, "shift_start"), np.full(end.size, "shift_end")]
    answered = rng.random(t.size) < p_answer
    p, t, ctx = p[answered], t[answered], ctx[answered]
    order = np.lexsort((t, p))
    p, t, ctx = p[order], t[order], ctx[order]
    awake = _time_awake_h(ep, p, t)
    day = np.clip(clock.local_day(t), 0, debt_ew_h.shape[1] - 1)
    k_true = true_kss(awake, clock.local_hour(t), debt_ew_h[p, day])
    kss = np.clip(np.round(k_true + rng.normal(0.0, 0.8, t.size)), 1, 9).astype(np.int8)
    sp = np.clip(np.round(1 + 0.75 * (kss - 1) + rng.normal(0.0, 0.5, t.size)), 1, 7).astype(np.int8)
    sp = np.where(rng.random(t.size) < 0.4, sp, 0).astype(np.int8)
    return Answers(p, t, ctx, k_true, kss, sp, awake)
