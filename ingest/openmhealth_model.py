"""Typed shapes of Open mHealth / IEEE 1752.1 data points, and their time frames resolved to epoch milliseconds.

The structs follow the official JSON schemas (copies in ``tests/data/omh``): properties the schemas define are
typed strictly (enumerations as ``Literal``, units as the schema's unit enumeration); properties they do not
define are ignored, as the schemas leave ``additionalProperties`` open. Both header styles decode into
:class:`Header`: IEEE 1752.1 (``uuid``, ``source_creation_date_time``, ``modality``, ...) and Open mHealth 1.x
(``id``, ``creation_date_time``, ``acquisition_provenance``, ``user_id``).

References: Open mHealth schemas, https://github.com/openmhealth/schemas (time-frame-1.0, time-interval-1.0,
duration-unit-value-1.0, descriptive-statistic-1.1, temporal-relationship-to-*-1.0, header-1.2);
IEEE 1752.1-2021 header-1.0 (https://w3id.org/ieee/ieee-1752-schema/header.json).
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec
from msgspec import UNSET, UnsetType

from ingest.contract_base import ContractError
from ingest.contract_time import rfc3339_ms

__all__ = ["DURATION_MS", "DurationValue", "Header", "HeartRateBody", "SleepEpisodeBody", "TimeFrame",
           "duration_ms", "frame_bounds"]

DurationUnit = Literal["ps", "ns", "us", "ms", "sec", "min", "h", "d", "wk", "Mo", "yr"]
#: Milliseconds per duration unit; months and years have no fixed length, so they are not storable.
DURATION_MS: Final[dict[str, float]] = {"ps": 1e-9, "ns": 1e-6, "us": 1e-3, "ms": 1.0, "sec": 1e3, "min": 6e4,
                                        "h": 3.6e6, "d": 8.64e7, "wk": 6.048e8}
Modality = Literal["sensed", "self-reported"]
Statistic = Literal["average", "maximum", "minimum", "standard deviation", "variance", "sum", "median", "count",
                    "quartile deviation", "80th percentile", "lower quartile", "upper quartile", "1st quintile",
                    "2nd quintile", "3rd quintile", "4th quintile"]
ActivityRelation = Literal["at rest", "active", "before exercise", "after exercise", "during exercise"]
SleepRelation = Literal["before sleeping", "during sleep", "on waking"]
PartOfDay = Literal["morning", "afternoon", "evening", "night"]


class DurationValue(msgspec.Struct):
    """``duration-unit-value``: a number and one of the schema's time units."""

    value: int | float
    unit: DurationUnit


class HeartRateValue(msgspec.Struct):
    """``heart_rate``: the unit must be ``beats/min``."""

    value: int | float
    unit: Literal["beats/min"]


class PercentValue(msgspec.Struct):
    """A unit-value whose unit must be ``%``."""

    value: int | float
    unit: Literal["%"]


class Interval(msgspec.Struct):
    """``time-interval``: one of start+end, start+duration, end+duration, date+part_of_day."""

    start_date_time: str | UnsetType = UNSET
    end_date_time: str | UnsetType = UNSET
    duration: DurationValue | UnsetType = UNSET
    date: str | UnsetType = UNSET
    part_of_day: PartOfDay | UnsetType = UNSET


class TimeFrame(msgspec.Struct):
    """``time-frame``: exactly one of ``date_time`` and ``time_interval``."""

    date_time: str | UnsetType = UNSET
    time_interval: Interval | UnsetType = UNSET


class SchemaId(msgspec.Struct):
    """``header.schema_id``."""

    namespace: str
    name: str
    version: str


class Provenance(msgspec.Struct):
    """Open mHealth 1.x ``header.acquisition_provenance`` (accepted, not stored)."""

    source_name: str
    source_data_point_id: str | UnsetType = UNSET
    source_creation_date_time: str | UnsetType = UNSET
    source_last_modification_date_time: str | UnsetType = UNSET
    modality: Modality | UnsetType = UNSET


class Datasheet(msgspec.Struct):
    """IEEE 1752.1 ``header.external_datasheets[]`` (accepted, not stored)."""

    datasheet_reference: str
    datasheet_type: str | UnsetType = UNSET


class Header(msgspec.Struct):
    """Either header style; :func:`ingest.openmhealth` checks that one style's required keys are present."""

    schema_id: SchemaId
    uuid: str | UnsetType = UNSET
    source_creation_date_time: str | UnsetType = UNSET
    modality: Modality | UnsetType = UNSET
    external_datasheets: list[Datasheet] | UnsetType = UNSET
    id: str | UnsetType = UNSET
    creation_date_time: str | UnsetType = UNSET
    acquisition_provenance: Provenance | UnsetType = UNSET
    user_id: str | UnsetType = UNSET


class HeartRateBody(msgspec.Struct):
    """``omh:heart-rate:2.x`` body."""

    heart_rate: HeartRateValue
    effective_time_frame: TimeFrame
    descriptive_statistic: Statistic | UnsetType = UNSET
    temporal_relationship_to_physical_activity: ActivityRelation | UnsetType = UNSET
    temporal_relationship_to_sleep: SleepRelation | UnsetType = UNSET


class SleepEpisodeBody(msgspec.Struct):
    """``sleep-episode:1.x`` body (1.0 and 1.1 properties; only the interval and total sleep time are stored)."""

    effective_time_frame: TimeFrame
    total_sleep_time: DurationValue | UnsetType = UNSET
    latency_to_sleep_onset: DurationValue | UnsetType = UNSET
    latency_to_arising: DurationValue | UnsetType = UNSET
    wake_after_sleep_onset: DurationValue | UnsetType = UNSET
    total_sleep_period_duration: DurationValue | UnsetType = UNSET
    number_of_awakenings: int | UnsetType = UNSET
    is_main_sleep: bool | UnsetType = UNSET
    sleep_maintenance_efficiency_percentage: PercentValue | UnsetType = UNSET
    initial_sleep_onset_date_time: str | UnsetType = UNSET
    final_awakening_date_time: str | UnsetType = UNSET


def duration_ms(d: DurationValue, field: str) -> float:
    """A duration in milliseconds; ``Mo`` and ``yr`` are ``not_storable`` (no fixed length)."""
    factor = DURATION_MS.get(d.unit)
    if factor is None:
        raise ContractError("not_storable", f"{field}: unit {d.unit!r} has no fixed length; use d or wk")
    return float(d.value) * factor


_FORMS: Final = (("start_date_time", "end_date_time"), ("start_date_time", "duration"),
                 ("end_date_time", "duration"), ("date", "part_of_day"))


def frame_bounds(frame: TimeFrame, field: str) -> tuple[int, int] | None:
    """``(start_ms, end_ms)`` of an interval frame, or ``None`` for an instant (use :func:`frame_instant`).

    Raises
    ------
    ContractError
        ``schema_violation`` when the frame matches none or several of the schema's ``oneOf`` branches;
        ``not_storable`` for a date + part of day (no precise time); ``ts_invalid`` for a bad time.
    """
    if isinstance(frame.date_time, str) == isinstance(frame.time_interval, Interval):
        raise ContractError("schema_violation", f"{field} must have exactly one of date_time and time_interval")
    iv = frame.time_interval
    if not isinstance(iv, Interval):
        return None
    matched = [f for f in _FORMS if all(getattr(iv, k) is not UNSET for k in f)]
    if len(matched) != 1:
        raise ContractError("schema_violation", f"{field}.time_interval must be exactly one of start+end, "
                                                "start+duration, end+duration or date+part_of_day")
    form = matched[0]
    if form == ("date", "part_of_day"):
        raise ContractError("not_storable", f"{field}.time_interval: a date and part of day has no precise "
                                            "time; send start_date_time and end_date_time")
    where = f"{field}.time_interval"
    start = rfc3339_ms(str(iv.start_date_time), f"{where}.start_date_time") if "start_date_time" in form else None
    end = rfc3339_ms(str(iv.end_date_time), f"{where}.end_date_time") if "end_date_time" in form else None
    if "duration" in form:
        assert isinstance(iv.duration, DurationValue)
        span = round(duration_ms(iv.duration, f"{where}.duration"))
        start, end = (start, start + span) if start is not None else (end - span, end)  # type: ignore[operator]
    assert start is not None and end is not None
    return start, end


def frame_instant(frame: TimeFrame, field: str) -> int:
    """Epoch milliseconds of an instant frame (call after :func:`frame_bounds` returned ``None``)."""
    assert isinstance(frame.date_time, str)
    return rfc3339_ms(frame.date_time, f"{field}.date_time")
