"""Sleep regularity: Sleep Regularity Index (pooled, NaN-aware), rolling cohort SRI, 4-day sleep consistency and
social jet lag with circular means.

SRI (Phillips et al. 2017, Sci Rep, doi:10.1038/s41598-017-03171-4; reference MATLAB ``SRI_calculator.m``,
science.md §1.3), with ``W`` the epoch series (1 asleep, 0 awake, NaN unknown) and ``n`` epochs per 24 h::

    W1 = W[0:L-n]; W2 = W[n:L]; valid = ~isnan(W1) & ~isnan(W2)
    SRI = 200 * sum(W1[valid] == W2[valid]) / sum(valid) - 100;  Days = sum(valid) / n

Cohort version (:func:`pair_agreement`): the series is never materialised. Each participant's asleep intervals
are cut into 24-h blocks; for the pair of blocks (i-1, i) (both valid) the number of matching epochs is
``n - (T[i-1] + T[i] - 2 O[i])`` with ``T`` the asleep measure of a block and ``O`` the measure asleep in both
block i and block i-1 shifted by 24 h (``|a - b| = a + b - 2ab`` for 0/1 states). ``O`` is computed with the
cumulative asleep-measure function ``F`` of the participant (one ``np.searchsorted``). The result equals the
epoch form exactly whenever interval boundaries fall on the epoch grid.

Deviation (documented): blocks are consecutive 24-h elapsed periods starting at local noon on the day before
programme day 0 (noon-to-noon, GGIR), so after a clock change the block edges sit at 11:00/13:00 local; SRI is a
24-h elapsed-time comparison in Phillips' definition, and validity is per block: a block is known (awake
outside sleep) when its sleep day is valid (science §6.3), otherwise the whole block is NaN.

Social jet lag: Wittmann et al. 2006 Chronobiol Int 23:497; Juda, Vetter, Roenneberg 2013 J Biol Rhythms
28:130 (MCTQ^Shift); science.md §1.4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from features.timeutil import DAY_S, LONDON, local_noon_utc

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

__all__ = [
    "MCTQ",
    "RegularityPairs",
    "SocialJetLag",
    "circdiff_h",
    "circular_mean_h",
    "mctq_social_jet_lag",
    "pair_agreement",
    "sleep_consistency",
    "sleep_regularity_index",
    "social_jet_lag",
    "sri_14d",
    "sri_and_days",
    "sri_origin",
    "window_sri",
]


def sri_and_days(states: npt.ArrayLike, epochs_per_day: int) -> tuple[float, float]:
    """Pooled Phillips SRI and ``Days = valid pairs / epochs_per_day`` of a 1-D state series (NaN = unknown).

    Returns ``(nan, 0.0)`` when no valid pair exists.
    """
    w = np.asarray(states, dtype=np.float64).ravel()
    n = int(epochs_per_day)
    if n <= 0:
        raise ValueError("epochs_per_day must be positive")
    w1, w2 = w[: max(w.size - n, 0)], w[n:]
    valid = ~np.isnan(w1) & ~np.isnan(w2)
    n_valid = int(valid.sum())
    if n_valid == 0:
        return float("nan"), 0.0
    matches = int(np.count_nonzero(w1[valid] == w2[valid]))
    return 200.0 * matches / n_valid - 100.0, n_valid / n


def sleep_regularity_index(states: npt.ArrayLike, epochs_per_day: int, *, min_days: float = 0.0) -> float:
    """Sleep Regularity Index of a 1-D series of 1 (asleep) / 0 (awake) / NaN (unknown), in [-100, 100].

    ``SRI = 200 * matches / valid_pairs - 100`` over all epoch pairs 24 h apart (pooled form, Phillips
    ``SRI_calculator.m``; science §1.3, TV-S3). 100 for identical days, -100 for a day followed by its
    complement. NaN if no valid pair or ``Days < min_days`` (science default for reporting: 5).
    """
    sri, days = sri_and_days(states, epochs_per_day)
    return sri if days >= min_days and days > 0 else float("nan")


def sri_origin(day0: npt.ArrayLike, tz: str = LONDON) -> I64:
    """UTC start of SRI block 0 = local noon on the day before programme day 0 (days since 1970-01-01)."""
    return local_noon_utc(np.asarray(day0, dtype=np.int64) - 1, tz)


@dataclass(frozen=True)
class RegularityPairs:
    """Per participant x day: epoch pairs of blocks (d-1, d). ``match``/``valid`` in epochs (column 0 = 0)."""

    match: F64
    valid: F64
    epochs_per_day: int


def _merge(key0: I64, key1: I64) -> tuple[I64, I64]:
    """Union of half-open intervals (keys sorted or not); returns sorted disjoint intervals."""
    order = np.argsort(key0, kind="stable")
    a, b = key0[order], key1[order]
    if a.size == 0:
        return a, b
    reach = np.maximum.accumulate(b)
    new = np.ones(a.size, dtype=np.bool_)
    new[1:] = a[1:] > reach[:-1]
    idx = np.flatnonzero(new)
    return a[idx], np.maximum.reduceat(b, idx)


def pair_agreement(
    participant: npt.ArrayLike,
    t0: npt.ArrayLike,
    t1: npt.ArrayLike,
    valid_day: npt.ArrayLike,
    origin_utc: npt.ArrayLike,
    *,
    epoch_s: int = 30,
) -> RegularityPairs:
    """Matching / valid epoch pairs 24 h apart for every participant and consecutive block pair.

    Parameters
    ----------
    participant, t0, t1 : (k,)  asleep intervals ``[t0, t1)`` in UTC epoch s (e.g. :func:`features.sleep.
        sleep_intervals`), any order, may overlap.
    valid_day : bool (P, D)  block validity (valid sleep day).
    origin_utc : int64 (P,) or scalar  UTC start of block 0 (:func:`sri_origin`).
    """
    vd = np.asarray(valid_day, dtype=np.bool_)
    n_p, n_d = vd.shape
    span = (n_d + 1) * DAY_S
    p = np.asarray(participant, dtype=np.int64)
    org = np.broadcast_to(np.asarray(origin_utc, dtype=np.int64), (n_p,))
    r0 = np.clip(np.asarray(t0, dtype=np.int64) - org[p], 0, n_d * DAY_S)
    r1 = np.clip(np.asarray(t1, dtype=np.int64) - org[p], 0, n_d * DAY_S)
    keep = r1 > r0
    a, b = _merge(p[keep] * span + r0[keep], p[keep] * span + r1[keep])
    pp, a_rel, b_rel = a // span, a % span, b - (a // span) * span
    first_blk, last_blk = a_rel // DAY_S, (b_rel - 1) // DAY_S
    count = last_blk - first_blk + 1
    rep = np.repeat(np.arange(a.size), count)
    blk = first_blk[rep] + (np.arange(rep.size) - np.repeat(np.cumsum(count) - count, count))
    s = np.maximum(a_rel[rep], blk * DAY_S)
    e = np.minimum(b_rel[rep], (blk + 1) * DAY_S)
    pp = pp[rep]
    ok = vd[pp, blk]
    pp, blk, s, e = pp[ok], blk[ok], s[ok], e[ok]
    ks, ke = pp * span + s, pp * span + e
    length = (e - s).astype(np.float64)
    cum = np.concatenate(([0.0], np.cumsum(length)))

    def measure_upto(x: I64) -> F64:
        k = np.searchsorted(ks, x, side="right") - 1
        kk = np.maximum(k, 0)
        part = np.clip(x - ks[kk], 0, ke[kk] - ks[kk]).astype(np.float64)
        return np.where(k >= 0, cum[kk] + part, 0.0)

    cells = pp * n_d + blk
    tot = np.bincount(cells, weights=length, minlength=n_p * n_d).reshape(n_p, n_d)
    later = blk >= 1
    later[later] = vd[pp[later], blk[later] - 1]  # only pairs whose earlier block is valid
    ov = measure_upto(ke[later] - DAY_S) - measure_upto(ks[later] - DAY_S)
    olap = np.bincount(cells[later], weights=ov, minlength=n_p * n_d).reshape(n_p, n_d)
    m = DAY_S // epoch_s
    both = np.zeros_like(vd)
    both[:, 1:] = vd[:, 1:] & vd[:, :-1]
    prev_tot = np.zeros_like(tot)
    prev_tot[:, 1:] = tot[:, :-1]
    valid = np.where(both, float(m), 0.0)
    match = np.where(both, m - (prev_tot + tot - 2.0 * olap) / epoch_s, 0.0)
    return RegularityPairs(match=match, valid=valid, epochs_per_day=int(m))


def _window_sum(x: F64, n_cols: int) -> F64:
    out = np.zeros_like(x)
    for k in range(min(n_cols, x.shape[1])):  # fixed number of window offsets; exact (no cumsum drift)
        out[:, k:] += x[:, : x.shape[1] - k]
    return out


def window_sri(pairs: RegularityPairs, window_days: int, min_days: float) -> tuple[F64, F64]:
    """Rolling pooled SRI over the ``window_days`` days ending on each day (``window_days - 1`` block pairs).

    Returns ``(sri, days)``, both (P, D); ``sri`` is NaN where ``days < min_days`` or no valid pair.
    """
    match = _window_sum(pairs.match, window_days - 1)
    valid = _window_sum(pairs.valid, window_days - 1)
    days = valid / pairs.epochs_per_day
    with np.errstate(invalid="ignore", divide="ignore"):
        sri = 200.0 * match / valid - 100.0
    return np.where((valid > 0) & (days >= min_days), sri, np.nan), days


def sri_14d(pairs: RegularityPairs, *, window_days: int = 14, min_days: float = 5.0) -> F64:
    """SRI over the 14 days ending on each day, NaN unless ``Days >= 5`` (science §1.3, §6.3 S4)."""
    return window_sri(pairs, window_days, min_days)[0]


def sleep_consistency(pairs: RegularityPairs, *, window_days: int = 4, min_days: float = 2.0) -> F64:
    """Open sleep consistency, % = ``100 p4 = (SRI_4day + 100)/2`` (science §1.5, TV-S3).

    ``min_days`` = 2 valid day-pairs of the 3 in the window is an [ENG] choice (science gives no minimum).
    """
    sri, _ = window_sri(pairs, window_days, min_days)
    return (sri + 100.0) / 2.0


def circdiff_h(a: npt.ArrayLike, b: npt.ArrayLike) -> F64:
    """Circular difference of clock times (h): ``((a - b + 12) mod 24) - 12`` in [-12, 12)."""
    return np.mod(np.asarray(a, np.float64) - np.asarray(b, np.float64) + 12.0, 24.0) - 12.0


def circular_mean_h(hours: npt.ArrayLike, mask: npt.ArrayLike, axis: int = -1) -> tuple[F64, I64]:
    """Circular mean of clock times along ``axis`` over ``mask & isfinite``: ``theta = 2 pi t / 24``,
    ``t_bar = 24/(2 pi) atan2(mean sin, mean cos) mod 24``. Returns (mean, count); NaN where count is 0."""
    h = np.asarray(hours, np.float64)
    m = np.asarray(mask, np.bool_) & np.isfinite(h)
    th = np.where(m, h, 0.0) * (2.0 * np.pi / 24.0)
    sn = np.where(m, np.sin(th), 0.0).sum(axis=axis)
    cs = np.where(m, np.cos(th), 0.0).sum(axis=axis)
    n = m.sum(axis=axis).astype(np.int64)
    mean = np.mod(np.arctan2(sn, cs) * (24.0 / (2.0 * np.pi)), 24.0)
    return np.where(n > 0, mean, np.nan), n


@dataclass(frozen=True)
class MCTQ:
    """MCTQ social jet lag quantities (h): ``sjl_rel = circdiff(MSF, MSW)``, ``sjl = |sjl_rel|``,
    ``sd_week = (SD_w WD + SD_f FD)/7``, ``msf_sc = MSF - (SD_f - SD_week)/2`` if ``SD_f > SD_w`` else MSF."""

    sjl_rel_h: F64
    sjl_h: F64
    sd_week_h: F64
    msf_sc_h: F64


def mctq_social_jet_lag(
    msw_h: npt.ArrayLike, msf_h: npt.ArrayLike, sd_w_h: npt.ArrayLike, sd_f_h: npt.ArrayLike,
    work_days: npt.ArrayLike,
) -> MCTQ:
    """Closed-form MCTQ social jet lag and sleep-corrected chronotype (Wittmann 2006; science §1.4, TV-S4).

    ``work_days`` = WD per week, FD = 7 - WD.
    """
    msw, msf = np.asarray(msw_h, np.float64), np.asarray(msf_h, np.float64)
    sdw, sdf = np.asarray(sd_w_h, np.float64), np.asarray(sd_f_h, np.float64)
    wd = np.asarray(work_days, np.float64)
    rel = circdiff_h(msf, msw)
    sd_week = (sdw * wd + sdf * (7.0 - wd)) / 7.0
    msf_sc = np.where(sdf > sdw, np.mod(msf - (sdf - sd_week) / 2.0, 24.0), msf)
    return MCTQ(sjl_rel_h=rel, sjl_h=np.abs(rel), sd_week_h=sd_week, msf_sc_h=msf_sc)


@dataclass(frozen=True)
class SocialJetLag:
    """Per participant: ``msf_h`` (P,), per shift type X in ``shift_codes`` order: ``msw_h``, ``sjl_h``,
    ``n_days`` (P, X); ``sjl_weighted_h`` = sum n_X SJL_X / sum n_X (P,)."""

    msf_h: F64
    msw_h: F64
    sjl_h: F64
    n_days: I64
    sjl_weighted_h: F64


def social_jet_lag(
    midpoint_local_h: npt.ArrayLike,
    shift_on_day: npt.ArrayLike,
    *,
    shift_codes: tuple[int, ...] = (0, 1, 2),
    late_code: int = 1,
    free_code: int = -1,
) -> SocialJetLag:
    """Shift-specific social jet lag (science §1.4 default [ENG], MCTQ^Shift after Juda et al. 2013).

    ``MSW_X`` = circular mean of main-sleep midpoints on sleep days d with an X duty starting on local date d;
    ``MSF`` = circular mean on free days (no duty starting on d, ``shift_on_day == free_code``), restricted to
    free days after a late shift (duty on d-1 of ``late_code``) when at least one exists;
    ``SJL_X = |circdiff(MSF, MSW_X)|``. Inputs are (P, D); codes default to ``features.roster`` (early, late,
    night) = (0, 1, 2).
    """
    mid = np.asarray(midpoint_local_h, np.float64)
    shift = np.asarray(shift_on_day, np.int64)
    free = shift == free_code
    after_late = np.zeros_like(free)
    after_late[:, 1:] = free[:, 1:] & (shift[:, :-1] == late_code)
    msf_late, n_late = circular_mean_h(mid, after_late)
    msf_all, _ = circular_mean_h(mid, free)
    msf = np.where(n_late > 0, msf_late, msf_all)
    codes = np.asarray(shift_codes, np.int64)
    msw, n = circular_mean_h(mid[:, None, :], shift[:, None, :] == codes[None, :, None])
    sjl = np.abs(circdiff_h(msf[:, None], msw))
    w = np.where(np.isfinite(sjl), n, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        weighted = np.where(w.sum(axis=1) > 0, np.nansum(sjl * w, axis=1) / w.sum(axis=1), np.nan)
    return SocialJetLag(msf_h=msf, msw_h=msw, sjl_h=sjl, n_days=n, sjl_weighted_h=weighted)
