"""Smoke test: the feature benchmark runs at a tiny size and its equality check against the pandas baseline
passes (no timing assertions; docs/developing.md "Benchmarks are not tests")."""

from __future__ import annotations

from benchmarks.bench_features import main


def test_bench_features_tiny() -> None:
    out = main(["--participants", "3,6", "--baseline-n", "3", "--days", "20"])
    assert out["equal"], out["checks"]
    assert [r["participants"] for r in out["results"]] == [3, 6]
