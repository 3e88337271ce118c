"""An attacker's checker of what a force manager sees, written independently of the code that writes it.

It reads only outputs: the weekly report's HTML and CSV files and the managers' API answers (``/flags`` over
the report's window and ``/flags/summary`` per ISO week). It assumes what a curious manager can know: every
*named* officer's rows (the API returns them: level, revision, S1 value, week end), the documented meaning of
the report's labels ("fewer than 5" = 1-4; a suppressed cell in a row that shows other numbers is not zero,
because zeros are shown), and arithmetic. For each ISO week it enumerates every split of the officers who are
not named over the four levels that agrees with every published number, and reports:

- a suppressed number that only one split allows (pinned);
- a number about officers who are not named that is pinned to 1-4, or pinned at all when 1-4 of them exist;
- that every officer not named is in one level, or flagged (which gives each of them their level);
- a mean shown over a group that contains 1-4 officers who are not named (their mean follows from the named
  officers' own values);
- an API row of an officer who is not named; a chart point the table hides; outputs no split agrees with.

Nothing here imports the service's report, disclosure or API code.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

LEVELS = ("red", "amber", "green", "insufficient_data")
R, A = 0, 1


@dataclass(frozen=True)
class Finding:
    """One thing the attacker could work out."""

    week: str
    what: str

    def __str__(self) -> str:
        return f"{self.week}: {self.what}"


@dataclass
class Outputs:
    """Everything the manager received about one force."""

    html: str
    csv: dict[str, str]
    api_flags: list[dict[str, Any]] = field(default_factory=list)
    api_summaries: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Week:
    """What is known and what was published about one ISO week."""

    officers: int | None = None
    eq: list[tuple[tuple[int, ...], int]] = field(default_factory=list)      # sum of u over cells == value
    rng: list[tuple[tuple[int, ...], int, int]] = field(default_factory=list)  # lo <= sum of u over cells <= hi
    suppressed: set[tuple[int, ...]] = field(default_factory=set)
    nonzero_rows: bool = False
    revised: list[int] = field(default_factory=list)
    means: list[float] = field(default_factory=list)


def _iso(d: date) -> str:
    y, w, _ = d.isocalendar()
    return f"{y}-W{w:02d}"


def _number(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isdigit() else None


def _hours(text: str) -> float | None:
    m = re.fullmatch(r"\s*(\d+) h (\d+) min\s*", text or "")
    if m:
        return int(m.group(1)) + int(m.group(2)) / 60
    try:
        return float(text)
    except ValueError:
        return None


class _Named:
    """The named officers' rows, as the API gave them, per ISO week of their week end."""

    def __init__(self, flags: list[dict[str, Any]]) -> None:
        self.levels: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(4, dtype=np.int64))
        self.revised: dict[str, int] = defaultdict(int)
        self.sleep: dict[str, list[float]] = defaultdict(list)
        seen = set()
        for f in flags:
            if f["flag_id"] in seen or f.get("staff_ref") is None:
                continue
            seen.add(f["flag_id"])
            week = _iso(date.fromisoformat(f["week_end"]))
            self.levels[week][LEVELS.index(f["overall_level"])] += 1
            self.revised[week] += int(f["revision"] > 1)
            value = (f.get("criteria") or {}).get("S1", {}).get("value")
            if isinstance(value, int | float):
                self.sleep[week].append(float(value))


def _publish(wk: _Week, named: np.ndarray, cells: tuple[int, ...], text: str | None, row_has_numbers: bool) -> None:
    """A published count over ``cells`` (all officers): a number, "fewer than 5", or a suppressed label."""
    n_named = int(named[list(cells)].sum())
    value = _number(text)
    if value is not None:
        wk.eq.append((cells, value - n_named))
        return
    wk.suppressed.add(cells)
    if text and "fewer than 5" in text:
        wk.rng.append((cells, 1 - n_named, 4 - n_named))
    elif text and "protects a small count" in text:
        wk.rng.append((cells, 5 - n_named, 10**6))
    elif row_has_numbers and len(cells) == 1:
        wk.rng.append((cells, 1, 10**6))  # documented: zeros are shown, so a hidden cell is not zero


def _report_week(html: str) -> str:
    m = re.search(r"<title>[^<]* (\d{4}-W\d{2})</title>", html)
    assert m, "no ISO week in the report's title"
    return m.group(1)


def _collect(out: Outputs, named: _Named) -> tuple[dict[str, _Week], list[Finding]]:
    weeks: dict[str, _Week] = defaultdict(_Week)
    findings = [Finding(_iso(date.fromisoformat(f["week_end"])), "the API returned a row of an officer who is not "
                        "named") for f in out.api_flags if f.get("staff_ref") is None]
    report_week = _report_week(out.html)
    trends = list(csv.DictReader(io.StringIO(out.csv.get("trends.csv", ""))))
    html_rows = re.findall(r"<tr><td>(\d{4}-W\d{2})</td><td[^>]*>([^<]*)</td><td[^>]*>([^<]*)</td>"
                           r"<td[^>]*>([^<]*)</td><td>([^<]*)</td></tr>", out.html)
    rows = [(t["iso_week"], t["officers"], t["amber"], t["red"], t["mean_sleep"]) for t in trends] + html_rows
    for week, officers, amber, red, mean in rows:
        wk, nl = weeks[week], named.levels[week]
        wk.officers = _number(officers) if wk.officers is None else wk.officers
        has = _number(amber) is not None or _number(red) is not None
        _publish(wk, nl, (A,), amber, has)
        _publish(wk, nl, (R,), red, has)
        if (h := _hours(mean)) is not None:
            wk.means.append(h)
    wk, nl = weeks[report_week], named.levels[report_week]
    tiles = dict(re.findall(r'class="tile ([a-z_]+)"><span class="count">([^<]*)</span>', out.html))
    counts = {r["level"]: r["officers"] for r in csv.DictReader(io.StringIO(out.csv.get("counts.csv", "")))}
    for source in (tiles, counts):
        has = any(_number(source.get(lv)) is not None for lv in LEVELS)
        for j, lv in enumerate(LEVELS):
            if lv in source:
                _publish(wk, nl, (j,), source[lv], has)
    for text in (counts.get("total"),):
        if _number(text) is not None:
            wk.officers = _number(text)
    flagged_not_named = counts.get("flagged_not_named")
    if flagged_not_named is not None:
        _publish(wk, np.zeros(4, dtype=np.int64), (R, A), flagged_not_named, False)
    if _number(counts.get("revised_flags")) is not None:
        wk.revised.append(int(_number(counts.get("revised_flags")) or 0))
    for s in out.api_summaries:
        if not s:
            continue
        wk, nl = weeks[s["iso_week"]], named.levels[s["iso_week"]]
        wk.officers = s["officers"]
        has = any(v is not None for v in s["levels"].values())
        for j, lv in enumerate(LEVELS):
            _publish(wk, nl, (j,), None if s["levels"][lv] is None else str(s["levels"][lv]), has)
        _publish(wk, nl, (R, A), None if s["flagged"] is None else str(s["flagged"]), False)
        _publish(wk, np.zeros(4, dtype=np.int64), (R, A),
                 None if s["flagged_not_named"] is None else str(s["flagged_not_named"]), False)
        if s["revised"] is not None:
            wk.revised.append(int(s["revised"]))
        if s["mean_sleep_h"] is not None:
            wk.means.append(float(s["mean_sleep_h"]))
    findings += _chart_findings(out.html, rows)
    return weeks, findings


def _chart_findings(html: str, rows: list[tuple[str, ...]]) -> list[Finding]:
    """The flagged-officers chart may plot a week only where the table shows both amber and red."""
    svgs = re.findall(r"<svg[^>]*>.*?</svg>", html, flags=re.S)
    chart = next((s for s in svgs if "officers flagged amber or red" in s), None)
    if chart is None:
        return []
    points = len(re.findall(r"<circle ", chart))
    both = len({w for w, _, a, r, _ in rows if _number(a) is not None and _number(r) is not None})
    return [Finding("chart", f"the trend chart plots {points} weeks, the table shows {both}")] if points > both else []


def _splits(total: int) -> np.ndarray:
    """Every way of splitting ``total`` officers over the four levels, shape (n, 4)."""
    a, b, c = np.meshgrid(*(np.arange(total + 1),) * 3, indexing="ij")
    ok = a + b + c <= total
    return np.stack([a[ok], b[ok], c[ok], total - (a + b + c)[ok]], axis=1)


def _solve(week: str, wk: _Week, unnamed: int) -> list[Finding]:
    u = _splits(unnamed)
    keep = np.ones(len(u), dtype=bool)
    for cells, value in wk.eq:
        keep &= u[:, list(cells)].sum(axis=1) == value
    for cells, lo, hi in wk.rng:
        s = u[:, list(cells)].sum(axis=1)
        keep &= (s >= lo) & (s <= hi)
    u = u[keep]
    if len(u) == 0:
        return [Finding(week, "no split of the officers not named agrees with the published numbers")]
    out = []
    for cells in sorted({(j,) for j in range(4)} | {(R, A)}):
        values = np.unique(u[:, list(cells)].sum(axis=1))
        if len(values) != 1:
            continue
        v, name = int(values[0]), "+".join(LEVELS[j] for j in cells)
        if cells in wk.suppressed:
            out.append(Finding(week, f"suppressed {name} pinned: {v} officer(s) not named"))
        elif v == unnamed > 0:
            out.append(Finding(week, f"every one of the {unnamed} officers not named is {name}"))
        elif 0 < v < 5:
            out.append(Finding(week, f"{name}: exactly {v} officer(s) not named"))
        elif 0 < unnamed < 5:
            out.append(Finding(week, f"{name}: exactly {v} of the {unnamed} officers not named"))
    return out


def attack(out: Outputs) -> list[Finding]:
    """Everything the attacker can pin from one force's outputs (empty when disclosure control holds)."""
    named = _Named(out.api_flags)
    weeks, findings = _collect(out, named)
    for week, wk in sorted(weeks.items()):
        if wk.officers is None:
            continue
        unnamed = wk.officers - int(named.levels[week].sum())
        findings += _solve(week, wk, unnamed)
        for r in wk.revised:
            v = r - named.revised[week]
            if 0 < v < 5 or 0 < unnamed < 5:
                findings.append(Finding(week, f"revised flags: exactly {v} of {unnamed} officers not named"))
        for m in wk.means:
            if 0 < unnamed < 5:
                guess = (m * wk.officers - sum(named.sleep[week])) / unnamed
                findings.append(Finding(week, f"mean sleep of the {unnamed} officers not named: about {guess:.2f} h"))
    return findings


def load(folder: Any) -> Outputs:
    """Outputs saved in a folder: ``report.html``, the CSVs, ``api_flags.json``, ``api_summaries.json``."""
    from pathlib import Path
    p = Path(folder)
    def read(name: str) -> Any:
        return json.loads((p / name).read_text()) if (p / name).exists() else []
    return Outputs((p / "report.html").read_text(), {f.name: f.read_text() for f in p.glob("*.csv")},
                   read("api_flags.json"), read("api_summaries.json"))
