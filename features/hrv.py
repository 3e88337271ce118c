"""Time-domain heart-rate variability: RR cleaning, 5-min windows and nightly values for whole cohorts.

Science: ``science.md`` section 3.1 (RR cleaning) and 3.2 (time-domain indices, nightly value); reference
vectors TV-H1 and TV-H2. All RR intervals are in ms, heart rate in bpm.

Cohort layout: beats of many nights are concatenated in one 1-D array; ``offsets`` (length ``n_nights + 1``,
``offsets[0] == 0``, ``offsets[-1] == rr_ms.size``, non-decreasing) marks the nights (CSR layout). Beat ``i`` of a
night ends ``cumsum(rr_ms)[i]`` ms after the night's first beat starts, as in ``raw.rr_runs``.

Cleaning (``accepted_beats``/``clean_segments``) is sequential by definition (Malik against the *last accepted*
beat, re-anchored after 5 rejections). It is computed here without a per-beat Python loop, through a successor
graph of reference states; see ``clean_segments``.

References
----------
Task Force of ESC/NASPE (1996). Heart rate variability: standards of measurement. Circulation 93:1043.
Malik 20 % rule as in hrv-analysis 1.0.6 (Aura-healthcare), but against the last accepted beat with a robust
start and re-anchoring (science 3.1 revised 2026-12).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

RR_LOW_MS, RR_HIGH_MS = 300.0, 2000.0
"""Physiological range of RR intervals (ms), 200-30 bpm (science 3.1, hrv-analysis ``remove_outliers``)."""
MALIK_FRACTION = 0.20
"""Malik rule: interval rejected when ``|RR_i - RR_ref| > 0.20 * RR_ref`` (science 3.1)."""
REANCHOR_AFTER = 5
"""Reference = median of the first 5 in-range intervals; re-anchored after 5 consecutive rejections (3.1)."""
WINDOW_MS = 300_000.0
"""Short-term window length, 5 min (Task Force 1996)."""
MIN_ACCEPTED_FRACTION, MIN_PAIRS, MIN_WINDOWS = 0.80, 60, 6
"""Window valid with >= 80 % accepted beats and >= 60 pairs; night valid with >= 6 windows (science 3.1-3.2 [ENG])."""
NN50_MS = 50.0


@dataclass(frozen=True, slots=True)
class TimeDomain:
    """Time-domain HRV of one clean NN series (science 3.2).

    Attributes
    ----------
    rmssd_ms, ln_rmssd, sdnn_ms : float
        ``sqrt(mean(d**2))`` over successive differences ``d`` (ms), its ln, SD of NN with ddof 1 (ms).
    pnn50_pct : float
        ``100 * #{|d| > 50 ms} / M`` with ``M = N - 1`` differences (%), as hrv-analysis 1.0.6.
    mean_hr_bpm : float
        ``60000 / mean(NN)`` (bpm); hrv-analysis' ``mean_hr`` is ``mean(60000 / NN)`` instead.
    n_nn : int
        Number of intervals ``N``.
    """

    rmssd_ms: float
    ln_rmssd: float
    sdnn_ms: float
    pnn50_pct: float
    mean_hr_bpm: float
    n_nn: int


def time_domain(rr_ms: npt.ArrayLike) -> TimeDomain:
    """Time-domain HRV of an already clean 1-D NN series (Task Force 1996; science 3.2, TV-H1).

    Parameters
    ----------
    rr_ms : array_like
        Clean, consecutive NN intervals (ms); every successive pair is used.

    Returns
    -------
    TimeDomain
        RMSSD, lnRMSSD, SDNN (ddof 1), pNN50 (divided by the number of differences ``N - 1``) and
        mean HR ``60000 / mean(NN)``. Indices that need more intervals than given are NaN.
    """
    x = np.asarray(rr_ms, dtype=np.float64).ravel()
    n = x.size
    d = np.diff(x)
    nan = float("nan")
    rmssd = float(np.sqrt(np.mean(d * d))) if d.size else nan
    with np.errstate(divide="ignore"):
        ln_rmssd = float(np.log(rmssd)) if d.size else nan
    sdnn = float(np.std(x, ddof=1)) if n > 1 else nan
    pnn50 = float(100.0 * np.count_nonzero(np.abs(d) > NN50_MS) / d.size) if d.size else nan
    mean_hr = float(60000.0 / np.mean(x)) if n else nan
    return TimeDomain(rmssd, ln_rmssd, sdnn, pnn50, mean_hr, n)


def accepted_beats(rr_ms: npt.ArrayLike) -> Bool:
    """Default cleaning mask of one series: range 300-2000 ms, then Malik 20 % vs the reference (science 3.1).

    Parameters
    ----------
    rr_ms : array_like
        Raw RR intervals (ms) of one recording; NaN is treated as out of range.

    Returns
    -------
    numpy.ndarray of bool
        ``True`` for accepted intervals. No interpolation (science 3.1 default; TV-H2).

    See Also
    --------
    clean_segments : the same rule for many nights at once, and the algorithm.
    """
    x = np.asarray(rr_ms, dtype=np.float64).ravel()
    return clean_segments(x, np.array([0, x.size], dtype=np.int64))


def clean_segments(rr_ms: npt.ArrayLike, offsets: npt.ArrayLike) -> Bool:
    """Cleaning mask for many nights at once (CSR ``offsets``); each night restarts the rule.

    Rule (science 3.1, revised 2026-12 [ENG]): (1) reject ``RR < 300`` or ``RR > 2000`` ms (NaN rejected);
    (2) among the in-range intervals ``y`` of a night, accept ``y_i`` iff ``|y_i - ref| <= 0.20 * ref``. The
    reference starts at the median of the night's first 5 in-range intervals (so an ectopic first beat is
    rejected instead of becoming the reference) and is the last accepted interval afterwards; after
    :data:`REANCHOR_AFTER` (5) consecutive rejections it re-anchors to the median of those 5 rejected
    intervals (a level shift or a noise burst can never lock out the rest of the night).

    Algorithm (loop-free over beats, nights and participants). The rule is a walk on a functional graph of
    *reference states*: "accepted ``j``" (reference ``y_j``, next candidate ``j + 1``), "anchor ``q``"
    (reference ``median(y[q-5:q])``, next candidate ``q``) and one "start" state per night (reference the
    median of the first 5, next candidate the first interval). From a state with next candidate ``q`` the
    walk goes to "accepted ``i``" for the first ``i`` in ``q .. q+4`` inside the band, else to "anchor
    ``q + 5``" (or stops at the night's end). Every successor needs at most 5 vectorised comparisons. Most
    accepted states step to ``j + 1``; the walk is enumerated on the graph of the other ("break") states only,
    by pointer doubling (:func:`_enumerate_paths`), and accepted runs between breaks are expanded back with a
    difference array. Anchor states are created lazily, only where a walk can reach them. Equality with the
    plain sequential loop is checked with Hypothesis (tests/features).

    Parameters
    ----------
    rr_ms : array_like
        Concatenated raw RR intervals (ms).
    offsets : array_like of int
        Night boundaries, length ``n_nights + 1``.

    Returns
    -------
    numpy.ndarray of bool
        Accepted mask, same length as ``rr_ms``.
    """
    x = np.asarray(rr_ms, dtype=np.float64).ravel()
    off = np.asarray(offsets, dtype=np.int64)
    in_range = (x >= RR_LOW_MS) & (x <= RR_HIGH_MS)
    pos = np.flatnonzero(in_range)
    out = np.zeros(x.size, dtype=np.bool_)
    if pos.size == 0:
        return out
    c_off = np.concatenate(([0], np.cumsum(in_range, dtype=np.int64)))[off]
    out[pos[_walk_mask(x[pos], c_off)]] = True
    return out


def _in_band(candidate: F64, ref: F64) -> Bool:
    """Malik acceptance ``|candidate - ref| <= 0.2 * ref`` (the single definition used everywhere)."""
    return np.abs(candidate - ref) <= MALIK_FRACTION * ref


def _median5(y: F64, lo: I64) -> F64:
    """Median of the 5 intervals ``y[lo : lo + 5]`` (all inside the night) for every ``lo``."""
    if lo.size == 0:
        return np.zeros(0)
    window = y[lo[:, None] + np.arange(REANCHOR_AFTER)]
    return np.asarray(np.partition(window, REANCHOR_AFTER // 2, axis=1)[:, REANCHOR_AFTER // 2], dtype=np.float64)


def _start_refs(y: F64, starts: I64, end: I64) -> F64:
    """Reference of each night's start: median of its first (up to) 5 in-range intervals."""
    full = end - starts >= REANCHOR_AFTER
    ref = np.empty(starts.size)
    ref[full] = _median5(y, starts[full])
    for k in np.flatnonzero(~full).tolist():  # nights of fewer than 5 intervals (rare, tiny)
        ref[k] = float(np.median(y[starts[k]:end[k]]))
    return ref


def _targets(y: F64, ref: F64, q: I64, end: I64) -> I64:
    """Where the walk goes from a state with reference ``ref`` and next candidate ``q`` (``end`` = night end):
    the first ``i`` in ``q .. q+4`` inside the band; else ``n + q + 5`` (anchor ``q + 5``) after 5 misses when
    candidates remain; else ``-1`` (the night ends)."""
    n = y.size
    hit = np.full(q.size, -1, dtype=np.int64)
    for k in range(REANCHOR_AFTER - 1, -1, -1):  # fixed 5 steps, backwards so the first hit wins
        cand = q + k
        ok = (cand < end) & _in_band(y[np.minimum(cand, n - 1)], ref)
        hit[ok] = cand[ok]
    anchor = q + REANCHOR_AFTER
    return np.where(hit >= 0, hit, np.where(anchor < end, n + anchor, -1))


def _anchor_targets(y: F64, first: I64, night_end: I64, c_off: I64) -> tuple[I64, I64]:
    """Anchors reachable from the targets ``first`` (lazily, round by round) and their targets.

    Chains of anchors are short on real nights; after 16 rounds every anchor of the nights still pending is
    resolved at once, so a crafted night cannot cost one Python round per 5 beats.
    """
    n = y.size
    known_q, known_t = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    pending = np.unique(first[first >= n] - n)
    done = np.zeros(0, np.int64)
    for round_ in range(n + 1):
        if pending.size == 0:
            break
        if round_ == 16:
            night = np.unique(np.searchsorted(c_off, pending, side="right") - 1)
            lo, hi = c_off[night] + REANCHOR_AFTER, c_off[night + 1]
            every = np.concatenate([np.arange(a, b) for a, b in zip(lo.tolist(), hi.tolist(), strict=True)])
            pending = np.setdiff1d(every, done)
        t = _targets(y, _median5(y, pending - REANCHOR_AFTER), pending, night_end[pending])
        known_q.append(pending)
        known_t.append(t)
        done = np.union1d(done, pending)
        pending = np.setdiff1d(np.unique(t[t >= n] - n), done)
    q, t = np.concatenate(known_q), np.concatenate(known_t)
    order = np.argsort(q)
    return q[order], t[order]


def _walk_mask(y: F64, c_off: I64) -> Bool:
    """Accepted mask of the in-range series ``y`` whose nights are delimited by ``c_off``."""
    n = y.size
    lengths = np.diff(c_off)
    night_end = np.repeat(c_off[1:], lengths)
    starts = c_off[:-1][lengths > 0]
    step_ok = np.zeros(n, dtype=np.bool_)
    step_ok[:-1] = _in_band(y[1:], y[:-1])
    step_ok[c_off[1:][lengths > 0] - 1] = False
    br = np.flatnonzero(~step_ok)  # accepted states that do not simply step to j + 1 (each night's last is one)
    t_br = _targets(y, y[br], br + 1, night_end[br])
    t_st = _targets(y, _start_refs(y, starts, c_off[1:][lengths > 0]), starts, c_off[1:][lengths > 0])
    anchors, t_an = _anchor_targets(y, np.concatenate((t_br, t_st)), night_end, c_off)
    # compact graph: break i -> i, anchor k -> m + k, start k -> m + a + k, sentinel M
    m, a = br.size, anchors.size
    sentinel = m + a + starts.size
    target = np.concatenate((t_br, t_an, t_st))
    node = np.full(target.size + 1, sentinel, dtype=np.int64)
    acc = (target >= 0) & (target < n)
    anc = target >= n
    node[:-1][acc] = np.searchsorted(br, target[acc])  # an accepted target runs on to the next break
    node[:-1][anc] = m + np.searchsorted(anchors, target[anc] - n)
    path = _enumerate_paths(node, m + a + np.arange(starts.size))
    entered = np.zeros(target.size, dtype=np.bool_)
    entered[path] = True
    lo = target[entered & acc]
    hi = br[np.searchsorted(br, lo)]
    diff = np.bincount(lo, minlength=n + 1) - np.bincount(hi + 1, minlength=n + 1)
    mask: Bool = np.cumsum(diff[:n]) > 0
    return mask


def _enumerate_paths(succ: I64, roots: I64) -> I64:
    """All nodes on the paths from ``roots`` in a forward functional graph (sentinel ``succ.size - 1``).

    Pointer doubling: with ``J_k = succ^(2^k)``, ``path[2^k : 2^(k+1)] = J_k[path[0 : 2^k]]``.
    """
    sentinel = succ.size - 1
    known = roots
    jump = succ
    while True:
        new = jump[known]
        new = new[new != sentinel]
        if new.size == 0:
            return known
        known = np.concatenate((known, new))
        jump = jump[jump]


@dataclass(frozen=True, slots=True)
class WindowHRV:
    """Per-window HRV of many nights (5-min grid from each night's first beat; science 3.1-3.2).

    Attributes
    ----------
    night, n_beats, n_accepted, n_pairs : numpy.ndarray of int64
        Night index; beats ending in the window; accepted beats; valid pairs (both accepted, consecutive,
        same window, no recording gap).
    rmssd_ms, sdnn_ms, pnn50_pct, mean_hr_bpm : numpy.ndarray of float64
        As in `time_domain` (SDNN, mean HR over accepted beats; RMSSD, pNN50 over valid pairs); NaN if none.
    valid : numpy.ndarray of bool
        ``n_accepted >= 0.8 n_beats`` and ``n_pairs >= 60``.
    """

    night: I64
    n_beats: I64
    n_accepted: I64
    n_pairs: I64
    rmssd_ms: F64
    sdnn_ms: F64
    pnn50_pct: F64
    mean_hr_bpm: F64
    valid: Bool


@dataclass(frozen=True, slots=True)
class NightlyHRV:
    """Nightly HRV: median of valid 5-min windows (science 3.2 default).

    Attributes
    ----------
    rmssd_ms, ln_rmssd, sdnn_ms, pnn50_pct, mean_hr_bpm : numpy.ndarray of float64
        Median over the night's valid windows (``ln_rmssd = ln(median RMSSD)``); NaN when the night is invalid.
    n_valid_windows : numpy.ndarray of int64
    accepted_fraction : numpy.ndarray of float64
        Accepted / all beats of the night (NaN for an empty night).
    valid : numpy.ndarray of bool
        ``n_valid_windows >= 6`` (``valid_hrv_night``).
    """

    rmssd_ms: F64
    ln_rmssd: F64
    sdnn_ms: F64
    pnn50_pct: F64
    mean_hr_bpm: F64
    n_valid_windows: I64
    accepted_fraction: F64
    valid: Bool


def window_hrv(rr_ms: npt.ArrayLike, offsets: npt.ArrayLike, accepted: Bool | None = None,
               beat_end_ms: npt.ArrayLike | None = None, gap_tol_ms: float = 20.0) -> WindowHRV:
    """Time-domain HRV of every 5-min window of many nights, with bincount reductions (no loops).

    Window of beat ``i`` = ``floor(t_i / 300000)`` with ``t_i`` its end time (ms) since its night's first beat
    started (``cumsum(rr)`` within the night, or ``beat_end_ms`` when given). A successive pair ``(i-1, i)``
    is valid when both beats are accepted, they lie in the same window and night, and (with ``beat_end_ms``)
    ``|t_i - t_(i-1) - rr_i| <= gap_tol_ms`` (no recording gap; no interpolation, science 3.1).

    Parameters
    ----------
    rr_ms : array_like
        Concatenated raw RR intervals (ms).
    offsets : array_like of int
        Night boundaries (CSR), length ``n_nights + 1``.
    accepted : numpy.ndarray of bool, optional
        Cleaning mask; default `clean_segments`.
    beat_end_ms : array_like, optional
        Beat end instants (ms, any origin); default derived from ``cumsum(rr_ms)``.
    gap_tol_ms : float
        Gap tolerance (ms) used only with ``beat_end_ms`` [ENG].

    Returns
    -------
    WindowHRV
    """
    x = np.asarray(rr_ms, dtype=np.float64).ravel()
    off = np.asarray(offsets, dtype=np.int64)
    acc = clean_segments(x, off) if accepted is None else np.asarray(accepted, dtype=np.bool_)
    lengths = np.diff(off)
    first = off[:-1][lengths > 0]
    dur = np.where(np.isfinite(x), x, 0.0)
    t = np.cumsum(dur) if beat_end_ms is None else np.array(beat_end_ms, dtype=np.float64).ravel()
    t0 = t[first] - dur[first]
    del dur
    t -= np.repeat(t0, lengths[lengths > 0])
    w = np.floor_divide(t, WINDOW_MS).astype(np.int64)
    del t
    n_win = np.zeros(lengths.size, dtype=np.int64)
    n_win[lengths > 0] = w[off[1:][lengths > 0] - 1] + 1
    w_off = np.concatenate(([0], np.cumsum(n_win)))
    w += np.repeat(w_off[:-1], lengths)
    return _reduce_windows(x, acc, w, w_off, _pair_mask(x, acc, w, beat_end_ms, gap_tol_ms))


def _pair_mask(x: F64, acc: Bool, gid: I64, beat_end_ms: npt.ArrayLike | None, tol: float) -> Bool:
    """Valid successive pairs ``(i-1, i)``, indexed by ``i - 1``."""
    ok: Bool = acc[1:] & acc[:-1] & (gid[1:] == gid[:-1])
    if beat_end_ms is not None:
        t = np.asarray(beat_end_ms, dtype=np.float64).ravel()
        ok &= np.abs(np.diff(t) - x[1:]) <= tol
    return ok


def _reduce_windows(x: F64, acc: Bool, gid: I64, w_off: I64, pair_ok: Bool) -> WindowHRV:
    """Sums per global window id, then the window indices."""
    nw = int(w_off[-1])
    n_beats = np.bincount(gid, minlength=nw)
    ga, xa = gid[acc], x[acc]
    n_acc = np.bincount(ga, minlength=nw)
    s1 = np.bincount(ga, weights=xa, minlength=nw)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n_acc
        dev = xa - mean[ga]
        sdnn = np.sqrt(np.bincount(ga, weights=dev * dev, minlength=nw) / (n_acc - 1))
        sdnn[n_acc < 2] = np.nan
        del dev, ga, xa
        gp = gid[1:][pair_ok]
        d = np.diff(x)[pair_ok]
        n_pairs = np.bincount(gp, minlength=nw)
        rmssd = np.sqrt(np.bincount(gp, weights=d * d, minlength=nw) / n_pairs)
        pnn50 = 100.0 * np.bincount(gp, weights=np.abs(d) > NN50_MS, minlength=nw) / n_pairs
        valid = (n_acc >= MIN_ACCEPTED_FRACTION * n_beats) & (n_pairs >= MIN_PAIRS)
        return WindowHRV(np.repeat(np.arange(w_off.size - 1), np.diff(w_off)), n_beats, n_acc, n_pairs,
                         rmssd, sdnn, pnn50, 60000.0 / mean, valid)


def nightly_hrv(rr_ms: npt.ArrayLike, offsets: npt.ArrayLike, accepted: Bool | None = None,
                beat_end_ms: npt.ArrayLike | None = None) -> NightlyHRV:
    """Nightly HRV of many nights: cleaning, 5-min windows, median of valid windows (science 3.2 default).

    ``RMSSD_night = median`` of valid window RMSSDs (the science default, [ENG]: median instead of Oura's mean
    for robustness); SDNN, pNN50 and mean HR likewise; ``lnRMSSD_night = ln(RMSSD_night)``; the night is valid
    with >= 6 valid windows, else every index is NaN (NaN means "not computable").

    Parameters
    ----------
    rr_ms : array_like
        Concatenated raw RR intervals (ms) of the main sleep of each night.
    offsets : array_like of int
        Night boundaries (CSR), length ``n_nights + 1``.
    accepted, beat_end_ms : optional
        As in `window_hrv`.

    Returns
    -------
    NightlyHRV
        One entry per night.
    """
    off = np.asarray(offsets, dtype=np.int64)
    win = window_hrv(rr_ms, off, accepted, beat_end_ms)
    n_nights = off.size - 1
    night = win.night[win.valid]
    n_valid = np.bincount(night, minlength=n_nights)
    ok = n_valid >= MIN_WINDOWS
    med = [_median_by_group(v[win.valid], night, n_valid, ok) for v in
           (win.rmssd_ms, win.sdnn_ms, win.pnn50_pct, win.mean_hr_bpm)]
    n_b = np.bincount(win.night, weights=win.n_beats, minlength=n_nights)
    n_a = np.bincount(win.night, weights=win.n_accepted, minlength=n_nights)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = n_a / n_b
        ln = np.log(med[0])
    return NightlyHRV(med[0], ln, med[1], med[2], med[3], n_valid, frac, ok)


def _median_by_group(values: F64, group: I64, counts: I64, keep: Bool) -> F64:
    """Median of ``values`` per group (groups sorted ascending in ``group``); NaN where not ``keep``."""
    order = np.lexsort((values, group))
    v = values[order]
    start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    out = np.full(counts.size, np.nan)
    lo = start[keep] + (counts[keep] - 1) // 2
    hi = start[keep] + counts[keep] // 2
    out[keep] = 0.5 * (v[lo] + v[hi])
    return out
