"""Benchmark of the vectorised feature core against a pandas groupby-apply baseline (same run, same data).

Run: ``python -m benchmarks.bench_features [--participants 1000,10000,30000] [--quick] [--baseline-n 200]``.

Synthetic, seeded cohort of N participants x 120 days starting 2024-03-01 (spans the March clock change): a main
sleep on ~93 % of days with 30-s stages (13 alternating runs, ~8 h), unstaged naps on ~30 % of days (device TST),
i.e. ~1.2-1.3 episodes per participant-day, and ~5 duties per week (early / late / night). All instants are on
the 30-s grid. Timed: episode metrics, daily aggregation, debt, SRI (14 d) + consistency (4 d), roster features.
The baseline (``benchmarks.baseline_pandas_features``) runs on a ``--baseline-n`` participant subsample; its time
is scaled linearly to N (stated in the output), and both implementations are compared on that subsample.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import baseline_pandas_features as base
from features.debt import sleep_debt
from features.regularity import pair_agreement, sleep_consistency, sri_14d, sri_origin
from features.roster import duty_features
from features.sleep import assign_sleep_days, daily_sleep, episode_metrics, sleep_intervals, sleep_runs
from features.timeutil import local_to_utc

N_DAYS = 120
DAY0 = "2024-03-01"


def generate(n_p: int, seed: int = 7, n_days: int = N_DAYS) -> dict[str, Any]:
    """Seeded synthetic cohort (all arrays; no loop over participants or nights)."""
    rng = np.random.default_rng(seed)
    d0 = int(np.datetime64(DAY0, "D").astype(np.int64))
    pd_p = np.repeat(np.arange(n_p), n_days)
    pd_d = np.tile(np.arange(n_days), n_p)
    has_main = rng.random(pd_p.size) < 0.93
    mp, md = pd_p[has_main], pd_d[has_main]
    n_main = mp.size
    lengths = np.empty((n_main, 13), np.int64)
    lengths[:, 0] = rng.geometric(1 / 25, n_main)  # sleep-onset latency
    lengths[:, 1:12:2] = rng.integers(60, 190, (n_main, 6))  # sleep runs
    lengths[:, 2:12:2] = rng.geometric(1 / 6, (n_main, 5))  # wake bouts
    lengths[:, 12] = rng.integers(1, 30, n_main)
    values = np.zeros((n_main, 13), np.int8)
    values[:, 1:12:2] = rng.integers(1, 4, (n_main, 6))
    stages = np.repeat(values.ravel(), lengths.ravel())
    n_ep = lengths.sum(axis=1)
    bed_local = (d0 + md - 1) * 86_400 + 22 * 3600 + 30 * rng.integers(0, 480, n_main)
    m_start = local_to_utc(bed_local)
    m_start -= m_start % 30
    m_end = m_start + 30 * n_ep
    has_nap = rng.random(pd_p.size) < 0.3
    np_, nd = pd_p[has_nap], pd_d[has_nap]
    nap_start = local_to_utc((d0 + nd) * 86_400 + 13 * 3600 + 30 * rng.integers(0, 240, np_.size))
    nap_start -= nap_start % 30
    nap_end = nap_start + 30 * rng.integers(40, 240, np_.size)
    participant = np.concatenate((mp, np_))
    start = np.concatenate((m_start, nap_start))
    end = np.concatenate((m_end, nap_end))
    offsets = np.concatenate(([0], np.cumsum(n_ep), np.full(np_.size, n_ep.sum())))
    device_tst = np.concatenate((np.full(n_main, np.nan), (nap_end - nap_start) / 60.0))
    has_duty = rng.random(pd_p.size) < 5 / 7
    dp, dd = pd_p[has_duty], pd_d[has_duty]
    kind = ((dd + dp) // 2) % 3
    hour = np.array([7, 14, 22])[kind]
    d_start = local_to_utc((d0 + dd) * 86_400 + hour * 3600)
    d_end = d_start + 3600 * rng.choice([8, 9, 10, 10, 12, 13], dp.size)
    return {
        "n_participants": n_p, "day0": d0, "day0_date": pd.Timestamp(DAY0).date(),
        "ep_participant": participant, "ep_start": start, "ep_end": end, "stages": stages,
        "offsets": offsets, "device_tst_min": device_tst,
        "duty_participant": dp, "duty_start": d_start, "duty_end": d_end, "duty_type": kind,
    }


def vectorised(data: dict[str, Any], n_days: int = N_DAYS, timings: dict[str, float] | None = None
               ) -> dict[str, Any]:
    """The feature core on the whole cohort; stage timings are added to ``timings``."""
    t = timings if timings is not None else {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        t[name] = t.get(name, 0.0) + time.perf_counter() - t0
        return out

    p, s, e, off = data["ep_participant"], data["ep_start"], data["ep_end"], data["offsets"]
    n_p, d0 = data["n_participants"], data["day0"]
    runs = timed("sleep_runs", lambda: sleep_runs(data["stages"], off))
    m = timed("episode_metrics", lambda: episode_metrics(s, e, data["stages"], off, runs=runs,
                                                         device_tst_min=data["device_tst_min"]))
    days = timed("daily", lambda: assign_sleep_days(p, e, m.tst_min, day0=d0, n_days=n_days))
    daily = timed("daily", lambda: daily_sleep(p, e, m, n_participants=n_p, day0=d0, n_days=n_days, days=days))
    tst_h = np.where(daily.valid_sleep_day, daily.tst_min / 60.0, np.nan)
    debt = timed("debt", lambda: sleep_debt(tst_h, 8.0))

    def regularity() -> tuple[Any, Any]:
        ep, t0, t1 = sleep_intervals(s, e, off, runs)
        pairs = pair_agreement(p[ep], t0, t1, daily.valid_sleep_day, sri_origin(np.full(n_p, d0)))
        return sri_14d(pairs), sleep_consistency(pairs)

    sri, cons = timed("sri", regularity)
    roster = timed("roster", lambda: duty_features(
        data["duty_participant"], data["duty_start"], data["duty_end"], data["duty_type"],
        sleep_participant=p, sleep_start=s, sleep_end=e, sleep_is_main=days.is_main))
    return {"daily": daily, "debt": debt, "sri": sri, "consistency": cons, "roster": roster}


def baseline(data: dict[str, Any], n_days: int = N_DAYS) -> dict[str, Any]:
    daily = base.daily_frame(data, n_days)
    return {"daily": daily, "debt": base.debt_frame(daily), "sri": base.sri_frame(data, daily, n_days),
            "roster": base.roster_frame(data, np.zeros(0))}


def compare(vec: dict[str, Any], ref: dict[str, Any], n_p: int, n_days: int = N_DAYS) -> dict[str, bool]:
    """np.allclose (NaN-equal) of every shared quantity."""
    out: dict[str, bool] = {}
    dly, rd = vec["daily"], ref["daily"]
    for col in ("tst_min", "main_tst_min", "se_pct", "sol_min", "waso_min", "awakenings", "midpoint_local_h",
                "n_episodes"):
        out[col] = bool(np.allclose(getattr(dly, col).astype(float), rd[col].to_numpy(float).reshape(n_p, n_days),
                                    equal_nan=True))
    out["valid_sleep_day"] = bool(np.array_equal(dly.valid_sleep_day, rd["valid"].to_numpy(bool).reshape(n_p, -1)))
    for a, b in (("net_7d_h", "net"), ("gross_7d_h", "gross"), ("carry_h", "carry")):
        out[a] = bool(np.allclose(getattr(vec["debt"], a), ref["debt"][b].to_numpy(float).reshape(n_p, -1),
                                  equal_nan=True))
    out["sri_14d"] = bool(np.allclose(vec["sri"], ref["sri"]["sri_14d"].to_numpy(float).reshape(n_p, -1),
                                      equal_nan=True))
    out["sleep_consistency"] = bool(np.allclose(
        vec["consistency"], ref["sri"]["consistency"].to_numpy(float).reshape(n_p, -1), equal_nan=True))
    for col in ("length_h", "rest_gap_h", "quick_return", "night_duty", "consecutive_nights",
                "consecutive_duty_days", "early_start", "time_awake_end_h"):
        out[col] = bool(np.allclose(getattr(vec["roster"], col).astype(float),
                                    ref["roster"][col].to_numpy(float), equal_nan=True))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--participants", default="1000,10000,30000")
    ap.add_argument("--quick", action="store_true", help="sizes 300,1000,3000 and a 50-participant baseline")
    ap.add_argument("--baseline-n", type=int, default=200)
    ap.add_argument("--days", type=int, default=N_DAYS)
    args = ap.parse_args(argv)
    sizes = [300, 1000, 3000] if args.quick else [int(x) for x in args.participants.split(",")]
    n_base = 50 if args.quick else args.baseline_n
    n_days = args.days

    sub = generate(n_base, seed=11, n_days=n_days)
    t0 = time.perf_counter()
    ref = baseline(sub, n_days)
    t_base = time.perf_counter() - t0
    checks = compare(vectorised(sub, n_days), ref, n_base, n_days)
    equal = all(checks.values())
    print(f"baseline (pandas groupby-apply) on {n_base} participants x {n_days} days: {t_base:.2f} s "
          f"({1e3 * t_base / n_base:.1f} ms/participant; scaled linearly below)")
    print(f"equality check on the {n_base}-participant subsample (np.allclose): {equal}")
    if not equal:
        print("  mismatches:", [k for k, v in checks.items() if not v])
    results = []
    for n in sizes:
        data = generate(n, seed=7, n_days=n_days)
        n_ep = data["ep_start"].size
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        vectorised(data, n_days, timings)
        t_vec = time.perf_counter() - t0
        scaled = t_base / n_base * n
        results.append({"participants": n, "seconds": t_vec, "baseline_scaled_s": scaled, "speedup": scaled / t_vec})
        stages = ", ".join(f"{k} {v:.2f}" for k, v in timings.items())
        print(f"N={n:>6} ({n_ep / (n * n_days):.2f} episodes/participant-day, {data['stages'].size / 1e6:.0f} M "
              f"epochs): vectorised {t_vec:.2f} s ({1e6 * t_vec / n:.0f} us/participant) [{stages}]; "
              f"baseline scaled {scaled:.0f} s; speed-up x{scaled / t_vec:.0f}")
        del data
    if len(results) > 1:
        r0, r1 = results[0], results[-1]
        print(f"cost per participant {r1['participants']} vs {r0['participants']}: "
              f"x{(r1['seconds'] / r1['participants']) / (r0['seconds'] / r0['participants']):.2f} (1.0 = linear)")
    return {"equal": equal, "checks": checks, "baseline_s": t_base, "results": results}


if __name__ == "__main__":
    main()
