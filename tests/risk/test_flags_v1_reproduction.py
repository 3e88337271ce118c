"""programme-v1 stays reproducible: the stored features give the issued flags bit for bit; and any row order
gives the same flags (science 6.4; issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from risk.evaluate import WeeklyFlags, weekly_flags
from risk.programme import CRITERIA, load_programme

DATA = Path(__file__).resolve().parents[1] / "data" / "flags_v1"


def _frames() -> tuple[pd.DataFrame, ...]:
    return tuple(pd.read_csv(DATA / f"{name}.csv") for name in ("cohort", "daily", "duties", "exposure"))


def _same(a: WeeklyFlags, b: WeeklyFlags) -> None:
    assert a.overall.tolist() == b.overall.tolist()
    for c in CRITERIA:
        assert a.levels[c].tolist() == b.levels[c].tolist(), c
        assert a.why[c].tolist() == b.why[c].tolist(), c
        assert [float(v).hex() for v in a.values[c]] == [float(v).hex() for v in b.values[c]], c


def test_programme_v1_reproduces_issued_flags_bit_for_bit() -> None:
    issued = json.loads((DATA / "issued_flags.json").read_text(encoding="utf-8"))
    flags = weekly_flags(*_frames(), load_programme("programme-v1"))
    assert flags.overall.tolist() == issued["overall"]
    for c in CRITERIA:
        assert flags.levels[c].tolist() == issued["levels"][c], c
        assert flags.why[c].tolist() == issued["why"][c], c
        assert [float(v).hex() for v in flags.values[c]] == issued["values_hex"][c], c
    assert (flags.overall == 2).sum() > 100  # the fixture exercises red weeks, not only green


@pytest.mark.parametrize("version", ["programme-v1", "programme-v2"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_flags_do_not_depend_on_row_order(version: str, seed: int) -> None:
    cohort, daily, duties, exposure = _frames()
    prog = load_programme(version)
    base = weekly_flags(cohort, daily, duties, exposure, prog)
    rng = np.random.default_rng(seed)
    shuffled = [f.iloc[rng.permutation(len(f))].reset_index(drop=True) for f in (daily, duties, exposure)]
    _same(base, weekly_flags(cohort, *shuffled, prog))


def test_row_order_cannot_flip_a_rounded_value() -> None:
    """Sums of the same floats in another order differ in the last bit; rounded to 0.01 that flips 8.615."""
    w = np.ones(3)
    assert np.bincount([0, 0, 0], np.array([0.1, 0.2, 0.3]) * w)[0] != np.bincount([0, 0, 0], [0.3, 0.2, 0.1])[0]
    cohort = pd.DataFrame({"participant_id": ["a"], "programme_week": [3]})
    daily = pd.DataFrame({"participant_id": ["a"] * 7, "programme_week": [3] * 7,
                          "programme_day": np.arange(15, 22), "valid_sleep_day": [True] * 7,
                          "tst_min": [6 * 60.0 + 1e-9, 7 * 60.0 - 3e-9, 5 * 60.0 + 7e-9, 8 * 60.0, 6.3 * 60,
                                      7.1 * 60, 6.9 * 60]})
    prog = load_programme()
    got = {weekly_flags(cohort, daily.iloc[list(p)], daily.iloc[:0], daily.iloc[:0], prog).values["S1"][0].hex()
           for p in (range(7), range(6, -1, -1), [3, 1, 5, 0, 6, 2, 4])}
    assert len(got) == 1
