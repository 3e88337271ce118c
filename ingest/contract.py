"""The v1 MQTT wire contract: topics, payload schemas, decoding into NumPy records and canonical encoding.

This module is the single source of truth shared by the ingester and the simulator (design.md section 3;
gateway-facing documentation in ``docs/contract.md``). Decoding is *total*: any bytes on any topic give
either records or a :class:`ContractError` whose ``reason`` is a code of reliability_security.md section 5.

Topic: ``fatigue/v1/{gateway_id}/{device_id}/{stream}`` with ids ``^[A-Za-z0-9_-]{1,64}$`` and ``stream`` in
``hr, rr, sleep, status, survey, omh`` (``omh``: IEEE 1752.1 / Open mHealth data points, see
:mod:`ingest.openmhealth`).

Checks run in this order, the first failure wins: payload size, topic, empty payload, BOM/UTF-8, JSON
syntax (depth, NaN/Infinity, duplicate keys, huge integers), the typed schema, then values (envelope, counts,
times, ranges, sample rules). Future and participant-window checks need the ingester's clock and the
enrolment, so they are not done here; :func:`future_mask` is the pure helper for them.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt
from msgspec import UnsetType

from ingest import openmhealth
from ingest.contract_base import (
    CONTRACT_VERSION,
    MAX_DEPTH,
    MAX_EPISODES,
    MAX_PAYLOAD_BYTES,
    MAX_SAMPLES,
    REASON_CODES,
    ContractError,
    check_id,
)
from ingest.contract_json import check_duplicates, check_payload, decode_fast_or_general, digit_column
from ingest.contract_records import (
    DeviceStatus,
    HeartRate,
    Records,
    RRIntervals,
    SleepEpisodes,
    Survey,
    artifact_mask,
    records_equal,
    stream_of,
    suspect_mask,
)
from ingest.contract_rules import build_heart_rate, check_count, check_device, int_column, parse_uuid, readonly
from ingest.contract_time import epoch_column, future_mask, parse_time, time_column
from ingest.contract_wire import (
    DECODERS,
    EpisodeWire,
    HrFastWire,
    HrIntWire,
    HrWire,
    RrWire,
    SleepWire,
    StatusWire,
    SurveyFastWire,
    SurveyWire,
    encode,
)

__all__ = [
    "CONTRACT_VERSION", "MAX_DEPTH", "MAX_EPISODES", "MAX_PAYLOAD_BYTES", "MAX_SAMPLES", "REASON_CODES",
    "STREAMS", "SUBSCRIPTION", "ContractError", "DeviceStatus", "HeartRate", "RRIntervals", "Records",
    "SleepEpisodes", "Survey", "Topic", "artifact_mask", "decode", "encode", "future_mask", "parse_topic",
    "records_equal", "stream_of", "suspect_mask", "topic_for",
]

SUBSCRIPTION: Final = "fatigue/v1/+/+/+"
STREAMS: Final = ("hr", "rr", "sleep", "status", "survey", "omh")
_Wire = HrWire | HrFastWire | HrIntWire | RrWire | SleepWire | StatusWire | SurveyWire | SurveyFastWire
MAX_EPISODE_MS: Final = 48 * 3600 * 1000
SURVEY_CONTEXTS: Final = frozenset({"shift_start", "shift_end", "adhoc"})


@dataclass(frozen=True)
class Topic:
    """A parsed v1 topic."""

    gateway_id: str
    device_id: str
    stream: str


@lru_cache(maxsize=8192)
def parse_topic(topic: str) -> Topic:
    """Parse ``fatigue/v1/{gateway_id}/{device_id}/{stream}``.

    Raises
    ------
    ContractError
        ``invalid_id`` if the topic does not follow the grammar or an id breaks ``^[A-Za-z0-9_-]{1,64}$``
        (this covers ``+``, ``#``, ``../`` and non-ASCII); ``unknown_stream`` for any other stream name.
    """
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != "fatigue" or parts[1] != f"v{CONTRACT_VERSION}":
        raise ContractError("invalid_id", "topic must be fatigue/v1/{gateway_id}/{device_id}/{stream}")
    check_id(parts[2], "gateway_id")
    check_id(parts[3], "device_id")
    if parts[4] not in STREAMS:
        raise ContractError("unknown_stream", f"stream must be one of {', '.join(STREAMS)}")
    return Topic(parts[2], parts[3], parts[4])


def topic_for(gateway_id: str, device_id: str, stream: str) -> str:
    """Build the v1 topic; raises :class:`ContractError` for invalid ids or an unknown stream."""
    return f"fatigue/v{CONTRACT_VERSION}/{check_id(gateway_id, 'gateway_id')}/{check_id(device_id, 'device_id')}/" + (
        stream if stream in STREAMS else _unknown_stream()
    )


def _unknown_stream() -> str:
    raise ContractError("unknown_stream", f"stream must be one of {', '.join(STREAMS)}")


def _envelope(w: _Wire, topic: Topic) -> tuple[uuid.UUID, int]:
    if w.schema != f"{topic.stream}/{CONTRACT_VERSION}":
        raise ContractError("schema_violation", f"schema must be {topic.stream}/{CONTRACT_VERSION} on this topic")
    msg_id = parse_uuid(w.msg_id, "msg_id")
    check_device(w.device_id, topic.device_id)
    return msg_id, parse_time(w.sent_at, "sent_at")


def _hr(w: HrWire, topic: Topic) -> HeartRate:
    msg_id, sent_at = _envelope(w, topic)
    check_count(len(w.t), "t")
    if len(w.bpm) != len(w.t):
        raise ContractError("schema_violation", "t and bpm must have the same length")
    return build_heart_rate(msg_id, topic.device_id, sent_at, time_column(w.t, "t"), w.bpm)


_HR_RAW: Final = msgspec.json.Decoder(HrFastWire)
_HR_INT: Final = msgspec.json.Decoder(HrIntWire)
#: Below this size, msgspec int lists beat NumPy text parsing of the raw columns.
_RAW_COLUMNS_FROM: Final = 8192


def _hr_fast_columns(payload: bytes) -> tuple[HrFastWire | HrIntWire, list[int] | npt.NDArray[np.int64],
                                                  list[int] | npt.NDArray[np.int64]] | None:
    try:
        if len(payload) < _RAW_COLUMNS_FROM:
            w = _HR_INT.decode(payload)
            return w, w.t, w.bpm
        raw = _HR_RAW.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    t, bpm = digit_column(raw.t), digit_column(raw.bpm)
    return None if t is None or bpm is None else (raw, t, bpm)


def _hr_fast(payload: bytes, topic: Topic) -> HeartRate | None:
    """Canonical ``hr/1`` (plain integer columns); ``None`` to use the general, strict path."""
    fast = _hr_fast_columns(payload)
    if fast is None:
        return None
    w, t, bpm = fast
    check_duplicates(payload, w)
    msg_id, sent_at = _envelope(w, topic)
    check_count(len(t), "t")
    if len(bpm) != len(t):
        raise ContractError("schema_violation", "t and bpm must have the same length")
    return build_heart_rate(msg_id, topic.device_id, sent_at, epoch_column(t, "t"), bpm, all_int=True)


def _rr(w: RrWire, topic: Topic) -> RRIntervals:
    msg_id, sent_at = _envelope(w, topic)
    check_count(len(w.rr_ms), "rr_ms")
    start = parse_time(w.start, "start")
    rr = int_column(w.rr_ms, "rr_ms", 1, 32767, np.int16)
    return RRIntervals(msg_id, topic.device_id, sent_at, start, rr, readonly(artifact_mask(rr)))


def _episode(e: EpisodeWire, i: int) -> tuple[int, int, npt.NDArray[np.int8] | None, float]:
    f = f"episodes[{i}]"
    start, end = parse_time(e.start, f + ".start"), parse_time(e.end, f + ".end")
    if not 0 < end - start <= MAX_EPISODE_MS:
        raise ContractError("schema_violation", f"{f}: end must be after start and within 48 h")
    if not 1 <= e.epoch_s <= 3600:
        raise ContractError("number_out_of_range", f"{f}.epoch_s outside 1..3600")
    stages = None
    if not isinstance(e.stages, UnsetType):
        if len(e.stages) * e.epoch_s * 1000 != end - start:
            raise ContractError("schema_violation", f"{f}.stages length must equal (end - start) / epoch_s")
        stages = int_column(e.stages, f + ".stages", 0, 3, np.int8)
    tst = math.nan
    if not isinstance(e.tst_min, UnsetType):
        tst = float(e.tst_min)
        if not 0 <= tst <= (end - start) / 60_000:
            raise ContractError("number_out_of_range", f"{f}.tst_min outside 0..episode length")
    return start, end, stages, tst


def _sleep(w: SleepWire, topic: Topic) -> SleepEpisodes:
    msg_id, sent_at = _envelope(w, topic)
    check_count(len(w.episodes), "episodes", MAX_EPISODES)
    n_stages = sum(len(e.stages) for e in w.episodes if isinstance(e.stages, list))
    if n_stages > MAX_SAMPLES:
        raise ContractError("too_many_samples", f"more than {MAX_SAMPLES} stage epochs in one message")
    rows = [_episode(e, i) for i, e in enumerate(w.episodes)]
    return SleepEpisodes(
        msg_id, topic.device_id, sent_at,
        start_ms=readonly(np.array([r[0] for r in rows], dtype=np.int64)),
        end_ms=readonly(np.array([r[1] for r in rows], dtype=np.int64)),
        in_bed=readonly(np.array([e.in_bed for e in w.episodes], dtype=np.bool_)),
        epoch_s=readonly(np.array([e.epoch_s for e in w.episodes], dtype=np.int16)),
        stages=tuple(r[2] for r in rows),
        tst_min=readonly(np.array([r[3] for r in rows], dtype=np.float64)),
    )


def _status(w: StatusWire, topic: Topic) -> DeviceStatus:
    msg_id, sent_at = _envelope(w, topic)
    t = parse_time(w.t, "t")
    battery = None if isinstance(w.battery_pct, UnsetType) else w.battery_pct
    if battery is not None and not 0 <= battery <= 100:
        raise ContractError("number_out_of_range", "battery_pct outside 0..100")
    firmware = None if isinstance(w.firmware, UnsetType) else w.firmware
    if firmware is not None and not (1 <= len(firmware) <= 64 and firmware.isascii() and firmware.isprintable()):
        raise ContractError("bad_text", "firmware must be 1..64 printable ASCII characters")
    worn = None if isinstance(w.worn, UnsetType) else w.worn
    return DeviceStatus(msg_id, topic.device_id, sent_at, t, w.online, battery, worn, firmware)


def _survey(w: SurveyWire | SurveyFastWire, topic: Topic) -> Survey:
    msg_id, sent_at = _envelope(w, topic)
    n = len(w.t)
    check_count(n, "t")
    lengths = [len(w.kss)] + [len(x) for x in (w.samn_perelli, w.context) if not isinstance(x, UnsetType)]
    if any(k != n for k in lengths):
        raise ContractError("schema_violation", "t, kss, samn_perelli and context must have the same length")
    t = epoch_column(w.t, "t") if isinstance(w, SurveyFastWire) else time_column(w.t, "t")
    kss = int_column(w.kss, "kss", 1, 9, np.int8)
    sp = np.zeros(n, dtype=np.int8)
    if isinstance(w.samn_perelli, list):
        answered = [i for i, v in enumerate(w.samn_perelli) if v is not None]
        given = [v for v in w.samn_perelli if v is not None]
        sp[answered] = int_column(given, "samn_perelli", 1, 7, np.int8)
    context: tuple[str, ...] = ("",) * n
    if isinstance(w.context, list):
        if not SURVEY_CONTEXTS.issuperset(w.context):
            raise ContractError("schema_violation", "context entries must be shift_start, shift_end or adhoc")
        context = tuple(w.context)
    return Survey(msg_id, topic.device_id, sent_at, t, kss, readonly(sp), context)


def _build(wire: object, topic: Topic) -> Records:
    if isinstance(wire, HrWire):
        return _hr(wire, topic)
    if isinstance(wire, RrWire):
        return _rr(wire, topic)
    if isinstance(wire, SleepWire):
        return _sleep(wire, topic)
    if isinstance(wire, StatusWire):
        return _status(wire, topic)
    assert isinstance(wire, SurveyWire | SurveyFastWire)
    return _survey(wire, topic)


def _decode_strict(topic: str, payload: bytes) -> Records:
    """:func:`decode` without the safety net: any exception other than ContractError is a bug."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", f"payload larger than {MAX_PAYLOAD_BYTES} bytes")
    t = parse_topic(topic)
    check_payload(payload)
    if t.stream == "omh":
        return openmhealth.decode_omh(t.device_id, payload)
    if t.stream == "hr" and (fast := _hr_fast(payload, t)) is not None:
        return fast
    wire = decode_fast_or_general(payload, *DECODERS[t.stream])
    check_duplicates(payload, wire)
    return _build(wire, t)


def decode(topic: str, payload: bytes) -> Records:
    """Decode and validate one MQTT message.

    Parameters
    ----------
    topic : str
        MQTT topic the message arrived on.
    payload : bytes
        Raw payload (at most :data:`MAX_PAYLOAD_BYTES`).

    Returns
    -------
    Records
        :class:`HeartRate`, :class:`RRIntervals`, :class:`SleepEpisodes`, :class:`DeviceStatus` or
        :class:`Survey` with read-only NumPy columns.

    Raises
    ------
    ContractError
        For every contract violation, and nothing else: unexpected internal errors are mapped to
        ``schema_violation`` (``too_deep`` for ``RecursionError``, ``oversized`` for ``MemoryError``).
    """
    try:
        return _decode_strict(topic, bytes(payload))
    except ContractError:
        raise
    except RecursionError:
        raise ContractError("too_deep", f"nesting deeper than {MAX_DEPTH} levels") from None
    except MemoryError:
        raise ContractError("oversized", "payload too large to decode") from None
    except Exception as exc:
        raise ContractError("schema_violation", f"unclassified validation failure ({type(exc).__name__})") from None
