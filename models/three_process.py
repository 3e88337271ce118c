"""Vectorised Three-Process Model of alertness (TPM) as implemented in FIPS.

Processes (t in hours; ``taw`` time awake, ``tas`` time asleep, ``tod`` local clock hour):

* homeostatic S, wake: ``S = la + (S_w - la)·exp(d·taw)``;
  sleep: ``S = S_s + tas·g·(bl - ha)`` while ``tas <= bt`` with ``bt = (bl - S_s) / (g·(bl - ha))``,
  afterwards ``S = ha - (ha - bl)·exp(g·(tas - bt))``;
* circadian ``C = Cm + Ca·cos(2π(tod - p)/24)``; ultradian ``U = Um + Ua·cos(2π(tod - p - 3)/12)``;
* sleep inertia ``W = Wc·exp(Wd·taw)`` while awake, 0 asleep;
* ``alertness = S + C + U``; ``KSS = KSS_intercept + KSS_beta·(S + C + U + W)`` (not clipped).

Discretisation follows FIPS ``parse_sleeptimes(roundvalue = 5)`` + ``FIPS_simulate(.., "TPM")``: a 5-min grid,
sleep times rounded to the nearest 5 min (half up), epoch ``k`` asleep iff ``start <= t_k < end``, ``taw``/``tas``
= index within the current run × 5/60 h, and the S carried across a run boundary is the run's closed form
evaluated at the full run length.  ``tod`` is the local wall-clock hour + minute/60 (Europe/London by default,
so it jumps ±1 h at DST changes, as FIPS does).

Each run is evaluated in closed form for all its epochs at once; the run-to-run carry of S is a recurrence over
the run index, vectorised across participants (lock-step).

References
----------
Åkerstedt T, Folkard S (1997) Chronobiol Int 14:115; Ingre M et al. (2014) PLoS ONE 9:e108679;
Wilson MK, Strickland L, Ballard T, FIPS R package v0.2.1 (doi:10.21105/joss.02340); science.md §4.1–4.2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import ArrayLike, NDArray

EPOCH_S = 300  # grid step (s)
EPOCH_H = EPOCH_S / 3600.0  # grid step (h)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
_SCAN_S = 6 * 3600  # offsets are assumed constant between consecutive scan points (true for all IANA zones)


def _offset_at(zone: ZoneInfo, t: int) -> int:
    delta = datetime.fromtimestamp(t, tz=zone).utcoffset()
    return 0 if delta is None else int(delta.total_seconds())


@lru_cache(maxsize=64)
def _transitions(tz: str, lo: int, hi: int) -> tuple[IntArray, IntArray]:
    """UTC instants where the zone's offset changes inside [lo, hi] and the offsets around them.

    The zone is queried once per 6 h of span plus a bisection (to the second) per transition found.
    """
    zone = ZoneInfo(tz)
    probes = list(range(lo - _SCAN_S, hi + 2 * _SCAN_S, _SCAN_S))
    offsets = [_offset_at(zone, t) for t in probes]
    instants, values = [], [offsets[0]]
    for k in range(1, len(probes)):
        if offsets[k] != offsets[k - 1]:
            a, b = probes[k - 1], probes[k]  # offset(a) != offset(b): bisect to the first second of b's offset
            while b - a > 1:
                mid = (a + b) // 2
                a, b = (mid, b) if _offset_at(zone, mid) == offsets[k - 1] else (a, mid)
            instants.append(b)
            values.append(offsets[k])
    return np.asarray(instants, dtype=np.int64), np.asarray(values, dtype=np.int64)


def utc_offsets(t: ArrayLike, tz: str = "Europe/London") -> IntArray:
    """UTC offset (s) of zone ``tz`` at UTC epoch seconds ``t``.

    Transitions are found once for the span of ``t`` and applied with ``np.searchsorted``; zoneinfo is never
    called per element.
    """
    x = np.asarray(t, dtype=np.int64)
    if x.size == 0:
        return np.zeros(x.shape, dtype=np.int64)
    day = 86400
    instants, values = _transitions(tz, int(x.min()) // day * day, (int(x.max()) // day + 1) * day)
    return np.asarray(values[np.searchsorted(instants, x, side="right")], dtype=np.int64)


def local_clock_hours(t: ArrayLike, tz: str = "Europe/London") -> FloatArray:
    """Local wall-clock hour + minute/60 at UTC epoch seconds ``t`` (FIPS ``time`` column), hours in [0, 24)."""
    x = np.asarray(t, dtype=np.int64)
    second_of_day = (x + utc_offsets(x, tz)) % 86400
    return np.asarray(second_of_day // 3600 + (second_of_day % 3600 // 60) / 60.0, dtype=np.float64)


@dataclass(frozen=True)
class TPMParams:
    """FIPS ``TPM_make_pvec()`` defaults (Ingre et al. 2014).

    Attributes
    ----------
    la, ha : float
        Lower (wake) and upper (sleep) asymptotes of S (dimensionless alertness units).
    d : float
        Wake decay rate of S (h⁻¹), negative.
    g : float
        Sleep recovery rate (h⁻¹), ``ln((14.3 - 14)/(14.3 - 7.96))/8``, negative.
    bl : float
        Break level between linear and exponential recovery, ``la < bl < ha``.
    cm, ca, p : float
        Circadian mesor, amplitude (>= 0) and acrophase (clock hour in [0, 24)).
    um, ua : float
        12-h (ultradian) mesor and amplitude (>= 0).
    wc, wd : float
        Sleep inertia at waking and its recovery rate (h⁻¹, negative).
    s0 : float
        Initial S.
    kss_intercept, kss_beta : float
        Linear map ``KSS = kss_intercept + kss_beta·(S + C + U + W)``; ``kss_beta`` non-zero.
    """

    la: float = 2.4
    ha: float = 14.3
    d: float = -0.0353
    g: float = math.log((14.3 - 14.0) / (14.3 - 7.96)) / 8.0
    bl: float = 12.2
    cm: float = 0.0
    ca: float = 2.5
    p: float = 16.8
    um: float = -0.5
    ua: float = 0.5
    wc: float = -5.72
    wd: float = -1.51
    s0: float = 7.96
    kss_intercept: float = 10.6
    kss_beta: float = -0.6

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"TPMParams.{f.name} must be a finite number, got {value!r}")
        for name in ("d", "g", "wd"):
            if getattr(self, name) >= 0:
                raise ValueError(f"TPMParams.{name} must be negative (a decay rate in h^-1)")
        if not self.la < self.bl:
            raise ValueError("TPMParams.bl must lie above la (la < bl < ha)")
        if not self.bl < self.ha:
            raise ValueError("TPMParams.ha must lie above bl (la < bl < ha)")
        for name in ("ca", "ua"):
            if getattr(self, name) < 0:
                raise ValueError(f"TPMParams.{name} must be >= 0 (an amplitude)")
        if not 0.0 <= self.p < 24.0:
            raise ValueError("TPMParams.p must be a clock hour in [0, 24)")
        if self.kss_beta == 0:
            raise ValueError("TPMParams.kss_beta must be non-zero")

    @property
    def sleep_slope(self) -> float:
        """Slope of the linear sleep branch, ``g·(bl - ha)`` (h⁻¹; 0.8008485379 with the defaults)."""
        return self.g * (self.bl - self.ha)


DEFAULT_PARAMS = TPMParams()


def s_wake(s_w: ArrayLike, taw: ArrayLike, params: TPMParams = DEFAULT_PARAMS) -> FloatArray:
    """Homeostatic S after ``taw`` hours awake: ``la + (S_w - la)·exp(d·taw)`` (science.md §4.1)."""
    s = np.asarray(s_w, dtype=np.float64)
    return np.asarray(params.la + (s - params.la) * np.exp(params.d * np.asarray(taw, np.float64)))


def break_time(s_s: ArrayLike, params: TPMParams = DEFAULT_PARAMS) -> FloatArray:
    """Hours of linear recovery before S reaches ``bl``: ``bt = (bl - S_s)/(g·(bl - ha))`` (h)."""
    return np.asarray((params.bl - np.asarray(s_s, np.float64)) / params.sleep_slope)


def s_sleep(s_s: ArrayLike, tas: ArrayLike, params: TPMParams = DEFAULT_PARAMS) -> FloatArray:
    """Homeostatic S after ``tas`` hours asleep from ``S_s`` (linear up to ``bt``, then exponential to ``ha``)."""
    s = np.asarray(s_s, dtype=np.float64)
    t = np.asarray(tas, dtype=np.float64)
    bt = break_time(s, params)
    with np.errstate(over="ignore"):
        expo = params.ha - (params.ha - params.bl) * np.exp(params.g * (t - bt))
    return np.asarray(np.where(t <= bt, s + t * params.sleep_slope, expo))


def circadian(tod: ArrayLike, params: TPMParams = DEFAULT_PARAMS) -> FloatArray:
    """Circadian process ``C = Cm + Ca·cos(2π(tod - p)/24)``; ``tod`` in local clock hours."""
    t = np.asarray(tod, dtype=np.float64)
    return np.asarray(params.cm + params.ca * np.cos(2.0 * np.pi * (t - params.p) / 24.0))


def ultradian(tod: ArrayLike, params: TPMParams = DEFAULT_PARAMS) -> FloatArray:
    """12-h process ``U = Um + Ua·cos(2π(tod - p - 3)/12)``; ``tod`` in local clock hours."""
    t = np.asarray(tod, dtype=np.float64)
    return np.asarray(params.um + params.ua * np.cos(2.0 * np.pi * (t - params.p - 3.0) / 12.0))


def inertia(taw: ArrayLike, params: TPMParams = DEFAULT_PARAMS) -> FloatArray:
    """Sleep inertia while awake ``W = Wc·exp(Wd·taw)`` (``taw`` in h)."""
    return np.asarray(params.wc * np.exp(params.wd * np.asarray(taw, dtype=np.float64)))


def kss_from_components(total: ArrayLike, params: TPMParams = DEFAULT_PARAMS) -> FloatArray:
    """KSS from ``S + C + U + W``: ``KSS_intercept + KSS_beta·total`` (not clipped; clip to [1, 9] for display)."""
    return np.asarray(params.kss_intercept + params.kss_beta * np.asarray(total, np.float64))


@dataclass(frozen=True)
class TPMResult:
    """Three-process trajectories on the grid; 2-D arrays are (participant × grid), read-only.

    Attributes
    ----------
    time : ndarray of int64, (n_grid,)
        Epoch start, UTC epoch seconds.
    clock_hour : ndarray of float64, (n_grid,)
        Local clock hour + minute/60 used for C and U.
    awake : ndarray of bool
        True when awake.
    s, c, u, w : ndarray of float64
        Processes S, C, U, W (``c`` and ``u`` are broadcast views of one row).
    kss : ndarray of float64
        ``KSS_intercept + KSS_beta·(S + C + U + W)``.
    """

    time: IntArray
    clock_hour: FloatArray
    awake: BoolArray
    s: FloatArray
    c: FloatArray
    u: FloatArray
    w: FloatArray
    kss: FloatArray

    @property
    def alertness(self) -> FloatArray:
        """FIPS ``alertness`` = S + C + U (W excluded)."""
        return np.asarray(self.s + self.c + self.u)


@dataclass(frozen=True)
class _Runs:
    """Maximal wake/sleep runs, participant-major and in time order (flattened grid positions)."""

    participant: IntArray
    first: IntArray  # grid index of the run's first epoch
    length: IntArray  # epochs
    asleep: BoolArray
    rank: IntArray  # position of the run within its participant


def round_to_epoch(t: ArrayLike) -> IntArray:
    """Round epoch seconds to the nearest 5 min, halves up (lubridate ``round_date`` as used by FIPS)."""
    x = np.asarray(t, dtype=np.int64)
    return np.asarray((x + EPOCH_S // 2) // EPOCH_S * EPOCH_S, dtype=np.int64)


def _merged_sleep(pid: IntArray, i0: IntArray, i1: IntArray, n: int) -> tuple[IntArray, IntArray, IntArray]:
    """Union of sleep intervals (grid indices, half-open) per participant; touching intervals are merged."""
    keep = i1 > i0
    pid, i0, i1 = pid[keep], i0[keep], i1[keep]
    order = np.lexsort((i0, pid))
    base = pid[order] * (n + 1)
    g0, g1 = base + i0[order], base + i1[order]
    if g0.size == 0:
        return pid[:0], i0[:0], i1[:0]
    reach = np.maximum.accumulate(g1)
    new = np.ones(g0.size, dtype=bool)
    new[1:] = g0[1:] > reach[:-1]
    heads = np.flatnonzero(new)
    m0 = g0[heads]
    m1 = np.maximum.reduceat(g1, heads)
    mp = m0 // (n + 1)
    return mp, m0 - mp * (n + 1), m1 - mp * (n + 1)


def _exclusive_cumsum(x: IntArray) -> IntArray:
    out = np.zeros(x.size, dtype=np.int64)
    np.cumsum(x[:-1], out=out[1:])
    return out


def _build_runs(mp: IntArray, a: IntArray, b: IntArray, n_participants: int, n: int) -> _Runs:
    """Alternating runs ``wake [0, a1), sleep [a1, b1), ..., wake [bk, n)`` for every participant."""
    m = np.bincount(mp, minlength=n_participants).astype(np.int64)
    slots = 2 * m + 2
    off = _exclusive_cumsum(slots)
    bounds = np.empty(int(slots.sum()), dtype=np.int64)
    bounds[off] = 0
    bounds[off + slots - 1] = n
    j = np.arange(mp.size, dtype=np.int64) - _exclusive_cumsum(m)[mp]
    bounds[off[mp] + 1 + 2 * j] = a
    bounds[off[mp] + 2 + 2 * j] = b
    pair = np.ones(bounds.size - 1, dtype=bool)
    pair[(off + slots - 1)[:-1]] = False  # no run across participants
    first, last = bounds[:-1][pair], bounds[1:][pair]
    n_runs = slots - 1
    run_p = np.repeat(np.arange(n_participants, dtype=np.int64), n_runs)
    q = np.arange(first.size, dtype=np.int64) - np.repeat(_exclusive_cumsum(n_runs), n_runs)
    keep = last > first
    run_p, first, length, asleep = run_p[keep], first[keep], (last - first)[keep], (q % 2 == 1)[keep]
    counts = np.bincount(run_p, minlength=n_participants).astype(np.int64)
    rank = np.arange(run_p.size, dtype=np.int64) - np.repeat(_exclusive_cumsum(counts), counts)
    return _Runs(run_p, first, length, asleep, rank)


def _run_start_values(runs: _Runs, s0: FloatArray, n_participants: int, params: TPMParams) -> FloatArray:
    """S at each run's first epoch: lock-step recurrence over run rank, vectorised across participants."""
    n_rank = int(runs.rank.max()) + 1 if runs.rank.size else 0
    length_h = np.zeros((n_participants, n_rank))
    asleep = np.zeros((n_participants, n_rank), dtype=bool)
    length_h[runs.participant, runs.rank] = runs.length * EPOCH_H
    asleep[runs.participant, runs.rank] = runs.asleep
    start = np.empty((n_participants, n_rank))
    start[:, 0] = s0
    for r in range(n_rank - 1):
        awake_next = s_wake(start[:, r], length_h[:, r], params)
        asleep_next = s_sleep(start[:, r], length_h[:, r], params)
        start[:, r + 1] = np.where(asleep[:, r], asleep_next, awake_next)
    return start[runs.participant, runs.rank]


def _epoch_tables(n: int, params: TPMParams) -> tuple[FloatArray, FloatArray]:
    """Per-epoch lookup tables, three sections of ``n`` indexed by the within-run index ``k``.

    Section 0 (sleep, exponential branch) ``exp(g·k·Δ)``; section 1 (sleep, linear branch) ``k·Δ·g·(bl - ha)``;
    section 2 (wake) ``exp(d·k·Δ)``.  The W table is ``Wc·exp(Wd·k·Δ)`` in section 2 and 0 elsewhere.
    """
    k_h = np.arange(n, dtype=np.float64) * EPOCH_H
    with np.errstate(under="ignore"):
        s_tab = np.concatenate([np.exp(params.g * k_h), k_h * params.sleep_slope, np.exp(params.d * k_h)])
        w_tab = np.concatenate([np.zeros(2 * n), params.wc * np.exp(params.wd * k_h)])
    return s_tab, w_tab


def _linear_break_index(bt: FloatArray) -> IntArray:
    """Largest k with ``k·EPOCH_H <= bt`` (-1 when none), using the same float comparison as the closed form."""
    kb = np.floor(np.clip(bt, -1.0, 1e9) / EPOCH_H).astype(np.int64)
    kb = np.where((kb + 1) * EPOCH_H <= bt, kb + 1, kb)
    return np.asarray(np.where(kb * EPOCH_H > bt, kb - 1, kb), dtype=np.int64)


def _run_parts(runs: _Runs, s_start: FloatArray, n: int, params: TPMParams
               ) -> tuple[IntArray, FloatArray, FloatArray, IntArray]:
    """Split each run into two parts with ``S = A + B·table[section·n + k]``.

    Wake runs: one part, section 2, ``A = la``, ``B = S_w - la``.  Sleep runs: a linear part (section 1,
    ``A = S_s``, ``B = 1``) for ``k·Δ <= bt`` and an exponential part (section 0, ``A = ha``,
    ``B = -(ha - bl)·exp(-g·bt)``).  Returns (table origin per part, A, B, length), two parts per run.
    """
    bt = break_time(s_start, params)
    with np.errstate(over="ignore"):
        expo_b = -(params.ha - params.bl) * np.exp(-params.g * bt)
    n_lin = np.clip(_linear_break_index(bt) + 1, 0, runs.length)
    first_len = np.where(runs.asleep, n_lin, runs.length)
    section = np.where(runs.asleep, 1, 2)
    flat_first = runs.participant * n + runs.first
    origin = np.stack([flat_first - section * n, flat_first], axis=1).ravel()
    coef_a = np.stack([np.where(runs.asleep, s_start, params.la),
                       np.full(s_start.shape, params.ha)], axis=1).ravel()
    coef_b = np.stack([np.where(runs.asleep, 1.0, s_start - params.la), expo_b], axis=1).ravel()
    length = np.stack([first_len, runs.length - first_len], axis=1).ravel()
    return origin, coef_a, coef_b, length


def _evaluate_runs(runs: _Runs, s_start: FloatArray, n_participants: int, n: int,
                   params: TPMParams) -> tuple[FloatArray, FloatArray, BoolArray]:
    """S, W and awake for every epoch: three repeats of per-part coefficients and two table gathers."""
    origin, coef_a, coef_b, length = _run_parts(runs, s_start, n, params)
    index_type = np.int32 if 3 * n_participants * n < 2**31 else np.int64  # int32 halves memory traffic
    idx: NDArray[np.signedinteger[Any]] = np.arange(n_participants * n, dtype=index_type)
    idx -= np.repeat(origin.astype(index_type), length)
    s_tab, w_tab = _epoch_tables(n, params)
    s = s_tab[idx]
    s *= np.repeat(coef_b, length)
    s += np.repeat(coef_a, length)
    return s, w_tab[idx], idx >= 2 * n


def simulate(participant: ArrayLike, sleep_start: ArrayLike, sleep_end: ArrayLike, *,
             n_participants: int, start: int, end: int, params: TPMParams = DEFAULT_PARAMS,
             tz: str = "Europe/London", s0: ArrayLike | None = None) -> TPMResult:
    """Run the TPM for many participants at once on the 5-min grid ``[start, end)``.

    Parameters
    ----------
    participant : array_like of int
        Participant index (0 .. n_participants-1) of each sleep episode.
    sleep_start, sleep_end : array_like of int
        Episode bounds, UTC epoch seconds, half-open; rounded to the nearest 5 min and clipped to the grid.
        Overlapping or touching episodes are merged.
    n_participants : int
        Number of rows of the output.
    start, end : int
        Grid span, UTC epoch seconds; ``start`` must be a multiple of 300 s.  FIPS' inclusive
        ``series.end`` corresponds to ``end = series.end + 300``.
    params : TPMParams
        Model parameters (FIPS defaults).
    tz : str
        IANA zone for the clock hour of C and U (``"UTC"`` reproduces the FIPS reference files).
    s0 : array_like of float, optional
        Initial S per participant (scalar or (n_participants,)); default ``params.s0``.

    Returns
    -------
    TPMResult
        (participant × grid) trajectories.

    Notes
    -----
    Cost is O(P·n) element operations plus a Python loop over the run rank (lock-step across participants).
    Results for one participant do not depend on which other participants are simulated with it.
    """
    if start % EPOCH_S:
        raise ValueError("start must be aligned to the 5-min grid (a multiple of 300 s)")
    n = max(0, -(-(int(end) - int(start)) // EPOCH_S))
    time = int(start) + EPOCH_S * np.arange(n, dtype=np.int64)
    pid = np.asarray(participant, dtype=np.int64).ravel()
    if pid.size and (pid.min() < 0 or pid.max() >= n_participants):
        raise ValueError("participant index out of range 0..n_participants-1")
    i0 = np.clip((round_to_epoch(sleep_start).ravel() - start) // EPOCH_S, 0, n)
    i1 = np.clip((round_to_epoch(sleep_end).ravel() - start) // EPOCH_S, 0, n)
    runs = _build_runs(*_merged_sleep(pid, i0, i1, n), n_participants, n)
    init = np.broadcast_to(np.asarray(params.s0 if s0 is None else s0, np.float64), (n_participants,))
    s_start = _run_start_values(runs, init, n_participants, params)
    s, w, awake = _evaluate_runs(runs, s_start, n_participants, n, params)
    hours = local_clock_hours(time, tz)
    c_row, u_row = circadian(hours, params), ultradian(hours, params)
    s, w, awake = s.reshape(n_participants, n), w.reshape(n_participants, n), awake.reshape(n_participants, n)
    kss = s + w
    kss *= params.kss_beta
    kss += params.kss_intercept + params.kss_beta * (c_row + u_row)
    return _frozen_result(time, hours, awake, s, c_row, u_row, w, kss)


def _frozen_result(time: IntArray, hours: FloatArray, awake: BoolArray, s: FloatArray, c_row: FloatArray,
                   u_row: FloatArray, w: FloatArray, kss: FloatArray) -> TPMResult:
    for arr in (time, hours, awake, s, c_row, u_row, w, kss):
        arr.flags.writeable = False
    shape = s.shape
    return TPMResult(time, hours, awake, s, np.broadcast_to(c_row, shape), np.broadcast_to(u_row, shape), w, kss)
