"""Every export is a valid Frictionless data package: `frictionless validate` (the tool's own validator) passes
for the CSV and the Parquet package, fields carry UCUM units, and the data dictionary is versioned."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.exports.export_cohort import World


def _validate(folder: Path) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-m", "frictionless", "validate", "--json",
                           str(folder / "datapackage.json")], capture_output=True, text=True, timeout=600)
    report: dict[str, object] = json.loads(proc.stdout)
    return report


@pytest.mark.parametrize("run", ["a1", "b"])
def test_frictionless_validate_passes(world: World, run: str) -> None:
    folder = getattr(world, run).result.out
    report = _validate(folder)
    errors = [(t["name"], e["type"], e["message"][:160]) for t in report["tasks"] for e in t["errors"]]  # type: ignore[attr-defined]
    errors += [("package", e["type"], e["message"][:160]) for e in report.get("errors", [])]  # type: ignore[attr-defined]
    assert report["valid"], "\n".join(map(str, errors[:30]))


def test_package_carries_a_versioned_dictionary_with_ucum_units(world: World) -> None:
    from exports.fields import DICTIONARY_CHANGELOG, DICTIONARY_VERSION

    package = json.loads((world.a1.result.out / "datapackage.json").read_text())
    assert package["dataDictionary"]["version"] == DICTIONARY_VERSION == DICTIONARY_CHANGELOG[-1][0]
    assert [c["version"] for c in package["dataDictionary"]["changelog"]] == [v for v, _ in DICTIONARY_CHANGELOG]
    units = {f["unit"] for r in package["resources"] if "schema" in r for f in r["schema"]["fields"] if "unit" in f}
    assert units and units <= UCUM_UNITS_USED, f"not in the UCUM list: {units - UCUM_UNITS_USED}"


#: UCUM case-sensitive codes the dictionary may use (https://ucum.org/ucum: min, h, d, wk are time units; ms is
#: milli-second; % percent; 1/min per minute; 1 the unity for dimensionless values).
UCUM_UNITS_USED = {"min", "h", "d", "wk", "ms", "%", "1/min", "1"}


def test_dictionary_changes_bump_the_version() -> None:
    from exports.fields import DICTIONARY_VERSION, dictionary_fingerprint

    # When this fails, the data dictionary changed: bump DICTIONARY_VERSION, add a DICTIONARY_CHANGELOG line,
    # then record the new version and fingerprint here.
    assert (DICTIONARY_VERSION, dictionary_fingerprint()) == ("2.0.0", FINGERPRINT)


FINGERPRINT = "1e04800666be2ec8faa26f1de631e67df10dff48cf33bb06e4527c453cd80622"
