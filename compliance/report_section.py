"""The compliance section of a force's weekly report: a small aggregated table under the flags' privacy rules.

For the reported ISO week each officer of the force who was in their programme (not withdrawn by the week's
end) gets a *week level* from valid nights alone (a closed week has no "silent now"): missing nights among the
week's programme days above ``7 - lapsed_valid_nights`` is lapsed, above ``7 - watch_valid_nights`` watch,
else ok (the rules of :mod:`compliance.rules`). The section shows

- the number of officers per level, with the flags' small-number rule: 1-4 is "fewer than 5", and when exactly
  one level is suppressed the next smallest is hidden too, so the total cannot give it away;
- the officers at watch or lapsed who consented to be named to their manager (``consent_manager``), with their
  valid nights; the others only as a suppressed count.

Pure: :func:`compliance.db.read_section` reads the week and calls :func:`section_from_days`. Rendering:
``risk/templates/compliance_section.html.j2`` (included by the report template when a section is given) and
:func:`section_csv` (``compliance.csv`` beside the report).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from compliance.kernel import LEVELS, valid_nights
from compliance.rules import ComplianceRules
from risk.report import HIDDEN, MIN_CELL, cell

__all__ = ["ComplianceSection", "build_section", "section_csv", "section_from_days", "week_levels"]


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


def section_from_days(week_start: date, wear_min: npt.NDArray[np.float64], sleep_n: npt.NDArray[np.int64],
                      first_col: npt.NDArray[np.int64], end_col: npt.NDArray[np.int64],
                      consent: npt.NDArray[np.bool_], staff_ref: list[str | None],
                      rules: ComplianceRules) -> ComplianceSection:
    """The section from each officer's 7 days of the week (``wear_min`` NaN: no wear signal); days before
    ``first_col`` or from ``end_col`` on are outside the officer's programme and not expected."""
    col = np.arange(7)[None, :]
    in_programme = (col >= first_col[:, None]) & (col < end_col[:, None])
    valid = (valid_nights(wear_min, sleep_n, rules) & in_programme).sum(axis=1).astype(np.int64)
    return build_section(week_start, valid, in_programme.sum(axis=1).astype(np.int64), consent, staff_ref, rules)


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
