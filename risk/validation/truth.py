"""True exposure per criterion from the simulator's truth tables (pure; definitions in docs/validation.md).

Every criterion is graded with the programme's own thresholds (:func:`risk.evaluate.grade`) on the *true*
quantity over the same programme week (days ``7(w-1)+1 .. 7w``; duties by their local start date):

* S1 mean true TST of the week's 7 days; S2 the 7-day net debt on day 7 with the programme's own need
  definition (science 2.2-2.3: :mod:`features.debt` applied to the true sleep and the true roster); S3 mean true
  efficiency of the week's main sleeps;
* H1 / R1 the programme's own baseline (science 3.4, 6.2: :func:`features.baseline.personal_baseline`) on the
  true nightly lnRMSSD and resting HR, and the 7-day true means (H1 red: below the band this week and last week,
  or with R1 amber or red); not evaluated in calibration weeks, as the flags;
* W1 / W2 / W3 counts from the true roster (quick returns, long duties, longest night run);
* W4 longest true time awake at a duty's end (true sleep episodes >= 30 min);
* F1 true predicted sleepiness: a duty with >= amber minutes at KSS >= 7 (amber) or >= red minutes at KSS >= 8
  (red), the three-process model driven by the true sleep (programme-v1 adds its "n amber duties" rule).

S4 is informative (it never sets a level) and is not validated. The true overall level is the worst
non-informative criterion.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.baseline import personal_baseline
from features.debt import free_sleep_days, personal_sleep_need, sleep_debt, sleep_need_series
from features.params import FeatureParams
from features.roster import duty_features, shift_codes
from risk.evaluate import AMBER, GREEN, NE, RED, grade
from risk.programme import Programme

__all__ = ["VALIDATED", "true_levels"]

#: Criteria with a ground truth (S4 is informative only).
VALIDATED = ("S1", "S2", "S3", "H1", "R1", "W1", "W2", "W3", "W4", "F1")


def _weekly(days: pd.DataFrame, n_weeks: int) -> pd.DataFrame:
    d = days[(days["programme_day"] >= 1) & (days["programme_day"] <= 7 * n_weeks)].copy()
    d["programme_week"] = (d["programme_day"] - 1) // 7 + 1
    return d


def _grid(days: pd.DataFrame, column: str, people: pd.Index, n_days: int) -> npt.NDArray[np.float64]:
    """``(P, n_days)`` array of a truth column (programme day 1 -> column 0)."""
    out = np.full((len(people), n_days), np.nan)
    p = people.get_indexer(days["staff_ref"])
    d = days["programme_day"].to_numpy(np.int64) - 1
    ok = (p >= 0) & (d >= 0) & (d < n_days)
    out[p[ok], d[ok]] = days[column].to_numpy(np.float64)[ok]
    return out


def _week_end(grid: npt.NDArray[np.float64], people: pd.Index, n_weeks: int) -> pd.Series:
    """Value on day 7 of every programme week, indexed (staff_ref, programme_week)."""
    cols = np.arange(1, n_weeks + 1) * 7 - 1
    cols = cols[cols < grid.shape[1]]
    idx = pd.MultiIndex.from_product([people, np.arange(1, cols.size + 1)], names=["staff_ref", "programme_week"])
    return pd.Series(grid[:, cols].ravel(), index=idx)


def _need_debt(days: pd.DataFrame, duties: pd.DataFrame, people: pd.Index, start: date, prog: Programme,
               tz: str) -> pd.Series:
    """S2 truth: the programme's own need and debt definitions (science 2.2-2.3) applied to the true sleep."""
    n_days = prog.weeks * 7
    tst_h = _grid(days, "tst_min", people, n_days) / 60.0
    on = np.zeros_like(tst_h, dtype=bool)
    night = np.zeros_like(tst_h, dtype=bool)
    local = pd.to_datetime(duties["start_ts"].dt.tz_convert(tz).dt.date)
    d = (local - pd.Timestamp(start)).dt.days.to_numpy()
    p = people.get_indexer(duties["staff_ref"])
    ok = (p >= 0) & (d >= 0) & (d < n_days)
    on[p[ok], d[ok]] = True
    night[p[ok], d[ok]] |= duties["night_duty"].to_numpy(bool)[ok]
    fp = FeatureParams.of(prog)
    need = sleep_need_series(personal_sleep_need(tst_h, free_sleep_days(on, night), calib_days=fp.calib_days,
                                                 max_calib_days=fp.max_calib_days, min_valid=fp.calib_min_nights,
                                                 need_pop_h=fp.need_pop_h), n_days, need_pop_h=fp.need_pop_h)
    return _week_end(sleep_debt(tst_h, need).net_7d_h, people, prog.weeks)


def _physiology(days: pd.DataFrame, people: pd.Index, prog: Programme) -> pd.DataFrame:
    """H1/R1 truth: the programme's baseline (science 3.4, 6.2) and weekly means on the true nightly state."""
    n_days = prog.weeks * 7
    fp = FeatureParams.of(prog)
    calib = {"calib_days": fp.calib_days, "max_calib_days": fp.max_calib_days,
             "calib_min_nights": fp.calib_min_nights}
    ln = _grid(days, "ln_rmssd", people, n_days)
    rhr = _grid(days, "resting_hr_bpm", people, n_days)
    bh, br = personal_baseline(ln, **calib), personal_baseline(rhr, **calib)
    weekly = n_days // 7
    l7 = ln[:, : weekly * 7].reshape(len(people), weekly, 7).mean(axis=2)
    r7 = rhr[:, : weekly * 7].reshape(len(people), weekly, 7).mean(axis=2)
    mu, sd = _week_end(bh.mean, people, weekly).to_numpy(), _week_end(bh.sd, people, weekly).to_numpy()
    rb = _week_end(br.mean, people, weekly).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        below = (l7.ravel() - mu) / sd < prog.thresholds["H1"].amber
    r1 = grade(r7.ravel() - rb, prog.thresholds["R1"])
    idx = _week_end(bh.mean, people, weekly).index
    prev = pd.Series(below, index=idx).groupby(level="staff_ref").shift(1).fillna(False).to_numpy(bool)
    h1 = np.where(below, np.where(prev | (r1 >= AMBER), RED, AMBER), GREEN)
    weeks = idx.get_level_values("programme_week").to_numpy()
    no_base = weeks <= prog.calibration_weeks()
    return pd.DataFrame({"H1": np.where(no_base | ~np.isfinite(mu), NE, h1),
                         "R1": np.where(no_base | ~np.isfinite(rb), NE, r1)}, index=idx)


def _roster(duties: pd.DataFrame, start: date, prog: Programme, tz: str) -> pd.DataFrame:
    du = duties.sort_values(["staff_ref", "start_ts"]).reset_index(drop=True)
    codes, _ = pd.factorize(du["staff_ref"])
    s = du["start_ts"].astype("int64").to_numpy() // 10**9
    e = du["end_ts"].astype("int64").to_numpy() // 10**9
    feats = duty_features(codes, s, e, shift_codes(du["shift_type"].to_numpy(str)), tz=tz)
    local = du["start_ts"].dt.tz_convert(tz).dt.date
    du["programme_week"] = ((pd.to_datetime(local) - pd.Timestamp(start)).dt.days // 7 + 1).to_numpy()
    du["nights"] = feats.consecutive_nights
    f1 = prog.thresholds["F1"]
    red_min = f1.red if f1.red is not None else f1.amber
    du["f1_amber"] = du["true_minutes_kss_ge7"].fillna(0) >= f1.amber
    du["f1_red"] = du["true_minutes_kss_ge8"].fillna(0) >= red_min
    g = du[(du["programme_week"] >= 1) & (du["programme_week"] <= prog.weeks)].groupby(
        ["staff_ref", "programme_week"])
    wk = g.agg(w1=("quick_return", "sum"), w2=("long_shift", "sum"), w3=("nights", "max"),
               w4=("true_time_awake_h", "max"), n_amber=("f1_amber", "sum"), n_red=("f1_red", "sum"))
    f1_level = np.where(wk["n_red"] >= 1, RED, np.where(wk["n_amber"] >= 1, AMBER, GREEN))
    if f1.red_amber_duties is not None:
        f1_level = np.where(wk["n_amber"] >= f1.red_amber_duties, RED, f1_level)
    return pd.DataFrame({
        "W1": grade(wk["w1"].to_numpy(np.float64), prog.thresholds["W1"]),
        "W2": grade(wk["w2"].to_numpy(np.float64), prog.thresholds["W2"]),
        "W3": grade(wk["w3"].to_numpy(np.float64), prog.thresholds["W3"]),
        "W4": grade(wk["w4"].fillna(0).to_numpy(np.float64), prog.thresholds["W4"]),
        "F1": f1_level}, index=wk.index)


def true_levels(truth: dict[str, pd.DataFrame], prog: Programme, start: date,
                tz: str = "Europe/London") -> pd.DataFrame:
    """True level code (-1 .. 2) per criterion and overall, one row per (staff_ref, programme_week).

    Parameters
    ----------
    truth : dict of DataFrame
        ``participants``, ``days`` and ``duties`` of :func:`simulators.truth.truth_frames`.
    prog : Programme
        Thresholds and calendar.
    start : date
        Programme day 1 (the simulation's start date).
    tz : str
        Local zone of programme weeks.

    Returns
    -------
    DataFrame
        Index (staff_ref, programme_week); columns :data:`VALIDATED`, ``overall`` and ``at_risk``.
    """
    days = _weekly(truth["days"], prog.weeks)
    people = pd.Index(truth["participants"]["staff_ref"])
    g = days.groupby(["staff_ref", "programme_week"])
    sleep = g.agg(s1=("tst_min", "mean"), se=("main_se_pct", "mean"), day=("programme_day", "max"))
    debt = _need_debt(days, truth["duties"], people, start, prog, tz)
    out = pd.DataFrame({
        "S1": grade(sleep["s1"].to_numpy(np.float64) / 60.0, prog.thresholds["S1"]),
        "S2": grade(debt.reindex(sleep.index).to_numpy(np.float64), prog.thresholds["S2"]),
        "S3": grade(sleep["se"].to_numpy(np.float64), prog.thresholds["S3"])}, index=sleep.index)
    out = out.join(_physiology(days, people, prog)).join(_roster(truth["duties"], start, prog, tz))
    roster_cols = ["W1", "W2", "W3", "W4", "F1"]
    out[roster_cols] = out[roster_cols].fillna(GREEN)  # a week without duties is green on the roster criteria
    out = out.astype(np.int8)
    out["overall"] = out[list(VALIDATED)].max(axis=1).astype(np.int8)
    risk = truth["participants"].set_index("staff_ref")["at_risk"]
    out["at_risk"] = risk.reindex(out.index.get_level_values("staff_ref")).to_numpy(bool)
    return out
