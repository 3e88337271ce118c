"""Pure kernels and rules: wear minutes, levels and alert conditions, the [compliance] table of a programme file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compliance.kernel import evaluate, unworn_intervals, valid_nights, wear_minutes
from compliance.rules import ComplianceRules, parse_compliance
from risk.programme import ProgrammeError, load_programme

DAY = 86_400.0
EDGES = np.array([0.0, DAY, 2 * DAY])
R = ComplianceRules()


def _samples(*runs: tuple[int, float, int, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of (row, start_s, n, step_s) -> flat (row, run, t)."""
    rows, ids, ts = [], [], []
    for k, (row, start, n, step) in enumerate(runs):
        rows.append(np.full(n, row))
        ids.append(np.full(n, k))
        ts.append(start + step * np.arange(n))
    return np.concatenate(rows), np.concatenate(ids), np.concatenate(ts)


def test_one_sample_a_minute_counts_a_minute_each_and_one_hertz_a_second_each() -> None:
    row, run, t = _samples((0, 3600.0, 60, 60.0), (1, 3600.0, 3600, 1.0))
    w = wear_minutes(row, run, t, 2, EDGES)
    assert w[0, 0] == pytest.approx(60.0) and w[1, 0] == pytest.approx(60.0)
    assert np.isnan(w[:, 1]).all(), "no sample: no wear signal, not 0 h"


def test_a_gap_inside_a_run_is_not_wear_and_midnight_splits_days() -> None:
    # 10 samples a minute apart, a 3-hour hole, 10 more; then a run across midnight (30 min each side).
    t = np.r_[np.arange(10) * 60.0, 3 * 3600 + np.arange(10) * 60.0, DAY - 1800 + np.arange(60) * 60.0]
    run = np.r_[np.zeros(20, int), np.ones(60, int)]
    w = wear_minutes(np.zeros(80, int), run, t, 1, EDGES)
    assert w[0, 0] == pytest.approx(20 + 30) and w[0, 1] == pytest.approx(30)


def test_not_worn_status_discounts_the_interrupted_run_only() -> None:
    # Run A 10:00-12:00 (status 'not worn' at 11:00), run B starts 12:30 before the next status at 16:00.
    row, run, t = _samples((0, 10 * 3600.0, 120, 60.0), (0, 12.5 * 3600, 60, 60.0))
    st = unworn_intervals(np.array([0, 0]), np.array([7, 7]), np.array([11 * 3600.0, 16 * 3600.0]),
                          np.array([0, 1], np.int8))
    w = wear_minutes(row, run, t, 1, EDGES, st)
    assert w[0, 0] == pytest.approx(60 + 60), "run A counts until 11:00, run B (a new pulse) counts in full"


def _eval(**kw: object) -> object:
    P, W = 1, 29
    args: dict[str, object] = dict(
        now_s=100 * DAY, last_seen_s=np.array([100 * DAY - 3600]), last_worn_s=np.array([100 * DAY - 3600]),
        silent_from_s=np.array([0.0]), battery_pct=np.array([80.0]), battery_alert_open=np.zeros(P, bool),
        wear_min=np.full((P, W), 1000.0), sleep_n=np.ones((P, W), np.int64), first_col=np.array([-50]), rules=R)
    args.update(kw)
    return evaluate(**args)  # type: ignore[arg-type]


def test_levels_and_alerts_follow_the_thresholds() -> None:
    ok = _eval()
    assert ok.level.tolist() == [0] and not ok.reasons.any() and ok.valid_nights_7d.tolist() == [7]
    silent = _eval(last_seen_s=np.array([100 * DAY - 30 * 3600]))
    assert silent.level.tolist() == [1] and silent.alert_silent.tolist() == [True]
    assert _eval(last_seen_s=np.array([100 * DAY - 48 * 3600])).level.tolist() == [2]
    wear = np.full((1, 29), 1000.0)
    wear[0, 25:28] = 0.0  # 3 of the last 7 complete days unworn
    three = _eval(wear_min=wear)
    assert three.valid_nights_7d.tolist() == [4] and three.level.tolist() == [1]
    assert three.alert_nights.tolist() == [False] and three.days_since_valid_night.tolist() == [0.0]
    wear[0, 24] = 0.0
    four = _eval(wear_min=wear)
    assert four.level.tolist() == [2] and four.alert_nights.tolist() == [True]


def test_battery_alert_has_hysteresis() -> None:
    assert _eval(battery_pct=np.array([14.0])).alert_battery.tolist() == [True]
    assert _eval(battery_pct=np.array([17.0])).alert_battery.tolist() == [False]
    assert _eval(battery_pct=np.array([17.0]), battery_alert_open=np.ones(1, bool)).alert_battery.tolist() == [True]
    assert _eval(battery_pct=np.array([np.nan])).alert_battery.tolist() == [False], "never reported is not low"


def test_first_week_counts_missing_nights_not_absent_days() -> None:
    # Programme day 1 was 3 days ago: 3 complete programme days, all valid -> ok, 3 of 3.
    first = _eval(first_col=np.array([25]), last_seen_s=np.array([100 * DAY - 600]))
    assert first.expected_nights_7d.tolist() == [3] and first.level.tolist() == [0]
    # First tick of a new participant: nothing received yet, silence counted from programme start only.
    new = _eval(first_col=np.array([28]), last_seen_s=np.array([np.nan]), last_worn_s=np.array([np.nan]),
                silent_from_s=np.array([100 * DAY - 3600]), wear_min=np.zeros((1, 29)), sleep_n=np.zeros((1, 29),
                                                                                                       np.int64))
    assert new.level.tolist() == [0] and new.expected_nights_7d.tolist() == [0]
    assert np.isnan(new.days_since_valid_night[0])


def test_valid_night_needs_sleep_and_wear() -> None:
    v = valid_nights(np.array([[960.0, 960.0, 959.0, np.nan, np.nan]]), np.array([[1, 0, 1, 1, 0]]), R)
    assert v.tolist() == [[True, False, False, True, False]], "no wear signal: sleep alone decides"


def test_programme_file_carries_compliance_thresholds(tmp_path: Path) -> None:
    assert load_programme(None).compliance == ComplianceRules()
    base = (Path(__file__).parents[2] / "risk" / "programme_v1.toml").read_text()
    without = base.split("[compliance]")[0]
    (tmp_path / "old.toml").write_text(without)
    assert load_programme(tmp_path / "old.toml").compliance == ComplianceRules(), "absent table: defaults"
    (tmp_path / "own.toml").write_text(without + "[compliance]\nalert_battery_pct = 25\nalert_battery_clear_pct = 30\n")
    assert load_programme(tmp_path / "own.toml").compliance.alert_battery_pct == 25.0
    (tmp_path / "bad.toml").write_text(without + "[compliance]\nalert_silent_hours = 5\n")
    with pytest.raises(ProgrammeError, match=r"compliance\.alert_silent_hours: unknown field"):
        load_programme(tmp_path / "bad.toml")


@pytest.mark.parametrize(("table", "message"), [
    ({"min_wear_h": 30}, r"compliance\.min_wear_h: expected a number in \[0, 24\]"),
    ({"watch_valid_nights": 4.5}, r"compliance\.watch_valid_nights: expected a whole number"),
    ({"alert_battery_pct": True}, r"compliance\.alert_battery_pct"),
    ({"watch_silent_h": 50, "lapsed_silent_h": 40}, r"compliance\.lapsed_silent_h: expected hours >="),
    ({"watch_valid_nights": 3}, r"compliance\.lapsed_valid_nights: expected nights <="),
])
def test_bad_compliance_values_name_the_field(table: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_compliance(table)


def test_contract_page_shows_the_alert_payload_the_code_sends() -> None:
    import json
    import re
    import uuid
    from datetime import UTC, datetime

    from compliance.publisher import AlertEvent, alert_payload

    doc = (Path(__file__).parents[2] / "docs" / "contract.md").read_text()
    (topic, body), = re.findall(r"Alert topic: `([^`]+)`\n```json\n(.*?)```", doc, flags=re.DOTALL)
    example = json.loads(body)
    ev = AlertEvent(uuid.UUID(example["episode_id"]), "battery", "open", "dev_01", "gw-01",
                    datetime.fromtimestamp(example["opened_at"] / 1000, UTC), None, 4.0)
    assert json.loads(alert_payload(ev)) == example
    assert topic == "fatigue/v1/alerts/gw-01/dev_01/battery"
