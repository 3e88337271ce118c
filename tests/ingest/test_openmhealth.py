"""IEEE 1752.1 / Open mHealth heart-rate and sleep-episode data points on the ``omh`` stream."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.contract import REASON_CODES, ContractError, HeartRate, SleepEpisodes, decode, topic_for
from ingest.openmhealth import ARRAY_NAMESPACE

TOPIC = topic_for("gw", "watch-7", "omh")
U1, U2 = "b0c1d2e3-f4a5-4b6c-8d7e-9f0a1b2c3d4e", "c0c1d2e3-f4a5-4b6c-8d7e-9f0a1b2c3d4e"
T0 = 1_711_845_000_000  # 2024-03-31T00:30:00Z


def hr_point(value: Any = 60, when: str = "2024-03-31T01:30:00+01:00", uid: str = U1) -> dict[str, Any]:
    return {
        "header": {
            "uuid": uid,
            "schema_id": {"namespace": "omh", "name": "heart-rate", "version": "2.0"},
            "source_creation_date_time": "2024-03-31T00:31:00Z",
            "modality": "sensed",
        },
        "body": {
            "heart_rate": {"value": value, "unit": "beats/min"},
            "effective_time_frame": {"date_time": when},
            "temporal_relationship_to_physical_activity": "at rest",
        },
    }


def sleep_point(tst: Any = None, uid: str = U1) -> dict[str, Any]:
    body: dict[str, Any] = {"effective_time_frame": {"time_interval": {
        "start_date_time": "2024-03-30T23:00:00Z", "end_date_time": "2024-03-31T07:00:00+01:00"}}}
    if tst is not None:
        body["total_sleep_time"] = tst
    return {"header": {"uuid": uid, "schema_id": {"namespace": "omh", "name": "sleep-episode", "version": "1.1"},
                       "source_creation_date_time": "2024-03-31T06:05:00Z"}, "body": body}


def dec(obj: Any) -> Any:
    return decode(TOPIC, json.dumps(obj).encode())


def reason(obj: Any | bytes) -> str:
    with pytest.raises(ContractError) as info:
        decode(TOPIC, obj if isinstance(obj, bytes) else json.dumps(obj).encode())
    assert info.value.reason in REASON_CODES
    return info.value.reason


def test_single_heart_rate() -> None:
    r = dec(hr_point())
    assert isinstance(r, HeartRate)
    assert r.msg_id == uuid.UUID(U1) and r.device_id == "watch-7"
    assert r.t_ms.tolist() == [T0] and r.bpm.tolist() == [60] and r.sent_at_ms == T0 + 60_000


def test_heart_rate_array_rules() -> None:
    pts = [hr_point(60 + i, f"2024-03-31T00:{30 + i:02d}:00Z", str(uuid.UUID(int=i + 1))) for i in range(19)]
    pts.append(hr_point(28, "2024-03-31T00:59:00Z", str(uuid.UUID(int=99))))
    r = dec(pts)
    assert isinstance(r, HeartRate) and r.n_samples == 20 and r.suspect.sum() == 1
    expected = uuid.uuid5(ARRAY_NAMESPACE, ",".join(sorted(p["header"]["uuid"] for p in pts)))
    assert r.msg_id == expected and dec(list(reversed(pts))).msg_id == expected
    pts[0]["body"]["heart_rate"]["value"] = 0
    assert dec(pts).n_samples == 19
    pts[1]["body"]["heart_rate"]["value"] = 72.5
    pts[2]["body"]["heart_rate"]["value"] = 400
    assert reason(pts) == "hr_impossible"


def test_sleep_episode() -> None:
    r = dec(sleep_point({"value": 6.5, "unit": "h"}))
    assert isinstance(r, SleepEpisodes)
    assert r.end_ms[0] - r.start_ms[0] == 7 * 3600 * 1000
    assert r.tst_min.tolist() == [390.0] and r.in_bed.tolist() == [False] and r.stages == (None,)
    both = dec([sleep_point(), sleep_point({"value": 300, "unit": "min"}, U2)])
    assert isinstance(both, SleepEpisodes) and both.n_samples == 2 and np.isnan(both.tst_min[0])


def _mutate(point: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(point)
    *parents, last = path.split(".")
    node = out
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return out


@pytest.mark.parametrize(
    ("path", "value", "code"),
    [("header.uuid", "nope", "schema_violation"),
     ("header.schema_id.name", "step-count", "schema_violation"),
     ("header.schema_id.version", "1.0", "schema_violation"),
     ("header.user_id", "officer-123", "not_storable"),
     ("header.source_creation_date_time", KeyError, "schema_violation"),
     ("body.heart_rate.unit", "beats/s", "schema_violation"),
     ("body.heart_rate.value", "60", "schema_violation"),
     ("body.heart_rate.value", True, "schema_violation"),
     ("body.heart_rate.value", 70000, "number_out_of_range"),
     ("body.heart_rate.value", -3, "hr_impossible"),
     ("body.effective_time_frame.date_time", "2024-03-31T01:30:00", "ts_invalid"),
     ("body.effective_time_frame.date_time", 1711845000000, "schema_violation"),
     ("body.effective_time_frame", {"time_interval": {}}, "schema_violation"),
     ("body.temporal_relationship_to_physical_activity", "sprinting", "schema_violation"),
     ("body.descriptive_statistic", "mode", "schema_violation"),
     ("body.descriptive_statistic", "maximum", "not_storable"),
     ("header.modality", "guessed", "schema_violation")],
)
def test_heart_rate_rejections(path: str, value: Any, code: str) -> None:
    assert reason(_mutate(hr_point(), path, value)) == code


def test_omh_syntax_level_codes() -> None:
    raw = json.dumps(hr_point()).encode()
    assert reason(raw.replace(b'"value": 60', b'"value": NaN')) == "non_finite_number"
    assert reason(raw.replace(b'"value": 60', b'"value": 60, "value": 61')) == "duplicate_key"
    assert reason(raw[:-1]) == "malformed_json"
    assert reason(b"[" * 20 + b"]" * 20) == "too_deep"
    assert reason([]) == "schema_violation"
    assert reason([hr_point(), sleep_point(uid=U2)]) == "schema_violation"
    assert reason([hr_point(), hr_point()]) == "schema_violation"  # repeated uuid
    assert reason([sleep_point(uid=str(uuid.UUID(int=i + 1))) for i in range(33)]) == "too_many_samples"
    assert reason(_mutate(hr_point(), "header.uuid", U1.replace("b0", "\u0660"))) == "schema_violation"


@pytest.mark.parametrize(
    ("tst", "code"),
    [({"value": 9, "unit": "h"}, "number_out_of_range"), ({"value": 1, "unit": "d"}, "number_out_of_range"),
     ({"value": 1, "unit": "hours"}, "schema_violation"), ({"value": 1, "unit": "Mo"}, "not_storable"),
     ({"value": -1, "unit": "min"}, "number_out_of_range"), ({"value": 1}, "schema_violation")],
)
def test_sleep_rejections(tst: Any, code: str) -> None:
    assert reason(sleep_point(tst)) == code


def test_sleep_interval_order() -> None:
    p = _mutate(sleep_point(), "body.effective_time_frame.time_interval.end_date_time", "2024-03-30T22:00:00Z")
    assert reason(p) == "not_storable"  # the time-interval schema does not order its ends; the service must


@settings(max_examples=100, deadline=None)
@given(bpm=st.lists(st.integers(1, 300), min_size=1, max_size=30), offset_h=st.integers(-12, 14))
def test_heart_rate_values_property(bpm: list[int], offset_h: int) -> None:
    sign = "+" if offset_h >= 0 else "-"
    when = f"2024-06-01T12:00:00{sign}{abs(offset_h):02d}:00"
    pts = [hr_point(v, when, str(uuid.UUID(int=i + 1))) for i, v in enumerate(bpm)]
    r = dec(pts)
    assert r.bpm.tolist() == bpm
    assert set(r.t_ms.tolist()) == {1_717_243_200_000 - offset_h * 3_600_000}
