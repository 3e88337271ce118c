"""Straightforward pandas / per-row reference implementation of the feature-core definitions.

Deliberately simple (groupby-apply, Python loops over episodes, days and duties) so it is obviously correct; it
shares no code with ``features`` except nothing -- local times come from pandas ``tz_convert``. Used by
``benchmarks.bench_features`` as the speed baseline and as an independent cross-check (science.md §1-§2, §5).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

TZ = "Europe/London"
EPOCH = 30


def _local(t: Any) -> pd.Timestamp:
    return pd.Timestamp(int(t), unit="s", tz="UTC").tz_convert(TZ)


def _episode_row(stages: np.ndarray, start: int, end: int, dev_tst: float) -> dict[str, float]:
    tib = (end - start) / 60
    if stages.size == 0:
        return {"tib": tib, "tst": dev_tst, "se": 100 * dev_tst / tib, "sol": np.nan, "waso": np.nan,
                "awak": np.nan, "mid": start + (end - start) / 2}
    asleep = np.flatnonzero(stages > 0)
    if asleep.size == 0:
        return {"tib": tib, "tst": 0.0, "se": 0.0, "sol": np.nan, "waso": np.nan, "awak": np.nan, "mid": np.nan}
    k_on, k_off = int(asleep[0]), int(asleep[-1]) + 1
    tst = asleep.size / 2
    awak = 0
    for k in range(k_on + 1, k_off):  # count wake runs between onset and final awakening
        if stages[k] <= 0 < stages[k - 1]:
            awak += 1
    return {"tib": tib, "tst": tst, "se": 100 * tst / tib, "sol": k_on / 2, "waso": (k_off - k_on) / 2 - tst,
            "awak": float(awak), "mid": start + EPOCH * (k_on + k_off) / 2}


def daily_frame(data: dict[str, Any], n_days: int) -> pd.DataFrame:
    """Per participant-day sleep totals, main-sleep attributes and validity (science §1.1, §1.2)."""
    off = data["offsets"]
    rows = [
        _episode_row(data["stages"][off[i] : off[i + 1]], data["ep_start"][i], data["ep_end"][i],
                     data["device_tst_min"][i])
        for i in range(len(data["ep_start"]))
    ]
    ep = pd.DataFrame(rows)
    ep["p"] = data["ep_participant"]
    ep["end"] = data["ep_end"]
    ends = pd.to_datetime(ep["end"] - 1, unit="s", utc=True).dt.tz_convert(TZ)
    ep["day"] = (ends.dt.date - data["day0_date"]).apply(lambda x: x.days)
    ep = ep[(ep["day"] >= 0) & (ep["day"] < n_days)]

    def per_day(g: pd.DataFrame) -> pd.Series:
        top = g.sort_values(["tst", "end"], ascending=[False, True]).iloc[0]
        has_main = top["tst"] >= 180
        mid = _local(np.floor(top["mid"])) if has_main else None
        return pd.Series({
            "tst_min": g["tst"].sum(), "main_tst_min": top["tst"] if has_main else 0.0,
            "se_pct": top["se"] if has_main else np.nan, "sol_min": top["sol"] if has_main else np.nan,
            "waso_min": top["waso"] if has_main else np.nan, "awakenings": top["awak"] if has_main else np.nan,
            "midpoint_local_h": (mid.hour + mid.minute / 60 + (mid.second + top["mid"] % 1) / 3600)
            if mid is not None else np.nan,
            "n_episodes": len(g),
        })

    daily = ep.groupby(["p", "day"]).apply(per_day, include_groups=False)
    full = pd.MultiIndex.from_product([range(data["n_participants"]), range(n_days)], names=["p", "day"])
    daily = daily.reindex(full)
    daily["n_episodes"] = daily["n_episodes"].fillna(0)
    daily["valid"] = daily["n_episodes"] >= 1
    return daily


def debt_frame(daily: pd.DataFrame, need_h: float = 8.0) -> pd.DataFrame:
    """7-day net / gross debt and carry-over debt (half-life 4 d, missing days skipped) per participant."""
    rho = 2 ** (-1 / 4)

    def per_participant(g: pd.DataFrame) -> pd.DataFrame:
        delta = need_h - g["tst_min"].where(g["valid"]) / 60
        net = delta.rolling(7, min_periods=1).sum().clip(lower=0)
        gross = delta.clip(lower=0).rolling(7, min_periods=1).sum()
        carry, d, started = [], 0.0, False
        for x in delta:
            if not np.isnan(x):
                d, started = max(0.0, rho * d + x), True
            carry.append(d if started else np.nan)
        return pd.DataFrame({"net": net.values, "gross": gross.values, "carry": carry}, index=g.index)

    return daily.groupby(level="p", group_keys=False).apply(per_participant)


def _phillips(w: np.ndarray, n: int) -> tuple[float, float]:
    w1, w2 = w[:-n], w[n:]
    ok = ~np.isnan(w1) & ~np.isnan(w2)
    if ok.sum() == 0:
        return np.nan, 0.0
    return 200 * np.mean(w1[ok] == w2[ok]) - 100, ok.sum() / n


def sri_frame(data: dict[str, Any], daily: pd.DataFrame, n_days: int) -> pd.DataFrame:
    """Materialise each participant's 30-s series (noon-to-noon blocks) and apply Phillips per window."""
    n = 86_400 // EPOCH
    out = []
    off = data["offsets"]
    for p in range(data["n_participants"]):
        noon = pd.Timestamp(data["day0_date"] - pd.Timedelta(days=1)).tz_localize(TZ) + pd.Timedelta(hours=12)
        origin = int(noon.timestamp())
        valid = daily.loc[p, "valid"].to_numpy(bool)
        grid = np.repeat(np.where(valid, 0.0, np.nan), n)
        for i in np.flatnonzero(data["ep_participant"] == p):
            s0 = (data["ep_start"][i] - origin) // EPOCH
            seg = data["stages"][off[i] : off[i + 1]]
            vals = (seg > 0).astype(float) if seg.size else np.ones((data["ep_end"][i] - data["ep_start"][i]) // EPOCH)
            idx = np.arange(s0, s0 + vals.size)
            keep = (idx >= 0) & (idx < grid.size)
            idx, vals = idx[keep], vals[keep]
            ok = ~np.isnan(grid[idx])
            grid[idx[ok]] = np.maximum(grid[idx[ok]], vals[ok])
        for d in range(n_days):
            s14, days14 = _phillips(grid[max(0, d - 13) * n : (d + 1) * n], n) if d > 0 else (np.nan, 0.0)
            s4, days4 = _phillips(grid[max(0, d - 3) * n : (d + 1) * n], n) if d > 0 else (np.nan, 0.0)
            out.append({"p": p, "day": d, "sri_14d": s14 if days14 >= 5 else np.nan,
                        "consistency": (s4 + 100) / 2 if days4 >= 2 else np.nan})
    return pd.DataFrame(out).set_index(["p", "day"])


def roster_frame(data: dict[str, Any], sleep_main: np.ndarray) -> pd.DataFrame:
    """Per-duty features with a Python loop per participant over its duties (science §5)."""
    duties = pd.DataFrame({"p": data["duty_participant"], "s": data["duty_start"], "e": data["duty_end"]})
    long_sleep = (data["ep_end"] - data["ep_start"]) >= 1800

    def per_participant(g: pd.DataFrame) -> pd.DataFrame:
        p = int(g.name)
        ends = np.sort(data["ep_end"][(data["ep_participant"] == p) & long_sleep])
        rows, prev_e, prev_night, nights, run_days, prev_date = [], None, False, 0, 0, None
        for s, e in zip(g["s"], g["e"], strict=True):
            ls = _local(s)
            gap = (s - prev_e) / 3600 if prev_e is not None else np.nan
            ov = 0.0
            for k in range(-1, 4):
                day = (ls.normalize() + pd.Timedelta(days=k)).tz_localize(None)
                w0 = int(pd.Timestamp(day + pd.Timedelta(hours=23)).tz_localize(TZ).timestamp())
                w1 = int(pd.Timestamp(day + pd.Timedelta(hours=30)).tz_localize(TZ).timestamp())
                ov += max(0, min(e, w1) - max(s, w0)) / 3600
            night = ov >= 3
            nights = (nights + 1 if (prev_night and gap <= 24) else 1) if night else 0
            date = ls.date()
            if prev_date is not None and (date - prev_date).days <= 1:
                run_days += 1 if date != prev_date else 0
            else:
                run_days = 1
            before = ends[ends <= e]
            awake = (e - before[-1]) / 3600 if before.size else np.nan
            rows.append({"length_h": (e - s) / 3600, "rest_gap_h": gap, "quick_return": gap < 11,
                         "night_duty": night, "consecutive_nights": nights, "consecutive_duty_days": run_days,
                         "early_start": ls.hour < 7, "time_awake_end_h": awake if awake <= 48 else np.nan})
            prev_e, prev_night, prev_date = e, night, date
        return pd.DataFrame(rows, index=g.index)

    return duties.groupby("p", group_keys=False).apply(per_participant, include_groups=False)
