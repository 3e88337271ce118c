"""Reasons a person can read, built for one cohort row of :class:`risk.evaluate.WeeklyFlags` at a time.

Only amber/red and not-evaluated criteria get a reason (green ones carry ``None``), so the cost is paid for the
rows a manager will read. :func:`criteria_record` gives the JSON object stored in ``risk.weekly_flags.criteria``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from risk.evaluate import AMBER, LEVEL_NAMES, NE, RED, WHY, WeeklyFlags
from risk.programme import CRITERIA, Programme, Threshold

__all__ = ["criteria_frame", "criteria_record", "criteria_records", "format_hours", "reason"]


@dataclass(frozen=True)
class _Lists:
    """The columns of a :class:`WeeklyFlags` as Python lists (per-element access is ~10x cheaper)."""

    values: dict[str, list[Any]]
    levels: dict[str, list[Any]]
    why: dict[str, list[Any]]
    aux: dict[str, list[Any]]

    @classmethod
    def of(cls, f: WeeklyFlags) -> _Lists:
        def conv(d: dict[str, Any]) -> dict[str, list[Any]]:
            return {k: v.tolist() for k, v in d.items()}
        return cls(conv(f.values), conv(f.levels), conv(f.why), conv(f.aux))


Rows = WeeklyFlags | _Lists


def format_hours(hours: float) -> str:
    """``5.7`` -> ``"5 h 42 min"`` (rounded to the minute)."""
    total = round(hours * 60)
    sign = "-" if total < 0 else ""
    h, m = divmod(abs(total), 60)
    if h == 0:
        return f"{sign}{m} min"
    return f"{sign}{h} h {m:02d} min" if m else f"{sign}{h} h"


def _n(x: float) -> int:
    return round(x)


def _plural(k: int, word: str) -> str:
    return f"{k} {word}" if k == 1 else f"{k} {word}s"


def _cut(thr: Threshold, level: int, fmt: str = "{:g}") -> str:
    cut = thr.red if level == RED and thr.red is not None else thr.amber
    text = fmt.format(cut)
    if thr.direction == "below":
        return f"at or below {text}" if thr.inclusive else f"below {text}"
    return f"at or above {text}" if thr.inclusive else f"above {text}"


def _not_evaluated(code: str, why: str, f: Rows, i: int, prog: Programme) -> str:
    v = prog.validity
    aux = f.aux
    texts = {
        "too_few_sleep_days": f"{_n(aux['n_sleep'][i])} valid nights of 7, need {v.min_valid_sleep_days}",
        "too_few_se_nights": f"sleep efficiency on {_n(aux['n_se'][i])} nights of 7, "
                             f"need {v.min_valid_sleep_days}",
        "too_few_hrv_nights": f"{_n(aux['n_hrv'][i] if code == 'H1' else aux['n_rhr'][i])} valid HRV nights "
                              f"of 7, need {v.min_valid_hrv_nights}",
        "calibrating": f"calibrating (days 1-{prog.phases.calibration_last_day}: personal baseline not yet set)",
        "calibration_extended": "calibration extended: baseline needs "
                                f"{prog.phases.calibration_min_valid_nights} valid nights "
                                f"(up to day {prog.phases.extension_last_day})",
        "no_baseline": "no personal baseline: too few valid nights by day "
                       f"{prog.phases.extension_last_day}",
        "no_roster": "no roster for this week",
        "sri_missing": f"regularity not computable (needs {v.min_sri_day_pairs} valid day-pairs in 14 days)",
        "no_awake_data": "time awake unknown for every duty this week (no detected sleep, or the device was not "
                         "worn since the last one)",
        "awake_unknown": "predicted sleepiness not used: device sleep missing before this week's duties (time "
                         "awake unknown or too little sleep data)",
        "no_model_output": "no fatigue-model output for this week's duties",
        "duty_features_pending": "duty features not yet computed for all of this week's rostered duties",
    }
    return texts[why]


def _sleep_reason(code: str, f: Rows, i: int, thr: Threshold, level: int, prog: Programme) -> str:
    value, aux = float(f.values[code][i]), f.aux
    nights = _plural(_n(aux["n_sleep"][i]), "valid night")
    if code == "S1":
        return f"mean sleep {format_hours(value)} over {nights}, {_cut(thr, level, '{:g} h')}"
    if code == "S2":
        how = f" (from this week's nights against a {prog.need_pop_h:g} h need)" if aux["s2_fallback"][i] else ""
        return f"sleep debt {format_hours(value)} over 7 days{how}, {_cut(thr, level, '{:g} h')}"
    if code == "S3":
        return (f"mean sleep efficiency {value:.0f} % over {_plural(_n(aux['n_se'][i]), 'night')}, "
                f"{_cut(thr, level, '{:g} %')}")
    return f"sleep regularity index {value:.1f} over 14 days, {_cut(thr, level)} (informative only)"


def _physiology_reason(code: str, f: Rows, i: int, thr: Threshold, level: int) -> str:
    aux = f.aux
    if code == "H1":
        text = (f"HRV 7-day mean lnRMSSD {aux['h1_l7'][i]:.2f} is {abs(f.values['H1'][i]):.1f} SD below "
                f"the personal baseline {aux['h1_mu'][i]:.2f} (band: {abs(thr.amber):g} SD)")
        if level == RED:
            text += ("; also below the band last week" if aux["h1_prev_below"][i]
                     else "; with a raised resting heart rate")
        return text
    return (f"resting heart rate {aux['rhr_mean'][i]:.0f} bpm is {f.values['R1'][i]:+.1f} bpm against the "
            f"personal baseline {aux['rhr_base'][i]:.0f} bpm over "
            f"{_plural(_n(aux['n_rhr'][i]), 'night')}, {_cut(thr, level, '+{:g} bpm')}")


def _roster_reason(code: str, f: Rows, i: int, thr: Threshold, level: int, prog: Programme) -> str:
    value, aux = float(f.values[code][i]), f.aux
    if code == "W1":
        return f"{_plural(_n(value), 'quick return')} (under 11 h rest between duties)"
    if code == "W2":
        return f"{_plural(_n(value), 'duty')} longer than 12 h".replace("dutys", "duties")
    if code == "W3":
        return f"{_n(value)} consecutive night duties, more than {thr.amber:g}"
    if code == "W4":
        text = f"awake {format_hours(value)} at the end of a duty, {_cut(thr, level, '{:g} h')}"
        unknown = _n(aux["n_awake_unknown"][i])
        if unknown:
            text += f" ({_plural(unknown, 'other duty')} not counted: time awake unknown)".replace("dutys", "duties")
        return text
    n_red, n_amber = _n(aux["f1_n_red"][i]), _n(aux["f1_n_amber"][i])
    parts = []
    if n_red:
        parts.append(f"{_plural(n_red, 'duty')} with {thr.red:g} min or more at predicted KSS 8 or higher")
    if n_amber:
        parts.append(f"{_plural(n_amber, 'duty')} with {thr.amber:g} min or more at predicted KSS 7 or higher")
    text = "; ".join(parts).replace("dutys", "duties")
    est = _n(aux["f1_estimated"][i])
    if est:
        text += (f" (estimated for {est} of them: under {prog.validity.tpm_min_sleep_data_h:g} h of sleep data"
                 " before the duty)")
    return text


def reason(code: str, f: Rows, i: int, prog: Programme) -> str | None:
    """The readable reason of criterion ``code`` on row ``i`` (None for green)."""
    level = int(f.levels[code][i])
    if level == NE:
        return _not_evaluated(code, WHY[int(f.why[code][i])], f, i, prog)
    if level < AMBER:
        return None
    thr = prog.thresholds[code]
    if code.startswith("S"):
        return _sleep_reason(code, f, i, thr, level, prog)
    if code in ("H1", "R1"):
        return _physiology_reason(code, f, i, thr, level)
    return _roster_reason(code, f, i, thr, level, prog)


def _rounded(x: float) -> float | None:
    return None if not math.isfinite(x) else round(x, 2)


def criteria_record(f: Rows, i: int, prog: Programme) -> dict[str, Any]:
    """``{code: {"value", "unit", "level", "reason"}}`` for row ``i``; H1 also stores ``below_band``."""
    out: dict[str, Any] = {}
    for code in CRITERIA:
        level = int(f.levels[code][i])
        entry: dict[str, Any] = {"value": _rounded(float(f.values[code][i])),
                                 "unit": prog.thresholds[code].unit, "level": LEVEL_NAMES[level],
                                 "reason": reason(code, f, i, prog)}
        if code == "H1":
            entry["below_band"] = bool(f.aux["h1_below"][i])
        out[code] = entry
    return out


def criteria_records(f: WeeklyFlags, prog: Programme) -> list[dict[str, Any]]:
    """:func:`criteria_record` of every row, with the per-criterion columns prepared once (fast path)."""
    cols = []
    for code in CRITERIA:
        v = np.round(f.values[code], 2)
        values = np.where(np.isfinite(v), v, np.nan).tolist()
        names = np.array(["not_evaluated", "green", "amber", "red"])[f.levels[code].astype(np.int64) + 1]
        cols.append((code, prog.thresholds[code].unit, values, names.tolist(), (f.levels[code] != 0).tolist()))
    below = f.aux["h1_below"].tolist()
    rows = _Lists.of(f)
    out: list[dict[str, Any]] = []
    for i in range(len(f)):
        rec: dict[str, Any] = {}
        for code, unit, values, names, needs_reason in cols:
            value = values[i]
            rec[code] = {"value": None if value != value else value, "unit": unit, "level": names[i],
                         "reason": reason(code, rows, i, prog) if needs_reason[i] else None}
        rec["H1"]["below_band"] = below[i]
        out.append(rec)
    return out


def criteria_frame(f: WeeklyFlags, prog: Programme) -> pd.DataFrame:
    """Column-wise form of :func:`criteria_records` for bulk writing.

    Columns ``{code}_v`` (value rounded to 0.01, NaN when not computable), ``{code}_l`` (level code -1..2),
    ``{code}_r`` (reason, None for green) per criterion, and ``h1_below``. Reasons are built only for the
    non-green cells.
    """
    rows = _Lists.of(f)
    cols: dict[str, Any] = {}
    for code in CRITERIA:
        cols[f"{code}_v"] = np.round(f.values[code], 2)
        cols[f"{code}_l"] = f.levels[code]
        reasons = np.full(len(f), None, dtype=object)
        for i in np.flatnonzero(f.levels[code] != 0).tolist():
            reasons[i] = reason(code, rows, i, prog)
        cols[f"{code}_r"] = reasons
    cols["h1_below"] = f.aux["h1_below"]
    return pd.DataFrame(cols)
