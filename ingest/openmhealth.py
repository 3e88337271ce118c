"""IEEE 1752.1 / Open mHealth data points on the ``omh`` stream, mapped to the native v1 records.

Accepted (``header.schema_id``): ``omh:heart-rate:2.x`` -> :class:`HeartRate`; ``omh:sleep-episode:1.x`` and
``ieee:sleep-episode:1.x`` -> :class:`SleepEpisodes` (IEEE 1752.1 defines no heart-rate schema, so
``ieee:heart-rate`` is refused with that reason). A payload is one data point or a JSON array of 1..3600
heart-rate or 1..32 sleep-episode data points of one schema. Shapes and enumerations are those of the official
schemas (:mod:`ingest.openmhealth_model`); unknown extension properties are ignored, as the schemas allow.

Both header styles are read: IEEE 1752.1 (``uuid``, ``source_creation_date_time``) and Open mHealth 1.x
(``id``, ``creation_date_time``, ``acquisition_provenance``). ``msg_id`` is the ``uuid`` (or an ``id`` that is
a UUID; another ``id`` is named by a UUIDv5 of it) for one data point and, for an array, a UUIDv5 over the
sorted point ids, so a redelivered message keeps its id; ``sent_at_ms`` is the latest creation time.

What is valid but not storable is refused as ``not_storable`` with the reason (docs/contract.md): a header
``user_id`` (participants are known by device enrolment; no personal data on the wire), a date + part of day,
durations in months or years, heart rate over an interval longer than 5 minutes or summarised by another
statistic than an average or median, a sleep episode without start and end, or one that does not end 0-48 h
after it starts. Heart rate over an interval of up to 5 minutes is stored at the interval's midpoint. Sleep
episodes get ``in_bed=False`` (the episode starts at sleep onset, not bedtime), 30-s epochs, no stages and
``tst_min`` from ``total_sleep_time`` or NaN.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Final

import msgspec
import numpy as np

from ingest.contract_base import MAX_EPISODES, MAX_SAMPLES, ContractError
from ingest.contract_json import decode_typed, diagnose
from ingest.contract_records import HeartRate, SleepEpisodes
from ingest.contract_rules import build_heart_rate, check_count, parse_uuid, readonly
from ingest.contract_time import rfc3339_ms
from ingest.openmhealth_model import (
    Header,
    HeartRateBody,
    SchemaId,
    SleepEpisodeBody,
    duration_ms,
    frame_bounds,
    frame_instant,
)

__all__ = ["ARRAY_NAMESPACE", "ID_NAMESPACE", "MAX_HR_INTERVAL_MS", "decode_omh"]

#: Namespace of the UUIDv5 that names an array of data points.
ARRAY_NAMESPACE: Final = uuid.UUID("6c1e0f8a-3b1d-5c57-9a53-0f5d2b1e7a40")
#: Namespace of the UUIDv5 that names an Open mHealth 1.x ``header.id`` that is not itself a UUID.
ID_NAMESPACE: Final = uuid.UUID("0b4f7a3e-8f2c-5d1a-b6e9-3c7d2a1f9e58")
#: Longest interval a heart-rate value may summarise and still be stored as one sample (at its midpoint).
MAX_HR_INTERVAL_MS: Final = 5 * 60_000
_SAMPLE_STATISTICS: Final = frozenset({"average", "median"})
_MAX_EPISODE_MS: Final = 48 * 3_600_000
_VERSION: Final = re.compile(r"([1-9][0-9]{0,2})\.([0-9]{1,3})")
_MAX_ID: Final = 256


class _HeartRatePoint(msgspec.Struct):
    header: Header
    body: HeartRateBody


class _SleepPoint(msgspec.Struct):
    header: Header
    body: SleepEpisodeBody


class _PeekHeader(msgspec.Struct):
    schema_id: SchemaId


class _Peek(msgspec.Struct):
    header: _PeekHeader


_PEEK: Final = msgspec.json.Decoder(_Peek | list[_Peek])
_HR: Final = msgspec.json.Decoder(_HeartRatePoint | list[_HeartRatePoint])
_SLEEP: Final = msgspec.json.Decoder(_SleepPoint | list[_SleepPoint])


def _schema_of(payload: bytes) -> tuple[str, int]:
    """``(name, minor version)`` of the schema the payload's data points claim, before decoding them."""
    peek = decode_typed(payload, _PEEK)
    ids = [p.header.schema_id for p in (peek if isinstance(peek, list) else [peek])]
    if not ids:
        raise ContractError("schema_violation", "array of data points must not be empty")
    first = ids[0]
    if any(i != first for i in ids):
        raise ContractError("schema_violation", "all data points in one message must share one schema_id")
    version = _VERSION.fullmatch(first.version)
    if version is None:
        raise ContractError("schema_violation", "schema_id.version must look like 2.0")
    major, minor = int(version.group(1)), int(version.group(2))
    if (first.namespace, first.name, major) == ("omh", "heart-rate", 2):
        return "heart-rate", minor
    if first.namespace in ("omh", "ieee") and (first.name, major) == ("sleep-episode", 1):
        return "sleep-episode", minor
    if first.namespace == "ieee" and first.name == "heart-rate":
        raise ContractError("schema_violation", "IEEE 1752.1 defines no heart-rate schema; use "
                                                "omh:heart-rate:2.x")
    raise ContractError("schema_violation", "schema_id must be omh:heart-rate:2.x or "
                                            "omh|ieee:sleep-episode:1.x")


def _point_id(h: Header, i: int) -> tuple[uuid.UUID, int]:
    """The data point's id and creation time (epoch ms) from either header style."""
    if isinstance(h.user_id, str):
        raise ContractError("not_storable", f"[{i}].header.user_id: participants are identified by their "
                                            "enrolled device; send no user id (no personal data on the wire)")
    if isinstance(h.uuid, str):
        if not isinstance(h.source_creation_date_time, str):
            raise ContractError("schema_violation", f"[{i}].header.source_creation_date_time is required")
        return (parse_uuid(h.uuid, f"[{i}].header.uuid"),
                rfc3339_ms(h.source_creation_date_time, "header.source_creation_date_time"))
    if isinstance(h.id, str):
        if not isinstance(h.creation_date_time, str):
            raise ContractError("schema_violation", f"[{i}].header.creation_date_time is required")
        if not 0 < len(h.id) <= _MAX_ID:
            raise ContractError("schema_violation", f"[{i}].header.id must be 1..{_MAX_ID} characters")
        try:
            pid = parse_uuid(h.id, "id")
        except ContractError:
            pid = uuid.uuid5(ID_NAMESPACE, h.id)
        return pid, rfc3339_ms(h.creation_date_time, "header.creation_date_time")
    raise ContractError("schema_violation", f"[{i}].header needs uuid (IEEE 1752.1) or id (Open mHealth 1.x)")


def _envelope(headers: list[Header]) -> tuple[uuid.UUID, int]:
    pairs = [_point_id(h, i) for i, h in enumerate(headers)]
    ids = [p[0] for p in pairs]
    if len(set(ids)) != len(ids):
        raise ContractError("schema_violation", "data points repeat a header id")
    msg_id = ids[0] if len(ids) == 1 else uuid.uuid5(ARRAY_NAMESPACE, ",".join(sorted(str(i) for i in ids)))
    return msg_id, max(p[1] for p in pairs)


def _sample_time(body: HeartRateBody, i: int) -> int:
    """When a heart-rate value was observed: its instant, or the midpoint of a short interval."""
    field = f"[{i}].effective_time_frame"
    bounds = frame_bounds(body.effective_time_frame, field)  # first: a malformed frame is not merely unstorable
    instant = frame_instant(body.effective_time_frame, field) if bounds is None else None
    statistic = body.descriptive_statistic
    if isinstance(statistic, str) and statistic not in _SAMPLE_STATISTICS:
        raise ContractError("not_storable", f"[{i}].descriptive_statistic {statistic!r} is not a heart-rate "
                                            "sample; only single values, averages and medians are stored")
    if bounds is None:
        assert instant is not None
        return instant
    start, end = bounds
    if not 0 <= end - start <= MAX_HR_INTERVAL_MS:
        raise ContractError("not_storable", f"{field}: heart rate over an interval of {(end - start) / 60_000:g} "
                                            "min; only instants and intervals up to 5 min are stored as samples")
    return (start + end) // 2


def _heart_rate(points: list[_HeartRatePoint], device_id: str) -> HeartRate:
    check_count(len(points), "data points", MAX_SAMPLES)
    msg_id, sent = _envelope([p.header for p in points])
    t = np.array([_sample_time(p.body, i) for i, p in enumerate(points)], dtype=np.int64)
    return build_heart_rate(msg_id, device_id, sent, t, [p.body.heart_rate.value for p in points], "heart_rate")


def _episode_bounds(body: SleepEpisodeBody, minor: int, i: int) -> tuple[int, int]:
    field = f"[{i}].effective_time_frame"
    bounds = frame_bounds(body.effective_time_frame, field)
    if bounds is None:
        if minor >= 1:
            raise ContractError("schema_violation", f"{field}: sleep-episode 1.{minor} requires a time_interval")
        onset, woke = body.initial_sleep_onset_date_time, body.final_awakening_date_time
        if not (isinstance(onset, str) and isinstance(woke, str)):
            raise ContractError("not_storable", f"{field}: a sleep episode at one instant has no start and end; "
                                                "send a time_interval (or 1.0's initial_sleep_onset_date_time "
                                                "and final_awakening_date_time)")
        bounds = rfc3339_ms(onset, "initial_sleep_onset_date_time"), rfc3339_ms(woke, "final_awakening_date_time")
    start, end = bounds
    if not 0 < end - start <= _MAX_EPISODE_MS:
        raise ContractError("not_storable", f"{field}: the episode must end after it starts and within 48 h")
    return start, end


def _episode(body: SleepEpisodeBody, minor: int, i: int) -> tuple[int, int, float]:
    start, end = _episode_bounds(body, minor, i)
    tst = math.nan
    if not isinstance(body.total_sleep_time, msgspec.UnsetType):
        tst = duration_ms(body.total_sleep_time, f"[{i}].total_sleep_time") / 60_000
        if not 0 <= tst <= (end - start) / 60_000:
            raise ContractError("number_out_of_range", f"[{i}].total_sleep_time outside 0..episode length")
    return start, end, tst


def _sleep(points: list[_SleepPoint], minor: int, device_id: str) -> SleepEpisodes:
    check_count(len(points), "data points", MAX_EPISODES)
    msg_id, sent = _envelope([p.header for p in points])
    rows = np.array([_episode(p.body, minor, i) for i, p in enumerate(points)], dtype=np.float64).reshape(-1, 3)
    n = len(points)
    return SleepEpisodes(
        msg_id, device_id, sent,
        start_ms=readonly(rows[:, 0].astype(np.int64)),
        end_ms=readonly(rows[:, 1].astype(np.int64)),
        in_bed=readonly(np.zeros(n, dtype=np.bool_)),
        epoch_s=readonly(np.full(n, 30, dtype=np.int16)),
        stages=(None,) * n,
        tst_min=readonly(rows[:, 2].copy()),
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
    name, minor = _schema_of(payload)
    # Unknown properties are skipped by the typed decoders, so repeated keys are found on the whole text (the
    # standard library parser with hooks: slower than the native streams' check, and omh is not their hot path).
    found = diagnose(payload)
    if found is not None:
        raise found
    if name == "heart-rate":
        hr = decode_typed(payload, _HR)
        return _heart_rate(hr if isinstance(hr, list) else [hr], device_id)
    sleep = decode_typed(payload, _SLEEP)
    return _sleep(sleep if isinstance(sleep, list) else [sleep], minor, device_id)
