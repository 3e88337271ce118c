"""IEEE 1752.1 / Open mHealth data points on the ``omh`` stream, mapped to the native v1 records.

Accepted schemas (``header.schema_id``): ``omh:heart-rate:2.x`` -> :class:`HeartRate` and
``omh:sleep-episode:1.x`` -> :class:`SleepEpisodes`. A payload is one data point or a JSON array of 1..3600
heart-rate or 1..32 sleep-episode data points of one schema. The same reason codes and rules as the native
streams apply (strict types, unknown keys rejected, RFC 3339 times with offset, heart-rate sample rules).

Mapping: ``msg_id`` is ``header.uuid`` for a single data point and, for an array, a UUIDv5 over the sorted
point uuids (so a redelivered array keeps its id); ``sent_at_ms`` is the latest
``header.source_creation_date_time``; ``device_id`` comes from the topic. Sleep episodes get
``in_bed=False`` (the episode interval starts at sleep onset, not bedtime), ``epoch_s=30``, no stages and
``tst_min`` from ``total_sleep_time`` (units ``sec``, ``min`` or ``h``) or NaN.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Final

import msgspec
import numpy as np
from msgspec import UNSET, UnsetType

from ingest.contract_base import MAX_EPISODES, MAX_SAMPLES, ContractError
from ingest.contract_json import check_duplicates, decode_typed
from ingest.contract_records import HeartRate, SleepEpisodes
from ingest.contract_rules import build_heart_rate, check_count, parse_uuid, readonly
from ingest.contract_time import rfc3339_ms

__all__ = ["ARRAY_NAMESPACE", "decode_omh"]

#: Namespace of the UUIDv5 that names an array of data points.
ARRAY_NAMESPACE: Final = uuid.UUID("6c1e0f8a-3b1d-5c57-9a53-0f5d2b1e7a40")
_HR_VERSION: Final = re.compile(r"2\.\d{1,3}")
_SLEEP_VERSION: Final = re.compile(r"1\.\d{1,3}")
_DURATION_MIN: Final = {"sec": 1 / 60, "min": 1.0, "h": 60.0}
_MAX_EPISODE_MIN: Final = 48 * 60


class _Strict(msgspec.Struct, forbid_unknown_fields=True):
    """Base: unknown keys are a schema violation."""


class SchemaId(_Strict):
    """``header.schema_id``."""

    namespace: str
    name: str
    version: str


class Provenance(_Strict):
    """``header.acquisition_provenance`` (accepted, not stored)."""

    source_name: str | UnsetType = UNSET
    source_creation_date_time: str | UnsetType = UNSET
    modality: str | UnsetType = UNSET


class Header(_Strict):
    """Data-point header; other IEEE 1752.1 header fields (e.g. ``user_id``) are rejected."""

    uuid: str
    schema_id: SchemaId
    source_creation_date_time: str
    modality: str | UnsetType = UNSET
    source_data_point_id: str | UnsetType = UNSET
    acquisition_provenance: Provenance | UnsetType = UNSET


class UnitValue(_Strict):
    """``{"value": number, "unit": str}``."""

    value: int | float
    unit: str


class DateTimeFrame(_Strict):
    """``effective_time_frame`` as an instant."""

    date_time: str


class Interval(_Strict):
    """``time_interval`` with start and end."""

    start_date_time: str
    end_date_time: str


class IntervalFrame(_Strict):
    """``effective_time_frame`` as an interval."""

    time_interval: Interval


class HeartRateBody(_Strict):
    """``omh:heart-rate:2.x`` body."""

    heart_rate: UnitValue
    effective_time_frame: DateTimeFrame
    temporal_relationship_to_physical_activity: str | UnsetType = UNSET
    temporal_relationship_to_sleep: str | UnsetType = UNSET
    descriptive_statistic: str | UnsetType = UNSET


class SleepEpisodeBody(_Strict):
    """``omh:sleep-episode:1.x`` body (extra 1.x metrics accepted, only ``total_sleep_time`` stored)."""

    effective_time_frame: IntervalFrame
    total_sleep_time: UnitValue | UnsetType = UNSET
    latency_to_sleep_onset: UnitValue | UnsetType = UNSET
    latency_to_arising: UnitValue | UnsetType = UNSET
    number_of_awakenings: int | UnsetType = UNSET
    is_main_sleep: bool | UnsetType = UNSET
    sleep_maintenance_efficiency_percentage: UnitValue | UnsetType = UNSET


class HeartRatePoint(_Strict):
    """A heart-rate data point."""

    header: Header
    body: HeartRateBody


class SleepEpisodePoint(_Strict):
    """A sleep-episode data point."""

    header: Header
    body: SleepEpisodeBody


class _PeekSchema(msgspec.Struct):
    schema_id: SchemaId


class _Peek(msgspec.Struct):
    header: _PeekSchema


_PEEK: Final = msgspec.json.Decoder(_Peek | list[_Peek])
_HR: Final = msgspec.json.Decoder(HeartRatePoint | list[HeartRatePoint])
_SLEEP: Final = msgspec.json.Decoder(SleepEpisodePoint | list[SleepEpisodePoint])


def _schema_name(payload: bytes) -> str:
    """Find which schema the payload's data points claim, before decoding them strictly."""
    peek = decode_typed(payload, _PEEK)
    ids = [p.header.schema_id for p in (peek if isinstance(peek, list) else [peek])]
    if not ids:
        raise ContractError("schema_violation", "array of data points must not be empty")
    first = ids[0]
    if any(i != first for i in ids):
        raise ContractError("schema_violation", "all data points in one message must share one schema_id")
    if first.namespace == "omh" and first.name == "heart-rate" and _HR_VERSION.fullmatch(first.version):
        return "heart-rate"
    if first.namespace == "omh" and first.name == "sleep-episode" and _SLEEP_VERSION.fullmatch(first.version):
        return "sleep-episode"
    raise ContractError("schema_violation", "schema_id must be omh:heart-rate:2.x or omh:sleep-episode:1.x")


def _envelope(headers: list[Header]) -> tuple[uuid.UUID, int]:
    ids = [parse_uuid(h.uuid, f"[{i}].header.uuid") for i, h in enumerate(headers)]
    if len(set(ids)) != len(ids):
        raise ContractError("schema_violation", "data points repeat a header.uuid")
    sent = max(rfc3339_ms(h.source_creation_date_time, "header.source_creation_date_time") for h in headers)
    msg_id = ids[0] if len(ids) == 1 else uuid.uuid5(ARRAY_NAMESPACE, ",".join(sorted(str(i) for i in ids)))
    return msg_id, sent


def _heart_rate(points: list[HeartRatePoint], device_id: str) -> HeartRate:
    check_count(len(points), "data points", MAX_SAMPLES)
    msg_id, sent = _envelope([p.header for p in points])
    if any(p.body.heart_rate.unit != "beats/min" for p in points):
        raise ContractError("schema_violation", "heart_rate.unit must be beats/min")
    t = np.array(
        [rfc3339_ms(p.body.effective_time_frame.date_time, f"[{i}].effective_time_frame.date_time")
         for i, p in enumerate(points)],
        dtype=np.int64,
    )
    return build_heart_rate(msg_id, device_id, sent, t, [p.body.heart_rate.value for p in points], "heart_rate")


def _episode(body: SleepEpisodeBody, i: int) -> tuple[int, int, float]:
    frame = body.effective_time_frame.time_interval
    start = rfc3339_ms(frame.start_date_time, f"[{i}].time_interval.start_date_time")
    end = rfc3339_ms(frame.end_date_time, f"[{i}].time_interval.end_date_time")
    if not 0 < end - start <= _MAX_EPISODE_MIN * 60_000:
        raise ContractError("schema_violation", f"[{i}]: end must be after start and within 48 h")
    tst = math.nan
    if not isinstance(body.total_sleep_time, UnsetType):
        factor = _DURATION_MIN.get(body.total_sleep_time.unit)
        if factor is None:
            raise ContractError("schema_violation", f"[{i}].total_sleep_time.unit must be sec, min or h")
        tst = float(body.total_sleep_time.value) * factor
        if not 0 <= tst <= (end - start) / 60_000:
            raise ContractError("number_out_of_range", f"[{i}].total_sleep_time outside 0..episode length")
    return start, end, tst


def _sleep(points: list[SleepEpisodePoint], device_id: str) -> SleepEpisodes:
    check_count(len(points), "data points", MAX_EPISODES)
    msg_id, sent = _envelope([p.header for p in points])
    rows = [_episode(p.body, i) for i, p in enumerate(points)]
    n = len(rows)
    return SleepEpisodes(
        msg_id, device_id, sent,
        start_ms=readonly(np.array([r[0] for r in rows], dtype=np.int64)),
        end_ms=readonly(np.array([r[1] for r in rows], dtype=np.int64)),
        in_bed=readonly(np.zeros(n, dtype=np.bool_)),
        epoch_s=readonly(np.full(n, 30, dtype=np.int16)),
        stages=(None,) * n,
        tst_min=readonly(np.array([r[2] for r in rows], dtype=np.float64)),
    )


def decode_omh(device_id: str, payload: bytes) -> HeartRate | SleepEpisodes:
    """Decode an ``omh`` payload (already size/UTF-8 checked) into native records.

    Parameters
    ----------
    device_id : str
        Device id from the (validated) topic.
    payload : bytes
        One data point or a JSON array of data points.

    Raises
    ------
    ContractError
        With the catalogue reason code.
    """
    name = _schema_name(payload)
    if name == "heart-rate":
        hr = decode_typed(payload, _HR)
        check_duplicates(payload, hr)
        return _heart_rate(hr if isinstance(hr, list) else [hr], device_id)
    sleep = decode_typed(payload, _SLEEP)
    check_duplicates(payload, sleep)
    return _sleep(sleep if isinstance(sleep, list) else [sleep], device_id)
