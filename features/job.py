"""The daily feature job: raw tables -> vectorised kernels -> ``derived.daily_features`` / ``duty_features``.

Incremental by default: every participant with a dirty day (``ingest.dirty_days``, marked by the ingester and
the roster import) is recomputed over the whole programme, which covers the dirty days and every rolling
window downstream of them (7-day debt, 14-day SRI, 60-day baselines) and nothing of other participants.
``full=True`` recomputes everyone. Rows are upserted, so running twice changes nothing; dirty marks are
cleared only up to the moment the job read them, so data arriving during a run is picked up next time.

Day index ``d`` (0-based) is programme day ``d + 1``; day 0 is ``core.participants.programme_start`` and
``FeatureParams.n_days`` days are computed (the programme file's ``days``, 120 by default; issue 14: the
programme drives need, calibration window and days through :class:`features.params.FeatureParams`). Days after
today (local) are not written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import numpy.typing as npt
import psycopg
from tqdm import tqdm

from features import job_io
from features.baseline import personal_baseline
from features.debt import free_sleep_days, personal_sleep_need, sleep_debt, sleep_need_series, sleep_performance
from features.heart import resting_hr
from features.hrv import nightly_hrv
from features.params import DEFAULT_FEATURE_PARAMS, FeatureParams
from features.recovery import daily_recovery
from features.regularity import pair_agreement, sleep_consistency, sri_14d, sri_origin
from features.roster import duty_features, shift_codes
from features.sleep import (
    assign_sleep_days,
    daily_sleep,
    episode_metrics,
    sleep_intervals,
    sleep_runs,
    with_unknown_days,
)
from features.timeutil import local_day
from features.wear import awake_where_worn, days_worn
from features.wear_io import read_nonwear

__all__ = ["ALGORITHM_VERSION", "DAILY_COLUMNS", "N_DAYS", "FeatureRunSummary", "run_features"]

ALGORITHM_VERSION = "features-1.0"
N_DAYS = 120
F64 = npt.NDArray[np.float64]
DAILY_COLUMNS = (
    "participant_id", "sleep_date", "programme_day", "valid_sleep_day", "wear_h", "n_episodes", "tib_min",
    "tst_min", "main_tst_min", "nap_min", "se_pct", "sol_min", "waso_min", "awakenings", "midpoint_local_h",
    "sleep_need_h", "debt_net_7d_h", "debt_gross_7d_h", "debt_carry_h", "sleep_performance_pct", "sri_14d",
    "sleep_consistency", "valid_hrv_night", "rmssd_ms", "ln_rmssd", "sdnn_ms", "pnn50_pct", "hrv_source",
    "resting_hr_bpm", "rhr_source", "hrv_baseline_mean", "hrv_baseline_sd", "rhr_baseline_mean",
    "recovery_score", "algorithm_version")
DUTY_COLUMNS = (
    "participant_id", "start_ts", "end_ts", "shift_type", "overtime", "length_h", "long_shift", "rest_gap_h",
    "quick_return", "night_duty", "consecutive_nights", "consecutive_duty_days", "early_start",
    "forward_rotation", "time_awake_end_h", "algorithm_version")


@dataclass(frozen=True)
class FeatureRunSummary:
    """What one run did."""

    participants: int
    days_written: int
    duties_written: int
    seconds: float


def _batches(n: int, size: int) -> Iterator[slice]:
    for lo in range(0, n, size):
        yield slice(lo, min(n, lo + size))


def _night_values(n: int, night_ids: npt.NDArray[np.int64], values: F64, n_days: int = N_DAYS) -> F64:
    out = np.full(n * n_days, np.nan)
    out[night_ids] = values
    return out.reshape(n, n_days)


def _compute(conn: psycopg.Connection[tuple[object, ...]], ids: Sequence[object], day0: npt.NDArray[np.int64],
             tz: str, fp: FeatureParams = DEFAULT_FEATURE_PARAMS
             ) -> tuple[dict[str, np.ndarray], job_io.Duties, dict[str, np.ndarray]]:
    n, n_days = len(ids), fp.n_days
    ep = job_io.read_episodes(conn, ids)  # type: ignore[arg-type]
    runs = sleep_runs(ep.stages, ep.offsets)
    metrics = episode_metrics(ep.start, ep.end, ep.stages, ep.offsets, in_bed=ep.in_bed,
                              device_tst_min=ep.device_tst_min, runs=runs)
    days = assign_sleep_days(ep.participant, ep.end, metrics.tst_min, day0=day0, n_days=n_days, tz=tz)
    wear = job_io.read_wear(conn, ids, day0, n_days, tz)  # type: ignore[arg-type]
    daily = daily_sleep(ep.participant, ep.end, metrics, n_participants=n, day0=day0, n_days=n_days,
                        wear_h=wear, days=days, tz=tz)
    nonwear = read_nonwear(conn, ids)  # type: ignore[arg-type]
    daily = with_unknown_days(daily, days_worn(n, n_days, day0, nonwear, tz))  # issue 14: missing is not short
    du = job_io.read_duties(conn, ids)  # type: ignore[arg-type]
    duty = duty_features(du.participant, du.start, du.end, shift_codes(du.shift_type),
                         sleep_participant=ep.participant, sleep_start=ep.start, sleep_end=ep.end,
                         sleep_is_main=days.is_main, tz=tz)
    duty_day = local_day(du.start, tz) - day0[du.participant]
    on = (duty_day >= 0) & (duty_day < n_days)
    duty_on_day = np.zeros((n, n_days), np.bool_)
    night_on_day = np.zeros((n, n_days), np.bool_)
    duty_on_day[du.participant[on], duty_day[on]] = True
    night_on_day[du.participant[on & duty.night_duty], duty_day[on & duty.night_duty]] = True
    tst_h = np.where(daily.valid_sleep_day, daily.tst_min / 60.0, np.nan)
    need = sleep_need_series(personal_sleep_need(tst_h, free_sleep_days(duty_on_day, night_on_day),
                                                 calib_days=fp.calib_days, max_calib_days=fp.max_calib_days,
                                                 min_valid=fp.calib_min_nights, need_pop_h=fp.need_pop_h),
                             n_days, need_pop_h=fp.need_pop_h)
    debt = sleep_debt(tst_h, need)
    perf_ratio, perf_pct = sleep_performance(tst_h, need)
    ep_idx, t0, t1 = sleep_intervals(ep.start, ep.end, ep.offsets, runs)
    pairs = pair_agreement(ep.participant[ep_idx], t0, t1, daily.valid_sleep_day, sri_origin(day0, tz))
    main = days.is_main & (days.day >= 0)
    night = ep.participant[main] * n_days + days.day[main]
    args = (conn, ids, night, ep.participant[main], ep.start[main], ep.end[main])
    rr = job_io.read_night_rr(*args)  # type: ignore[arg-type]
    hrv = nightly_hrv(rr.values, rr.offsets, beat_end_ms=rr.times_ms)
    hr = job_io.read_night_hr(*args)  # type: ignore[arg-type]
    ln_rmssd = _night_values(n, rr.night, hrv.ln_rmssd, n_days)
    rhr = _night_values(n, hr.night, resting_hr(hr.values, hr.offsets), n_days)
    rec = daily_recovery(ln_rmssd, rhr, perf_ratio)
    calib = {"calib_days": fp.calib_days, "max_calib_days": fp.max_calib_days,
             "calib_min_nights": fp.calib_min_nights}
    bh, br = personal_baseline(ln_rmssd, **calib), personal_baseline(rhr, **calib)
    cols: dict[str, np.ndarray] = {
        "valid_sleep_day": daily.valid_sleep_day, "wear_h": wear, "n_episodes": daily.n_episodes,
        "tib_min": daily.tib_min, "tst_min": daily.tst_min, "main_tst_min": daily.main_tst_min,
        "nap_min": daily.nap_min, "se_pct": daily.se_pct, "sol_min": daily.sol_min, "waso_min": daily.waso_min,
        "awakenings": daily.awakenings, "midpoint_local_h": daily.midpoint_local_h, "sleep_need_h": need,
        "debt_net_7d_h": debt.net_7d_h, "debt_gross_7d_h": debt.gross_7d_h, "debt_carry_h": debt.carry_h,
        "sleep_performance_pct": perf_pct, "sri_14d": sri_14d(pairs), "sleep_consistency": sleep_consistency(pairs),
        "valid_hrv_night": np.isfinite(ln_rmssd), "rmssd_ms": _night_values(n, rr.night, hrv.rmssd_ms, n_days),
        "ln_rmssd": ln_rmssd, "sdnn_ms": _night_values(n, rr.night, hrv.sdnn_ms, n_days),
        "pnn50_pct": _night_values(n, rr.night, hrv.pnn50_pct, n_days), "resting_hr_bpm": rhr,
        "hrv_baseline_mean": bh.mean, "hrv_baseline_sd": bh.sd, "rhr_baseline_mean": br.mean,
        "recovery_score": rec.score,
    }
    rotation = np.asarray(np.where(np.isnan(duty.forward_rotation), None, duty.forward_rotation == 1.0), dtype=object)
    duty_cols: dict[str, np.ndarray] = {
                 "length_h": duty.length_h, "long_shift": duty.long_shift, "rest_gap_h": duty.rest_gap_h,
                 "quick_return": duty.quick_return, "night_duty": duty.night_duty,
                 "consecutive_nights": duty.consecutive_nights, "consecutive_duty_days": duty.consecutive_duty_days,
                 "early_start": np.asarray(duty.early_start, dtype=np.bool_),
                 "forward_rotation": rotation,
                 "time_awake_end_h": awake_where_worn(du.participant, du.end, duty.time_awake_end_h, nonwear)}
    return cols, du, duty_cols


def _py(value: object) -> object:
    """NumPy scalar -> plain Python value, NaN -> NULL."""
    item = value.item() if isinstance(value, np.generic) else value
    if isinstance(item, float) and math.isnan(item):
        return None
    return item


def _daily_rows(ids: Sequence[object], day0: npt.NDArray[np.int64], cols: dict[str, np.ndarray],
                today: date, n_days: int = N_DAYS) -> list[tuple[object, ...]]:
    epoch = date(1970, 1, 1)
    n_written = np.clip(np.array([(today - epoch).days], np.int64) - day0 + 1, 0, n_days)
    p_idx = np.repeat(np.arange(len(ids)), n_written)
    d_idx = np.concatenate([np.arange(k) for k in n_written]) if len(ids) else np.zeros(0, np.int64)
    rr_or_null = np.array(["rr", None], dtype=object)  # where a value came from our own RR/HR computation
    every = {**cols, "hrv_source": rr_or_null[(~cols["valid_hrv_night"]).astype(np.int64)],
             "rhr_source": rr_or_null[(~np.isfinite(cols["resting_hr_bpm"])).astype(np.int64)]}
    picked = {c: every[c][p_idx, d_idx].tolist() for c in DAILY_COLUMNS[3:-1]}
    rows = []
    for k, (p, d) in enumerate(zip(p_idx.tolist(), d_idx.tolist(), strict=True)):
        sleep_date = epoch + timedelta(days=int(day0[p]) + d)
        rows.append((ids[p], sleep_date, d + 1, *(_py(picked[c][k]) for c in DAILY_COLUMNS[3:-1]),
                     ALGORITHM_VERSION))
    return rows


def _duty_rows(ids: Sequence[object], du: job_io.Duties, cols: dict[str, np.ndarray]) -> list[tuple[object, ...]]:
    lists = {k: v.tolist() for k, v in cols.items()}
    return [(ids[p], datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC), str(st), bool(ot),
             *(_py(lists[c][i]) for c in DUTY_COLUMNS[5:-1]), ALGORITHM_VERSION)
            for i, (p, s, e, st, ot) in enumerate(zip(du.participant.tolist(), du.start.tolist(), du.end.tolist(),
                                                      du.shift_type.tolist(), du.overtime.tolist(), strict=True))]


def run_features(database_url: str, tz: str = "Europe/London", full: bool = False, progress: bool = False,
                 batch_size: int = 500, params: FeatureParams = DEFAULT_FEATURE_PARAMS) -> FeatureRunSummary:
    """Recompute and upsert daily and duty features (incremental unless ``full``); safe to run twice.

    ``params`` carries the programme file's days, population need and calibration window
    (``FeatureParams.of(programme)``).
    """
    started = time.perf_counter()
    days_written = duties_written = 0
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT now(), (now() AT TIME ZONE %s)::date", (tz,)).fetchone()
        assert row is not None
        snapshot, today = row
        cohort = job_io.read_cohort(conn, full)
        conn.commit()
        bar = tqdm(total=len(cohort.ids), unit="participant", desc="features", disable=not progress)
        for part in _batches(len(cohort.ids), batch_size):
            ids, day0 = cohort.ids[part], cohort.day0[part]
            daily, du, duty = _compute(conn, ids, day0, tz, params)
            days_written += job_io.upsert(conn, "derived.daily_features", ("participant_id", "sleep_date"),
                                          DAILY_COLUMNS, _daily_rows(ids, day0, daily, today, params.n_days))
            duties_written += job_io.upsert(conn, "derived.duty_features", ("participant_id", "start_ts"),
                                            DUTY_COLUMNS, _duty_rows(ids, du, duty))
            conn.execute("DELETE FROM ingest.dirty_days WHERE participant_id = ANY(%s) AND marked_at <= %s",
                         (list(ids), snapshot))
            conn.commit()
            bar.update(len(ids))
        bar.close()
    return FeatureRunSummary(len(cohort.ids), days_written, duties_written, time.perf_counter() - started)
