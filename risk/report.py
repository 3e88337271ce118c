"""The force managers' weekly report: pure assembly and rendering (HTML via jinja2, CSV beside it).

Privacy rules (reliability_security.md 1.2; brief of the programme):

- an officer is named (staff reference) only when ``core.participants.consent_manager`` is true; the database
  reader does not even fetch the staff reference of anyone else;
- every aggregate over 1-4 officers is shown as "fewer than 5" (counts, means, trend points); when exactly one
  level count is suppressed, the next smallest is hidden as well so the total cannot give it away.

The report covers the flags whose programme week ended in the ISO week (Monday-Sunday) being reported.
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
import pandas as pd

from risk.charts import Series, line_chart
from risk.programme import CRITERIA, Programme

__all__ = ["MIN_CELL", "Officer", "Report", "build_report", "cell", "csv_files", "render_html"]

MIN_CELL = 5
FEWER = "fewer than 5"
HIDDEN = "not shown (protects a small count)"
LEVELS = ("red", "amber", "green", "insufficient_data")
_COLOURS = {"red": "#c0392b", "amber": "#d68910", "green": "#1e8449", "insufficient_data": "#7f8c8d",
            "not_evaluated": "#7f8c8d"}


def cell(n: int) -> str:
    """Display of a count of officers: ``0``, ``"fewer than 5"`` for 1-4, else the number."""
    return FEWER if 0 < n < MIN_CELL else str(n)


def _mean_cell(values: Sequence[float], unit_hours: bool = True) -> str:
    if len(values) < MIN_CELL:
        return FEWER if values else "-"
    m = sum(values) / len(values)
    return f"{int(m)} h {round((m - int(m)) * 60):02d} min" if unit_hours else f"{m:.1f}"


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
    """Everything the template and the CSV writer need (already suppressed)."""

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


def _level_counts(levels: pd.Series) -> tuple[tuple[tuple[str, str], ...], str]:
    counts = {lv: int((levels == lv).sum()) for lv in LEVELS}
    shown = {lv: cell(n) for lv, n in counts.items()}
    small = [lv for lv, n in counts.items() if 0 < n < MIN_CELL]
    total = sum(counts.values())
    if len(small) == 1 and total >= MIN_CELL:
        others = sorted((n, lv) for lv, n in counts.items() if n >= MIN_CELL)
        if others:
            shown[others[0][1]] = HIDDEN
    return tuple((lv, shown[lv]) for lv in LEVELS), cell(total)


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


def _value(criteria: dict[str, Any], code: str) -> float | None:
    v = criteria.get(code, {}).get("value")
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def _officers(week: pd.DataFrame, history: pd.DataFrame, prog: Programme) -> tuple[Officer, ...]:
    named = week[week["overall_level"].isin(["red", "amber"]) & week["consent_manager"]
                 & week["staff_ref"].notna()]
    named = named.assign(_o=named["overall_level"].map({"red": 0, "amber": 1})).sort_values(["_o", "staff_ref"])
    out = []
    for row in named.itertuples(index=False):
        reasons = tuple((c, prog.thresholds[c].label, row.criteria[c]["level"], row.criteria[c]["reason"])
                        for c in CRITERIA if row.criteria.get(c, {}).get("level") in ("red", "amber"))
        mine = history[history["participant_id"] == row.participant_id]
        out.append(Officer(str(row.staff_ref), str(row.overall_level), int(row.programme_week), reasons,
                           _officer_chart(mine, prog)))
    return tuple(out)


def _trends(history: pd.DataFrame) -> tuple[tuple[tuple[str, str, str, str, str], ...], str]:
    iso = history["week_end"].map(lambda d: f"{d.isocalendar()[0]}-W{d.isocalendar()[1]:02d}")
    rows, flagged_pts, sleep_pts = [], [], []
    for week, g in history.groupby(iso, sort=True):
        n_amber, n_red = int((g["overall_level"] == "amber").sum()), int((g["overall_level"] == "red").sum())
        sleep = [v for v in (_value(c, "S1") for c in g["criteria"]) if v is not None]
        rows.append((str(week), cell(len(g)), cell(n_amber), cell(n_red), _mean_cell(sleep)))
        flagged = n_amber + n_red
        flagged_pts.append(float(flagged) if flagged == 0 or flagged >= MIN_CELL else None)
        sleep_pts.append(sum(sleep) / len(sleep) if len(sleep) >= MIN_CELL else None)
    labels = [r[0] for r in rows]
    svg = (line_chart(labels, [Series("officers amber or red", _COLOURS["red"], flagged_pts)],
                      title="officers flagged amber or red per week (gaps: fewer than 5)", width=340, y_min=0)
           + line_chart(labels, [Series("mean sleep (h)", "#2e86c1", sleep_pts)], [(7.0, _COLOURS["amber"])],
                        title="force mean sleep per week, hours (gaps: fewer than 5 officers)", width=340,
                        y_min=5))
    return tuple(rows), svg


def build_report(report_id: str, force_id: str, iso_week: str, week_start: date, week_end: date,
                 flags: pd.DataFrame, prog: Programme, generated_at: datetime) -> Report:
    """Assemble a suppressed report.

    Parameters
    ----------
    flags : DataFrame
        Current flags of the force for the trend window, one row per participant and programme week:
        ``participant_id, programme_week, week_end (date), overall_level, criteria (dict), revision,
        consent_manager, staff_ref`` (staff_ref None for non-consenting officers).
    """
    week = flags[(flags["week_end"] >= week_start) & (flags["week_end"] <= week_end)]
    counts, total = _level_counts(week["overall_level"])
    flagged = week["overall_level"].isin(["red", "amber"])
    unnamed = int((flagged & ~(week["consent_manager"] & week["staff_ref"].notna())).sum())
    trends, svg = _trends(flags[flags["week_end"] <= week_end])
    return Report(report_id, force_id, iso_week, week_start, week_end, generated_at, prog.version, counts,
                  total, _officers(week, flags, prog), cell(unnamed), cell(int((week["revision"] > 1).sum())),
                  trends, svg)


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
