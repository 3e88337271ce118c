"""An attacker reads the report's device-wear section (``compliance.csv``) the way a manager could.

Independent of :mod:`risk.disclosure`: the attacker knows every consenting officer's wear level (named when at
watch or lapsed, ok by elimination, as the section lists them) and how many officers did not consent, and
enumerates every split of the non-consenting officers over ok / watch / lapsed that agrees with every number
shown. A finding is a level whose non-consenting count is the same in every consistent split and between 1 and
4, or all non-consenting officers placed in one level by every split (their level disclosed).
"""

from __future__ import annotations

import csv
import io
from datetime import date

import numpy as np
import pytest

from compliance.report_section import ComplianceSection, build_section, section_csv
from compliance.rules import ComplianceRules

LEVELS = ("ok", "watch", "lapsed")
RULES = ComplianceRules()


def _read(text: str) -> tuple[dict[str, int | None], int | None, dict[str, str]]:
    """Shown counts (None = hidden), the shown "not named" count and the named officers' levels."""
    counts: dict[str, int | None] = {}
    not_named: int | None = None
    named: dict[str, str] = {}
    for row in csv.DictReader(io.StringIO(text)):
        value = int(row["officers"]) if row["officers"].isdigit() else None
        if row["row"] == "count" and row["level"] in LEVELS:
            counts[row["level"]] = value
        elif row["row"] == "count" and row["level"] == "not_named":
            not_named = value
        elif row["row"] == "officer":
            named[row["staff_ref"]] = row["level"]
    return counts, not_named, named


def attack(text: str, consenting: list[str], n_unnamed: int) -> list[str]:
    """Findings about the officers who did not consent (empty when nothing can be pinned)."""
    counts, not_named, named = _read(text)
    known = {lv: 0 for lv in LEVELS}
    for ref in consenting:
        known[named.get(ref, "ok")] += 1
    splits = []
    for ok in range(n_unnamed + 1):
        for watch in range(n_unnamed - ok + 1):
            split = {"ok": ok, "watch": watch, "lapsed": n_unnamed - ok - watch}
            fits = all(v is None or v == known[lv] + split[lv] for lv, v in counts.items())
            if fits and (not_named is None or not_named == split["watch"] + split["lapsed"]):
                splits.append(split)
    assert splits, "no split fits: the section contradicts itself"
    findings = [f"{lv}: {splits[0][lv]} of the officers not named" for lv in LEVELS
                if len({s[lv] for s in splits}) == 1 and 0 < splits[0][lv] < 5]
    if n_unnamed and len(splits) == 1 and max(splits[0].values()) == n_unnamed:
        findings.append("every officer not named is in one level")
    return findings


def _cohort(rng: np.random.Generator, n: int) -> tuple[ComplianceSection, list[str], int]:
    consent = rng.random(n) < rng.uniform(0.2, 0.95)
    valid = rng.choice([7, 6, 5, 4, 3, 1, 0], size=n, p=[0.4, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05]).astype(np.int64)
    refs = [f"OFF{k}" for k in range(n)]
    section = build_section(date(2026, 3, 9), valid, np.full(n, 7, np.int64), consent,
                            [r if c else None for r, c in zip(refs, consent, strict=True)], RULES)
    return section, [r for r, c in zip(refs, consent, strict=True) if c], int((~consent).sum())


@pytest.mark.parametrize("seed", range(40))
def test_the_attacker_pins_nothing_in_the_wear_section(seed: int) -> None:
    rng = np.random.default_rng(seed)
    section, consenting, n_unnamed = _cohort(rng, int(rng.integers(3, 40)))
    assert attack(section_csv(section)["compliance.csv"], consenting, n_unnamed) == []


def test_the_attacker_finds_what_exact_counts_give_away() -> None:
    """Proof that the checker can fail: exact counts for a small group of officers not named give them away,
    while the controlled section of the same cohort hides them."""
    rng = np.random.default_rng(7)
    section, consenting, n_unnamed = _cohort(rng, 12)
    while not 0 < n_unnamed < 5:
        section, consenting, n_unnamed = _cohort(rng, 12)
    text = section_csv(section)["compliance.csv"]
    assert attack(text, consenting, n_unnamed) == []
    _, _, named = _read(text)
    levels = [named.get(ref, "ok") for ref in consenting] + ["lapsed"] * n_unnamed  # say all of them lapsed
    lines = ["row,level,officers,staff_ref,valid_nights"]
    lines += [f"count,{lv},{levels.count(lv)},," for lv in LEVELS]
    lines.append(f"count,not_named,{n_unnamed},,")
    lines += [f"officer,{lv},,{ref},x" for ref, lv, _ in section.named]
    assert attack("\n".join(lines) + "\n", consenting, n_unnamed) != []
