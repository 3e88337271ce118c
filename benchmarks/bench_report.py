"""Benchmark: is ``risk.report.build_report`` linear in force size (issue 22)?

Builds the weekly report of a synthetic force with ``n`` officers and with ``8 n`` officers over an 8-week trend
window (pure assembly, no database), and prints both times and their ratio. A linear build gives a ratio near 8;
the pre-issue-15 builder, which filtered the whole history once per named officer, grew quadratically (ratio
near 64 at large sizes). The smaller force is the baseline timed in the same run.

Run: ``python -m benchmarks.bench_report [--officers 2000]``.
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from risk.programme import load_programme
from risk.report import build_report

WEEK_END = date(2026, 3, 15)
LEVELS = np.array(["green", "amber", "red", "insufficient_data"])


def synthetic_flags(n: int, seed: int = 1) -> pd.DataFrame:
    """8 weeks of flags for ``n`` officers (70 % named, levels 60/25/10/5 %)."""
    rng = np.random.default_rng(seed)
    ids = [uuid.UUID(int=int(i) + 1) for i in range(n)]
    weeks = np.repeat(np.arange(8), n)
    level = LEVELS[rng.choice(4, size=8 * n, p=[0.6, 0.25, 0.1, 0.05])]
    sleep = rng.normal(6.8, 0.6, 8 * n)
    crit = [{"S1": {"value": float(v), "level": "amber" if lv in ("amber", "red") else "green",
                    "reason": f"mean sleep {v:.2f} h"}} for v, lv in zip(sleep, level, strict=True)]
    named = np.tile(rng.random(n) < 0.7, 8)
    return pd.DataFrame({
        "participant_id": ids * 8, "programme_week": weeks + 1,
        "week_end": [WEEK_END - timedelta(days=7 * (7 - int(w))) for w in weeks], "overall_level": level,
        "criteria": crit, "revision": 1, "consent_manager": named,
        "staff_ref": [f"PC{i:06d}" if nm else None for i, nm in zip(np.tile(np.arange(n), 8), named, strict=True)]})


def time_build(flags: pd.DataFrame) -> float:
    """Seconds to build one report of ``flags``."""
    started = time.perf_counter()
    build_report("bench", "bench", "2026-W11", WEEK_END - timedelta(days=6), WEEK_END, flags, load_programme(),
                 datetime(2026, 3, 16, tzinfo=UTC))
    return time.perf_counter() - started


def run(officers: int) -> tuple[float, float]:
    """Time the build for ``officers`` and ``8 * officers``; returns (baseline s, large s)."""
    small, large = synthetic_flags(officers), synthetic_flags(8 * officers)
    time_build(small)  # warm up (template loading, imports)
    return time_build(small), time_build(large)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--officers", type=int, default=2000)
    args = parser.parse_args()
    base, big = run(args.officers)
    print(f"build_report: {args.officers} officers {base:.3f} s (baseline), {8 * args.officers} officers "
          f"{big:.3f} s, ratio {big / base:.1f} (linear: ~8)")


if __name__ == "__main__":
    main()
