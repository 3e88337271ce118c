"""The 120-day programme definition: calendar, phases, validity rules and flag thresholds (science.md section 6).

The definition lives in a versioned TOML file; the package ships ``risk/programme_v2.toml`` (the default, with a
changelog citing its sources) and ``risk/programme_v1.toml`` (kept loadable so that issued v1 flags stay
reproducible); a force can supply its own. :func:`load_programme` validates every field on load and raises
:class:`ProgrammeError`
whose message names the field, e.g. ``thresholds.S1.red: expected hours > 0, got -1``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from compliance.rules import ComplianceRules, parse_compliance

__all__ = ["CRITERIA", "DEFAULT_VERSION", "PACKAGED", "Phases", "Programme", "ProgrammeError", "Threshold",
           "Validity", "load_programme"]

#: Packaged programme versions -> file in the ``risk`` package.
PACKAGED: dict[str, str] = {"programme-v1": "programme_v1.toml", "programme-v2": "programme_v2.toml"}
#: The version :func:`load_programme` loads when no file is given.
DEFAULT_VERSION = "programme-v2"

#: criterion code -> (unit, unit name used in messages, direction, bound check, bound description)
_Spec = tuple[str, str, str, Callable[[float], bool], str]
_SPECS: dict[str, _Spec] = {
    "S1": ("h", "hours", "below", lambda v: v > 0, "> 0"),
    "S2": ("h", "hours", "above", lambda v: v >= 0, ">= 0"),
    "S3": ("%", "percent", "below", lambda v: 0 < v <= 100, "in (0, 100]"),
    "S4": ("SRI", "SRI points", "below", lambda v: -100 <= v <= 100, "in [-100, 100]"),
    "H1": ("SD", "baseline SDs", "below", lambda v: v < 0, "< 0"),
    "R1": ("bpm", "beats per minute", "above", lambda v: v > 0, "> 0"),
    "W1": ("count", "a count", "above", lambda v: v >= 1 and float(v).is_integer(), ">= 1, whole"),
    "W2": ("count", "a count", "above", lambda v: v >= 1 and float(v).is_integer(), ">= 1, whole"),
    "W3": ("nights", "nights", "above", lambda v: v >= 1 and float(v).is_integer(), ">= 1, whole"),
    "W4": ("h", "hours", "above", lambda v: 0 < v <= 48, "in (0, 48]"),
    "F1": ("min", "minutes", "above", lambda v: 0 < v <= 1440, "in (0, 1440]"),
}
#: The criteria of science 6.4, in display order.
CRITERIA: tuple[str, ...] = tuple(_SPECS)
_AMBER_ONLY = frozenset({"S4", "H1", "W3"})
_THRESHOLD_KEYS = frozenset({"label", "unit", "direction", "inclusive", "amber", "red", "red_rule",
                             "red_amber_duties", "informative"})


class ProgrammeError(ValueError):
    """The programme file is malformed; the message names the field."""


@dataclass(frozen=True)
class Threshold:
    """Green/amber/red cut-offs of one criterion, in ``unit``.

    ``direction`` "below" means a value under the cut-off is worse; ``inclusive`` turns ``<``/``>`` into
    ``<=``/``>=``. ``red`` is None for amber-only criteria (S4, W3) and for H1, whose red is a rule.
    ``informative`` criteria are graded and shown but never set the overall level (S4 from programme-v2).
    ``red_amber_duties`` (F1 only, optional): this many amber duties in a week make F1 red (programme-v1).
    """

    code: str
    label: str
    unit: str
    direction: str
    inclusive: bool
    amber: float
    red: float | None
    red_amber_duties: int | None = None
    informative: bool = False


@dataclass(frozen=True)
class Phases:
    """Programme phases in programme days (day 1 = enrolment date)."""

    calibration_first_day: int
    calibration_last_day: int
    calibration_min_valid_nights: int
    personalised_first_day: int
    personalised_last_day: int
    extension_last_day: int


@dataclass(frozen=True)
class Validity:
    """Weekly minimum data for a criterion to be evaluated (science 6.3)."""

    min_valid_sleep_days: int
    min_valid_hrv_nights: int
    min_sri_day_pairs: int
    tpm_min_sleep_data_h: float
    roster_required: bool
    f1_needs_known_awake: bool = False
    """A duty whose time awake is unknown (non-wear since the last sleep) has no F1 exposure (programme-v2)."""
    f1_ignores_estimated: bool = False
    """An exposure estimated over missing device sleep (< ``tpm_min_sleep_data_h``) is shown, never graded."""
    missing_days_never_raise: bool = False
    """S1/S3/H1/R1 are graded no worse than with the week's missing days at the week's best valid value."""


@dataclass(frozen=True)
class Programme:
    """A validated programme definition."""

    version: str
    days: int
    weeks: int
    need_pop_h: float
    phases: Phases
    validity: Validity
    thresholds: Mapping[str, Threshold]
    compliance: ComplianceRules = field(default_factory=ComplianceRules)  # [compliance], defaults if absent
    changelog: tuple[str, ...] = ()
    warmup_days: float = 4.0
    """Three-process-model warm-up (``[model] warmup_days``, >= 4, science 4.1): duties earlier get no F1."""

    def calibration_weeks(self) -> int:
        """Number of whole programme weeks inside the calibration phase (2 for days 1-14)."""
        return self.phases.calibration_last_day // 7


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise ProgrammeError(f"{where}{key}: expected a table")
    return value


def _number(data: Mapping[str, Any], key: str, where: str, what: str,
            ok: Callable[[float], bool] = lambda v: True, optional: bool = False) -> float | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProgrammeError(f"{where}{key}: expected {what}, got {value!r}")
    if not ok(float(value)):
        raise ProgrammeError(f"{where}{key}: expected {what}, got {value!r}")
    return float(value)


def _int(data: Mapping[str, Any], key: str, where: str, lo: int, hi: int) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ProgrammeError(f"{where}{key}: expected a whole number in [{lo}, {hi}], got {value!r}")
    return value


def _phases(data: Mapping[str, Any]) -> Phases:
    ph = _table(data, "phases", "")
    cal = _table(ph, "calibration", "phases.")
    per = _table(ph, "personalised", "phases.")
    ext = _table(ph, "extension", "phases.")
    phases = Phases(
        calibration_first_day=_int(cal, "first_day", "phases.calibration.", 1, 1),
        calibration_last_day=_int(cal, "last_day", "phases.calibration.", 7, 119),
        calibration_min_valid_nights=_int(cal, "min_valid_nights", "phases.calibration.", 1, 119),
        personalised_first_day=_int(per, "first_day", "phases.personalised.", 8, 120),
        personalised_last_day=_int(per, "last_day", "phases.personalised.", 8, 366),
        extension_last_day=_int(ext, "last_day", "phases.extension.", 8, 119),
    )
    if phases.personalised_first_day != phases.calibration_last_day + 1:
        raise ProgrammeError("phases.personalised.first_day: expected the day after phases.calibration.last_day")
    if phases.extension_last_day < phases.calibration_last_day:
        raise ProgrammeError("phases.extension.last_day: expected >= phases.calibration.last_day")
    return phases


def _validity(data: Mapping[str, Any]) -> Validity:
    v = _table(data, "validity", "")
    roster = v.get("roster_required")
    if not isinstance(roster, bool):
        raise ProgrammeError(f"validity.roster_required: expected true or false, got {roster!r}")
    return Validity(
        min_valid_sleep_days=_int(v, "min_valid_sleep_days", "validity.", 1, 7),
        min_valid_hrv_nights=_int(v, "min_valid_hrv_nights", "validity.", 1, 7),
        min_sri_day_pairs=_int(v, "min_sri_day_pairs", "validity.", 1, 13),
        tpm_min_sleep_data_h=float(_number(v, "tpm_min_sleep_data_h", "validity.", "hours >= 0",
                                           lambda x: x >= 0) or 0.0),
        roster_required=roster,
        f1_needs_known_awake=_flag(v, "f1_needs_known_awake", "validity."),
        f1_ignores_estimated=_flag(v, "f1_ignores_estimated", "validity."),
        missing_days_never_raise=_flag(v, "missing_days_never_raise", "validity."),
    )


def _flag(data: Mapping[str, Any], key: str, where: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ProgrammeError(f"{where}{key}: expected true or false, got {value!r}")
    return value


def _threshold(code: str, t: Mapping[str, Any]) -> Threshold:
    unit, unit_name, direction, ok, bound = _SPECS[code]
    where = f"thresholds.{code}."
    unknown = sorted(set(t) - _THRESHOLD_KEYS)
    if unknown:
        raise ProgrammeError(f"{where}{unknown[0]}: unknown field")
    if t.get("unit") != unit:
        raise ProgrammeError(f"{where}unit: expected {unit!r} ({unit_name}), got {t.get('unit')!r}")
    if t.get("direction") != direction:
        raise ProgrammeError(f"{where}direction: expected {direction!r}, got {t.get('direction')!r}")
    inclusive = t.get("inclusive", False)
    if not isinstance(inclusive, bool):
        raise ProgrammeError(f"{where}inclusive: expected true or false, got {inclusive!r}")
    what = f"{unit_name} {bound}"
    amber = _number(t, "amber", where, what, ok)
    red = _number(t, "red", where, what, ok, optional=code in _AMBER_ONLY or code == "F1")
    assert amber is not None
    if red is not None and code != "F1":
        worse = red <= amber if direction == "below" else red >= amber
        if not worse:
            raise ProgrammeError(f"{where}red: expected {unit_name} at least as severe as amber ({amber:g})")
    extra = None
    if code == "F1":
        extra = _int(t, "red_amber_duties", where, 1, 21) if "red_amber_duties" in t else None
        red = red if red is not None else amber
    return Threshold(code, str(t.get("label", code)), unit, direction, inclusive, amber, red, extra,
                     _flag(t, "informative", where))


def parse_programme(data: Mapping[str, Any]) -> Programme:
    """Validate a parsed TOML document and build a :class:`Programme`."""
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise ProgrammeError("version: expected a non-empty string")
    thresholds = _table(data, "thresholds", "")
    missing = [c for c in CRITERIA if c not in thresholds]
    if missing:
        raise ProgrammeError(f"thresholds.{missing[0]}: missing criterion")
    extra = sorted(set(thresholds) - set(CRITERIA))
    if extra:
        raise ProgrammeError(f"thresholds.{extra[0]}: unknown criterion")
    parsed = {c: _threshold(c, _table(thresholds, c, "thresholds.")) for c in CRITERIA}
    weeks = _int(data, "weeks", "", 1, 52)
    days = _int(data, "days", "", 7 * weeks, 7 * weeks + 6)
    try:
        compliance = parse_compliance(data.get("compliance"))
    except ValueError as exc:
        raise ProgrammeError(str(exc)) from exc
    return Programme(
        version=version.strip(), days=days, weeks=weeks,
        need_pop_h=float(_number(data, "need_pop_h", "", "hours in [4, 12]", lambda v: 4 <= v <= 12) or 8.0),
        phases=_phases(data), validity=_validity(data), thresholds=MappingProxyType(parsed),
        compliance=compliance, changelog=_changelog(data), warmup_days=_warmup(data))


def _warmup(data: Mapping[str, Any]) -> float:
    model = data.get("model", {})
    if not isinstance(model, Mapping):
        raise ProgrammeError("model: expected a table")
    value = _number(model, "warmup_days", "model.", "days in [4, 28]", lambda v: 4 <= v <= 28, optional=True)
    return 4.0 if value is None else value


def _changelog(data: Mapping[str, Any]) -> tuple[str, ...]:
    entries = data.get("changelog", [])
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise ProgrammeError("changelog: expected [[changelog]] tables")
    out = []
    for i, e in enumerate(entries):
        change, source = e.get("change"), e.get("source")
        if not isinstance(change, str) or not isinstance(source, str) or not change.strip() or not source.strip():
            raise ProgrammeError(f"changelog[{i}]: expected non-empty 'change' and 'source' strings")
        out.append(f"{change.strip()} [{source.strip()}]")
    return tuple(out)


def load_programme(path: str | Path | None = None) -> Programme:
    """Load and validate a programme file.

    Parameters
    ----------
    path : str or Path or None
        TOML file, or a packaged version name (``"programme-v1"``, ``"programme-v2"``); None loads
        :data:`DEFAULT_VERSION`.

    Returns
    -------
    Programme
        The frozen, validated definition.

    Raises
    ------
    ProgrammeError
        The file cannot be read or parsed, or a field is invalid (the message names it).
    """
    try:
        if path is None or str(path) in PACKAGED:
            name = PACKAGED[DEFAULT_VERSION if path is None else str(path)]
            text = resources.files("risk").joinpath(name).read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except OSError as exc:
        raise ProgrammeError(f"programme file: cannot read {path} ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProgrammeError(f"programme file: not valid TOML ({exc})") from exc
    return parse_programme(data)
