"""Loading and validating the programme TOML."""

from __future__ import annotations

import dataclasses
import re
from importlib import resources
from pathlib import Path

import pytest

from risk.programme import CRITERIA, ProgrammeError, load_programme

PACKAGED = resources.files("risk").joinpath("programme_v1.toml").read_text(encoding="utf-8")


def test_packaged_programme_matches_science_table() -> None:
    p = load_programme("programme-v1")
    assert p.version == "programme-v1" and p.weeks == 17 and p.days == 120 and p.need_pop_h == 8.0
    assert (p.phases.calibration_last_day, p.phases.extension_last_day, p.calibration_weeks()) == (14, 28, 2)
    assert p.validity.min_valid_sleep_days == 4 and p.validity.min_valid_hrv_nights == 4
    t = p.thresholds
    assert set(t) == set(CRITERIA)
    assert (t["S1"].amber, t["S1"].red, t["S1"].unit) == (7.0, 6.0, "h")
    assert (t["S2"].amber, t["S2"].red, t["S3"].amber, t["S3"].red) == (7.0, 14.0, 85.0, 75.0)
    assert (t["S4"].amber, t["S4"].red, t["W3"].amber, t["W3"].red) == (73.8, None, 4.0, None)
    assert (t["R1"].amber, t["R1"].red, t["W4"].amber, t["W4"].red, t["W4"].unit) == (3.0, 5.0, 16.0, 19.0, "h")
    assert (t["F1"].amber, t["F1"].red_amber_duties) == (60.0, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.version = "x"  # type: ignore[misc]
    assert not any(th.informative for th in t.values()) and not p.validity.f1_needs_known_awake


def test_programme_v2_is_the_default_and_matches_the_revised_table() -> None:
    """science.md 6.4 revised 2026-12: S4 informative, W4 > 17 / > 21 h, F1 red only from KSS >= 8."""
    p = load_programme()
    assert p.version == "programme-v2" and load_programme("programme-v2") == p
    t = p.thresholds
    assert t["S4"].informative and not any(t[c].informative for c in CRITERIA if c != "S4")
    assert (t["W4"].amber, t["W4"].red, t["F1"].amber, t["F1"].red, t["F1"].red_amber_duties) == \
        (17.0, 21.0, 60.0, 60.0, None)
    assert p.validity.f1_needs_known_awake
    assert len(p.changelog) >= 4 and all("[" in c and "]" in c for c in p.changelog)  # every change cites
    assert any("Dawson" in c for c in p.changelog) and any("S4" in c for c in p.changelog)
    v1 = load_programme("programme-v1")
    same = [c for c in CRITERIA if t[c] == v1.thresholds[c]]
    assert set(CRITERIA) - set(same) == {"S4", "W4", "F1"}  # only what the changelog names changed


def test_changelog_entries_need_a_source(tmp_path: Path) -> None:
    text = resources.files("risk").joinpath("programme_v2.toml").read_text(encoding="utf-8")
    bad = tmp_path / "x.toml"
    bad.write_text(text + '\n[[changelog]]\nchange = "W4 red > 30 h"\n', encoding="utf-8")
    with pytest.raises(ProgrammeError, match=r"changelog\[\d+\]: expected non-empty"):
        load_programme(bad)


def _with(tmp_path: Path, old: str, new: str) -> Path:
    text = PACKAGED
    assert re.search(old, text, flags=re.M)
    path = tmp_path / "force.toml"
    path.write_text(re.sub(old, new, text, count=1, flags=re.M), encoding="utf-8")
    return path


@pytest.mark.parametrize(("old", "new", "message"), [
    (r"^red = 6\.0", "red = -1.0", "thresholds.S1.red: expected hours > 0"),
    (r'^unit = "h"', 'unit = "min"', "thresholds.S1.unit: expected 'h' (hours)"),
    (r"^red = 6\.0", "red = 7.5", "thresholds.S1.red: expected hours at least as severe as amber"),
    (r"^amber = 85\.0", 'amber = "85"', "thresholds.S3.amber: expected percent"),
    (r"^min_valid_sleep_days = 4", "min_valid_sleep_days = 9", "validity.min_valid_sleep_days"),
    (r'^version = "programme-v1"', "version = 3", "version: expected a non-empty string"),
    (r"^\[thresholds\.W4\]", "[thresholds.W9]", "thresholds.W4: missing criterion"),
])
def test_invalid_fields_are_named(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(ProgrammeError, match=re.escape(message)):
        load_programme(_with(tmp_path, old, new))


def test_force_supplies_its_own_file(tmp_path: Path) -> None:
    path = _with(tmp_path, r'^version = "programme-v1"', 'version = "force-x-v2"')
    path.write_text(path.read_text().replace("amber = 7.0\nred = 6.0", "amber = 7.5\nred = 6.0"))
    p = load_programme(path)
    assert p.version == "force-x-v2" and p.thresholds["S1"].amber == 7.5


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ProgrammeError, match="cannot read"):
        load_programme(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("version = ")
    with pytest.raises(ProgrammeError, match="not valid TOML"):
        load_programme(bad)
