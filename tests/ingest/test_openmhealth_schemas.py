"""The `omh` decoder against the standards' own schemas and sample documents, both ways.

The official JSON schemas and sample bodies are copied in tests/data/omh (sources and licences in
tests/data/SOURCES.md) and evaluated with `jsonschema` (format checks on). For every document, the schemas'
verdict and the service's must agree: what the schemas refuse, the service refuses; what they accept, the
service stores, or refuses as `not_storable` with a reason (the cases listed in docs/contract.md).
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from ingest.contract import ContractError, HeartRate, SleepEpisodes, decode, topic_for

DATA = Path(__file__).resolve().parents[1] / "data" / "omh"
BASE = "https://schemas.test/omh/"
TOPIC = topic_for("gw", "watch-7", "omh")
#: Stand-in for schema-id-1.x (not in the stored copy of the repository): the three string properties of the
#: Open mHealth schema-id, all required; it constrains headers no more than the official file does.
SCHEMA_ID_STAND_IN = {"type": "object", "required": ["namespace", "name", "version"],
                      "properties": {"namespace": {"type": "string"}, "name": {"type": "string"},
                                     "version": {"type": "string"}}}
ALIASES = {"date-time-1.x": "date-time-1.0", "time-frame-1.x": "time-frame-1.0",
           "time-interval-1.x": "time-interval-1.0", "unit-value-1.x": "unit-value-1.0",
           "duration-unit-value-1.x": "duration-unit-value-1.0", "part-of-day-1.x": "part-of-day-1.0",
           "descriptive-statistic-1.x": "descriptive-statistic-1.1",
           "temporal-relationship-to-physical-activity-1.x": "temporal-relationship-to-physical-activity-1.0",
           "temporal-relationship-to-sleep-1.x": "temporal-relationship-to-sleep-1.0"}


def _registry() -> Registry:  # type: ignore[type-arg]
    docs = {p.stem: json.loads(p.read_text()) for p in (DATA / "schemas").rglob("*.json")}
    docs.update({alias: docs[target] for alias, target in ALIASES.items()})
    docs["schema-id-1.x"] = docs["schema-id-1.0"] = SCHEMA_ID_STAND_IN
    resources = []
    for name, doc in docs.items():
        doc = {k: v for k, v in doc.items() if k != "$id"}  # resolve every $ref among these local copies
        resources.append((f"{BASE}{name}.json", Resource.from_contents(doc, default_specification=DRAFT7)))
    return Registry().with_resources(resources)


REGISTRY = _registry()
BODY_SCHEMAS = {("heart-rate", "2.0"): "heart-rate-2.0", ("sleep-episode", "1.0"): "sleep-episode-1.0",
                ("sleep-episode", "1.1"): "sleep-episode-1.1"}
HEADER_SCHEMAS = {"ieee": "header-1.0", "omh1": "header-1.2"}


def _valid(schema: str, doc: Any) -> bool:
    validator = Draft7Validator({"$ref": f"{BASE}{schema}.json"}, registry=REGISTRY, format_checker=FormatChecker())
    return not list(validator.iter_errors(doc))


def _header(style: str, name: str, version: str, namespace: str = "omh") -> dict[str, Any]:
    schema_id = {"namespace": namespace, "name": name, "version": version}
    if style == "ieee":
        return {"uuid": "b0c1d2e3-f4a5-4b6c-8d7e-9f0a1b2c3d4e", "schema_id": schema_id,
                "source_creation_date_time": "2024-03-31T06:05:00Z", "modality": "sensed"}
    return {"id": "wearable-export-000123", "creation_date_time": "2024-03-31T06:05:00Z", "schema_id": schema_id,
            "acquisition_provenance": {"source_name": "Acme watch", "modality": "sensed"}}


def _service(point: dict[str, Any]) -> tuple[bool, str, Any]:
    """``(accepted, reason, record)`` of the service for one data point."""
    try:
        return True, "", decode(TOPIC, json.dumps(point).encode())
    except ContractError as exc:
        return False, exc.reason, exc.detail


def _agree(point: dict[str, Any], body_schema: str, header_schema: str) -> tuple[bool, bool, str]:
    schema_ok = _valid(body_schema, point["body"]) and _valid(header_schema, point["header"])
    accepted, reason, detail = _service(point)
    assert (accepted or reason == "not_storable") == schema_ok, (
        f"schemas say {'valid' if schema_ok else 'invalid'}, service {'stored' if accepted else reason}: "
        f"{detail}\n{json.dumps(point)[:600]}")
    return schema_ok, accepted, reason


def _samples() -> list[tuple[str, str, str, bool]]:
    out = []
    for path in sorted((DATA / "test-data").rglob("*.json")):
        name, version, verdict = path.parts[-4], path.parts[-3], path.parts[-2]
        out.append((name, version, path.name, verdict == "shouldPass"))
    return out


@pytest.mark.parametrize("style", ["ieee", "omh1"])
@pytest.mark.parametrize(("name", "version", "file", "should_pass"), _samples())
def test_official_samples_agree_with_the_schemas(style: str, name: str, version: str, file: str,
                                                 should_pass: bool) -> None:
    body = json.loads((DATA / "test-data" / name / version / ("shouldPass" if should_pass else "shouldFail")
                       / file).read_text())
    point = {"header": _header(style, name, version), "body": body}
    schema_ok, _, _ = _agree(point, BODY_SCHEMAS[(name, version)], HEADER_SCHEMAS[style])
    if should_pass:
        assert schema_ok, "an official shouldPass sample fails its schema here: the copies are wrong"


def test_what_the_samples_store() -> None:
    def body(name: str, version: str, file: str) -> Any:
        return json.loads((DATA / "test-data" / name / version / "shouldPass" / file).read_text())

    hr = decode(TOPIC, json.dumps({"header": _header("ieee", "heart-rate", "2.0"),
                                   "body": body("heart-rate", "2.0", "with-temporal-relationship-to-sleep.json")
                                   }).encode())
    assert isinstance(hr, HeartRate) and hr.bpm.tolist() == [50]
    assert hr.t_ms.tolist() == [1_580_916_300_000]  # 2020-02-05T07:25:00-08:00
    sleep = decode(TOPIC, json.dumps({"header": _header("omh1", "sleep-episode", "1.1"),
                                      "body": body("sleep-episode", "1.1", "valid-sleep-episode.json")}).encode())
    assert isinstance(sleep, SleepEpisodes)
    assert int(sleep.end_ms[0] - sleep.start_ms[0]) == 9 * 3_600_000 and sleep.tst_min.tolist() == [510.0]
    old = decode(TOPIC, json.dumps({"header": _header("ieee", "sleep-episode", "1.0"),
                                    "body": body("sleep-episode", "1.0", "valid-sleep-episode.json")}).encode())
    assert isinstance(old, SleepEpisodes) and int(old.end_ms[0] - old.start_ms[0]) == 9 * 3_600_000
    day = {"header": _header("ieee", "heart-rate", "2.0"),
           "body": body("heart-rate", "2.0", "with-descriptive-statistic.json")}
    accepted, reason, detail = _service(day)
    assert (accepted, reason) == (False, "not_storable") and "1440 min" in detail


# --- generated variants: every interval form, units, enums, extensions and header styles ---------------------

INTERVALS: list[dict[str, Any]] = [
    {"start_date_time": "2024-03-30T23:00:00Z", "end_date_time": "2024-03-31T06:30:00Z"},
    {"start_date_time": "2024-03-30T23:00:00Z", "duration": {"value": 7.5, "unit": "h"}},
    {"end_date_time": "2024-03-31T07:30:00+01:00", "duration": {"value": 450, "unit": "min"}},
    {"start_date_time": "2024-03-30T23:00:00Z", "duration": {"value": 27000, "unit": "sec"}},
    {"start_date_time": "2024-03-30T23:00:00Z", "duration": {"value": 1, "unit": "Mo"}},
    {"date": "2024-03-30", "part_of_day": "night"},
    {"date": "2024-03-30", "part_of_day": "midnight"},
    {"start_date_time": "2024-03-30T23:00:00Z", "end_date_time": "2024-03-31T06:30:00Z",
     "duration": {"value": 7.5, "unit": "h"}},
    {"start_date_time": "2024-03-30T23:00:00Z"},
    {"start_date_time": "2024-03-30T23:00:00", "end_date_time": "2024-03-31T06:30:00Z"},
    {"start_date_time": "2024-03-30T23:00:00Z", "duration": {"value": 7.5, "unit": "hours"}},
    {"start_date_time": "2024-03-31T06:30:00Z", "end_date_time": "2024-03-30T23:00:00Z"},
]
EXTRAS: list[dict[str, Any]] = [
    {}, {"x_vendor_score": 87}, {"number_of_awakenings": 3}, {"number_of_awakenings": 2.5},
    {"is_main_sleep": "yes"}, {"wake_after_sleep_onset": {"value": 20, "unit": "min"}},
    {"sleep_maintenance_efficiency_percentage": {"value": 91, "unit": "%"}},
    {"sleep_maintenance_efficiency_percentage": {"value": 91, "unit": "percent"}},
    {"total_sleep_time": {"value": 400, "unit": "min"}}, {"total_sleep_time": {"value": 400}},
]


@pytest.mark.parametrize(("interval", "extra"), list(itertools.product(INTERVALS, EXTRAS)))
@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_sleep_variants_agree(interval: dict[str, Any], extra: dict[str, Any], version: str) -> None:
    point = {"header": _header("ieee", "sleep-episode", version),
             "body": {"effective_time_frame": {"time_interval": interval}, **extra}}
    _agree(point, BODY_SCHEMAS[("sleep-episode", version)], HEADER_SCHEMAS["ieee"])


HR_FRAMES: list[dict[str, Any]] = [
    {"date_time": "2024-03-31T01:30:00+01:00"},
    {"date_time": "2024-03-31T01:30:00"},
    {"time_interval": {"start_date_time": "2024-03-31T00:30:00Z", "duration": {"value": 1, "unit": "min"}}},
    {"time_interval": {"end_date_time": "2024-03-31T00:31:00Z", "duration": {"value": 60, "unit": "sec"}}},
    {"time_interval": {"start_date_time": "2024-03-31T00:30:00Z", "end_date_time": "2024-03-31T01:30:00Z"}},
    {"date_time": "2024-03-31T01:30:00Z", "time_interval": {"date": "2024-03-31", "part_of_day": "night"}},
]
HR_EXTRAS: list[dict[str, Any]] = [
    {}, {"descriptive_statistic": "average"}, {"descriptive_statistic": "maximum"},
    {"descriptive_statistic": "mode"}, {"temporal_relationship_to_physical_activity": "at rest"},
    {"temporal_relationship_to_physical_activity": "sprinting"}, {"temporal_relationship_to_sleep": "on waking"},
    {"temporal_relationship_to_sleep": "napping"}, {"vendor": {"model": "x"}},
]


@pytest.mark.parametrize(("frame", "extra"), list(itertools.product(HR_FRAMES, HR_EXTRAS)))
@pytest.mark.parametrize("unit", ["beats/min", "beat/min"])
def test_heart_rate_variants_agree(frame: dict[str, Any], extra: dict[str, Any], unit: str) -> None:
    point = {"header": _header("omh1", "heart-rate", "2.0"),
             "body": {"heart_rate": {"value": 61, "unit": unit}, "effective_time_frame": frame, **extra}}
    _agree(point, BODY_SCHEMAS[("heart-rate", "2.0")], HEADER_SCHEMAS["omh1"])


def _drop(d: dict[str, Any], key: str) -> dict[str, Any]:
    out = copy.deepcopy(d)
    out.pop(key)
    return out


HEADERS: list[tuple[str, dict[str, Any]]] = [
    ("ieee", _header("ieee", "heart-rate", "2.0")),
    ("ieee", {**_header("ieee", "heart-rate", "2.0"), "external_datasheets": [{"datasheet_reference": "x:y"}]}),
    ("ieee", {**_header("ieee", "heart-rate", "2.0"), "modality": "guessed"}),
    ("ieee", _drop(_header("ieee", "heart-rate", "2.0"), "source_creation_date_time")),
    ("ieee", {**_header("ieee", "heart-rate", "2.0"), "uuid": "not-a-uuid"}),
    ("omh1", _header("omh1", "heart-rate", "2.0")),
    ("omh1", {**_header("omh1", "heart-rate", "2.0"), "acquisition_provenance": {"modality": "sensed"}}),
    ("omh1", _drop(_header("omh1", "heart-rate", "2.0"), "creation_date_time")),
    ("omh1", {**_header("omh1", "heart-rate", "2.0"), "user_id": "PC-1234"}),
    ("omh1", {**_header("omh1", "heart-rate", "2.0"), "id": "3f2b8c1e-7a4d-4e2a-9c1b-2d3e4f5a6b7c"}),
]


@pytest.mark.parametrize(("style", "header"), HEADERS)
def test_header_variants_agree(style: str, header: dict[str, Any]) -> None:
    point = {"header": header, "body": {"heart_rate": {"value": 61, "unit": "beats/min"},
                                        "effective_time_frame": {"date_time": "2024-03-31T01:30:00Z"}}}
    _agree(point, BODY_SCHEMAS[("heart-rate", "2.0")], HEADER_SCHEMAS[style])


def test_ieee_namespace_sleep_is_stored_and_ieee_heart_rate_refused_with_the_reason() -> None:
    sleep = {"header": _header("ieee", "sleep-episode", "1.0", namespace="ieee"),
             "body": {"effective_time_frame": {"time_interval": INTERVALS[1]}}}
    assert isinstance(decode(TOPIC, json.dumps(sleep).encode()), SleepEpisodes)
    hr = {"header": _header("ieee", "heart-rate", "2.0", namespace="ieee"),
          "body": {"heart_rate": {"value": 61, "unit": "beats/min"},
                   "effective_time_frame": {"date_time": "2024-03-31T01:30:00Z"}}}
    with pytest.raises(ContractError, match=r"IEEE 1752\.1 defines no heart-rate schema"):
        decode(TOPIC, json.dumps(hr).encode())


def test_omh1_ids_give_stable_message_ids() -> None:
    point = {"header": _header("omh1", "heart-rate", "2.0"),
             "body": {"heart_rate": {"value": 61, "unit": "beats/min"},
                      "effective_time_frame": {"date_time": "2024-03-31T01:30:00Z"}}}
    first, again = (decode(TOPIC, json.dumps(point).encode()) for _ in range(2))
    assert first.msg_id == again.msg_id
    point["header"]["id"] = "wearable-export-000124"
    assert decode(TOPIC, json.dumps(point).encode()).msg_id != first.msg_id
