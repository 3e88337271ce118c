"""Weekly flag criteria at their edges, validity rules, overall level, and hand-built scenarios (pure)."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.evaluate import WeeklyFlags, weekly_flags
from risk.programme import Programme, load_programme
from risk.reasons import criteria_record, criteria_records

PROG = load_programme()  # programme-v2, the default
V1 = load_programme("programme-v1")
NAN = float("nan")


def _week(n_nights: int = 7, tst_min: float = 480.0, se_pct: float = 92.0, week: int = 5,
          duties: list[dict[str, Any]] | None = None, exposure: list[dict[str, Any]] | None = None,
          roster: bool | None = None, prev_h1_below: bool = False, prog: Programme = PROG,
          **daily: Any) -> WeeklyFlags:
    """One participant's week: ``n_nights`` valid nights (the others invalid), optional duties."""
    pid = uuid.uuid4()
    first = 7 * (week - 1) + 1
    base: dict[str, Any] = {"valid_hrv_night": True, "ln_rmssd": 4.0, "hrv_baseline_mean": 4.0,
                            "hrv_baseline_sd": 0.2, "resting_hr_bpm": 55.0, "rhr_baseline_mean": 55.0,
                            "debt_net_7d_h": 0.0, "sri_14d": 85.0}
    base.update(daily)
    rows = [{"participant_id": pid, "programme_week": week, "programme_day": first + k,
             "valid_sleep_day": k < n_nights, "tst_min": tst_min if k < n_nights else NAN,
             "se_pct": se_pct if k < n_nights else NAN, **base} for k in range(7)]
    cohort = pd.DataFrame({"participant_id": [pid], "programme_week": [week], "prev_h1_below": [prev_h1_below]})
    if roster is not None:
        cohort["roster_present"] = [roster]
    keyed = [{"participant_id": pid, "programme_week": week, **d} for d in (duties or [])]
    exp = [{"participant_id": pid, "programme_week": week, **d} for d in (exposure or [])]
    return weekly_flags(cohort, pd.DataFrame(rows),
                        pd.DataFrame(keyed, columns=["participant_id", "programme_week", "quick_return"]
                                     if not keyed else None),
                        pd.DataFrame(exp, columns=["participant_id", "programme_week"] if not exp else None), prog)


def _level(f: WeeklyFlags, code: str, prog: Programme = PROG) -> str:
    return str(criteria_record(f, 0, prog)[code]["level"])


def _duty(**kw: Any) -> dict[str, Any]:
    d = {"quick_return": False, "long_shift": False, "consecutive_nights": 0, "time_awake_end_h": 12.0}
    d.update(kw)
    return d


@pytest.mark.parametrize(("tst_h", "level"), [(7.01, "green"), (7.0, "green"), (6.99, "amber"),
                                               (6.0, "amber"), (5.99, "red")])
def test_s1_mean_sleep_edges(tst_h: float, level: str) -> None:
    assert _level(_week(tst_min=tst_h * 60), "S1") == level


@pytest.mark.parametrize(("debt", "level"), [(6.99, "green"), (7.0, "amber"), (7.01, "amber"), (13.99, "amber"),
                                             (14.0, "red"), (14.01, "red")])
def test_s2_debt_edges(debt: float, level: str) -> None:
    assert _level(_week(debt_net_7d_h=debt), "S2") == level


@pytest.mark.parametrize(("se", "level"), [(85.01, "green"), (85.0, "green"), (84.99, "amber"), (75.0, "amber"),
                                           (74.99, "red")])
def test_s3_efficiency_edges(se: float, level: str) -> None:
    assert _level(_week(se_pct=se), "S3") == level


@pytest.mark.parametrize(("sri", "level"), [(73.81, "green"), (73.8, "green"), (73.79, "amber"), (-50.0, "amber")])
def test_s4_regularity_edges_amber_only(sri: float, level: str) -> None:
    assert _level(_week(sri_14d=sri), "S4") == level


@pytest.mark.parametrize(("l7", "level"), [(3.91, "green"), (3.9, "green"), (3.89, "amber"), (2.0, "amber")])
def test_h1_swc_band_edges(l7: float, level: str) -> None:
    assert _level(_week(ln_rmssd=l7), "H1") == level


def test_h1_red_when_sustained_or_with_rhr_rise() -> None:
    assert _level(_week(ln_rmssd=3.8, prev_h1_below=True), "H1") == "red"
    assert _level(_week(ln_rmssd=3.8, resting_hr_bpm=58.0), "H1") == "red"
    assert _level(_week(ln_rmssd=3.95, prev_h1_below=True), "H1") == "green"


def test_h1_previous_week_taken_from_the_same_batch() -> None:
    pid = uuid.uuid4()
    rows = [{"participant_id": pid, "programme_week": w, "programme_day": 7 * (w - 1) + k + 1,
             "valid_sleep_day": True, "tst_min": 480.0, "se_pct": 92.0, "valid_hrv_night": True,
             "ln_rmssd": 3.8, "hrv_baseline_mean": 4.0, "hrv_baseline_sd": 0.2} for w in (5, 6) for k in range(7)]
    cohort = pd.DataFrame({"participant_id": [pid, pid], "programme_week": [5, 6]})
    f = weekly_flags(cohort, pd.DataFrame(rows), pd.DataFrame(), pd.DataFrame(), PROG)
    assert list(f.levels["H1"]) == [1, 2]


@pytest.mark.parametrize(("rhr", "level"), [(57.99, "green"), (58.0, "amber"), (59.99, "amber"), (60.0, "red")])
def test_r1_resting_hr_edges(rhr: float, level: str) -> None:
    assert _level(_week(resting_hr_bpm=rhr), "R1") == level


@pytest.mark.parametrize(("n", "level"), [(0, "green"), (1, "amber"), (2, "red"), (3, "red")])
def test_w1_quick_returns_and_w2_long_duties(n: int, level: str) -> None:
    qr = [_duty(quick_return=k < n) for k in range(4)]
    ls = [_duty(long_shift=k < n) for k in range(4)]
    assert _level(_week(duties=qr), "W1") == level
    assert _level(_week(duties=ls), "W2") == level


@pytest.mark.parametrize(("nights", "level"), [(4, "green"), (5, "amber"), (9, "amber")])
def test_w3_consecutive_nights_amber_only(nights: int, level: str) -> None:
    assert _level(_week(duties=[_duty(consecutive_nights=nights)]), "W3") == level


@pytest.mark.parametrize(("version", "awake", "level"), [
    ("programme-v2", 16.5, "green"), ("programme-v2", 17.0, "green"), ("programme-v2", 17.01, "amber"),
    ("programme-v2", 21.0, "amber"), ("programme-v2", 21.01, "red"),
    ("programme-v1", 16.0, "green"), ("programme-v1", 16.01, "amber"), ("programme-v1", 19.0, "amber"),
    ("programme-v1", 19.01, "red")])
def test_w4_time_awake_edges(version: str, awake: float, level: str) -> None:
    prog = load_programme(version)
    assert _level(_week(duties=[_duty(time_awake_end_h=awake), _duty()], prog=prog), "W4", prog) == level


@pytest.mark.parametrize(("ge7", "ge8", "level"), [([59.9], [0.0], "green"), ([60.0], [0.0], "amber"),
                                                   ([90.0], [59.9], "amber"), ([90.0], [60.0], "red"),
                                                   ([60.0, 60.0], [0, 0], "amber"),
                                                   ([60.0, 60.0, 60.0], [0, 0, 0], "amber")])
def test_f1_tpm_sleepiness(ge7: list[float], ge8: list[float], level: str) -> None:
    exp = [{"minutes_kss_ge7": a, "minutes_kss_ge8": b, "estimated": False} for a, b in zip(ge7, ge8, strict=True)]
    assert _level(_week(duties=[_duty() for _ in ge7], exposure=exp), "F1") == level


def test_f1_three_amber_duties_are_red_only_in_programme_v1() -> None:
    """A block of three night shifts is a property of the rota (shown per rota), not red for the officer."""
    exp = [{"minutes_kss_ge7": 60.0, "minutes_kss_ge8": 0.0, "estimated": False}] * 3
    assert _level(_week(duties=[_duty()] * 3, exposure=exp, prog=V1), "F1", V1) == "red"
    assert _level(_week(duties=[_duty()] * 3, exposure=exp), "F1") == "amber"


def test_validity_sleep_days() -> None:
    rec = criteria_record(_week(n_nights=3, tst_min=300), 0, PROG)
    assert rec["S1"] == {"value": None, "unit": "h", "level": "not_evaluated",
                         "reason": "3 valid nights of 7, need 4"}
    assert _level(_week(n_nights=4, tst_min=300), "S1") == "red"


def test_validity_hrv_nights_and_phases() -> None:
    f = _week(valid_hrv_night=False)
    assert criteria_record(f, 0, PROG)["H1"]["reason"] == "0 valid HRV nights of 7, need 4"
    assert "calibrating" in str(criteria_record(_week(week=2), 0, PROG)["R1"]["reason"])
    extended = criteria_record(_week(week=3, hrv_baseline_mean=NAN), 0, PROG)["H1"]
    assert extended["level"] == "not_evaluated" and "extended" in extended["reason"]
    late = criteria_record(_week(week=6, hrv_baseline_mean=NAN), 0, PROG)["H1"]
    assert "no personal baseline" in late["reason"]


def test_validity_sri_and_roster() -> None:
    rec = criteria_record(_week(sri_14d=NAN), 0, PROG)
    assert rec["S4"]["level"] == "not_evaluated" and "day-pairs" in rec["S4"]["reason"]
    assert criteria_record(_week(), 0, PROG)["W1"]["reason"] == "no roster for this week"
    rest_week = criteria_record(_week(roster=True), 0, PROG)
    assert [rest_week[c]["level"] for c in ("W1", "W2", "W3", "W4", "F1")] == ["green"] * 5


def test_overall_is_worst_and_insufficient_data() -> None:
    assert list(_week(se_pct=80.0).overall_names()) == ["amber"]
    assert list(_week(se_pct=70.0, sri_14d=60.0).overall_names()) == ["red"]
    assert list(_week(n_nights=2).overall_names()) == ["insufficient_data"]
    assert list(_week(n_nights=2, duties=[_duty(quick_return=True)] * 2).overall_names()) == ["red"]


def test_scenario_quick_returns_and_five_hour_sleeps_is_red() -> None:
    duties = [_duty(quick_return=k in (1, 3), time_awake_end_h=15.0) for k in range(5)]
    f = _week(tst_min=300.0, se_pct=88.0, debt_net_7d_h=21.0, duties=duties)
    rec = criteria_record(f, 0, PROG)
    assert f.overall_names()[0] == "red"
    assert rec["S1"]["reason"] == "mean sleep 5 h over 7 valid nights, below 6 h"
    assert rec["S2"]["level"] == "red" and rec["W1"]["level"] == "red"
    assert rec["W1"]["reason"] == "2 quick returns (under 11 h rest between duties)"
    assert rec["S3"]["level"] == "green" and rec["W2"]["level"] == "green"


def test_scenario_rested_office_worker_is_green() -> None:
    duties = [_duty(time_awake_end_h=10.0) for _ in range(5)]
    exp = [{"minutes_kss_ge7": 0.0, "minutes_kss_ge8": 0.0, "estimated": False}] * 5
    f = _week(tst_min=465.0, se_pct=91.0, debt_net_7d_h=2.0, duties=duties, exposure=exp)
    assert f.overall_names()[0] == "green"
    assert all(v["level"] == "green" for v in criteria_record(f, 0, PROG).values())


def test_scenario_device_off_all_week_is_insufficient_never_green() -> None:
    duties = [_duty(time_awake_end_h=NAN) for _ in range(5)]
    off = _week(n_nights=0, valid_hrv_night=False, sri_14d=NAN, debt_net_7d_h=NAN, duties=duties)
    assert off.overall_names()[0] == "insufficient_data"
    assert criteria_record(off, 0, PROG)["S1"]["reason"] == "0 valid nights of 7, need 4"


def test_many_participants_vectorised_and_mixed_order() -> None:
    n = 500
    rng = np.random.default_rng(7)
    pids = [uuid.uuid4() for _ in range(n)]
    tst = rng.uniform(240, 540, n)
    rows = pd.DataFrame({"participant_id": np.repeat(np.array(pids, dtype=object), 7), "programme_week": 3,
                         "programme_day": np.tile(np.arange(15, 22), n), "valid_sleep_day": True,
                         "tst_min": np.repeat(tst, 7), "se_pct": 90.0}).sample(frac=1.0, random_state=1)
    f = weekly_flags(pd.DataFrame({"participant_id": pids, "programme_week": 3}), rows, pd.DataFrame(),
                     pd.DataFrame(), PROG)
    expected = np.where(tst / 60 < 6, 2, np.where(tst / 60 < 7, 1, 0))
    assert np.array_equal(f.levels["S1"], expected)


@settings(max_examples=60, deadline=None)
@given(st.floats(180, 600), st.floats(50, 100), st.floats(0, 30), st.integers(0, 7), st.integers(0, 3))
def test_overall_is_the_worst_evaluated_criterion(tst: float, se: float, debt: float, nights: int,
                                                  qr: int) -> None:
    duties = [_duty(quick_return=k < qr) for k in range(3)]
    f = _week(n_nights=nights, tst_min=tst, se_pct=se, debt_net_7d_h=debt, duties=duties)
    worst = max(int(f.levels[c][0]) for c in f.levels)
    if nights >= 4:
        assert int(f.overall[0]) == worst
    else:
        assert int(f.overall[0]) == (worst if worst >= 1 else -1)


def test_fast_records_equal_row_records() -> None:
    duties = [_duty(quick_return=True, time_awake_end_h=NAN)]
    f = _week(n_nights=3, tst_min=300.0, duties=duties, sri_14d=NAN)
    assert criteria_records(f, PROG) == [criteria_record(f, 0, PROG)]
