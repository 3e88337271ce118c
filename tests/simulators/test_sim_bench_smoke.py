"""The simulator benchmark still runs (tiny size; never asserts on time)."""

from __future__ import annotations

from benchmarks.bench_simulator import naive_participant_day, run


def test_benchmark_runs_on_a_tiny_cohort() -> None:
    figures = run(2, 5, encode_sample=200)
    assert figures["messages"] > 0 and figures["speedup"] > 0
    assert len(naive_participant_day(0)) == 1440
