"""Benchmark: vectorised three-process model vs a plain epoch-by-epoch Python loop.

Run ``python -m benchmarks.bench_three_process [--participants N] [--days D] [--quick]``.

The cohort is synthetic and seeded: per participant and night a main sleep (onset around 23:00 UTC ± 1.5 h,
3–20 % of nights shifted to a day sleep after a night shift, 5–9 h long) plus naps on ~15 % of days. The grid
is 5 min from 2024-03-01 00:00 UTC for ``D`` days with the circadian clock in Europe/London (crosses the March
DST change). ``models.three_process.simulate`` runs the whole cohort in participant batches (results do not
depend on batching). The baseline (``reference_simulate_one``) is a straightforward loop over epochs for one
participant (zoneinfo per epoch, math.exp per epoch); it is timed in the same run on a subsample and scaled
linearly to the cohort size — the printed baseline figure is an extrapolation, not a measurement.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from models.three_process import DEFAULT_PARAMS, EPOCH_H, EPOCH_S, TPMParams, round_to_epoch, simulate

GRID_START = 1709251200  # 2024-03-01 00:00:00 UTC
TZ = "Europe/London"


def synthetic_sleep(n_participants: int, days: int, seed: int = 20240301
                    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Seeded synthetic sleep episodes (participant, start, end) in UTC epoch seconds, sorted per participant."""
    rng = np.random.default_rng(seed)
    p = np.repeat(np.arange(n_participants, dtype=np.int64), days)
    day = np.tile(np.arange(days, dtype=np.int64), n_participants)
    night_worker = rng.uniform(0.03, 0.2, n_participants)[p] > rng.uniform(size=p.size)
    onset_h = np.where(night_worker, 32.0, 23.0) + rng.normal(0.0, 1.5 / 2, p.size)
    length_h = rng.uniform(5.0, 9.0, p.size)
    start = GRID_START + day * 86400 + (onset_h * 3600).astype(np.int64)
    end = start + (length_h * 3600).astype(np.int64)
    nap = rng.uniform(size=p.size) < 0.15
    nap_start = GRID_START + day[nap] * 86400 + (rng.uniform(14.0, 17.0, int(nap.sum())) * 3600).astype(np.int64)
    nap_end = nap_start + (rng.uniform(0.25, 1.5, nap_start.size) * 3600).astype(np.int64)
    pid = np.concatenate([p, p[nap]])
    s, e = np.concatenate([start, nap_start]), np.concatenate([end, nap_end])
    order = np.lexsort((s, pid))
    return pid[order], s[order], e[order]


def reference_simulate_one(starts: Sequence[int], ends: Sequence[int], start: int, end: int,
                           params: TPMParams = DEFAULT_PARAMS, tz: str = TZ) -> tuple[list[float], list[float]]:
    """Plain epoch-by-epoch TPM for one participant (the oracle); returns (S, KSS) lists.

    Follows science.md §4.1 step by step: mark asleep epochs, then walk the grid keeping the S at the start of
    the current run and the index within it.
    """
    zone = ZoneInfo(tz)
    n = max(0, -(-(end - start) // EPOCH_S))
    asleep = [False] * n
    for a, b in zip(round_to_epoch(list(starts)).tolist(), round_to_epoch(list(ends)).tolist(), strict=True):
        for i in range(max(0, (a - start) // EPOCH_S), min(n, (b - start) // EPOCH_S)):
            asleep[i] = True
    s_out: list[float] = []
    kss_out: list[float] = []
    run_s, k = params.s0, 0
    slope = params.g * (params.bl - params.ha)
    for i in range(n):
        if i > 0 and asleep[i] != asleep[i - 1]:
            run_s = _sleep_s(run_s, k * EPOCH_H, params, slope) if asleep[i - 1] else _wake_s(run_s, k * EPOCH_H,
                                                                                               params)
            k = 0
        tau = k * EPOCH_H
        s = _sleep_s(run_s, tau, params, slope) if asleep[i] else _wake_s(run_s, tau, params)
        w = 0.0 if asleep[i] else params.wc * math.exp(params.wd * tau)
        local = datetime.fromtimestamp(start + EPOCH_S * i, tz=zone)
        tod = local.hour + local.minute / 60.0
        c = params.cm + params.ca * math.cos(2.0 * math.pi * (tod - params.p) / 24.0)
        u = params.um + params.ua * math.cos(2.0 * math.pi * (tod - params.p - 3.0) / 12.0)
        s_out.append(s)
        kss_out.append(params.kss_intercept + params.kss_beta * (s + c + u + w))
        k += 1
    return s_out, kss_out


def _wake_s(s_w: float, taw: float, params: TPMParams) -> float:
    return params.la + (s_w - params.la) * math.exp(params.d * taw)


def _sleep_s(s_s: float, tas: float, params: TPMParams, slope: float) -> float:
    bt = (params.bl - s_s) / slope
    if tas <= bt:
        return s_s + tas * slope
    return params.ha - (params.ha - params.bl) * math.exp(params.g * (tas - bt))


def _time_vectorised(pid: NDArray[np.int64], s: NDArray[np.int64], e: NDArray[np.int64], n_participants: int,
                     end: int, batch: int, n_check: int) -> tuple[float, float, NDArray[np.float64],
                                                                  NDArray[np.float64]]:
    """Simulate the cohort in batches; returns (seconds, epochs at KSS >= 7, S and KSS of the first rows)."""
    bounds = np.searchsorted(pid, np.arange(0, n_participants + batch, batch))
    t0 = time.perf_counter()
    sleepy = 0.0
    keep_s = keep_k = np.empty((0, 0))
    for b, lo in enumerate(range(0, n_participants, batch)):
        size = min(batch, n_participants - lo)
        sl = slice(bounds[b], bounds[b + 1])
        res = simulate(pid[sl] - lo, s[sl], e[sl], n_participants=size, start=GRID_START, end=end, tz=TZ)
        sleepy += float(np.count_nonzero(res.kss >= 7.0))
        if b == 0:
            keep_s, keep_k = res.s[:n_check].copy(), res.kss[:n_check].copy()
    return time.perf_counter() - t0, sleepy, keep_s, keep_k


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Run the benchmark, print figures and return them (seconds, ratio, max differences)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--participants", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--reference-participants", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="200 participants x 30 days")
    args = ap.parse_args(argv)
    n_p, days = (min(args.participants, 200), min(args.days, 30)) if args.quick else (args.participants, args.days)
    n_ref = min(args.reference_participants, n_p, args.batch)
    end = GRID_START + days * 86400
    pid, s, e = synthetic_sleep(n_p, days)
    vec_s, sleepy, vs, vk = _time_vectorised(pid, s, e, n_p, end, args.batch, n_ref)
    t0 = time.perf_counter()
    max_ds = max_dk = 0.0
    for q in range(n_ref):
        mask = pid == q
        rs, rk = reference_simulate_one(s[mask].tolist(), e[mask].tolist(), GRID_START, end)
        max_ds = max(max_ds, float(np.max(np.abs(np.asarray(rs) - vs[q]))))
        max_dk = max(max_dk, float(np.max(np.abs(np.asarray(rk) - vk[q]))))
    ref_s = time.perf_counter() - t0
    ref_scaled = ref_s / max(n_ref, 1) * n_p
    n_grid = days * 86400 // EPOCH_S
    print(f"three-process model: {n_p} participants x {days} days ({n_grid} epochs each, {n_p * n_grid:,} "
          f"participant-epochs), batches of {args.batch}")
    print(f"  vectorised simulate:          {vec_s:8.2f} s  ({n_p * n_grid / vec_s / 1e6:.1f} M epochs/s; "
          f"{sleepy:,.0f} epochs at KSS >= 7)")
    print(f"  epoch-loop reference:         {ref_s:8.2f} s measured on {n_ref} participants")
    print(f"  reference scaled linearly to {n_p}: {ref_scaled:8.1f} s (extrapolated, not measured)")
    print(f"  ratio (reference / vectorised): {ref_scaled / vec_s:8.1f}x")
    print(f"  agreement on the subsample: max |dS| = {max_ds:.2e}, max |dKSS| = {max_dk:.2e}")
    return {"vectorised_s": vec_s, "reference_s": ref_s, "reference_scaled_s": ref_scaled,
            "ratio": ref_scaled / vec_s, "max_abs_ds": max_ds, "max_abs_dkss": max_dk,
            "participants": float(n_p), "days": float(days)}


if __name__ == "__main__":
    main()
