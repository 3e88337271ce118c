"""Keeps benchmarks/bench_exports.py working at a tiny size (never asserts on time)."""

from __future__ import annotations

from benchmarks.bench_exports import run


def test_bench_exports_runs_at_tiny_size(pg_admin_url: str) -> None:
    figures = run(200, 14, admin_url=pg_admin_url)
    assert figures["rows_read"] > 0 and figures["rows_exported"] > 0 and figures["k"] >= 10
