"""Smoke test: the HRV benchmark runs at a tiny size and its equality check passes (no timing assertions)."""

from __future__ import annotations

from benchmarks.bench_hrv import main


def test_bench_hrv_tiny() -> None:
    """2 participants x 3 nights x 2,000 beats; both paths must agree on the subsample."""
    result = main(["--participants", "2", "--nights", "3", "--beats-per-night", "2000", "--chunk-beats", "5000",
                   "--baseline-nights", "4"])
    assert result.equal
    assert result.beats > 0 and result.nights == 6
