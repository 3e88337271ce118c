"""Compliance thresholds: the ``[compliance]`` table of a programme file, with defaults.

Every field is optional, so a programme file without the table (or a new programme version that does not know
about it) gets the defaults below. :func:`parse_compliance` validates what is there and raises
:class:`ValueError` whose message names the field (``compliance.alert_battery_pct: ...``); the programme loader
(:mod:`risk.programme`) turns that into its own ``ProgrammeError``.

Levels (evaluated per participant, see :func:`compliance.kernel.evaluate`):

- **lapsed**: nothing received from the device (heart rate, RR, sleep or status; survey answers come from the
  officer's phone and do not count) for ``lapsed_silent_h``, or fewer than
  ``lapsed_valid_nights`` valid nights in the last 7 complete days (the week would be "insufficient data",
  science.md 6.3);
- **watch**: silent for ``watch_silent_h``, no heart rate (not worn) for ``watch_unworn_h``, battery below
  ``alert_battery_pct``, or fewer than ``watch_valid_nights`` valid nights in the last 7 complete days;
- **ok** otherwise.

A *valid night* is a local day with at least one detected sleep episode ending on it and at least
``min_wear_h`` hours of wear (science.md 1.2, GGIR's 16 h), or no wear signal at all that day (sleep but no
heart rate), as the feature job's valid sleep day. In a participant's first week the night rules
count *missing* nights among the complete programme days so far, so day 3 is not "lapsed" for lack of days.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["ComplianceRules", "parse_compliance"]


@dataclass(frozen=True)
class ComplianceRules:
    """Thresholds of the compliance view and its alerts (units in the names: h hours, pct percent)."""

    min_wear_h: float = 16.0
    watch_silent_h: float = 12.0
    lapsed_silent_h: float = 48.0
    watch_unworn_h: float = 24.0
    watch_valid_nights: int = 5
    lapsed_valid_nights: int = 4
    alert_silent_h: float = 24.0
    alert_battery_pct: float = 15.0
    alert_battery_clear_pct: float = 20.0
    alert_min_valid_nights: int = 4


_HOURS = {"min_wear_h": (0.0, 24.0), "watch_silent_h": (0.5, 720.0), "lapsed_silent_h": (0.5, 720.0),
          "watch_unworn_h": (0.5, 720.0), "alert_silent_h": (0.5, 720.0)}
_PERCENT = ("alert_battery_pct", "alert_battery_clear_pct")
_NIGHTS = ("watch_valid_nights", "lapsed_valid_nights", "alert_min_valid_nights")


def _value(table: Mapping[str, Any], key: str, lo: float, hi: float, whole: bool) -> float:
    value = table[key]
    ok = (not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
          and lo <= value <= hi and (not whole or float(value).is_integer()))
    if not ok:
        kind = "a whole number" if whole else "a number"
        raise ValueError(f"compliance.{key}: expected {kind} in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


def parse_compliance(table: Mapping[str, Any] | None) -> ComplianceRules:
    """Validate a ``[compliance]`` table (None or empty: all defaults).

    Raises
    ------
    ValueError
        An unknown field, a value out of range, or thresholds in the wrong order; the message names the field.
    """
    table = table or {}
    if not isinstance(table, Mapping):
        raise ValueError("compliance: expected a table")
    known = {f.name for f in fields(ComplianceRules)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"compliance.{unknown[0]}: unknown field")
    values: dict[str, Any] = {}
    for key in table:
        if key in _HOURS:
            values[key] = _value(table, key, *_HOURS[key], whole=False)
        elif key in _PERCENT:
            values[key] = _value(table, key, 0.0, 100.0, whole=False)
        else:
            values[key] = int(_value(table, key, 0.0, 7.0, whole=True))
    rules = ComplianceRules(**values)
    if rules.lapsed_silent_h < rules.watch_silent_h:
        raise ValueError("compliance.lapsed_silent_h: expected hours >= compliance.watch_silent_h")
    if rules.lapsed_valid_nights > rules.watch_valid_nights:
        raise ValueError("compliance.lapsed_valid_nights: expected nights <= compliance.watch_valid_nights")
    if rules.alert_battery_clear_pct < rules.alert_battery_pct:
        raise ValueError("compliance.alert_battery_clear_pct: expected percent >= compliance.alert_battery_pct")
    return rules
