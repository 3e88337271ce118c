"""Sleep need, sleep debt and sleep performance for participant x day arrays (NaN = missing day).

science.md §2.2 (need), §2.3 (debt models), §1.5 (performance); TV-D1 in §8.

Daily deficit ``delta_d = Need(d) - TST_day(d)`` (h; negative = surplus). Missing days are excluded, never
zero-filled::

    D7_net(d)   = max(0, sum_{k=0..6} delta_{d-k})          (missing days contribute nothing)
    D7_gross(d) = sum_{k=0..6} max(0, delta_{d-k})
    D_ew(d)     = max(0, rho D_ew(d-1) + delta_d),  rho = 2**(-1/h), h = 4 d (Kitamura et al. 2016 Sci Rep 6:35812)

The carry-over recursion is solved in closed form without a loop over days: with ``E_d = D_d / rho**c_d``
(``c_d`` = recursion step of day d) it becomes the Lindley recursion ``E_d = max(0, E_{d-1} + X_d)``,
``X_d = delta_d rho**(-c_d)``, whose solution is ``E_d = S_d - min(-E_0, min_{k<=d} S_k)`` with ``S`` the cumulative
sum of ``X`` (``np.cumsum`` + ``np.minimum.accumulate``). Days are processed in blocks of 256 so ``rho**-c`` never
overflows; the error does not grow with the series length.

Missing days in ``D_ew`` (science: "excluded"): by default (``missing="skip"``) a missing day is removed from the
recursion, so the carry-over holds its last value over the gap (no decay, no deficit). ``missing="decay"``
instead lets it decay by ``rho`` per calendar day. The value reported on a missing day is the carried value
(needed for ``Need_d(d+1)``); it is NaN only before the participant's first valid day.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

NEED_POP_H = 8.0
_EW_BLOCK = 256

__all__ = [
    "NEED_POP_H",
    "PersonalNeed",
    "SleepDebt",
    "carry_over_debt",
    "daily_sleep_need",
    "free_sleep_days",
    "personal_sleep_need",
    "sleep_debt",
    "sleep_need_series",
    "sleep_performance",
]


@dataclass(frozen=True)
class SleepDebt:
    """Debts in h, shape (P, D): ``net_7d_h`` (D7_net), ``gross_7d_h`` (D7_gross), ``carry_h`` (D_ew) and the
    daily ``deficit_h`` (NaN on missing days). All debts are >= 0 or NaN."""

    net_7d_h: F64
    gross_7d_h: F64
    carry_h: F64
    deficit_h: F64


def _as_2d(x: npt.ArrayLike, shape: tuple[int, int]) -> F64:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1 and a.shape[0] == shape[0]:
        a = a[:, None]
    return np.broadcast_to(a, shape)


def _window_sum(x: F64, n: int) -> F64:
    out = np.zeros_like(x)
    for k in range(min(n, x.shape[1])):  # fixed number of window offsets; exact and strictly causal
        out[:, k:] += x[:, : x.shape[1] - k]
    return out


def carry_over_debt(
    deficit_h: npt.ArrayLike, *, half_life_d: float = 4.0, missing: Literal["skip", "decay"] = "skip"
) -> F64:
    """Exponentially weighted carry-over debt ``D_ew`` (h) for a (P, D) deficit array (NaN = missing day).

    ``D_ew(d) = max(0, rho D_ew(d-1) + delta_d)``, ``rho = 2**(-1/half_life_d)`` (0.840896 for 4 d), ``D_ew(-1)
    = 0``; closed form described in the module docstring. TV-D1: [0.5, 2.4204, 4.5353, ...].
    """
    delta = np.atleast_2d(np.asarray(deficit_h, dtype=np.float64))
    valid = np.isfinite(delta)
    log_rho = -np.log(2.0) / half_life_d
    step = np.cumsum(valid, axis=1) if missing == "skip" else np.broadcast_to(
        np.arange(1, delta.shape[1] + 1), delta.shape)
    out = np.empty_like(delta)
    e0 = np.zeros(delta.shape[0])
    c0 = np.zeros(delta.shape[0])
    for a in range(0, delta.shape[1], _EW_BLOCK):  # overflow guard: blocks of 256 days, not a loop per day
        sl = slice(a, a + _EW_BLOCK)
        c = step[:, sl] - c0[:, None]
        x = np.where(valid[:, sl], delta[:, sl], 0.0) * np.exp(-log_rho * c)
        s = np.cumsum(x, axis=1)
        e = s - np.minimum(-e0[:, None], np.minimum.accumulate(s, axis=1))
        out[:, sl] = np.exp(log_rho * c) * e
        e0, c0 = out[:, sl][:, -1], step[:, sl][:, -1].astype(np.float64)
    started = np.cumsum(valid, axis=1) > 0
    return np.where(started, np.maximum(out, 0.0), np.nan)


def sleep_debt(
    tst_h: npt.ArrayLike,
    need_h: npt.ArrayLike = NEED_POP_H,
    *,
    window_days: int = 7,
    half_life_d: float = 4.0,
    missing: Literal["skip", "decay"] = "skip",
) -> SleepDebt:
    """7-day net, 7-day gross and carry-over sleep debt (science §2.3, TV-D1).

    Parameters
    ----------
    tst_h : float (P, D)  daily total sleep (h) of valid sleep days, NaN = missing day.
    need_h : scalar, (P,) or (P, D)  sleep need (h), e.g. :func:`sleep_need_series`.
    window_days : rolling window (7; 14 gives the D14 balance).

    Returns
    -------
    SleepDebt
        ``net_7d_h`` / ``gross_7d_h`` are NaN where the window holds no valid day.
    """
    tst = np.atleast_2d(np.asarray(tst_h, dtype=np.float64))
    delta = _as_2d(need_h, tst.shape) - tst
    valid = np.isfinite(delta)
    d0 = np.where(valid, delta, 0.0)
    n_valid = _window_sum(valid.astype(np.float64), window_days)
    net = np.maximum(0.0, _window_sum(d0, window_days))
    gross = _window_sum(np.maximum(d0, 0.0), window_days)
    return SleepDebt(
        net_7d_h=np.where(n_valid > 0, net, np.nan),
        gross_7d_h=np.where(n_valid > 0, gross, np.nan),
        carry_h=carry_over_debt(delta, half_life_d=half_life_d, missing=missing),
        deficit_h=np.where(valid, delta, np.nan),
    )


def free_sleep_days(
    duty_on_day: npt.ArrayLike, night_on_day: npt.ArrayLike, roster_known: npt.ArrayLike | bool = True
) -> B:
    """Free sleep days (science §2.2): the sleep ending on local date d precedes a rostered rest day (no duty
    starts on d) and does not follow a night shift (no night duty started on d-1). Inputs (P, D) bool."""
    duty = np.asarray(duty_on_day, dtype=np.bool_)
    night = np.asarray(night_on_day, dtype=np.bool_)
    after_night = np.zeros_like(night)
    after_night[:, 1:] = night[:, :-1]
    return ~duty & ~after_night & np.broadcast_to(np.asarray(roster_known, np.bool_), duty.shape)


@dataclass(frozen=True)
class PersonalNeed:
    """Per participant: ``need_base_h`` (h), ``calib_end`` (first day index after calibration), ``personal``
    (True if learnt from >= ``min_free`` free days, else the population default) and ``n_free``."""

    need_base_h: F64
    calib_end: I64
    personal: B
    n_free: I64


def personal_sleep_need(
    tst_h: npt.ArrayLike,
    free_day: npt.ArrayLike,
    *,
    calib_days: int = 14,
    max_calib_days: int = 28,
    min_valid: int = 10,
    min_free: int = 4,
    clip_h: tuple[float, float] = (7.0, 9.0),
    need_pop_h: float = NEED_POP_H,
) -> PersonalNeed:
    """Personal sleep need ``clip(median(TST_day on free days in calibration), 7, 9)`` (science §2.2, §6.2).

    Calibration is programme days ``[0, calib_end)``: 14 days, extended day by day up to 28 until >= 10 valid
    days (finite ``tst_h``) exist. With fewer than ``min_free`` valid free days the population need is used.
    """
    tst = np.atleast_2d(np.asarray(tst_h, dtype=np.float64))
    n_p, n_d = tst.shape
    cv = np.cumsum(np.isfinite(tst), axis=1)
    hi = min(max_calib_days, n_d)
    cand = cv[:, calib_days - 1 : hi] >= min_valid if hi >= calib_days else np.zeros((n_p, 0), np.bool_)
    any_ok = cand.any(axis=1)
    calib_end = np.where(any_ok, calib_days + np.argmax(cand, axis=1), max_calib_days).astype(np.int64)
    cols = np.arange(n_d)[None, :]
    mask = np.asarray(free_day, np.bool_) & np.isfinite(tst) & (cols < calib_end[:, None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(np.where(mask, tst, np.nan), axis=1) if n_d else np.full(n_p, np.nan)
    n_free = mask.sum(axis=1).astype(np.int64)
    personal = n_free >= min_free
    need = np.where(personal, np.clip(med, *clip_h), need_pop_h)
    return PersonalNeed(need_base_h=need, calib_end=calib_end, personal=personal, n_free=n_free)


def sleep_need_series(need: PersonalNeed, n_days: int, *, need_pop_h: float = NEED_POP_H) -> F64:
    """``Need_base`` per participant-day (P, D): population need during calibration, personal need after."""
    cols = np.arange(n_days)[None, :]
    return np.where(cols < need.calib_end[:, None], need_pop_h, need.need_base_h[:, None])


def daily_sleep_need(need_base_h: npt.ArrayLike, carry_h: npt.ArrayLike, *, k_repay: float = 4.0) -> F64:
    """``Need_d(d) = Need_base(d) + max(0, D_ew(d-1)) / k_repay`` (science §1.5/§2.3 [ENG] k_repay = 4; strain
    term omitted). D_ew before day 0 and NaN carry-over count as 0."""
    carry = np.atleast_2d(np.asarray(carry_h, dtype=np.float64))
    prev = np.zeros_like(carry)
    prev[:, 1:] = np.nan_to_num(carry[:, :-1], nan=0.0)
    return _as_2d(need_base_h, carry.shape) + np.maximum(prev, 0.0) / k_repay


def sleep_performance(tst_h: npt.ArrayLike, need_h: npt.ArrayLike) -> tuple[F64, F64]:
    """Sleep performance (science §1.5): ``ratio = TST_day / Need`` (uncapped, kept internally) and the display
    value ``pct = 100 min(ratio, 1)``. TV-D1 day 10: 8.5 / 8 = 1.0625 -> 100 %."""
    tst = np.asarray(tst_h, dtype=np.float64)
    need = np.asarray(need_h, dtype=np.float64)
    if need.ndim == 1 and tst.ndim == 2 and need.shape[0] == tst.shape[0]:
        need = need[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(need > 0, tst / need, np.nan)
    return ratio, 100.0 * np.minimum(ratio, 1.0)
