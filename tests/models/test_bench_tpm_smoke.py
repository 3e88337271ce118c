"""Smoke test: the three-process benchmark runs at tiny size and its oracle agrees (no timing assertions)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_three_process import GRID_START, main, reference_simulate_one, synthetic_sleep
from models.three_process import simulate


def test_benchmark_main_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    figures = main(["--participants", "6", "--days", "3", "--batch", "4", "--reference-participants", "3"])
    assert figures["max_abs_ds"] < 1e-9
    assert figures["max_abs_dkss"] < 1e-9
    assert "ratio" in capsys.readouterr().out


def test_loop_oracle_matches_vectorised_on_synthetic_cohort() -> None:
    pid, start, end = synthetic_sleep(4, 10, seed=7)
    grid_end = GRID_START + 10 * 86400
    res = simulate(pid, start, end, n_participants=4, start=GRID_START, end=grid_end)
    for q in range(4):
        s, kss = reference_simulate_one(start[pid == q].tolist(), end[pid == q].tolist(), GRID_START, grid_end)
        np.testing.assert_allclose(res.s[q], s, rtol=0, atol=1e-9)
        np.testing.assert_allclose(res.kss[q], kss, rtol=0, atol=1e-9)
