"""The force managers' weekly report: pure assembly and rendering (HTML via jinja2, CSV beside it).

Privacy rules (docs/security.md, "What a manager may see" and "Disclosure control"):

- the rows come from ``risk.manager_flags`` (:func:`risk.db.read_report_flags`): withdrawn officers are absent
  and a staff reference is present only for officers who consented to be named;
- an officer is listed, with their own criteria and charts, only when named (``consent_manager``);
- every other number (tiles, "not named" line, revised flags, trend table and chart, CSV) is produced by
  :func:`risk.disclosure.control_weeks`, the one disclosure-control step; this module only formats it.

The report covers the flags whose programme week ended in the ISO week (Monday-Sunday) being reported; the
trend rows are the ISO weeks of the trend window that have flags, plus the report week. The work is linear in
the number of flag rows: one pass to extract values, one grouping of the named officers' history.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from risk.charts import Series, line_chart
from risk.disclosure import LEVELS, MIN_CELL, WeekTable, control_weeks
from risk.programme import CRITERIA, Programme

__all__ = ["MIN_CELL", "SUPPRESSED", "Officer", "Report", "WeekSummary", "build_report", "csv_files",
           "render_html", "week_columns", "week_summary"]

SUPPRESSED = "not shown"
_COLOURS = {"red": "#c0392b", "amber": "#d68910", "green": "#1e8449", "insufficient_data": "#7f8c8d",
            "not_evaluated": "#7f8c8d"}


def _shown(n: int | np.integer[Any], ok: bool | np.bool_) -> str:
    return str(int(n)) if ok else SUPPRESSED


def _hours(v: float) -> str:
    minutes = round(v * 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


@dataclass(frozen=True)
class Officer:
    """A flagged officer who consented to being named to their manager."""

    staff_ref: str
    level: str
    programme_week: int
    reasons: tuple[tuple[str, str, str, str], ...]  # code, label, level, reason
    chart_svg: str


@dataclass(frozen=True)
class Report:
    """Everything the template and the CSV writer need (already disclosure-controlled)."""

    report_id: str
    force_id: str
    iso_week: str
    week_start: date
    week_end: date
    generated_at: datetime
    programme_version: str
    counts: tuple[tuple[str, str], ...]
    total: str
    flagged: tuple[Officer, ...]
    unnamed_flagged: str
    revised: str
    trends: tuple[tuple[str, str, str, str, str], ...]  # iso week, officers, amber, red, mean sleep
    trend_svg: str


def _value(criteria: dict[str, Any], code: str) -> float | None:
    v = criteria.get(code, {}).get("value") if isinstance(criteria, dict) else None
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def _iso(d: date) -> str:
    y, w, _ = d.isocalendar()
    return f"{y}-W{w:02d}"


def week_columns(flags: pd.DataFrame) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """ISO week label, level index (order of :data:`risk.disclosure.LEVELS`) and S1 value (h, NaN) per row."""
    ends = pd.Series(flags["week_end"].to_numpy())
    labels = {d: _iso(d) for d in ends.unique()}
    iso = ends.map(labels)
    level = pd.Categorical(flags["overall_level"], categories=list(LEVELS)).codes.astype(np.int64)
    sleep = np.array([np.nan if v is None else v for v in (_value(c, "S1") for c in flags["criteria"])],
                     dtype=np.float64)
    return iso, level, sleep


def _officer_chart(history: pd.DataFrame, prog: Programme) -> str:
    h = history.sort_values("programme_week").tail(8)
    labels = [f"w{w}" for w in h["programme_week"]]
    sleep = [_value(c, "S1") for c in h["criteria"]]
    debt = [_value(c, "S2") for c in h["criteria"]]
    s1, s2 = prog.thresholds["S1"], prog.thresholds["S2"]
    return (line_chart(labels, [Series("mean sleep (h)", "#2e86c1", sleep)],
                       [(s1.amber, _COLOURS["amber"]), (s1.red or s1.amber, _COLOURS["red"])],
                       title="mean sleep per week, hours", y_min=4)
            + line_chart(labels, [Series("7-day debt (h)", "#8e44ad", debt)],
                         [(s2.amber, _COLOURS["amber"]), (s2.red or s2.amber, _COLOURS["red"])],
                         title="sleep debt at week end, hours", y_min=0))


def _officers(week: pd.DataFrame, history: pd.DataFrame, prog: Programme) -> tuple[Officer, ...]:
    named = week[week["overall_level"].isin(["red", "amber"]) & week["consent_manager"]
                 & week["staff_ref"].notna()]
    named = named.assign(_o=named["overall_level"].map({"red": 0, "amber": 1})).sort_values(["_o", "staff_ref"])
    mine = history[history["participant_id"].isin(set(named["participant_id"]))]
    by_officer = dict(tuple(mine.groupby("participant_id", sort=False)))  # one grouping, not a filter per officer
    out = []
    for row in named.itertuples(index=False):
        reasons = tuple((c, prog.thresholds[c].label, row.criteria[c]["level"], row.criteria[c]["reason"])
                        for c in CRITERIA if row.criteria.get(c, {}).get("level") in ("red", "amber"))
        out.append(Officer(str(row.staff_ref), str(row.overall_level), int(row.programme_week), reasons,
                           _officer_chart(by_officer[row.participant_id], prog)))
    return tuple(out)


def _trends(labels: Sequence[str], t: WeekTable) -> tuple[tuple[tuple[str, str, str, str, str], ...], str]:
    rows = tuple((week, str(int(t.total[i])), _shown(t.counts[i, 1], t.shown[i, 1]),
                  _shown(t.counts[i, 0], t.shown[i, 0]),
                  _hours(t.mean_sleep[i]) if np.isfinite(t.mean_sleep[i]) else SUPPRESSED)
                 for i, week in enumerate(labels))
    flagged_pts = [float(t.flagged[i]) if t.flagged_shown[i] else None for i in range(len(labels))]
    sleep_pts = [float(v) if np.isfinite(v) else None for v in t.mean_sleep]
    svg = (line_chart(labels, [Series("officers amber or red", _COLOURS["red"], flagged_pts)],
                      title="officers flagged amber or red per week (gaps: not shown)", width=340, y_min=0)
           + line_chart(labels, [Series("mean sleep (h)", "#2e86c1", sleep_pts)], [(7.0, _COLOURS["amber"])],
                        title="force mean sleep per week, hours (gaps: not shown)", width=340, y_min=5))
    return rows, svg


def build_report(report_id: str, force_id: str, iso_week: str, week_start: date, week_end: date,
                 flags: pd.DataFrame, prog: Programme, generated_at: datetime) -> Report:
    """Assemble a disclosure-controlled report.

    Parameters
    ----------
    flags : DataFrame
        Rows of ``risk.manager_flags`` for the trend window, one per participant and programme week:
        ``participant_id, programme_week, week_end (date), overall_level, criteria (dict), revision,
        consent_manager, staff_ref`` (staff_ref None for officers not named).
    """
    flags = flags[flags["week_end"] <= week_end]
    iso, level, sleep = week_columns(flags)
    labels = sorted({*iso.unique(), iso_week})
    index = {w: i for i, w in enumerate(labels)}
    t = control_weeks(iso.map(index).to_numpy(dtype=np.int64), level,
                      flags["consent_manager"].to_numpy(dtype=bool),
                      flags["revision"].to_numpy() > 1, sleep, len(labels))
    k = index[iso_week]
    counts = tuple((lv, _shown(t.counts[k, j], t.shown[k, j])) for j, lv in enumerate(LEVELS))
    trends, svg = _trends(labels, t)
    week = flags[(flags["week_end"] >= week_start) & (flags["week_end"] <= week_end)]
    return Report(report_id, force_id, iso_week, week_start, week_end, generated_at, prog.version, counts,
                  str(int(t.total[k])), _officers(week, flags, prog),
                  _shown(t.unnamed_flagged[k], t.unnamed_flagged_shown[k]),
                  _shown(t.revised[k], t.revised_shown[k]), trends, svg)


@dataclass(frozen=True)
class WeekSummary:
    """One ISO week's disclosure-controlled numbers as the managers' API returns them (None = not shown)."""

    iso_week: str
    officers: int
    levels: dict[str, int | None]
    flagged: int | None
    flagged_not_named: int | None
    revised: int | None
    mean_sleep_h: float | None


def _opt(n: Any, ok: Any) -> int | None:
    return int(n) if ok else None


def week_summary(flags: pd.DataFrame, iso_week: str) -> WeekSummary:
    """The numbers of ``iso_week`` exactly as the report shows them (same grouping, same control step).

    ``flags`` are rows of ``risk.manager_flags`` whose ``week_end`` lies in that ISO week (other rows are
    ignored); the grouping by the ISO week of ``week_end`` is the report's, so the two cannot be differenced.
    """
    iso, level, sleep = week_columns(flags)
    mine = (iso == iso_week).to_numpy()
    t = control_weeks(np.zeros(int(mine.sum()), dtype=np.int64), level[mine],
                      flags["consent_manager"].to_numpy(dtype=bool)[mine], flags["revision"].to_numpy()[mine] > 1,
                      sleep[mine], 1)
    mean = float(t.mean_sleep[0])
    return WeekSummary(iso_week, int(t.total[0]),
                       {lv: _opt(t.counts[0, j], t.shown[0, j]) for j, lv in enumerate(LEVELS)},
                       _opt(t.flagged[0], t.flagged_shown[0]), _opt(t.unnamed_flagged[0], t.unnamed_flagged_shown[0]),
                       _opt(t.revised[0], t.revised_shown[0]), mean if math.isfinite(mean) else None)


def render_html(report: Report, compliance: Any = None) -> str:
    """Render the self-contained HTML page (inline CSS and SVG only); ``compliance``: a
    :class:`compliance.report_section.ComplianceSection` to include (issue 21), or None."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("risk", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)
    env.filters["label"] = lambda lv: str(lv).replace("_", " ")
    return env.get_template("report.html.j2").render(r=report, colours=_COLOURS, compliance=compliance)


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def csv_files(report: Report) -> dict[str, str]:
    """The report's content as CSV texts: ``counts.csv``, ``flagged_officers.csv``, ``trends.csv``."""
    officers = [(o.staff_ref, o.level, o.programme_week, code, label, level, reason)
                for o in report.flagged for code, label, level, reason in o.reasons]
    return {
        "counts.csv": _csv(("level", "officers"), [*report.counts, ("total", report.total),
                                                   ("flagged_not_named", report.unnamed_flagged),
                                                   ("revised_flags", report.revised)]),
        "flagged_officers.csv": _csv(("staff_ref", "overall_level", "programme_week", "criterion", "label",
                                      "level", "reason"), officers),
        "trends.csv": _csv(("iso_week", "officers", "amber", "red", "mean_sleep"), report.trends),
    }
