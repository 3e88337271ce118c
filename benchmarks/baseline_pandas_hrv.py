"""Straightforward pandas baseline for the HRV benchmark: groupby-apply per night, a plain loop for cleaning.

Written to be obviously correct rather than fast; `benchmarks.bench_hrv` times it on a subsample, checks that it
gives the same numbers as the vectorised kernels (`features.hrv`, `features.heart`) and scales its time linearly.

Definitions (science.md 3.1-3.3): range 300-2000 ms, Malik 20 % against the last accepted beat (re-anchored),
5-min windows
from each night's first beat (beat end times), pairs of consecutive accepted beats in the same window, window valid
with >= 80 % accepted beats and >= 60 pairs, nightly median over >= 6 valid windows; resting HR = minimum of the
full 5-minute rolling means with >= 4 valid minutes.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd

COLUMNS = ["rmssd_ms", "sdnn_ms", "pnn50_pct", "mean_hr_bpm", "n_valid_windows"]


def clean_night(rr: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Plain sequential cleaning of one night (science 3.1 revised 2026-12): range filter, then Malik 20 % vs a
    reference that starts at the median of the first 5 in-range intervals, is the last accepted interval
    afterwards and re-anchors to the median of the last 5 rejected after 5 consecutive rejections."""
    accepted = np.zeros(rr.size, dtype=np.bool_)
    idx = [i for i, v in enumerate(rr.tolist()) if 300.0 <= v <= 2000.0]
    if not idx:
        return accepted
    ref = float(np.median(rr[idx[:5]]))
    rejected: list[float] = []
    for i in idx:
        value = float(rr[i])
        if abs(value - ref) <= 0.2 * ref:
            accepted[i] = True
            ref, rejected = value, []
        else:
            rejected.append(value)
            if len(rejected) == 5:
                ref, rejected = float(np.median(rejected)), []
    return accepted


def night_hrv(night: pd.DataFrame) -> pd.Series:
    """HRV of one night from its raw RR intervals (column ``rr``)."""
    rr = night["rr"].to_numpy(dtype=np.float64)
    df = pd.DataFrame({"rr": rr, "acc": clean_night(rr)})
    df["w"] = np.floor(df["rr"].cumsum() / 300000.0).astype(np.int64)
    pair = df["acc"] & df["acc"].shift(1, fill_value=False) & (df["w"] == df["w"].shift(1))
    d = df["rr"].diff()
    df["d2"] = (d * d).where(pair)
    df["nn50"] = (d.abs() > 50.0).where(pair)
    df["nn"] = df["rr"].where(df["acc"])
    win = df.groupby("w").agg(n_beats=("rr", "size"), n_acc=("acc", "sum"), n_pairs=("d2", "count"),
                              ms=("d2", "mean"), pnn50=("nn50", "mean"), sdnn=("nn", "std"), mean_nn=("nn", "mean"))
    valid = win[(win["n_acc"] >= 0.8 * win["n_beats"]) & (win["n_pairs"] >= 60)]
    if len(valid) < 6:
        return pd.Series([math.nan] * 4 + [len(valid)], index=COLUMNS)
    return pd.Series([np.sqrt(valid["ms"]).median(), valid["sdnn"].median(), 100.0 * valid["pnn50"].median(),
                      (60000.0 / valid["mean_nn"]).median(), len(valid)], index=COLUMNS)


def night_rhr(night: pd.DataFrame) -> float:
    """Resting HR of one night: minimum of the full 5-min rolling means of column ``hr`` (>= 4 valid minutes)."""
    means = night["hr"].rolling(5, min_periods=4).mean().iloc[4:]
    return float(means.min()) if means.notna().any() else math.nan


def baseline_hrv(rr_ms: npt.ArrayLike, offsets: npt.ArrayLike) -> pd.DataFrame:
    """Nightly HRV of concatenated nights (CSR ``offsets``) with ``groupby('night').apply``."""
    off = np.asarray(offsets, dtype=np.int64)
    night = np.repeat(np.arange(off.size - 1), np.diff(off))
    frame = pd.DataFrame({"night": night, "rr": np.asarray(rr_ms, dtype=np.float64)})
    out = frame.groupby("night")[["rr"]].apply(night_hrv)
    return out.reindex(np.arange(off.size - 1))


def baseline_rhr(hr_bpm: npt.ArrayLike, offsets: npt.ArrayLike) -> pd.Series:
    """Resting HR of concatenated nights (CSR ``offsets``) with ``groupby('night').apply``."""
    off = np.asarray(offsets, dtype=np.int64)
    night = np.repeat(np.arange(off.size - 1), np.diff(off))
    frame = pd.DataFrame({"night": night, "hr": np.asarray(hr_bpm, dtype=np.float64)})
    return frame.groupby("night")[["hr"]].apply(night_rhr).reindex(np.arange(off.size - 1))
