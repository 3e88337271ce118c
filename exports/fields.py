"""The data dictionary: Table Schema field descriptors (Frictionless) for every released column.

Each field has a type, a description and, for quantities, a unit in UCUM case-sensitive syntax (``min``, ``h``,
``d``, ``wk``, ``ms``, ``%``, ``1/min``; ``1`` for dimensionless numbers such as a logarithm or a score, none for
codes, labels and counts of things). The dictionary is versioned: :data:`DICTIONARY_VERSION` goes into every
``datapackage.json`` with :data:`DICTIONARY_CHANGELOG`, and any change to a released column (name, type, unit,
meaning) bumps the version and adds a changelog line (``tests/exports/test_export_frictionless.py`` holds the
fingerprint of the current dictionary, so a silent change fails the tests).

References: Unified Code for Units of Measure, https://ucum.org/ucum; Frictionless Table Schema,
https://specs.frictionlessdata.io/table-schema/.
"""

from __future__ import annotations

from typing import Any

from exports.policy import AGGREGATE_STATISTICS, AGGREGATE_TOTALS, ExportPolicy

__all__ = ["DICTIONARY_CHANGELOG", "DICTIONARY_VERSION", "FIELDS", "dictionary_fingerprint", "table_schema"]

#: Semantic version of the data dictionary (major: a column removed or its meaning changed; minor: added or
#: re-documented; patch: wording).
DICTIONARY_VERSION = "2.0.0"
#: (version, what changed), oldest first. No calendar dates: exports must not carry any.
DICTIONARY_CHANGELOG: tuple[tuple[str, str], ...] = (
    ("1.0.0", "First released dictionary: participants, daily_features, weekly_flags, aggregates."),
    ("1.1.0", "Units in UCUM syntax: programme_week 'week' -> 'wk'; ln_rmssd and the HRV baseline 'ln(ms)' -> "
              "'1' (natural log of a value in ms); dimensionless scores and indices get unit '1'. Values are "
              "unchanged."),
    ("2.0.0", "participants.n_days removed (with the last programme day it gave the enrolment date away); new "
              "participants.weeks_band (unit 'wk'): each participant's rows stop at this horizon band (4, 8, 12 or "
              "17 programme weeks). Data-quality columns documented for filtering: wear_h, valid_sleep_day, "
              "n_episodes, valid_hrv_night."),
)

_N = "integer"
_F = "number"
_S = "string"
_B = "boolean"

#: name -> (type, unit or "", description)
FIELDS: dict[str, tuple[str, str, str]] = {
    "pid": (_S, "", "Project pseudonym: base32 of HMAC-SHA-256(project key, participant) truncated to 128 bits."),
    "force_group": (_S, "", "Force as a keyed project code, a size group (small/medium/large) or 'all'."),
    "role_group": (_S, "", "Role group: response, investigation, specialist_other, or 'all' when generalised."),
    "age_band": (_S, "", "Age band: 10-year (18-29 .. 50+, top-coded), or 18-39/40+/all when generalised."),
    "sex": (_S, "", "female, male or not_stated (other values merged into not_stated)."),
    "weeks_band": (_N, "wk", "Horizon band: the participant's rows stop after this programme week (4, 8, 12 "
                              "or 17; the largest band not above the weeks completed at the export)."),
    "programme_day": (_N, "d", "Study day since enrolment, 1 = first programme day (no calendar date)."),
    "programme_week": (_N, "wk", "Programme week, 1 = days 1-7."),
    "weekday": (_N, "", "Local (Europe/London) weekday of the sleep day, 0 = Monday .. 6 = Sunday."),
    "valid_sleep_day": (_B, "", "Data-quality flag: the day counts for sleep statistics. True when wear_h >= 16 h "
                        "(GGIR includedaycrit), or, on a day with no wear signal (wear_h missing), when >= 1 sleep "
                        "episode ends on it. Filter on it before averaging sleep; false days are missing data, not "
                        "short sleep."),
    "wear_h": (_F, "h", "Data-quality measure: hours of device wear on the local day, from the span of its heart-rate "
                        "runs (first to last sample, attributed to the day the run starts, capped at 24). Missing "
                        "when the device sent no heart rate that day (no wear signal)."),
    "n_episodes": (_N, "", "Sleep episodes ending on the sleep day (0 on a valid day without detected sleep)."),
    "tib_min": (_F, "min", "Time in bed."),
    "tst_min": (_F, "min", "Total sleep time (all episodes)."),
    "main_tst_min": (_F, "min", "Total sleep time of the main episode."),
    "nap_min": (_F, "min", "Sleep outside the main episode."),
    "se_pct": (_F, "%", "Sleep efficiency of the main episode."),
    "sol_min": (_F, "min", "Sleep onset latency."),
    "waso_min": (_F, "min", "Wake after sleep onset."),
    "awakenings": (_F, "", "Awakenings in the main episode."),
    "midpoint_local_h": (_F, "h", "Local clock time of the main sleep midpoint, rounded to 15 min (0-24)."),
    "sleep_need_h": (_F, "h", "Individual sleep need."),
    "debt_net_7d_h": (_F, "h", "Net sleep debt over 7 days."),
    "debt_gross_7d_h": (_F, "h", "Gross sleep debt over 7 days."),
    "debt_carry_h": (_F, "h", "Carried-over sleep debt."),
    "sleep_performance_pct": (_F, "%", "Sleep obtained as a percentage of need."),
    "sri_14d": (_F, "1", "Sleep regularity index over 14 days (-100..100)."),
    "sleep_consistency": (_F, "1", "Sleep timing consistency (0-1)."),
    "valid_hrv_night": (_B, "", "Data-quality flag: the night has >= 6 clean RR windows, so rmssd_ms, ln_rmssd, "
                        "sdnn_ms, pnn50_pct and resting_hr_bpm from RR are computed; filter on it for HRV."),
    "rmssd_ms": (_F, "ms", "Night RMSSD, rounded to 1 ms."),
    "ln_rmssd": (_F, "1", "Natural log of the released (rounded) RMSSD in ms (dimensionless)."),
    "sdnn_ms": (_F, "ms", "Night SDNN, rounded to 1 ms."),
    "pnn50_pct": (_F, "%", "Night pNN50."),
    "hrv_source": (_S, "", "'rr' (from RR intervals) or 'device' (device-reported)."),
    "resting_hr_bpm": (_F, "1/min", "Night resting heart rate, rounded to 1 bpm."),
    "rhr_source": (_S, "", "'rr' or 'device'."),
    "hrv_baseline_mean": (_F, "1", "Rolling baseline mean of ln RMSSD (RMSSD in ms; dimensionless)."),
    "hrv_baseline_sd": (_F, "1", "Rolling baseline SD of ln RMSSD (RMSSD in ms; dimensionless)."),
    "rhr_baseline_mean": (_F, "1/min", "Rolling baseline mean of resting heart rate."),
    "recovery_score": (_F, "1", "Recovery score (0-100)."),
    "algorithm_version": (_S, "", "Version of the feature algorithms."),
    "overall_level": (_S, "", "Weekly flag: green, amber, red or insufficient_data."),
    "criteria": (_S, "", "JSON object: criterion code -> level (values and reason text are not released)."),
    "n_participants": (_N, "", "Participants with >= 1 valid sleep day (1-9 suppressed, rounded to 5)."),
    "n_participant_days": (_N, "d", "Valid participant-days (1-9 suppressed, rounded to 5)."),
    "n_tst": (_N, "", "Participants contributing to the TST statistics (1-9 suppressed, rounded to 5)."),
    "n_se": (_N, "", "Participants contributing to mean_se_pct (1-9 suppressed, rounded to 5)."),
    "n_rhr": (_N, "", "Participants contributing to mean_resting_hr_bpm (1-9 suppressed, rounded to 5)."),
    "n_rmssd": (_N, "", "Participants contributing to mean_rmssd_ms (1-9 suppressed, rounded to 5)."),
    "n_flagged": (_N, "", "Participants with a weekly flag (suppressed with one hidden component)."),
    "n_green": (_N, "", "Participants flagged green (1-9 suppressed, rounded to 5)."),
    "n_amber": (_N, "", "Participants flagged amber (1-9 suppressed, rounded to 5)."),
    "n_red": (_N, "", "Participants flagged red (1-9 suppressed, rounded to 5)."),
    "n_insufficient_data": (_N, "", "Participants with insufficient data (1-9 suppressed, rounded to 5)."),
    "mean_tst_min": (_F, "min", "Mean total sleep time of valid participant-days (n_tst >= 10)."),
    "sd_tst_min": (_F, "min", "SD of total sleep time of valid participant-days (n_tst >= 10)."),
    "mean_se_pct": (_F, "%", "Mean sleep efficiency (n_se >= 10)."),
    "mean_resting_hr_bpm": (_F, "1/min", "Mean resting heart rate (n_rhr >= 10)."),
    "mean_rmssd_ms": (_F, "ms", "Mean night RMSSD (n_rmssd >= 10)."),
}

_KEYS = {"participants": ["pid"], "daily_features": ["pid", "programme_day"],
         "weekly_flags": ["pid", "programme_week"], "aggregates": ["programme_week", "role_group"]}


def _sdc(name: str, policy: ExportPolicy) -> dict[str, Any] | None:
    if name in AGGREGATE_STATISTICS:
        return {"role": "statistic", "n_field": AGGREGATE_STATISTICS[name], "min_n": policy.min_n_statistic}
    if name.startswith("n_"):
        sdc: dict[str, Any] = {"role": "count", "suppressed": f"1-{policy.small_cell_max}",
                               "rounding": policy.rounding_base}
        if name in AGGREGATE_TOTALS:
            sdc["components"] = list(AGGREGATE_TOTALS[name])
        return sdc
    return None


def dictionary_fingerprint() -> str:
    """SHA-256 of the dictionary's content (names, types, units, descriptions): changes when any of them does."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(FIELDS, sort_keys=True).encode()).hexdigest()


def table_schema(table: str, policy: ExportPolicy) -> dict[str, Any]:
    """Frictionless Table Schema of one released table (fields in policy order, "" = missing)."""
    fields = []
    for name in policy.released_columns[table]:
        ftype, unit, description = FIELDS[name]
        field: dict[str, Any] = {"name": name, "type": ftype, "description": description}
        if unit:
            field["unit"] = unit
        sdc = _sdc(name, policy) if table == "aggregates" else None
        if sdc:
            field["sdc"] = sdc
        fields.append(field)
    return {"fields": fields, "missingValues": [""], "primaryKey": _KEYS[table]}
