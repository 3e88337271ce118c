"""Missing data is never fatigue (science 6.3 revised 2026-12): each rule on its own, and S4 never escalating."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.evaluate import NE, RED, WeeklyFlags, weekly_flags
from risk.programme import CRITERIA, load_programme
from risk.reasons import criteria_record

PROG = load_programme()
NAN = float("nan")
WEEK = 6


def _week(daily: list[dict[str, Any]], duties: list[dict[str, Any]] | None = None,
          exposure: list[dict[str, Any]] | None = None, roster: bool = True) -> WeeklyFlags:
    pid = uuid.uuid4()
    first = 7 * (WEEK - 1) + 1
    rows = [{"participant_id": pid, "programme_week": WEEK, "programme_day": first + k, **d}
            for k, d in enumerate(daily)]
    cohort = pd.DataFrame({"participant_id": [pid], "programme_week": [WEEK], "roster_present": [roster]})
    key = {"participant_id": pid, "programme_week": WEEK}
    du = pd.DataFrame([{**key, **d} for d in duties or []], columns=None if duties else list(key))
    ex = pd.DataFrame([{**key, **d} for d in exposure or []], columns=None if exposure else list(key))
    return weekly_flags(cohort, pd.DataFrame(rows), du, ex, PROG)


def _night(tst_h: float = 7.5, valid: bool = True, **kw: Any) -> dict[str, Any]:
    d = {"valid_sleep_day": valid, "tst_min": tst_h * 60 if valid else NAN, "se_pct": 90.0 if valid else NAN,
         "debt_net_7d_h": 0.0, "sri_14d": 85.0, "valid_hrv_night": valid, "ln_rmssd": 4.0,
         "hrv_baseline_mean": 4.0, "hrv_baseline_sd": 0.2, "resting_hr_bpm": 55.0, "rhr_baseline_mean": 55.0}
    d.update(kw)
    return d


def _duty(start: str, awake: float) -> dict[str, Any]:
    return {"start_ts": start, "quick_return": False, "long_shift": False, "consecutive_nights": 0,
            "time_awake_end_h": awake}


def test_duty_with_unknown_time_awake_does_not_count_for_w4() -> None:
    f = _week([_night()] * 7, [_duty("2026-03-02 07:00", 12.0), _duty("2026-03-03 07:00", NAN)])
    assert f.levels["W4"][0] == 0 and f.values["W4"][0] == 12.0 and f.overall[0] == 0
    rec = criteria_record(f, 0, PROG)
    assert rec["W4"]["level"] == "green"


def test_all_duties_with_unknown_time_awake_leave_w4_not_evaluated_and_never_raise() -> None:
    f = _week([_night()] * 7, [_duty("2026-03-02 07:00", NAN), _duty("2026-03-03 07:00", NAN)])
    assert f.levels["W4"][0] == NE and f.overall[0] == 0
    assert "time awake unknown" in str(criteria_record(f, 0, PROG)["W4"]["reason"])


def test_f1_ignores_exposure_of_duties_whose_time_awake_is_unknown() -> None:
    """The model filled the non-wear with wakefulness; that prediction is not evidence (programme-v2)."""
    duties = [_duty("2026-03-02 22:00", NAN), _duty("2026-03-03 22:00", 9.0)]
    exposure = [{"start_ts": "2026-03-02 22:00", "minutes_kss_ge7": 300.0, "minutes_kss_ge8": 240.0,
                 "estimated": False},
                {"start_ts": "2026-03-03 22:00", "minutes_kss_ge7": 0.0, "minutes_kss_ge8": 0.0, "estimated": False}]
    f = _week([_night()] * 7, duties, exposure)
    assert f.levels["F1"][0] == 0 and f.overall[0] == 0
    v1 = weekly_flags(*_frames(f, duties, exposure), load_programme("programme-v1"))
    assert v1.levels["F1"][0] == RED  # v1 counted it: the artefact the v2 rule removes
    only_unknown = _week([_night()] * 7, duties[:1], exposure[:1])
    assert only_unknown.levels["F1"][0] == NE and only_unknown.overall[0] == 0
    assert "device sleep missing" in str(criteria_record(only_unknown, 0, PROG)["F1"]["reason"])


def _frames(f: WeeklyFlags, duties: list[dict[str, Any]], exposure: list[dict[str, Any]]) -> tuple[pd.DataFrame, ...]:
    pid = f.participant_id[0]
    first = 7 * (WEEK - 1) + 1
    key = {"participant_id": pid, "programme_week": WEEK}
    daily = pd.DataFrame([{**key, "programme_day": first + k, **_night()} for k in range(7)])
    cohort = pd.DataFrame({"participant_id": [pid], "programme_week": [WEEK], "roster_present": [True]})
    return (cohort, daily, pd.DataFrame([{**key, **d} for d in duties]),
            pd.DataFrame([{**key, **d} for d in exposure]))


def test_unknown_days_are_not_short_sleep() -> None:
    """Four 7.5-h nights and three days without a detected episode: green, never 'mean sleep 4 h'."""
    f = _week([_night()] * 4 + [_night(valid=False)] * 3)
    assert f.levels["S1"][0] == 0 and f.values["S1"][0] == 7.5 and f.overall[0] == 0
    few = _week([_night()] * 3 + [_night(valid=False)] * 4)
    assert few.levels["S1"][0] == NE and few.levels["S2"][0] == NE


def test_week_without_a_device_is_insufficient_data() -> None:
    nothing = [_night(valid=False, ln_rmssd=NAN, resting_hr_bpm=NAN, sri_14d=NAN, debt_net_7d_h=NAN)] * 7
    f = _week(nothing, [_duty("2026-03-02 07:00", NAN)],
              [{"start_ts": "2026-03-02 07:00", "minutes_kss_ge7": 500.0, "minutes_kss_ge8": 400.0,
                "estimated": True}])
    assert f.overall[0] == NE and f.overall_names()[0] == "insufficient_data"
    assert all(f.levels[c][0] == NE for c in ("S1", "S2", "S3", "S4", "H1", "R1", "W4", "F1"))
    no_roster = _week(nothing, roster=False)
    assert no_roster.overall[0] == NE


_LEVEL = st.sampled_from([60.0, 70.0, 80.0, 90.0, NAN])


@settings(max_examples=60, deadline=None)
@given(sri=_LEVEL, tst=st.floats(4.0, 9.0), awake=st.floats(8.0, 24.0), n_valid=st.integers(0, 7))
def test_s4_never_sets_the_overall_level(sri: float, tst: float, awake: float, n_valid: int) -> None:
    daily = [_night(tst, valid=k < n_valid, sri_14d=sri) for k in range(7)]
    with_s4 = _week(daily, [_duty("2026-03-02 07:00", awake)])
    others = [with_s4.levels[c][0] for c in CRITERIA if c != "S4"]
    expected = max(others)
    if n_valid < PROG.validity.min_valid_sleep_days and expected <= 0:
        expected = NE
    assert with_s4.overall[0] == expected
    if sri < 73.8 and n_valid >= 4:
        assert with_s4.levels["S4"][0] == 1  # still graded and shown
    assert np.all(with_s4.overall <= max(max(others), NE))


def test_f1_estimated_over_missing_device_sleep_is_not_graded_in_v2() -> None:
    duties = [_duty("2026-03-02 22:00", 9.0)]
    exposure = [{"start_ts": "2026-03-02 22:00", "minutes_kss_ge7": 300.0, "minutes_kss_ge8": 240.0,
                 "estimated": True}]
    f = _week([_night()] * 7, duties, exposure)
    assert f.levels["F1"][0] == NE and f.overall[0] == 0
    assert weekly_flags(*_frames(f, duties, exposure), load_programme("programme-v1")).levels["F1"][0] == RED


def test_missing_days_cannot_turn_amber_sleep_red() -> None:
    """4 valid nights (5.5, 5.5, 5.5, 6.8 h) and 3 unknown days: the valid mean is red (< 6 h), but had the
    unknown days been like the week's best night the week would be amber: missing data never raises it."""
    daily = [_night(5.5)] * 3 + [_night(6.8)] + [_night(valid=False)] * 3
    f = _week(daily)
    assert f.values["S1"][0] < 6.0 and f.levels["S1"][0] == 1
    v1 = weekly_flags(*_frames_daily(f, daily), load_programme("programme-v1"))
    assert v1.levels["S1"][0] == RED
    full = _week([_night(5.5)] * 6 + [_night(6.8)])  # all seven days seen: red stands
    assert full.levels["S1"][0] == RED


def _frames_daily(f: WeeklyFlags, daily: list[dict[str, Any]]) -> tuple[pd.DataFrame, ...]:
    pid = f.participant_id[0]
    first = 7 * (WEEK - 1) + 1
    key = {"participant_id": pid, "programme_week": WEEK}
    rows = pd.DataFrame([{**key, "programme_day": first + k, **d} for k, d in enumerate(daily)])
    cohort = pd.DataFrame({"participant_id": [pid], "programme_week": [WEEK], "roster_present": [True]})
    return cohort, rows, pd.DataFrame(columns=list(key)), pd.DataFrame(columns=list(key))


def test_missing_hrv_nights_cannot_push_h1_below_the_band() -> None:
    """4 valid HRV nights, one of them low: the 4-night mean is below the band, but with the 3 missing nights
    at the week's best night it would not be; programme-v2 keeps H1 green, v1 (and a full week) amber."""
    nights = [_night(ln_rmssd=3.60)] + [_night(ln_rmssd=3.98)] * 3 + \
        [_night(valid_hrv_night=False, ln_rmssd=NAN)] * 3
    f = _week(nights)
    assert f.levels["H1"][0] == 0
    assert weekly_flags(*_frames_daily(f, nights), load_programme("programme-v1")).levels["H1"][0] >= 1
    full = _week([_night(ln_rmssd=3.60)] * 4 + [_night(ln_rmssd=3.98)] * 3)
    assert full.levels["H1"][0] >= 1
