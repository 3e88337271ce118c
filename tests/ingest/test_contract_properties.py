"""Hypothesis properties of the v1 wire contract: round trip for every stream and totality of decode."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.contract import (
    MAX_SAMPLES,
    REASON_CODES,
    STREAMS,
    ContractError,
    DeviceStatus,
    HeartRate,
    Records,
    RRIntervals,
    SleepEpisodes,
    Survey,
    artifact_mask,
    encode,
    records_equal,
    suspect_mask,
    topic_for,
)
from ingest.contract import _decode_strict as decode_strict
from ingest.contract_time import TS_MAX_MS, TS_MIN_MS

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")
times = st.integers(TS_MIN_MS, TS_MAX_MS - 49 * 3600 * 1000)
envelope = st.tuples(st.uuids(), ids, times)


def i64(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


@st.composite
def heart_rates(draw: st.DrawFn) -> HeartRate:
    msg_id, dev, sent = draw(envelope)
    n = draw(st.integers(1, 40))
    t = i64(draw(st.lists(times, min_size=n, max_size=n)))
    bpm = np.array(draw(st.lists(st.integers(1, 300), min_size=n, max_size=n)), dtype=np.int16)
    return HeartRate(msg_id, dev, sent, t, bpm, suspect_mask(bpm))


@st.composite
def rr_runs(draw: st.DrawFn) -> RRIntervals:
    msg_id, dev, sent = draw(envelope)
    rr = np.array(draw(st.lists(st.integers(1, 32767), min_size=1, max_size=40)), dtype=np.int16)
    return RRIntervals(msg_id, dev, sent, draw(times), rr, artifact_mask(rr))


@st.composite
def episode(draw: st.DrawFn) -> tuple[int, int, bool, int, np.ndarray | None, float]:
    start, epoch_s = draw(times), draw(st.integers(1, 3600))
    stages = None
    if draw(st.booleans()):
        k = draw(st.integers(1, min(60, 48 * 3600 // epoch_s)))
        stages = np.array(draw(st.lists(st.integers(0, 3), min_size=k, max_size=k)), dtype=np.int8)
        end = start + k * epoch_s * 1000
    else:
        end = start + draw(st.integers(1, 48 * 3600 * 1000))
    dur_min = (end - start) / 60_000
    tst = draw(st.one_of(st.just(math.nan), st.floats(0, dur_min)))
    return start, end, draw(st.booleans()), epoch_s, stages, tst


@st.composite
def sleeps(draw: st.DrawFn) -> SleepEpisodes:
    msg_id, dev, sent = draw(envelope)
    eps = draw(st.lists(episode(), min_size=1, max_size=4))
    return SleepEpisodes(
        msg_id, dev, sent, i64([e[0] for e in eps]), i64([e[1] for e in eps]),
        np.array([e[2] for e in eps], dtype=np.bool_), np.array([e[3] for e in eps], dtype=np.int16),
        tuple(e[4] for e in eps), np.array([e[5] for e in eps], dtype=np.float64),
    )


@st.composite
def statuses(draw: st.DrawFn) -> DeviceStatus:
    msg_id, dev, sent = draw(envelope)
    firmware = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=64)
    return DeviceStatus(msg_id, dev, sent, draw(times), draw(st.booleans()),
                        draw(st.none() | st.integers(0, 100)), draw(st.none() | st.booleans()),
                        draw(st.none() | firmware))


@st.composite
def surveys(draw: st.DrawFn) -> Survey:
    msg_id, dev, sent = draw(envelope)
    n = draw(st.integers(1, 20))
    kss = np.array(draw(st.lists(st.integers(1, 9), min_size=n, max_size=n)), dtype=np.int8)
    sp = np.array(draw(st.lists(st.integers(0, 7), min_size=n, max_size=n)), dtype=np.int8)
    ctx = ("",) * n
    if draw(st.booleans()):
        ctx = tuple(draw(st.lists(st.sampled_from(["shift_start", "shift_end", "adhoc"]), min_size=n, max_size=n)))
    return Survey(msg_id, dev, sent, i64(draw(st.lists(times, min_size=n, max_size=n))), kss, sp, ctx)


any_records = st.one_of(heart_rates(), rr_runs(), sleeps(), statuses(), surveys())


@FAST
@given(records=any_records, gateway=ids)
def test_round_trip(records: Records, gateway: str) -> None:
    back = decode_strict(topic_for(gateway, records.device_id, records.stream), encode(records))
    assert records_equal(back, records)
    assert back == records


def _ok_or_contract_error(topic: str, payload: bytes) -> None:
    try:
        decode_strict(topic, payload)
    except ContractError as exc:
        assert exc.reason in REASON_CODES


@FAST
@given(payload=st.binary(max_size=400), stream=st.sampled_from(STREAMS))
def test_total_on_arbitrary_bytes(payload: bytes, stream: str) -> None:
    _ok_or_contract_error(topic_for("gw", "dev", stream), payload)


@FAST
@given(topic=st.text(max_size=80), payload=st.binary(max_size=50))
def test_total_on_arbitrary_topics(topic: str, payload: bytes) -> None:
    _ok_or_contract_error(topic, payload)


json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(-(10**30), 10**30)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=20,
)


@FAST
@given(value=json_values, stream=st.sampled_from(STREAMS))
def test_total_on_arbitrary_json(value: Any, stream: str) -> None:
    _ok_or_contract_error(topic_for("gw", "dev", stream), json.dumps(value).encode())


@FAST
@given(records=any_records, data=st.data())
def test_total_on_mutated_valid_messages(records: Records, data: st.DataObject) -> None:
    """Replace, delete or add one field of a valid message: the mutant must still decode or be rejected."""
    doc = json.loads(encode(records))
    target = doc
    if "episodes" in doc and data.draw(st.booleans()):
        target = doc["episodes"][0]
    key = data.draw(st.sampled_from(sorted(target)))
    action = data.draw(st.sampled_from(["replace", "delete", "add", "append"]))
    if action == "replace":
        target[key] = data.draw(json_values)
    elif action == "delete":
        del target[key]
    elif action == "add":
        target[data.draw(st.text(max_size=8))] = data.draw(json_values)
    elif isinstance(target[key], list):
        target[key].append(data.draw(json_values))
    topic = topic_for("gw", records.device_id, records.stream)
    _ok_or_contract_error(topic, json.dumps(target if target is doc else doc).encode())


@pytest.mark.slow
@settings(max_examples=2000, deadline=None)
@given(records=any_records, data=st.data())
def test_total_on_truncations_slow(records: Records, data: st.DataObject) -> None:
    raw = encode(records)
    cut = data.draw(st.integers(0, len(raw)))
    _ok_or_contract_error(topic_for("gw", records.device_id, records.stream), raw[:cut])


def test_max_samples_round_trip() -> None:
    n = MAX_SAMPLES
    bpm = np.full(n, 60, dtype=np.int16)
    r = HeartRate(__import__("uuid").uuid4(), "d", TS_MIN_MS, i64(list(range(TS_MIN_MS, TS_MIN_MS + n))), bpm,
                  suspect_mask(bpm))
    assert decode_strict(topic_for("g", "d", "hr"), encode(r)) == r
