"""HRV benchmark: vectorised nightly HRV and resting HR vs a pandas groupby-apply baseline, same run.

Run: ``python -m benchmarks.bench_hrv [--participants 50] [--nights 120] [--beats-per-night 25000] [--quick]``

- Synthetic, seeded RR series (int16 ms, as ``raw.rr_runs``) with respiratory modulation, ectopic pairs
  (premature + compensatory beat), random artefacts (some out of range) and a few noisy blocks, plus minute HR
  with gaps; generated chunk by chunk so the cohort is never held in memory.
- **vectorised**: `features.hrv.clean_segments` + `features.hrv.nightly_hrv` (5-min windows, nightly median)
  + `features.heart.resting_hr`, streamed over chunks of whole nights in participant-major order (a chunk is
  ``--chunk-beats`` beats; nights are independent, so chunking never changes a result).
- **baseline**: `benchmarks.baseline_pandas_hrv` on the first ``--baseline-nights`` nights only; its time is
  scaled linearly to the full cohort (it is per night, so linear scaling is fair). Both must give the same
  numbers on that subsample (NaN patterns equal, rtol 1e-9).
- Peak extra memory of the vectorised path is measured with ``tracemalloc`` on one chunk (untimed run) and
  reported relative to the full-cohort input size (int16 RR + float32 minute HR).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from benchmarks.baseline_pandas_hrv import baseline_hrv, baseline_rhr
from features.heart import resting_hr
from features.hrv import clean_segments, nightly_hrv

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Chunk:
    """Concatenated nights: RR (int16 ms) with CSR offsets, minute HR (float32 bpm) with CSR offsets."""

    rr: npt.NDArray[np.int16]
    rr_off: I64
    hr: npt.NDArray[np.float32]
    hr_off: I64


@dataclass(frozen=True)
class Result:
    """Figures of one benchmark run."""

    beats: int
    nights: int
    vec_s: float
    base_s_scaled: float
    ratio: float
    equal: bool
    max_rel_diff: float
    peak_bytes: int
    input_bytes: int


def make_chunk(seed: int, index: int, n_nights: int, beats: int) -> Chunk:
    """Synthetic nights for chunk ``index`` (seeded by ``(seed, index)``), all vectorised."""
    rng = np.random.default_rng([seed, index])
    lengths = rng.integers(int(beats * 0.9), int(beats * 1.1) + 1, n_nights)
    off = np.concatenate(([0], np.cumsum(lengths)))
    n = int(off[-1])
    night = np.repeat(np.arange(n_nights), lengths)
    base = rng.normal(1000.0, 90.0, n_nights)[night]
    k = np.arange(n) - off[:-1][night]
    rr = base * (1.0 + 0.03 * np.sin(2 * np.pi * k / 4.5)) + rng.normal(0.0, 20.0, n)
    ect = np.flatnonzero(rng.random(n) < 0.01)
    ect = ect[ect + 1 < n]
    rr[ect] *= 0.65
    rr[ect + 1] *= 1.35
    art = rng.random(n) < 0.005
    rr[art] = rng.uniform(150.0, 2600.0, int(art.sum()))
    noisy = np.flatnonzero(rng.random(n_nights) < 0.1)
    for j in noisy[:8]:  # a few noisy 10-min blocks (loop over <= 8 nights of the generator, not the kernel)
        lo = off[j] + rng.integers(0, max(1, lengths[j] - 600))
        blk = slice(lo, lo + 600)
        rr[blk] *= rng.choice([1.0, 0.5, 1.6], 600, p=[0.6, 0.2, 0.2])
    minutes = np.ceil(np.add.reduceat(rr, off[:-1]) / 60000.0).astype(np.int64)
    hr_off = np.concatenate(([0], np.cumsum(minutes)))
    mnight = np.repeat(np.arange(n_nights), minutes)
    hr = (60000.0 / base[off[:-1]])[mnight] + 3.0 * np.sin(np.arange(mnight.size) / 40.0)
    hr += rng.normal(0.0, 1.5, mnight.size)
    hr[rng.random(mnight.size) < 0.03] = np.nan
    return Chunk(np.clip(np.rint(rr), 1, 32767).astype(np.int16), off, hr.astype(np.float32), hr_off)


def chunks(seed: int, total_nights: int, beats: int, chunk_beats: int) -> Iterator[Chunk]:
    """Stream the cohort as chunks of whole nights (participant-major)."""
    per = max(1, chunk_beats // beats)
    for i, lo in enumerate(range(0, total_nights, per)):
        yield make_chunk(seed, i, min(per, total_nights - lo), beats)


def vectorised(chunk: Chunk) -> tuple[F64, F64]:
    """Nightly values of one chunk: columns (rmssd, sdnn, pnn50, mean HR, n valid windows) and resting HR."""
    acc = clean_segments(chunk.rr, chunk.rr_off)
    night = nightly_hrv(chunk.rr, chunk.rr_off, accepted=acc)
    table = np.column_stack((night.rmssd_ms, night.sdnn_ms, night.pnn50_pct, night.mean_hr_bpm,
                             night.n_valid_windows.astype(np.float64)))
    return table, resting_hr(chunk.hr, chunk.hr_off)


def _subsample(c: Chunk, k: int) -> Chunk:
    return Chunk(c.rr[:c.rr_off[k]], c.rr_off[:k + 1], c.hr[:c.hr_off[k]], c.hr_off[:k + 1])


def compare(chunk: Chunk, k: int) -> tuple[bool, float, float]:
    """Run both paths on the first ``k`` nights; returns (equal, max relative difference, baseline seconds)."""
    sub = _subsample(chunk, k)
    table, rhr = vectorised(sub)
    t0 = time.perf_counter()
    ref = baseline_hrv(sub.rr, sub.rr_off).to_numpy(dtype=np.float64)
    ref_rhr = baseline_rhr(sub.hr, sub.hr_off).to_numpy(dtype=np.float64)
    elapsed = time.perf_counter() - t0
    a, b = np.column_stack((table, rhr)), np.column_stack((ref, ref_rhr))
    same_nan = bool(np.array_equal(np.isnan(a), np.isnan(b)))
    fin = np.isfinite(a) & np.isfinite(b)
    rel = float(np.max(np.abs(a[fin] - b[fin]) / np.maximum(np.abs(b[fin]), 1e-12), initial=0.0))
    return same_nan and rel <= 1e-9, rel, elapsed


def run(participants: int, nights: int, beats: int, chunk_beats: int, baseline_nights: int, seed: int) -> Result:
    """Time the vectorised path over the cohort and the baseline on a subsample; measure memory."""
    total = participants * nights
    first = make_chunk(seed, 0, min(max(1, chunk_beats // beats), total), beats)
    k = min(baseline_nights, first.rr_off.size - 1)
    equal, rel, base_s = compare(first, k)
    tracemalloc.start()
    vectorised(first)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    n_beats = n_hr = 0
    vec_s = gen_s = 0.0
    t_gen = time.perf_counter()
    for c in chunks(seed, total, beats, chunk_beats):
        gen_s += time.perf_counter() - t_gen
        t0 = time.perf_counter()
        vectorised(c)
        vec_s += time.perf_counter() - t0
        n_beats += c.rr.size
        n_hr += c.hr.size
        t_gen = time.perf_counter()
    scaled = base_s * n_beats / float(first.rr_off[k])
    print(f"cohort: {participants} participants x {nights} nights x ~{beats} beats = {n_beats:,} beats "
          f"(generation {gen_s:.1f} s, not timed)")
    print(f"vectorised: {vec_s:.2f} s, {n_beats / vec_s:,.0f} beats/s")
    print(f"baseline (pandas groupby-apply): {base_s:.2f} s on {k} nights ({int(first.rr_off[k]):,} beats), "
          f"scaled linearly to {scaled:.1f} s, {n_beats / scaled:,.0f} beats/s")
    print(f"ratio baseline/vectorised: {scaled / vec_s:.1f}x")
    print(f"equality on subsample: {'PASS' if equal else 'FAIL'} (max rel diff {rel:.2e})")
    input_bytes = 2 * n_beats + 4 * n_hr
    print(f"peak extra memory (one chunk of {first.rr.size:,} beats): {peak / 2**20:.1f} MiB = "
          f"{peak / input_bytes:.3f} x cohort input ({input_bytes / 2**20:.1f} MiB), "
          f"{peak / first.rr.size:.0f} bytes per chunk beat")
    return Result(n_beats, total, vec_s, scaled, scaled / vec_s, equal, rel, peak, input_bytes)


def main(argv: list[str] | None = None) -> Result:
    """Command-line entry point; returns the figures (used by the smoke test)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--participants", type=int, default=50)
    p.add_argument("--nights", type=int, default=120)
    p.add_argument("--beats-per-night", type=int, default=25_000)
    p.add_argument("--chunk-beats", type=int, default=1_000_000)
    p.add_argument("--baseline-nights", type=int, default=20)
    p.add_argument("--seed", type=int, default=20240301)
    p.add_argument("--quick", action="store_true", help="2 participants x 10 nights")
    a = p.parse_args(argv)
    if a.quick:
        a.participants, a.nights = 2, 10
    return run(a.participants, a.nights, a.beats_per_night, a.chunk_beats, a.baseline_nights, a.seed)


if __name__ == "__main__":
    main()
