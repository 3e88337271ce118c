"""Keeps benchmarks/bench_flags.py working at a tiny size (never asserts on time)."""

from __future__ import annotations

from benchmarks.bench_flags import run


def test_bench_flags_tiny(pg_admin_url: str, capsys: object) -> None:
    summary = run(pg_admin_url, 60)
    assert summary.evaluated == 60 and summary.issued == 60
    assert sum(summary.by_level.values()) == 60
