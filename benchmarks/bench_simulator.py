"""Benchmark: time to generate a cohort (default 100 participants x 120 days) and to encode its messages.

The baseline, timed in the same run, is a naive per-minute Python loop that simulates one participant-day
of heart rate (circadian level, duty, AR(1) noise; the cheapest part of the real model), scaled up to the
cohort's participant-days. Run ``python -m benchmarks.bench_simulator [--participants N --days D]``.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Sequence

from simulators.messages import iter_messages
from simulators.model import simulate
from simulators.params import SimParams


def naive_participant_day(seed: int) -> list[int]:
    """Minute heart rate of one participant-day with a plain Python loop (the baseline)."""
    rnd = random.Random(seed)
    noise, out = 0.0, []
    for minute in range(1440):
        hour = minute / 60.0
        asleep = hour < 7.0 or hour >= 23.0
        on_duty = 8.0 <= hour < 16.0
        level = 58.0 + (2.5 if asleep else 10.0 + 4.0 * math.cos(2 * math.pi * (hour - 16.0) / 24.0) + 15.0 * on_duty)
        noise = 0.8 * noise + (0.8 if asleep else 2.5) * rnd.gauss(0.0, 1.0)
        out.append(max(30, min(220, round(level + noise))))
    return out


def run(n_participants: int, n_days: int, encode_sample: int) -> dict[str, float]:
    """Time generation, message encoding and the baseline; return the figures."""
    t = time.perf_counter()
    for s in range(20):
        naive_participant_day(s)
    naive_per_day = (time.perf_counter() - t) / 20
    t, cpu = time.perf_counter(), time.process_time()
    sim = simulate(SimParams(n_participants=n_participants, n_days=n_days, seed=1))
    gen_s, gen_cpu_s = time.perf_counter() - t, time.process_time() - cpu
    n_enc = min(encode_sample, sim.table.n)
    t = time.perf_counter()
    n_bytes = sum(len(m.payload) for m in iter_messages(sim, 0, n_enc))
    enc_s = time.perf_counter() - t
    pdays = n_participants * n_days
    return {"participant_days": pdays, "generate_s": gen_s, "generate_cpu_s": gen_cpu_s, "messages": sim.table.n,
            "encode_msgs_per_s": n_enc / enc_s, "encode_mb_per_s": n_bytes / enc_s / 1e6,
            "baseline_hr_only_s": naive_per_day * pdays, "speedup": naive_per_day * pdays / gen_s,
            "projected_encode_all_s": sim.table.n / (n_enc / enc_s)}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--participants", type=int, default=100)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--encode-sample", type=int, default=50_000, help="messages encoded for the rate")
    ns = ap.parse_args(argv)
    r = run(ns.participants, ns.days, ns.encode_sample)
    print(f"simulator: {ns.participants} participants x {ns.days} days ({r['participant_days']:.0f} "
          f"participant-days), {r['messages']:.0f} messages")
    print(f"  generate (all arrays, no encoding): {r['generate_s']:.2f} s wall, {r['generate_cpu_s']:.2f} s CPU")
    print(f"  baseline naive per-minute loop, heart rate only, scaled: {r['baseline_hr_only_s']:.2f} s")
    print(f"  ratio baseline / vectorised: {r['speedup']:.1f}x")
    print(f"  encode: {r['encode_msgs_per_s']:.0f} messages/s ({r['encode_mb_per_s']:.1f} MB/s); "
          f"all messages projected {r['projected_encode_all_s']:.1f} s")


if __name__ == "__main__":
    main()
