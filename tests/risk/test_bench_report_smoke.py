"""Keeps benchmarks/bench_report.py working at a tiny size (never asserts on time)."""

from __future__ import annotations

from benchmarks.bench_report import run, synthetic_flags


def test_bench_report_tiny() -> None:
    assert len(synthetic_flags(10)) == 80
    base, big = run(5)
    assert base > 0 and big > 0
