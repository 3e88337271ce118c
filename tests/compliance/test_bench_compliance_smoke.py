"""Keeps benchmarks/bench_compliance.py working at a tiny size (never asserts on time)."""

from __future__ import annotations

from benchmarks.bench_compliance import run


def test_bench_compliance_tiny(pg_admin_url: str) -> None:
    result = run(pg_admin_url, 6, 9)
    assert result.full.participants == 6 and result.full.levels == {"ok": 6, "watch": 0, "lapsed": 0}
    assert result.full.participant_days >= 6 * 9
    assert 6 <= result.incremental.participant_days <= 12, "one more hour touches today (and tomorrow's status)"
