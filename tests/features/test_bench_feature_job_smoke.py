"""Smoke test: the feature-job benchmark runs end to end at a tiny size (no timing assertions)."""

from __future__ import annotations

from benchmarks.bench_feature_job import main


def test_bench_feature_job_tiny(pg_admin_url: str) -> None:
    out = main(["--participants", "3", "--days", "20", "--admin-url", pg_admin_url])
    assert out["full_participants"] == 3 and out["full_rows"] == 3 * 20
    assert out["nightly_participants"] == 3 and out["nightly_rows"] >= 3, "the new night is written"
    assert out["temp_files"] == 0 and out["temp_blocks"] == 0
    assert out["floor_s"] > 0
