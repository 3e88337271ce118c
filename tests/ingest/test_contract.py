"""Examples for every reason code of the v1 wire contract, topic parsing and the sample rules."""

from __future__ import annotations

import json
import uuid
from typing import Any

import numpy as np
import pytest

from ingest.contract import (
    MAX_PAYLOAD_BYTES,
    REASON_CODES,
    SUBSCRIPTION,
    ContractError,
    DeviceStatus,
    HeartRate,
    RRIntervals,
    SleepEpisodes,
    Survey,
    Topic,
    decode,
    encode,
    future_mask,
    parse_topic,
    records_equal,
    stream_of,
    topic_for,
)

GW, DEV = "gw-01", "dev_01"
MSG = "3f2b8c1e-7a4d-4e2a-9c1b-2d3e4f5a6b7c"
T0 = 1_711_845_000_000  # 2024-03-31T00:30:00Z


def topic(stream: str) -> str:
    return topic_for(GW, DEV, stream)


def env(stream: str, **body: Any) -> dict[str, Any]:
    return {"schema": f"{stream}/1", "msg_id": MSG, "device_id": DEV, "sent_at": T0, **body}


def hr(**over: Any) -> dict[str, Any]:
    return {**env("hr", t=[T0, T0 + 1000, T0 + 2000], bpm=[60, 61, 62]), **over}


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def reason(stream: str, payload: bytes | dict[str, Any], topic_str: str | None = None) -> str:
    raw = payload if isinstance(payload, bytes) else dumps(payload)
    with pytest.raises(ContractError) as info:
        decode(topic_str or topic(stream), raw)
    err = info.value
    assert err.reason in REASON_CODES
    return err.reason


# --- topics -------------------------------------------------------------------------------------------------


def test_topic_round_trip() -> None:
    assert parse_topic(topic_for("g", "d", "survey")) == Topic("g", "d", "survey")
    assert SUBSCRIPTION == "fatigue/v1/+/+/+"


@pytest.mark.parametrize(
    "bad",
    ["fatigue/v1/+/dev/hr", "fatigue/v1/gw/#/hr", "fatigue/v1/../dev/hr", "fatigue/v1/gw/../x/hr",
     "fatigue/v1/gw/dév/hr", "fatigue/v1/gw/dev\u200b/hr", "fatigue/v1//dev/hr", "fatigue/v1/gw/" + "d" * 65 + "/hr",
     "fatigue/v2/gw/dev/hr", "other/v1/gw/dev/hr", "fatigue/v1/gw/dev", "fatigue/v1/gw/dev/hr/x",
     "fatigue/v1/'; DROP TABLE x;--/dev/hr", "fatigue/v1/%u/dev/hr", "fatigue/v1/gw/dev\n/hr"],
)
def test_bad_topics_are_invalid_id(bad: str) -> None:
    assert reason("hr", hr(), bad) == "invalid_id"


def test_unknown_stream() -> None:
    assert reason("hr", hr(), "fatigue/v1/gw/dev/hrv") == "unknown_stream"
    with pytest.raises(ContractError):
        topic_for("gw", "dev", "bogus")
    with pytest.raises(ContractError):
        topic_for("g+", "dev", "hr")


# --- every reason code --------------------------------------------------------------------------------------

VALID = dumps(hr())
CASES: list[tuple[str, str, bytes | dict[str, Any]]] = [
    ("malformed_json", "hr", VALID[:-3]),
    ("malformed_json", "hr", VALID + b" x"),
    ("malformed_json", "hr", b"\xef\xbb\xbf" + VALID),
    ("malformed_json", "hr", b"{'a': 1}"),
    ("bad_encoding", "hr", VALID.replace(b"hr/1", b"hr\xff1")),
    ("bad_encoding", "hr", "{}".encode("utf-16")),
    ("schema_violation", "hr", hr(bpm=["72", 60, 61])),
    ("schema_violation", "hr", hr(bpm=[True, 60, 61])),
    ("schema_violation", "hr", hr(sent_at=None)),
    ("schema_violation", "hr", hr(sent_at=True)),
    ("schema_violation", "hr", hr(t={"a": 1})),
    ("schema_violation", "hr", hr(extra=1)),
    ("schema_violation", "hr", hr(schema="rr/1")),
    ("schema_violation", "hr", hr(schema="hr/2")),
    ("schema_violation", "hr", hr(msg_id="not-a-uuid")),
    ("schema_violation", "hr", hr(bpm=[60, 61])),
    ("schema_violation", "hr", hr(t=[], bpm=[])),
    ("schema_violation", "hr", b"[]"),
    ("schema_violation", "hr", b"72"),
    ("non_finite_number", "hr", VALID.replace(b"[60, 61, 62]", b"[60, NaN, 62]")),
    ("non_finite_number", "hr", VALID.replace(b"[60, 61, 62]", b"[60, Infinity, 62]")),
    ("non_finite_number", "hr", VALID.replace(b"[60, 61, 62]", b"[60, -Infinity, 62]")),
    ("non_finite_number", "hr", VALID.replace(b"[60, 61, 62]", b"[60, 1e400, 62]")),
    ("number_out_of_range", "hr", VALID.replace(b"[60, 61, 62]", b"[60, 1" + b"0" * 5000 + b", 62]")),
    ("number_out_of_range", "hr", hr(bpm=[60, 40000, 62])),
    ("number_out_of_range", "rr", env("rr", start=T0, rr_ms=[800, 70000])),
    ("number_out_of_range", "rr", env("rr", start=T0, rr_ms=[800, 0])),
    ("number_out_of_range", "survey", env("survey", t=[T0], kss=[10])),
    ("number_out_of_range", "survey", env("survey", t=[T0], kss=[5], samn_perelli=[0])),
    ("number_out_of_range", "status", env("status", t=T0, online=True, battery_pct=101)),
    ("too_deep", "hr", b"[" * 100_000 + b"]" * 100_000),
    ("too_deep", "hr", hr(bpm=[[[[[[[[[[60]]]]]]]]]])),
    ("too_many_samples", "hr", hr(t=[T0 + i for i in range(3601)], bpm=[60] * 3601)),
    ("too_many_samples", "rr", env("rr", start=T0, rr_ms=[800] * 3601)),
    ("oversized", "hr", b" " * (MAX_PAYLOAD_BYTES + 1)),
    ("duplicate_key", "hr", VALID.replace(b'"schema": "hr/1"', b'"schema": "hr/1", "schema": "hr/1"')),
    ("duplicate_key", "hr", VALID.replace(b'"bpm":', b'"bpm": [1], "bpm":')),
    ("ts_invalid", "hr", hr(sent_at="2024-03-31T01:30:00")),
    ("ts_invalid", "hr", hr(sent_at="2024-03-31T01:30:00+25:00")),
    ("ts_invalid", "hr", hr(sent_at="2016-12-31T23:59:60Z")),
    ("ts_invalid", "hr", hr(sent_at="2023-02-29T00:00:00Z")),
    ("ts_invalid", "hr", hr(sent_at="31/03/2024 01:30")),
    ("ts_unit", "hr", hr(sent_at=1_711_845_000)),
    ("ts_unit", "hr", hr(t=[T0, 1_711_845_001, T0 + 2])),
    ("ts_unit", "hr", hr(sent_at=T0 * 1000)),
    ("hr_impossible", "hr", hr(bpm=[0, 61, 62])),
    ("hr_impossible", "hr", hr(bpm=[60, 301, 62])),
    ("hr_impossible", "hr", hr(bpm=[60, 61.5, 62])),
    ("topic_mismatch", "hr", hr(device_id="other_dev")),
    ("invalid_id", "hr", hr(device_id="'; DROP TABLE x;--")),
    ("bad_text", "status", env("status", t=T0, online=True, firmware="1.0\u202e")),
    ("bad_text", "status", env("status", t=T0, online=True, firmware="x" * 65)),
    ("bad_text", "status", VALID.replace(b'"hr/1"', b'"\\ud800"')),
    ("empty_payload", "hr", b""),
    ("empty_payload", "hr", b"  \n"),
    ("not_storable", "omh", {"header": {"uuid": "b0c1d2e3-f4a5-4b6c-8d7e-9f0a1b2c3d4e", "schema_id": {
        "namespace": "omh", "name": "sleep-episode", "version": "1.1"}, "source_creation_date_time":
        "2024-03-31T06:05:00Z"}, "body": {"effective_time_frame": {"time_interval": {
            "date": "2024-03-30", "part_of_day": "night"}}}}),
]


@pytest.mark.parametrize(("code", "stream", "payload"), CASES)
def test_reason_codes(code: str, stream: str, payload: bytes | dict[str, Any]) -> None:
    assert reason(stream, payload) == code


def test_every_reason_code_has_an_example() -> None:
    covered = {c for c, _, _ in CASES} | {"invalid_id", "unknown_stream"}
    assert covered == REASON_CODES


def test_detail_does_not_echo_values() -> None:
    secret = "S3CRETVALUE"
    payloads = [hr(bpm=[secret, 1, 2]), hr(sent_at=secret), hr(msg_id=secret), {secret: 1, **hr()},
                env("survey", t=[T0], kss=[5], context=[secret]), hr(device_id=secret + "+")]
    for p in payloads:
        with pytest.raises(ContractError) as info:
            decode(topic("survey" if p.get("schema") == "survey/1" else "hr"), dumps(p))
        assert secret not in info.value.detail


def test_contract_error_rejects_unknown_code() -> None:
    with pytest.raises(ValueError, match="unknown reason"):
        ContractError("nope", "x")


# --- streams ------------------------------------------------------------------------------------------------


def test_hr_drops_impossible_and_flags_suspect() -> None:
    bpm = [60] * 17 + [0, 28, 230]
    r = decode(topic("hr"), dumps(hr(t=[T0 + 1000 * i for i in range(20)], bpm=bpm)))
    assert isinstance(r, HeartRate)
    assert r.n_samples == 19 and r.stream == "hr" and stream_of(r) == "hr"
    assert r.bpm.dtype == np.int16 and r.t_ms.dtype == np.int64
    assert r.suspect.tolist() == [False] * 17 + [True, True]
    assert 17_000 not in r.t_ms - T0  # the dropped sample's time is gone too


def test_hr_float_bpm_counts_as_impossible() -> None:
    r = decode(topic("hr"), dumps(hr(t=[T0 + i for i in range(10)], bpm=[60] * 9 + [72.0])))
    assert r.n_samples == 9


def test_hr_times_mixed_formats() -> None:
    r = decode(topic("hr"), dumps(hr(t=["2024-03-31T01:30:00.250+01:00", "2024-03-31t00:30:01z", T0 + 2000])))
    assert isinstance(r, HeartRate)
    assert r.t_ms.tolist() == [T0 + 250, T0 + 1000, T0 + 2000]


def test_rr_artifacts_kept() -> None:
    r = decode(topic("rr"), dumps(env("rr", start="2024-03-31T00:30:00Z", rr_ms=[800, 150, 3500, 1000])))
    assert isinstance(r, RRIntervals)
    assert r.start_ms == T0 and r.artifact.tolist() == [False, True, True, False]
    assert r.rr_ms.dtype == np.int16


def test_sleep_episodes() -> None:
    ep = [{"start": T0, "end": T0 + 90_000, "in_bed": True, "epoch_s": 30, "stages": [0, 1, 2], "tst_min": 1},
          {"start": T0 + 3_600_000, "end": T0 + 7_200_000, "in_bed": False, "epoch_s": 30}]
    r = decode(topic("sleep"), dumps(env("sleep", episodes=ep)))
    assert isinstance(r, SleepEpisodes)
    assert r.n_samples == 2 and r.in_bed.tolist() == [True, False]
    assert r.stages[0] is not None and r.stages[0].tolist() == [0, 1, 2] and r.stages[1] is None
    assert r.tst_min[0] == 1.0 and np.isnan(r.tst_min[1])
    assert records_equal(decode(topic("sleep"), encode(r)), r)


@pytest.mark.parametrize(
    ("episode", "code"),
    [({"stages": [0, 1]}, "schema_violation"), ({"stages": [0, 1, 4]}, "number_out_of_range"),
     ({"end": T0}, "schema_violation"), ({"tst_min": 2}, "number_out_of_range"),
     ({"epoch_s": 0}, "number_out_of_range"), ({"in_bed": 1}, "schema_violation"),
     ({"stages": None}, "schema_violation")],
)
def test_sleep_rules(episode: dict[str, Any], code: str) -> None:
    ep = {"start": T0, "end": T0 + 90_000, "in_bed": True, "epoch_s": 30, **episode}
    assert reason("sleep", env("sleep", episodes=[ep])) == code


def test_sleep_episode_limits() -> None:
    ep = {"start": T0, "end": T0 + 60_000, "in_bed": True, "epoch_s": 30}
    assert reason("sleep", env("sleep", episodes=[])) == "schema_violation"
    assert reason("sleep", env("sleep", episodes=[ep] * 33)) == "too_many_samples"


def test_status_and_last_will() -> None:
    r = decode(topic("status"), dumps(env("status", t=T0, online=False)))
    assert isinstance(r, DeviceStatus)
    assert (r.online, r.battery_pct, r.worn, r.firmware, r.n_samples) == (False, None, None, None, 1)
    full = decode(topic("status"), dumps(env("status", t=T0, online=True, battery_pct=0, worn=True, firmware="v2.1")))
    assert isinstance(full, DeviceStatus) and full.battery_pct == 0 and full.firmware == "v2.1"
    assert reason("status", env("status", t=T0, online=True, worn=None)) == "schema_violation"


def test_survey_defaults() -> None:
    r = decode(topic("survey"), dumps(env("survey", t=[T0, T0 + 1], kss=[3, 9])))
    assert isinstance(r, Survey)
    assert r.samn_perelli.tolist() == [0, 0] and r.context == ("", "")
    r2 = decode(topic("survey"), dumps(env("survey", t=[T0, T0 + 1], kss=[3, 9], samn_perelli=[None, 7],
                                          context=["adhoc", "shift_end"])))
    assert isinstance(r2, Survey)
    assert r2.samn_perelli.tolist() == [0, 7] and r2.context == ("adhoc", "shift_end")
    assert reason("survey", env("survey", t=[T0], kss=[3], context=["lunch"])) == "schema_violation"
    assert reason("survey", env("survey", t=[T0], kss=[3, 4])) == "schema_violation"


def test_equality_and_encode_canonical() -> None:
    a = decode(topic("hr"), VALID)
    b = decode(topic("hr"), encode(a))
    assert a == b and records_equal(a, b)
    assert a != decode(topic("hr"), dumps(hr(bpm=[60, 61, 63])))
    assert json.loads(encode(a))["msg_id"] == MSG
    assert a.msg_id == uuid.UUID(MSG)


def test_future_mask() -> None:
    t = np.array([0, 300_000, 300_001], dtype=np.int64)
    assert future_mask(t, 0).tolist() == [False, False, True]
    assert future_mask(t, 0, tolerance_ms=0).tolist() == [False, True, True]


def test_decode_accepts_bytearray_and_memoryview() -> None:
    assert decode(topic("hr"), bytearray(VALID)) == decode(topic("hr"), memoryview(VALID))  # type: ignore[arg-type]


def test_doc_examples_decode() -> None:
    """Every JSON example in docs/contract.md decodes on the topic written above it."""
    import pathlib
    import re

    doc = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "contract.md").read_text()
    examples = re.findall(r"Topic: `([^`]+)`\n```json\n(.*?)```", doc, flags=re.DOTALL)
    assert len(examples) >= 8
    streams = set()
    for topic_str, body in examples:
        records = decode(topic_str, body.encode())
        streams.add(parse_topic(topic_str).stream)
        assert records.device_id == "dev_01"
    assert streams == {"hr", "rr", "sleep", "status", "survey", "omh"}


def _big_hr(n: int = 3000) -> bytes:
    raw = dumps(hr(t=[T0 + 1000 * i for i in range(n)], bpm=[60] * n)).replace(b", ", b",")
    assert len(raw) > 8192
    return raw


@pytest.mark.parametrize(
    ("old", "new", "code"),
    [(b"60,60,60]", b"60,60,60.5]", None), (b"60,60,60]", b'60,60,"60"]', "schema_violation"),
     (b"[60,", b"[-60,", None), (b"[60,", b"[99999999999999999999,", "number_out_of_range"),
     (b"[60,", b"[700,", None), (b"[60,", b"[40000,", "number_out_of_range"),
     (b'"bpm":', b'"bpm":[1],"bpm":', "duplicate_key"), (b"[60,", b"[ 60,", None),
     (b"[1711845000000,", b"[1711845000,", "ts_unit"), (b"[1711845000000,", b"[99999999999999999999,", "ts_unit"),
     (b"[1711845000000,", b'["2024-03-31T00:30:00Z",', None)],
)
def test_large_hr_fast_path_falls_back_strictly(old: bytes, new: bytes, code: str | None) -> None:
    """Payloads over 8 KiB take the NumPy text path; anything non-canonical must behave like the strict path."""
    raw = _big_hr().replace(old, new, 1)
    if code is None:
        r = decode(topic("hr"), raw)
        assert r.n_samples in (2999, 3000)
    else:
        assert reason("hr", raw) == code


def test_bench_decode_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.bench_decode import main

    main(["--quick"])
    assert "ratio" in capsys.readouterr().out
