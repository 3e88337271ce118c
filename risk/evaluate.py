"""Vectorised weekly flag evaluation over all participants of a week (science.md 6.3 and 6.4).

One call evaluates N cohort rows (participant, programme week) at once. Inputs are long frames of the week's
daily features, duty features and duty exposure; each input row is mapped to its cohort row (a ``row`` column,
or the pair ``participant_id, programme_week``) and reduced with ``np.bincount`` / ``np.maximum.at`` over the
cohort axis. No Python loop runs over participants; reason strings are built lazily (:mod:`risk.reasons`).

Level codes: ``-1`` not evaluated, ``0`` green, ``1`` amber, ``2`` red. The overall level is the worst evaluated
criterion that is not ``informative`` (S4 from programme-v2), or ``-1`` ("insufficient_data") when nothing could
be evaluated or when there are fewer than ``min_valid_sleep_days`` valid sleep days **and** no roster (science
6.3). With too few valid sleep days a roster-only amber or red still stands (a quick return is a fact of the
rota, not of the device), but a roster-only green is reported as insufficient data: green claims the officer
slept enough, which an officer whose device was off cannot show.

Missing data is never fatigue (science 6.3, revised 2026-12): a criterion whose data are missing is not
evaluated and never raises the level. Unknown days (no detected episode) arrive as invalid days; a duty whose
time awake is unknown (non-wear since the last sleep) arrives with NaN ``time_awake_end_h`` and does not count
for W4; with ``validity.f1_needs_known_awake`` its exposure does not count for F1 either (exposure rows are
matched to duties by ``row, start_ts``).

Order independence: inputs are sorted by cohort row and day (daily) or start (duties, exposure) before any
floating-point reduction, so the same features in any row order give bit-identical values and flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from risk.programme import CRITERIA, Programme, Threshold

__all__ = ["ALGORITHM_VERSION", "LEVEL_NAMES", "NE", "WeeklyFlags", "grade", "weekly_flags"]

ALGORITHM_VERSION = "risk-flags-1.0"
NE, GREEN, AMBER, RED = -1, 0, 1, 2
ROUND_DECIMALS = 6
LEVEL_NAMES = {NE: "not_evaluated", GREEN: "green", AMBER: "amber", RED: "red"}
OVERALL_NAMES = {NE: "insufficient_data", GREEN: "green", AMBER: "amber", RED: "red"}

F = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]
B = npt.NDArray[np.bool_]

# Reasons a criterion is not evaluated (index stored per row in WeeklyFlags.why).
WHY = ("", "too_few_sleep_days", "too_few_hrv_nights", "calibrating", "calibration_extended", "no_baseline",
       "no_roster", "sri_missing", "no_awake_data", "no_model_output", "too_few_se_nights",
       "duty_features_pending", "awake_unknown")


@dataclass(frozen=True)
class WeeklyFlags:
    """Flags of N cohort rows.

    Attributes
    ----------
    participant_id, programme_week : ndarray
        The cohort keys, in input order.
    overall : ndarray of int8
        Worst evaluated level; ``-1`` means insufficient data.
    values, levels, why : dict of ndarray
        Per criterion: the value (in the threshold's unit, NaN when not computable), the level code, and the
        index into :data:`WHY` of the reason it was not evaluated (0 when evaluated).
    aux : dict of ndarray
        Counts and intermediate quantities used by the reasons (``n_sleep``, ``h1_below``...).
    """

    participant_id: npt.NDArray[Any]
    programme_week: npt.NDArray[np.int64]
    overall: I8
    values: dict[str, F]
    levels: dict[str, I8]
    why: dict[str, I8]
    aux: dict[str, npt.NDArray[Any]]

    def __len__(self) -> int:
        return int(self.overall.shape[0])

    def overall_names(self) -> npt.NDArray[np.str_]:
        """Overall level names (``green``, ``amber``, ``red``, ``insufficient_data``)."""
        names = np.array(["insufficient_data", "green", "amber", "red"])
        return names[self.overall.astype(np.int64) + 1]


def grade(value: F, thr: Threshold) -> I8:
    """Green/amber/red codes of ``value`` against one threshold (NaN grades green; mask it separately).

    ``direction == "below"``: amber when ``value < amber`` (``<=`` if inclusive), red likewise against ``red``;
    ``"above"`` mirrors it. Values are rounded to :data:`ROUND_DECIMALS` first, so that a mean that is a
    threshold up to floating-point noise (7 x 3.9 / 7, float4 columns) grades as the threshold itself.
    """
    value = np.round(value, ROUND_DECIMALS)

    def worse(cut: float) -> B:
        if thr.direction == "below":
            return value <= cut if thr.inclusive else value < cut
        return value >= cut if thr.inclusive else value > cut

    with np.errstate(invalid="ignore"):
        level = np.where(worse(thr.amber), AMBER, GREEN).astype(np.int8)
        if thr.red is not None:
            level[worse(thr.red)] = RED
    return level


def _cohort_keys(cohort: pd.DataFrame) -> tuple[npt.NDArray[np.int64], pd.Index]:
    codes, uniques = pd.factorize(cohort["participant_id"])
    keys = codes.astype(np.int64) * 64 + cohort["programme_week"].to_numpy(np.int64)
    return keys, pd.Index(uniques)


def _rows(frame: pd.DataFrame, cohort_index: pd.Index, people: pd.Index) -> npt.NDArray[np.int64]:
    """Cohort row of every input row (``-1`` when it belongs to no cohort row)."""
    if frame.empty:
        return np.zeros(0, dtype=np.int64)
    if "row" in frame.columns:
        return np.asarray(frame["row"].to_numpy(np.int64), dtype=np.int64)
    pcode = people.get_indexer(frame["participant_id"]).astype(np.int64)
    keys = pcode * 64 + frame["programme_week"].to_numpy(np.int64)
    rows = cohort_index.get_indexer(keys).astype(np.int64)
    rows[pcode < 0] = -1
    return np.asarray(rows, dtype=np.int64)


def _col(frame: pd.DataFrame, name: str, dtype: type = np.float64) -> npt.NDArray[Any]:
    if name not in frame.columns:
        return np.full(len(frame), np.nan if dtype is np.float64 else False, dtype=dtype)
    series = frame[name]
    if dtype is np.bool_:
        return np.asarray(series.astype("boolean").fillna(False).to_numpy(dtype=np.bool_))
    return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _sum(rows: npt.NDArray[np.int64], w: npt.NDArray[Any], n: int) -> F:
    return np.bincount(rows, weights=w.astype(np.float64), minlength=n)[:n].astype(np.float64)


def _max(rows: npt.NDArray[np.int64], v: F, n: int) -> F:
    out = np.full(n, -np.inf)
    ok = np.isfinite(v)
    np.maximum.at(out, rows[ok], v[ok])
    out[np.isneginf(out)] = np.nan
    return out


def _mean(rows: npt.NDArray[np.int64], v: F, mask: B, n: int) -> tuple[F, F]:
    ok = mask & np.isfinite(v)
    cnt = _sum(rows, ok, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _sum(rows, np.where(ok, v, 0.0), n) / cnt, cnt


def _at_last_day(rows: npt.NDArray[np.int64], day: npt.NDArray[np.int64], v: F, n: int,
                 only_day: int | None = None) -> F:
    """Per cohort row, the value on ``only_day`` or else on the latest day with a finite value."""
    ok = np.isfinite(v)
    if only_day is not None:
        ok &= day == only_day
    last = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last, rows[ok], day[ok])
    out = np.full(n, np.nan)
    pick = ok & (day == last[rows])
    out[rows[pick]] = v[pick]
    return out


def _sorted(frame: pd.DataFrame, rows: npt.NDArray[np.int64], *keys: str) -> tuple[pd.DataFrame,
                                                                                   npt.NDArray[np.int64]]:
    """Rows of ``frame`` in a canonical order (cohort row, then ``keys``, then every column) with their rows."""
    if frame.empty:
        return frame, rows
    cols = [k for k in keys if k in frame.columns]
    cols += [c for c in frame.columns if c not in cols and c != "row"]
    order = np.lexsort((*[_sort_key(frame[c]) for c in reversed(cols)], rows))
    return frame.iloc[order], rows[order]


def _sort_key(series: pd.Series) -> npt.NDArray[Any]:
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.inf))
    return np.asarray(series.astype(str).to_numpy())


def _sleep(d: pd.DataFrame, rows: npt.NDArray[np.int64], day: npt.NDArray[np.int64], n: int,
           prog: Programme, res: dict[str, Any]) -> None:
    valid = _col(d, "valid_sleep_day", np.bool_)
    tst_h = _col(d, "tst_min") / 60.0
    s1, n_sleep = _mean(rows, tst_h, valid, n)
    se_pct = _col(d, "se_pct")
    se, n_se = _mean(rows, se_pct, valid, n)
    if prog.validity.missing_days_never_raise:
        res["aux"].update(s1_bound=_best_fill(rows, tst_h, valid, s1, n_sleep, n),
                          s3_bound=_best_fill(rows, se_pct, valid, se, n_se, n))
    debt = _at_last_day(rows, day, _col(d, "debt_net_7d_h"), n, only_day=7)
    deficit = _sum(rows, np.where(valid & np.isfinite(tst_h), prog.need_pop_h - tst_h, 0.0), n)
    fallback = ~np.isfinite(debt)
    debt = np.where(fallback, np.maximum(deficit, 0.0), debt)
    sri = _at_last_day(rows, day, _col(d, "sri_14d"), n, only_day=7)
    enough = n_sleep >= prog.validity.min_valid_sleep_days
    res["S1"] = (s1, enough, 1)
    res["S2"] = (debt, enough, 1)
    res["S3"] = (se, n_se >= prog.validity.min_valid_sleep_days, 10)
    res["S4"] = (sri, np.isfinite(sri), 7)
    res["aux"].update(n_sleep=n_sleep, n_se=n_se, s2_fallback=fallback & enough)


def _best_fill(rows: npt.NDArray[np.int64], v: F, valid: B, mean: F, count: F, n: int) -> F:
    """The week's mean if its missing days (of 7) had the week's best valid value (an optimistic bound)."""
    best = _max(rows, np.where(valid, v, np.nan), n)
    missing = np.maximum(7.0 - count, 0.0)
    with np.errstate(invalid="ignore"):
        return (mean * count + best * missing) / (count + missing)


def _physiology(d: pd.DataFrame, rows: npt.NDArray[np.int64], day: npt.NDArray[np.int64], n: int,
                weeks: npt.NDArray[np.int64], prog: Programme, res: dict[str, Any]) -> None:
    night = _col(d, "valid_hrv_night", np.bool_)
    l7, n_hrv = _mean(rows, _col(d, "ln_rmssd"), night, n)
    rhr, n_rhr = _mean(rows, _col(d, "resting_hr_bpm"), night, n)
    mu = _at_last_day(rows, day, _col(d, "hrv_baseline_mean"), n)
    sd = _at_last_day(rows, day, _col(d, "hrv_baseline_sd"), n)
    rhr_b = _at_last_day(rows, day, _col(d, "rhr_baseline_mean"), n)
    need = prog.validity.min_valid_hrv_nights
    calibrating = weeks <= prog.calibration_weeks()
    extended = weeks * 7 - 6 <= prog.phases.extension_last_day
    phase_why = np.where(calibrating, 3, np.where(extended, 4, 5)).astype(np.int8)
    h1_base = np.isfinite(mu) & (sd > 0) & ~calibrating
    r1_base = np.isfinite(rhr_b) & ~calibrating
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (l7 - mu) / sd
    res["H1"] = (z, h1_base & (n_hrv >= need), np.where(h1_base, 2, phase_why))
    res["R1"] = (rhr - rhr_b, r1_base & (n_rhr >= need), np.where(r1_base, 2, phase_why))
    with np.errstate(invalid="ignore"):
        band = np.round(mu + prog.thresholds["H1"].amber * sd, ROUND_DECIMALS)
        below = np.round(l7, ROUND_DECIMALS) < band
    if prog.validity.missing_days_never_raise:  # missing nights never raise H1 / R1 (programme-v2)
        ln = _col(d, "ln_rmssd")
        with np.errstate(invalid="ignore"):
            below &= np.round(_best_fill(rows, ln, night, l7, n_hrv, n), ROUND_DECIMALS) < band
        rhr_best = -_best_fill(rows, -_col(d, "resting_hr_bpm"), night, -rhr, n_rhr, n)
        res["aux"]["r1_bound"] = rhr_best - rhr_b
    res["aux"].update(n_hrv=n_hrv, n_rhr=n_rhr, h1_l7=l7, h1_mu=mu, h1_sd=sd, rhr_mean=rhr, rhr_base=rhr_b,
                      h1_below_raw=below)


def _awake_unknown_exposure(duties: pd.DataFrame, exposure: pd.DataFrame, rows_d: npt.NDArray[np.int64],
                            rows_e: npt.NDArray[np.int64]) -> B:
    """Exposure rows whose duty (same row and ``start_ts``) has an unknown time awake."""
    if exposure.empty or "start_ts" not in exposure.columns or "start_ts" not in duties.columns:
        return np.zeros(len(exposure), np.bool_)
    unknown = ~np.isfinite(_col(duties, "time_awake_end_h"))
    keys = pd.MultiIndex.from_arrays([rows_d[unknown], duties["start_ts"].astype(str).to_numpy()[unknown]])
    probe = pd.MultiIndex.from_arrays([rows_e, exposure["start_ts"].astype(str).to_numpy()])
    return np.asarray(probe.isin(keys), dtype=np.bool_)


def _roster(duties: pd.DataFrame, exposure: pd.DataFrame, rows_d: npt.NDArray[np.int64],
            rows_e: npt.NDArray[np.int64], n: int, roster: B, res: dict[str, Any], prog: Programme) -> None:
    n_duties = _sum(rows_d, np.ones(len(rows_d)), n)
    awake_h = _col(duties, "time_awake_end_h")
    awake = _max(rows_d, awake_h, n)
    nights = _max(rows_d, _col(duties, "consecutive_nights"), n)
    res["W1"] = (_sum(rows_d, _col(duties, "quick_return", np.bool_), n), roster, 6)
    res["W2"] = (_sum(rows_d, _col(duties, "long_shift", np.bool_), n), roster, 6)
    res["W3"] = (np.where(np.isfinite(nights), nights, 0.0), roster, 6)
    no_duty = n_duties == 0
    res["W4"] = (np.where(no_duty, 0.0, awake), roster & (no_duty | np.isfinite(awake)),
                 np.where(roster, 8, 6))
    ge7, ge8 = _col(exposure, "minutes_kss_ge7"), _col(exposure, "minutes_kss_ge8")
    voided = np.zeros(len(exposure), np.bool_)
    if prog.validity.f1_needs_known_awake:
        voided |= _awake_unknown_exposure(duties, exposure, rows_d, rows_e)
    if prog.validity.f1_ignores_estimated:
        voided |= _col(exposure, "estimated", np.bool_)
    ge7, ge8 = np.where(voided, np.nan, ge7), np.where(voided, np.nan, ge8)
    res["aux"].update(n_duties=n_duties, f1_ge7=ge7, f1_ge8=ge8, f1_rows=rows_e,
                      n_awake_unknown=_sum(rows_d, ~np.isfinite(awake_h), n), f1_voided=_sum(rows_e, voided, n),
                      f1_estimated=_sum(rows_e, _col(exposure, "estimated", np.bool_), n),
                      n_exposed=_sum(rows_e, np.ones(len(rows_e)), n))
    peak = _max(rows_e, ge7, n)
    f1_why = np.where(res["aux"]["f1_voided"] > 0, 12, 9)
    res["F1"] = (np.where(no_duty, 0.0, peak), roster & (no_duty | np.isfinite(peak)), np.where(roster, f1_why, 6))


def _pending(res: dict[str, Any], pending: B) -> None:
    """Roster criteria are not evaluated while the roster has duties the duty features do not cover yet."""
    for code in ("W1", "W2", "W3", "W4", "F1"):
        value, evaluated, why = res[code]
        res[code] = (value, evaluated & ~pending, np.where(pending, 11, why))


def _grade_f1(res: dict[str, Any], thr: Threshold, n: int) -> I8:
    aux = res["aux"]
    rows = aux["f1_rows"]
    with np.errstate(invalid="ignore"):
        amber = aux["f1_ge7"] >= thr.amber
        red = aux["f1_ge8"] >= (thr.red if thr.red is not None else thr.amber)
    n_amber, n_red = _sum(rows, amber, n), _sum(rows, red, n)
    aux.update(f1_n_amber=n_amber, f1_n_red=n_red)
    level = np.where(n_amber >= 1, AMBER, GREEN).astype(np.int8)
    level[n_red >= 1] = RED
    if thr.red_amber_duties is not None:  # programme-v1 only: a block of amber duties made red
        level[n_amber >= thr.red_amber_duties] = RED
    return level


def _prev_below(cohort: pd.DataFrame, keys: npt.NDArray[np.int64], below: B) -> B:
    """H1 state of the previous programme week: from this batch when present, else the supplied column."""
    supplied = _col(cohort, "prev_h1_below", np.bool_)
    prev_row = pd.Index(keys).get_indexer(keys - 1)
    found = prev_row >= 0
    out = supplied.copy()
    out[found] = below[prev_row[found]]
    return out


def weekly_flags(cohort: pd.DataFrame, daily: pd.DataFrame, duties: pd.DataFrame, exposure: pd.DataFrame,
                 programme: Programme) -> WeeklyFlags:
    """Evaluate every criterion of science 6.4 for every cohort row.

    Parameters
    ----------
    cohort : DataFrame
        One row per (``participant_id``, ``programme_week``) to evaluate; optional ``roster_present`` (bool,
        default: any duty in the week) and ``prev_h1_below`` (bool: H1 was below the SWC band last week).
    daily : DataFrame
        The week's ``derived.daily_features`` rows (shared column names) with ``programme_day``, keyed to
        cohort rows by a ``row`` column or by ``participant_id, programme_week``.
    duties : DataFrame
        ``derived.duty_features`` rows of duties starting in the week (same keying).
    exposure : DataFrame
        ``derived.duty_exposure`` rows of those duties (same keying).
    programme : Programme
        Thresholds and validity rules.

    Returns
    -------
    WeeklyFlags
        Values, levels and not-evaluated reasons per criterion, and the overall level.
    """
    n = len(cohort)
    keys, people = _cohort_keys(cohort)
    index = pd.Index(keys)
    weeks = cohort["programme_week"].to_numpy(np.int64)
    res: dict[str, Any] = {"aux": {}}
    rows = _rows(daily, index, people)
    daily, rows = _sorted(daily[rows >= 0], rows[rows >= 0], "programme_day")
    day = _col(daily, "programme_day").astype(np.int64) - 7 * (weeks[rows] - 1)
    _sleep(daily, rows, day, n, programme, res)
    _physiology(daily, rows, day, n, weeks, programme, res)
    rows_d, rows_e = _rows(duties, index, people), _rows(exposure, index, people)
    duties, rows_d = _sorted(duties[rows_d >= 0], rows_d[rows_d >= 0], "start_ts")
    exposure, rows_e = _sorted(exposure[rows_e >= 0], rows_e[rows_e >= 0], "start_ts")
    n_duties = _sum(rows_d, np.ones(len(rows_d)), n)
    roster = (_col(cohort, "roster_present", np.bool_) | (n_duties > 0)) if "roster_present" in cohort \
        else n_duties > 0
    _roster(duties, exposure, rows_d, rows_e, n, roster, res, programme)
    if "n_roster_duties" in cohort:
        _pending(res, n_duties < cohort["n_roster_duties"].to_numpy(np.float64))
    values: dict[str, F] = {}
    levels: dict[str, I8] = {}
    why: dict[str, I8] = {}
    for code in CRITERIA:
        value, evaluated, reason = res[code]
        thr = programme.thresholds[code]
        if code == "F1":
            lv = _grade_f1(res, thr, n)
        elif code == "H1":
            lv = np.where(res["aux"]["h1_below_raw"], AMBER, GREEN).astype(np.int8)
        else:
            lv = grade(value, thr)
        bound = res["aux"].get(f"{code.lower()}_bound")
        if bound is not None:  # missing days never raise the level (programme-v2)
            lv = np.minimum(lv, grade(bound, thr)).astype(np.int8)
        levels[code] = np.where(evaluated, lv, NE).astype(np.int8)
        values[code] = np.where(evaluated, value, np.nan)
        why[code] = np.where(evaluated, 0, reason).astype(np.int8)
    aux = res["aux"]
    below = (levels["H1"] >= AMBER) & aux.pop("h1_below_raw")
    prev = _prev_below(cohort, keys, below)
    escalate = below & (prev | (levels["R1"] >= AMBER))
    levels["H1"][escalate] = RED
    aux.update(h1_below=below, h1_prev_below=prev, roster=roster)
    for k in ("f1_ge7", "f1_ge8", "f1_rows"):
        aux.pop(k)
    deciding = [c for c in CRITERIA if not programme.thresholds[c].informative]
    overall = np.max(np.stack([levels[c] for c in deciding]), axis=0).astype(np.int8)
    few_nights = aux["n_sleep"] < programme.validity.min_valid_sleep_days
    overall[few_nights & (~roster | (overall == GREEN))] = NE
    return WeeklyFlags(cohort["participant_id"].to_numpy(), weeks, overall, values, levels, why, aux)
