"""True exposure per criterion from the simulator's truth tables (pure; definitions in docs/validation.md).

Every criterion is graded with the programme's own thresholds (:func:`risk.evaluate.grade`) on the *true*
quantity over the same programme week (days ``7(w-1)+1 .. 7w``; duties by their local start date):

* S1 mean true TST of the week's 7 days; S2 true 7-day net debt against the officer's true need on day 7;
  S3 mean true efficiency of the week's main sleeps;
* H1 7-day mean true lnRMSSD against the mean and SD of the true nightly values of days 1-14 (red: below the band
  this week and last week, or with R1 amber or red); R1 7-day mean true RHR minus its days 1-14 mean; both not
  evaluated in calibration weeks, as the flags;
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
import pandas as pd

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


def _physiology(d: pd.DataFrame, prog: Programme) -> pd.DataFrame:
    calib = d[d["programme_day"] <= prog.phases.calibration_last_day]
    base = calib.groupby("staff_ref").agg(mu=("ln_rmssd", "mean"), sd=("ln_rmssd", "std"),
                                          rhr0=("resting_hr_bpm", "mean"))
    wk = d.groupby(["staff_ref", "programme_week"]).agg(l7=("ln_rmssd", "mean"), rhr=("resting_hr_bpm", "mean"))
    wk = wk.join(base, on="staff_ref")
    z = ((wk["l7"] - wk["mu"]) / wk["sd"]).to_numpy(np.float64)
    below = z < prog.thresholds["H1"].amber
    r1 = grade((wk["rhr"] - wk["rhr0"]).to_numpy(np.float64), prog.thresholds["R1"])
    weeks = wk.index.get_level_values("programme_week").to_numpy()
    prev = pd.Series(below, index=wk.index).groupby(level="staff_ref").shift(1).fillna(False).to_numpy(bool)
    h1 = np.where(below, np.where(prev | (r1 >= AMBER), RED, AMBER), GREEN)
    calibrating = weeks <= prog.calibration_weeks()
    return pd.DataFrame({"H1": np.where(calibrating, NE, h1), "R1": np.where(calibrating, NE, r1)},
                        index=wk.index)


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
    g = days.groupby(["staff_ref", "programme_week"])
    sleep = g.agg(s1=("tst_min", "mean"), se=("main_se_pct", "mean"), day=("programme_day", "max"))
    last = days[days["programme_day"] % 7 == 0].set_index(["staff_ref", "programme_week"])["debt_net_7d_h"]
    out = pd.DataFrame({
        "S1": grade(sleep["s1"].to_numpy(np.float64) / 60.0, prog.thresholds["S1"]),
        "S2": grade(last.reindex(sleep.index).to_numpy(np.float64), prog.thresholds["S2"]),
        "S3": grade(sleep["se"].to_numpy(np.float64), prog.thresholds["S3"])}, index=sleep.index)
    out = out.join(_physiology(days, prog)).join(_roster(truth["duties"], start, prog, tz))
    roster_cols = ["W1", "W2", "W3", "W4", "F1"]
    out[roster_cols] = out[roster_cols].fillna(GREEN)  # a week without duties is green on the roster criteria
    out = out.astype(np.int8)
    out["overall"] = out[list(VALIDATED)].max(axis=1).astype(np.int8)
    risk = truth["participants"].set_index("staff_ref")["at_risk"]
    out["at_risk"] = risk.reindex(out.index.get_level_values("staff_ref")).to_numpy(bool)
    return out
