"""The two layers of the feature job, pure (arrays in, arrays out): per-day values and rolling windows.

* **Per-day layer** (:func:`sleep_layer`, :func:`night_layer`): what one participant-day's raw data gives
  (sleep totals, main-sleep metrics, wear, nightly HRV and resting HR) and the SRI epoch pairs of block pair
  (d - 1, d). Computed from raw data only for the days of a window.
* **Window layer** (:func:`window_layer`): sleep need, 7-day debts, performance, 14-day SRI, 4-day
  consistency, 60-day baselines and recovery, from the (P, 120) per-day arrays. Cheap (about 0.1 ms per
  participant), so it always runs over the whole programme from stored per-day values plus the fresh window.

:func:`merge_days` joins the two: stored values outside the window, fresh values inside, every real value
rounded to float32 as ``derived.daily_features`` stores it. The full recompute takes the same path with the
window spanning the programme, which is why incremental and full runs give identical rows.

A per-day value that is not known is NaN (never 0): the window kernels skip NaN days.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from features.baseline import personal_baseline
from features.debt import free_sleep_days, personal_sleep_need, sleep_debt, sleep_need_series, sleep_performance
from features.heart import resting_hr
from features.hrv import nightly_hrv
from features.job_io import Duties, Episodes, NightSeries, Stored
from features.params import DEFAULT_FEATURE_PARAMS, FeatureParams
from features.recovery import daily_recovery
from features.regularity import RegularityPairs, pair_agreement, sleep_consistency, sri_14d, sri_origin
from features.sleep import (
    DailySleep,
    EpisodeDays,
    assign_sleep_days,
    daily_sleep,
    episode_metrics,
    sleep_intervals,
    sleep_runs,
)
from features.timeutil import DAY_S, local_day, local_to_utc

__all__ = ["DAY_VALUES", "SleepLayer", "day_mask", "duty_grids", "local_midnight_utc", "main_nights", "merge_days",
           "night_layer", "pairs_for", "sleep_layer", "window_layer"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

#: real per-day columns (from raw data of the day); every other real column comes from the window layer
DAY_VALUES = ("wear_h", "tib_min", "tst_min", "main_tst_min", "nap_min", "se_pct", "sol_min", "waso_min",
              "awakenings", "midpoint_local_h", "rmssd_ms", "ln_rmssd", "sdnn_ms", "pnn50_pct", "resting_hr_bpm")


def local_midnight_utc(days: npt.ArrayLike, tz: str) -> I64:
    """UTC instant (epoch s) of local 00:00 of each date given as days since 1970-01-01."""
    return local_to_utc(np.asarray(days, dtype=np.int64) * DAY_S, tz)


def day_mask(lo: I64, hi: I64, n_days: int) -> B:
    """(P, n_days) True on the days ``lo <= d <= hi`` of each participant."""
    d = np.arange(n_days)[None, :]
    return (d >= lo[:, None]) & (d <= hi[:, None])


@dataclass(frozen=True)
class SleepLayer:
    """Per-day sleep values of the fetched episodes, plus what the night and pair steps need."""

    daily: DailySleep
    days: EpisodeDays
    interval_participant: I64
    t0: I64
    t1: I64


def sleep_layer(ep: Episodes, wear: F64, day0: I64, n_days: int, tz: str) -> SleepLayer:
    """Episode metrics, sleep-day assignment and daily totals (science 1.1-1.2) of the fetched episodes."""
    runs = sleep_runs(ep.stages, ep.offsets)
    metrics = episode_metrics(ep.start, ep.end, ep.stages, ep.offsets, in_bed=ep.in_bed,
                              device_tst_min=ep.device_tst_min, runs=runs)
    days = assign_sleep_days(ep.participant, ep.end, metrics.tst_min, day0=day0, n_days=n_days, tz=tz)
    daily = daily_sleep(ep.participant, ep.end, metrics, n_participants=day0.size, day0=day0, n_days=n_days,
                        wear_h=wear, days=days, tz=tz)
    ep_idx, t0, t1 = sleep_intervals(ep.start, ep.end, ep.offsets, runs)
    return SleepLayer(daily, days, ep.participant[ep_idx], t0, t1)


def main_nights(ep: Episodes, layer: SleepLayer, window: B) -> tuple[I64, I64, I64, I64]:
    """(night id = participant * n_days + day, participant, start, end) of the main sleeps of window days,
    sorted by night id."""
    n_days = window.shape[1]
    day = layer.days.day
    inside = layer.days.is_main & (day >= 0)
    inside[inside] = window[ep.participant[inside], day[inside]]
    night = ep.participant[inside] * n_days + day[inside]
    order = np.argsort(night, kind="stable")  # one main sleep a day: sorted night ids are unique
    return night[order], ep.participant[inside][order], ep.start[inside][order], ep.end[inside][order]


def _night_values(shape: tuple[int, int], night: I64, values: F64) -> F64:
    out = np.full(shape[0] * shape[1], np.nan)
    out[night] = values
    return out.reshape(shape)


def night_layer(shape: tuple[int, int], rr: NightSeries, hr: NightSeries) -> dict[str, F64]:
    """Nightly HRV (science 3.1-3.2) and resting HR (3.3) as (P, n_days) arrays, NaN where not computable."""
    hrv = nightly_hrv(rr.values, rr.offsets, beat_end_ms=rr.times_ms)
    return {"rmssd_ms": _night_values(shape, rr.night, hrv.rmssd_ms),
            "ln_rmssd": _night_values(shape, rr.night, hrv.ln_rmssd),
            "sdnn_ms": _night_values(shape, rr.night, hrv.sdnn_ms),
            "pnn50_pct": _night_values(shape, rr.night, hrv.pnn50_pct),
            "resting_hr_bpm": _night_values(shape, hr.night, resting_hr(hr.values, hr.offsets))}


def _f32(x: F64) -> F64:
    return np.asarray(x, np.float32).astype(np.float64)


def merge_days(stored: Stored, window: B, fresh: dict[str, F64], valid: B, n_episodes: I64) -> Stored:
    """Per-day values: ``fresh`` on window days (rounded to float32 as stored), ``stored`` elsewhere."""
    real = dict(stored.real)
    for name in DAY_VALUES:
        real[name] = np.where(window, _f32(fresh[name]), stored.real[name])
    return Stored(stored.present | window, np.where(window, valid, stored.valid_sleep_day),
                  np.where(window, n_episodes, stored.n_episodes), real, stored.pair_match, stored.pair_valid)


def pairs_for(merged: Stored, layer: SleepLayer, pair_window: B, day0: I64, tz: str) -> tuple[F64, F64]:
    """SRI epoch pairs: recomputed on ``pair_window`` days from the fetched intervals, stored elsewhere."""
    pairs = pair_agreement(layer.interval_participant, layer.t0, layer.t1, merged.valid_sleep_day,
                           sri_origin(day0, tz))
    match = np.where(pair_window, pairs.match, np.nan_to_num(merged.pair_match, nan=0.0))
    valid = np.where(pair_window, pairs.valid, np.nan_to_num(merged.pair_valid, nan=0.0))
    return match, valid


def duty_grids(du: Duties, night_duty: B, day0: I64, n_days: int, tz: str) -> tuple[B, B]:
    """(P, n_days) duty / night duty starting on each local programme day."""
    duty_day = local_day(du.start, tz) - day0[du.participant]
    on = (duty_day >= 0) & (duty_day < n_days)
    duty_on = np.zeros((day0.size, n_days), np.bool_)
    night_on = np.zeros((day0.size, n_days), np.bool_)
    duty_on[du.participant[on], duty_day[on]] = True
    night_on[du.participant[on & night_duty], duty_day[on & night_duty]] = True
    return duty_on, night_on


def window_layer(merged: Stored, match: F64, valid: F64, duty_on: B, night_on: B,
                 fp: FeatureParams = DEFAULT_FEATURE_PARAMS) -> dict[str, F64]:
    """Rolling-window columns over the whole programme from per-day values (science 2.2-2.3, 1.3, 1.5, 3.4-3.5);
    population need and calibration window from the programme (``fp``)."""
    n_days = merged.valid_sleep_day.shape[1]
    tst_h = np.where(merged.valid_sleep_day, merged.real["tst_min"] / 60.0, np.nan)
    need = sleep_need_series(personal_sleep_need(tst_h, free_sleep_days(duty_on, night_on),
                                                 calib_days=fp.calib_days, max_calib_days=fp.max_calib_days,
                                                 min_valid=fp.calib_min_nights, need_pop_h=fp.need_pop_h),
                             n_days, need_pop_h=fp.need_pop_h)
    debt = sleep_debt(tst_h, need)
    perf_ratio, perf_pct = sleep_performance(tst_h, need)
    pairs = RegularityPairs(match=match, valid=valid, epochs_per_day=DAY_S // 30)
    ln_rmssd, rhr = merged.real["ln_rmssd"], merged.real["resting_hr_bpm"]
    rec = daily_recovery(ln_rmssd, rhr, perf_ratio)
    calib = {"calib_days": fp.calib_days, "max_calib_days": fp.max_calib_days,
             "calib_min_nights": fp.calib_min_nights}
    bh, br = personal_baseline(ln_rmssd, **calib), personal_baseline(rhr, **calib)
    return {"sleep_need_h": need, "debt_net_7d_h": debt.net_7d_h, "debt_gross_7d_h": debt.gross_7d_h,
            "debt_carry_h": debt.carry_h, "sleep_performance_pct": perf_pct, "sri_14d": sri_14d(pairs),
            "sleep_consistency": sleep_consistency(pairs), "hrv_baseline_mean": bh.mean,
            "hrv_baseline_sd": bh.sd, "rhr_baseline_mean": br.mean, "recovery_score": rec.score}
