"""The compliance section of a force's weekly report: a small aggregated table under the flags' privacy rules.

For the reported ISO week each officer of the force who was in their programme (not withdrawn by the week's
end) gets a *week level* from valid nights alone (a closed week has no "silent now"): missing nights among the
week's programme days above ``7 - lapsed_valid_nights`` is lapsed, above ``7 - watch_valid_nights`` watch,
else ok (the rules of :mod:`compliance.rules`). The section shows

- the number of officers per level, with the flags' small-number rule: 1-4 is "fewer than 5", and when exactly
  one level is suppressed the next smallest is hidden too, so the total cannot give it away;
- the officers at watch or lapsed who consented to be named to their manager (``consent_manager``), with their
  valid nights; the others only as a suppressed count.

Rendering: ``risk/templates/compliance_section.html.j2`` (included by the report template when a section is
given) and :func:`section_csv` (``compliance.csv`` beside the report).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from compliance.kernel import LEVELS, valid_nights
from compliance.rules import ComplianceRules
from risk.report import HIDDEN, MIN_CELL, cell

__all__ = ["ComplianceSection", "build_section", "read_section", "section_csv", "week_levels"]


@dataclass(frozen=True)
class ComplianceSection:
    """What the template and the CSV show (already suppressed)."""

    week_start: date
    week_end: date
    counts: tuple[tuple[str, str, str], ...]  # (level, what it means, shown count) for ok, watch, lapsed
    total: str
    named: tuple[tuple[str, str, str], ...]  # (staff_ref, level, "valid nights of expected")
    unnamed: str  # officers at watch or lapsed not named (no consent), suppressed
    min_wear_h: float


def _meaning(rules: ComplianceRules) -> dict[str, str]:
    w, lp = rules.watch_valid_nights, rules.lapsed_valid_nights
    return {"ok": f"{w} or more valid nights", "watch": f"{lp} to {w - 1} valid nights" if w - 1 > lp
            else f"{lp} valid nights", "lapsed": f"fewer than {lp} valid nights"}


def week_levels(valid: npt.NDArray[np.int64], expected: npt.NDArray[np.int64],
                rules: ComplianceRules) -> npt.NDArray[np.int8]:
    """Week level per officer (index into :data:`compliance.kernel.LEVELS`) from valid and expected nights."""
    missing = expected - valid
    lapsed = missing > 7 - rules.lapsed_valid_nights
    watch = missing > 7 - rules.watch_valid_nights
    return np.where(lapsed, 2, np.where(watch, 1, 0)).astype(np.int8)


def _counts(levels: npt.NDArray[np.int8]) -> tuple[tuple[tuple[str, str], ...], str]:
    n = {lv: int((levels == k).sum()) for k, lv in enumerate(LEVELS)}
    shown = {lv: cell(v) for lv, v in n.items()}
    small = [lv for lv, v in n.items() if 0 < v < MIN_CELL]
    if len(small) == 1 and sum(n.values()) >= MIN_CELL:
        others = sorted((v, lv) for lv, v in n.items() if v >= MIN_CELL)
        if others:
            shown[others[0][1]] = HIDDEN
    return tuple((lv, shown[lv]) for lv in LEVELS), cell(sum(n.values()))


def build_section(week_start: date, valid: npt.NDArray[np.int64], expected: npt.NDArray[np.int64],
                  consent: npt.NDArray[np.bool_], staff_ref: list[str | None],
                  rules: ComplianceRules) -> ComplianceSection:
    """Assemble the suppressed section from per-officer valid and expected nights of the week."""
    levels = week_levels(valid, expected, rules)
    counts, total = _counts(levels)
    flagged = levels > 0
    can_name = flagged & consent & np.array([s is not None for s in staff_ref], dtype=bool)
    order = sorted(np.flatnonzero(can_name), key=lambda i: (-int(levels[i]), str(staff_ref[i])))
    named = tuple((str(staff_ref[i]), LEVELS[int(levels[i])], f"{int(valid[i])} of {int(expected[i])}")
                  for i in order)
    meaning = _meaning(rules)
    return ComplianceSection(week_start, week_start + timedelta(days=6),
                             tuple((lv, meaning[lv], shown) for lv, shown in counts), total, named,
                             cell(int((flagged & ~can_name).sum())), rules.min_wear_h)


_WEEK = """
SELECT p.participant_id, p.consent_manager, CASE WHEN p.consent_manager THEN i.staff_ref END,
       p.programme_start - %(lo)s, p.programme_start + %(days)s - %(lo)s
FROM core.participants p LEFT JOIN core.identities i ON i.participant_id = p.participant_id
WHERE p.force_id = %(force)s AND p.programme_start <= %(hi)s AND p.programme_start + %(days)s > %(lo)s
  AND (p.withdrawn_at IS NULL OR p.withdrawn_at::date > %(hi)s)
ORDER BY p.participant_id
"""


def read_section(conn: psycopg.Connection[Any], force_id: str, week_start: date, rules: ComplianceRules,
                 programme_days: int = 120) -> ComplianceSection | None:
    """The section of ``force_id`` for the week starting ``week_start`` (Monday) from ``compliance.daily``.

    None when the compliance job has never run (no watermark): an absent computation must not read as
    "everybody lapsed". The staff reference of an officer who did not consent is never fetched.
    """
    if conn.execute("SELECT 1 FROM compliance.watermark").fetchone() is None:
        return None
    rows = conn.execute(_WEEK, {"force": force_id, "lo": week_start, "hi": week_start + timedelta(days=6),
                                "days": programme_days}).fetchall()
    wear, sleep = np.full((len(rows), 7), np.nan), np.zeros((len(rows), 7), np.int64)
    daily = conn.execute(
        "SELECT k.i - 1, d.day - %s, d.wear_min, d.sleep_episodes FROM unnest(%s::uuid[]) WITH ORDINALITY "
        "AS k(pid, i) JOIN compliance.daily d ON d.participant_id = k.pid AND d.day BETWEEN %s AND %s",
        (week_start, [r[0] for r in rows], week_start, week_start + timedelta(days=6))).fetchall()
    if daily:
        idx = np.array([r[0] for r in daily], np.int64), np.array([r[1] for r in daily], np.int64)
        wear[idx] = [np.nan if r[2] is None else float(r[2]) for r in daily]
        sleep[idx] = [int(r[3]) for r in daily]
    col = np.arange(7)[None, :]
    in_programme = (col >= np.array([r[3] for r in rows], np.int64).reshape(-1, 1)) & (
        col < np.array([r[4] for r in rows], np.int64).reshape(-1, 1))
    valid = (valid_nights(wear, sleep, rules) & in_programme).sum(axis=1).astype(np.int64)
    return build_section(week_start, valid, in_programme.sum(axis=1).astype(np.int64),
                         np.array([bool(r[1]) for r in rows], bool), [r[2] for r in rows], rules)


def section_csv(section: ComplianceSection) -> dict[str, str]:
    """``compliance.csv``: the counts, then the named officers."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("row", "level", "officers", "staff_ref", "valid_nights"))
    for level, _, shown in section.counts:
        w.writerow(("count", level, shown, "", ""))
    w.writerow(("count", "total", section.total, "", ""))
    w.writerow(("count", "not_named", section.unnamed, "", ""))
    for ref, level, nights in section.named:
        w.writerow(("officer", level, "", ref, nights))
    return {"compliance.csv": buf.getvalue()}
