"""`fatigue validate` end to end on one small seeded cohort (default run) and the full 3-seed run (slow).

The small cohort asserts the bands that a 12-officer cohort can carry (red precision, amber-or-red recall,
faults never adding red); the share, fault-shift and at-risk bands need the full run (slow test).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from risk.programme import load_programme
from risk.validation.metrics import BANDS, render_markdown, render_svg
from service.cli_validate import validate, validate_command

SMALL = {"seeds": (11,), "participants": 12, "days": 42}


@pytest.fixture(scope="module")
def small(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return validate(pg_admin_url, SMALL["seeds"], SMALL["participants"], SMALL["days"], "default",
                    load_programme(), "Europe/London", tmp_path_factory.mktemp("val"), echo=lambda _: None)


def test_small_cohort_flags_agree_with_ground_truth(small) -> None:  # type: ignore[no-untyped-def]
    f = small.figures
    assert f["weeks"] == SMALL["participants"] * (SMALL["days"] // 7)
    assert f["red_precision"] >= BANDS["red_precision"][0], f
    assert f["amber_or_red_recall"] >= BANDS["amber_or_red_recall"][0], f
    # faults may hide red weeks (insufficient data) but must not add them: one-sided on a cohort this small
    assert f["red_share"] <= f["red_share_no_faults"] + 0.02, f
    shares = f["green_share"] + f["amber_share"] + f["red_share"] + f["insufficient_share"]
    assert math.isclose(shares, 1.0)
    # every validated criterion was scored against a truth, and the confusion counts add up
    cohort = small.cohorts[0]
    assert sum(sum(r.values()) for r in cohort.confusion.values()) == f["weeks"]
    assert {"S1", "W4", "F1"} <= set(cohort.per_criterion)


def test_report_files_are_written(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    md = render_markdown(small, {"programme": "programme-v2"}, "validation.svg")
    assert "## Definition of true exposure" in md and "| red_precision |" in md
    svg = render_svg(small)
    assert svg.startswith("<svg") and "seed 11" in svg
    data = json.loads(small.to_json())
    assert set(data["passed"]) == set(BANDS) and data["cohorts"][0]["seed"] == 11


def test_cli_validate_writes_report_and_exit_code_follows_bands(pg_admin_url: str, tmp_path: Path) -> None:
    out = tmp_path / "validation.md"
    obj = SimpleNamespace(database_url=f"{pg_admin_url.rpartition('/')[0]}/fatigue", timezone="Europe/London")
    res = CliRunner().invoke(validate_command, ["--seeds", "12", "--participants", "6", "--days", "28",
                                                "--out", str(out)], obj=obj)
    data = json.loads(out.with_suffix(".json").read_text())
    assert out.exists() and out.with_suffix(".svg").exists()
    assert res.exit_code == (0 if all(data["passed"].values()) else 1), res.output
    assert "red_precision" in res.output and "wrote" in res.output


@pytest.mark.slow
def test_full_three_seed_validation(pg_admin_url: str, tmp_path: Path) -> None:
    """The acceptance run of issue 14: 3 seeds x 60 officers x 120 days, default faults."""
    summary = validate(pg_admin_url, (1, 2, 3), 60, None, "default", load_programme(), "Europe/London", tmp_path,
                       echo=lambda _: None)
    failing = {k: summary.figures[k] for k, ok in summary.passed.items() if not ok}
    assert not failing, failing
