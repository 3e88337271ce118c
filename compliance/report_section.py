"""The compliance section of a force's weekly report: a small aggregated table under the flags' privacy rules.

For the reported ISO week each officer of the force who was in their programme (not withdrawn by the week's
end) gets a *week level* from valid nights alone (a closed week has no "silent now"): missing nights among the
week's programme days above ``7 - lapsed_valid_nights`` is lapsed, above ``7 - watch_valid_nights`` watch,
else ok (the rules of :mod:`compliance.rules`). The section shows

- the number of officers per level under the flags' disclosure control (:func:`risk.disclosure.protect_rows`,
  rules R1-R3 and R6 of docs/security.md) applied to the officers who are *not named*: a consenting officer's
  level is known to the reader (named when at watch or lapsed, otherwise ok by elimination), so the rules act on
  the non-consenting officers' counts, with watch + lapsed (the "not named" line) as a published group;
- the officers at watch or lapsed who consented to be named to their manager (``consent_manager``), with their
  valid nights; the others only inside the controlled counts.

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
from risk.disclosure import protect_rows
from risk.report import SUPPRESSED

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


def _counts(levels: npt.NDArray[np.int8], named: npt.NDArray[np.bool_]
            ) -> tuple[tuple[tuple[str, str], ...], str, str]:
    """Per-level counts, the total and the "not named" count (watch + lapsed), as shown."""
    n = np.bincount(levels, minlength=len(LEVELS)).astype(np.int64)
    unnamed = np.bincount(levels[~named], minlength=len(LEVELS)).astype(np.int64)
    ok = protect_rows(unnamed[None, :], groups=[(1, 2)])[0]
    shown = tuple((lv, str(int(n[k])) if ok[k] else SUPPRESSED) for k, lv in enumerate(LEVELS))
    not_named = str(int(unnamed[1:].sum())) if ok[1] and ok[2] else SUPPRESSED
    return shown, str(int(n.sum())), not_named


def build_section(week_start: date, valid: npt.NDArray[np.int64], expected: npt.NDArray[np.int64],
                  consent: npt.NDArray[np.bool_], staff_ref: list[str | None],
                  rules: ComplianceRules) -> ComplianceSection:
    """Assemble the suppressed section from per-officer valid and expected nights of the week."""
    levels = week_levels(valid, expected, rules)
    known = consent & np.array([s is not None for s in staff_ref], dtype=bool)
    counts, total, not_named = _counts(levels, known)
    flagged = levels > 0
    can_name = flagged & known
    order = sorted(np.flatnonzero(can_name), key=lambda i: (-int(levels[i]), str(staff_ref[i])))
    named = tuple((str(staff_ref[i]), LEVELS[int(levels[i])], f"{int(valid[i])} of {int(expected[i])}")
                  for i in order)
    meaning = _meaning(rules)
    return ComplianceSection(week_start, week_start + timedelta(days=6),
                             tuple((lv, meaning[lv], shown) for lv, shown in counts), total, named,
                             not_named, rules.min_wear_h)


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
