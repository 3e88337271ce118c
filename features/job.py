"""The daily feature job: raw tables -> vectorised kernels -> ``derived.daily_features`` / ``duty_features``.

**Incremental by default, and truly so.** A participant is processed when the ingester or a roster import
marked one of its days dirty (``ingest.dirty_days``), or when a day up to today has no row yet. Only the
*window* of days ``[min dirty, max dirty + 2]`` (plus the days without a row) is recomputed from raw data: a
mark on day X changes day X and the night of X + 1 (its evening samples are dated X; +2 covers main sleeps of up
to two days), and the SRI pairs of ``[min dirty - 2, max + 3]`` (episodes of up to 30 h, i.e. 3,600 staged
epochs, reach two blocks back). Everything else comes from the stored daily rows and
the small SRI pair state of ``derived.daily_state`` (migration 120). The rolling windows (7-day debt, 14-day
SRI, 4-day consistency, 60-day baselines, personal need, recovery) are then recomputed over the whole
programme from those per-day arrays (about 0.1 ms per participant) and only rows whose values changed are
written. So a new night (marks on the evening's date and the morning's) reads two nights of raw data, and
a late night recomputes its days and every window it touches, nothing else. See :mod:`features.job_days`
for the two layers.

``full=True`` recomputes every participant's whole programme from raw data for audits; it runs through the
same layers (window = the programme), so it gives the same rows as any sequence of incremental runs
(tests/features/test_feature_job_incremental.py proves it over random arrival orders).

Rows are upserted, so running twice changes nothing; dirty marks are cleared only up to the moment the job
read them, so data arriving during a run is picked up next time. Marks for days after today stay.

Day index ``d`` (0-based) is programme day ``d + 1``; day 0 is ``core.participants.programme_start`` and
``FeatureParams.n_days`` days are computed (the programme file's ``days``, 120 by default; the programme also
gives the population sleep need and the calibration window, :class:`features.params.FeatureParams`). Days
after today (local) are not written.

**Missing data is never fatigue** (science 6.3, revised 2026-12): a day without a detected main sleep whose
sleep opportunity was not continuously worn is unknown (:func:`features.sleep.with_unknown_days`), and a duty's
time awake is unknown when non-wear (heart-rate gaps >= 60 min, not-worn or flat-battery statuses,
:mod:`features.wear_io`) lies between its last sleep and its end (:func:`features.wear.awake_where_worn`).

Batches hold ``batch_size`` participants (default from a memory budget, :func:`batch_for_budget`); each batch
reads and writes in one repeatable-read transaction. Parallel runs: :mod:`features.job_parallel`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import numpy.typing as npt
import psycopg
from tqdm import tqdm

from features import job_io
from features.job_days import (
    day_mask,
    duty_grids,
    local_midnight_utc,
    main_nights,
    merge_days,
    night_layer,
    pairs_for,
    sleep_layer,
    window_layer,
)
from features.job_write import write_daily, write_duties
from features.params import DEFAULT_FEATURE_PARAMS, FeatureParams
from features.roster import duty_features
from features.sleep import with_unknown_days
from features.timeutil import local_noon_utc
from features.wear import awake_where_worn, days_worn
from features.wear_io import read_nonwear

__all__ = [
    "ALGORITHM_VERSION",
    "DAILY_COLUMNS",
    "N_DAYS",
    "FeatureRunSummary",
    "batch_for_budget",
    "run_batch",
    "run_features",
]

ALGORITHM_VERSION = "features-1.0"
N_DAYS = 120
I64 = npt.NDArray[np.int64]
DAILY_COLUMNS = (
    "participant_id", "sleep_date", "programme_day", "valid_sleep_day", "wear_h", "n_episodes", "tib_min",
    "tst_min", "main_tst_min", "nap_min", "se_pct", "sol_min", "waso_min", "awakenings", "midpoint_local_h",
    "sleep_need_h", "debt_net_7d_h", "debt_gross_7d_h", "debt_carry_h", "sleep_performance_pct", "sri_14d",
    "sleep_consistency", "valid_hrv_night", "rmssd_ms", "ln_rmssd", "sdnn_ms", "pnn50_pct", "hrv_source",
    "resting_hr_bpm", "rhr_source", "hrv_baseline_mean", "hrv_baseline_sd", "rhr_baseline_mean",
    "recovery_score", "algorithm_version")
LOOKBACK_S = 4 * 86_400
"""Episodes ending up to 4 days before a window are read: the SRI blocks of pairs two days before it start ~84 h
earlier, and time awake at a duty's end looks back at most 48 h."""
BYTES_PER_PARTICIPANT_DAY = 600_000
"""Memory per participant-day of raw window in a batch, the basis of :func:`batch_for_budget`. Set when reads
unnested samples (benchmarks/bench_feature_job.py: 1.7 GB peak for batches of 27 x 120 days, ~520 kB per
participant-day); with array blobs the same run peaks at 654 MB (~200 kB, interpreter included), so the
constant is now conservative by 3x: heavier data (1 Hz heart rate, all-night RR) still fits the budget."""


@dataclass(frozen=True)
class FeatureRunSummary:
    """What one run did."""

    participants: int
    days_written: int
    duties_written: int
    seconds: float


def batch_for_budget(budget_mb: float, window_days: int) -> int:
    """Participants per batch so that a batch reading ``window_days`` raw days stays within ``budget_mb``."""
    return max(1, int(budget_mb * 1e6 // (BYTES_PER_PARTICIPANT_DAY * max(1, window_days))))


def _write_mask(stored: job_io.Stored, cols: dict[str, np.ndarray], merged: job_io.Stored, top: I64,
                full: bool) -> npt.NDArray[np.bool_]:
    """Rows to write: every day up to today in a full run; new or changed rows otherwise."""
    upto = np.arange(stored.present.shape[1])[None, :] <= top[:, None]
    if full:
        return upto
    changed = ~stored.present | (stored.valid_sleep_day != merged.valid_sleep_day) | (
        stored.n_episodes != merged.n_episodes) | (stored.pair_match != cols["pair_match"]) | (
        stored.pair_valid != cols["pair_valid"])
    for name in job_io.DAY_COLUMNS:
        new = np.asarray(cols[name], np.float32).astype(np.float64)
        old = stored.real[name]
        changed |= (new != old) & ~(np.isnan(new) & np.isnan(old))
    return np.asarray(upto & changed, np.bool_)


def run_batch(conn: psycopg.Connection[tuple[object, ...]], ids: list[uuid.UUID], day0: I64, lo: I64, hi: I64,
              today: date, tz: str, full: bool, fp: FeatureParams = DEFAULT_FEATURE_PARAMS) -> tuple[int, int]:
    """Recompute one batch (window ``[lo, hi]`` from raw data, the rest from stored rows); returns rows written."""
    n, n_days = len(ids), fp.n_days
    top = np.minimum((today - date(1970, 1, 1)).days - day0, n_days - 1)
    if full:  # nothing stored counts: every day comes from raw data
        shape = (n, n_days)
        stored = job_io.Stored(np.zeros(shape, np.bool_), np.zeros(shape, np.bool_), np.zeros(shape, np.int64),
                               {k: np.full(shape, np.nan) for k in job_io.DAY_COLUMNS}, np.full(shape, np.nan),
                               np.full(shape, np.nan))
    else:  # rows written before migration 120 have no pair state: recompute those participants in full
        stored = job_io.read_stored(conn, ids, day0, n_days)
        no_state = (stored.present & np.isnan(stored.pair_match)).any(axis=1)
        lo, hi = np.where(no_state, 0, lo), np.where(no_state, top, hi)
    window = day_mask(lo, hi, n_days)
    pair_window = day_mask(np.maximum(lo - 2, 0), np.minimum(hi + 1, top), n_days)
    du = job_io.read_duties(conn, ids)
    mid_lo = local_midnight_utc(day0 + lo, tz)
    mid_hi = local_midnight_utc(day0 + hi + 1, tz)
    first_duty = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_duty, du.participant, du.end)
    a = np.where(lo == 0, np.minimum(mid_lo, first_duty), mid_lo) - LOOKBACK_S
    b = local_noon_utc(day0 + hi + 1, tz)  # SRI block hi + 1 ends at noon of day hi + 1, after mid_hi
    a, b = np.where(lo <= hi, a, 0), np.where(lo <= hi, b, 0)
    ep = job_io.read_episodes(conn, ids, a, b)
    wear = job_io.read_wear(conn, ids, np.where(lo <= hi, mid_lo, 0), np.where(lo <= hi, mid_hi, 0), day0, n_days, tz)
    nonwear = read_nonwear(conn, ids)
    layer = sleep_layer(ep, wear, day0, n_days, tz)
    layer = replace(layer, daily=with_unknown_days(layer.daily, days_worn(n, n_days, day0, nonwear, tz)))
    args = (conn, ids, *main_nights(ep, layer, window))
    nights = night_layer((n, n_days), job_io.read_night_rr(*args), job_io.read_night_hr(*args))
    daily = layer.daily
    fresh = {"wear_h": wear, **{k: getattr(daily, k) for k in (
        "tib_min", "tst_min", "main_tst_min", "nap_min", "se_pct", "sol_min", "waso_min", "awakenings",
        "midpoint_local_h")}, **nights}
    merged = merge_days(stored, window, fresh, daily.valid_sleep_day, daily.n_episodes)
    match, valid = pairs_for(merged, layer, pair_window, day0, tz)
    # duties ending from the window on are rewritten (a roster change alters the runs after it), so their time
    # awake needs the sleeps up to the last duty's end, not only those of the window: start and end only
    last_duty = np.full(n, np.iinfo(np.int64).min)
    np.maximum.at(last_duty, du.participant, du.end + 1)
    sp, ss, se = job_io.read_sleep_times(conn, ids, a, np.where(lo <= hi, np.maximum(b, last_duty), 0))
    duty = duty_features(du.participant, du.start, du.end, du.shift_code, sleep_participant=sp, sleep_start=ss,
                         sleep_end=se, tz=tz)
    duty = replace(duty, time_awake_end_h=awake_where_worn(du.participant, du.end, duty.time_awake_end_h, nonwear))
    cols: dict[str, np.ndarray] = {**merged.real, **window_layer(merged, match, valid,
                                                                 *duty_grids(du, duty.night_duty, day0, n_days, tz),
                                                                 fp),
                                   "valid_sleep_day": merged.valid_sleep_day, "n_episodes": merged.n_episodes,
                                   "pair_match": match, "pair_valid": valid}
    days = write_daily(conn, ids, day0, _write_mask(stored, cols, merged, top, full), cols, ALGORITHM_VERSION)
    keep = (lo <= hi)[du.participant] & ((lo == 0)[du.participant] | (du.end >= mid_lo[du.participant]))
    return days, write_duties(conn, ids, du, duty, keep, ALGORITHM_VERSION)


def _batches(n: int, size: int) -> Iterator[slice]:
    for lo in range(0, n, size):
        yield slice(lo, min(n, lo + size))


def run_features(database_url: str, tz: str = "Europe/London", full: bool = False, progress: bool = False,
                 batch_size: int | None = None, memory_mb: float = 2000.0,
                 participants: slice | None = None,
                 id_range: tuple[uuid.UUID, uuid.UUID | None] | None = None,
                 params: FeatureParams = DEFAULT_FEATURE_PARAMS) -> FeatureRunSummary:
    """Recompute and upsert daily and duty features (incremental unless ``full``); safe to run twice.

    ``batch_size`` defaults to what ``memory_mb`` allows for the longest window of the run; ``participants``
    restricts the run to a slice of the cohort (ordered by id), which is how parallel workers split it, and
    ``id_range`` to a participant UUID range ``[lo, hi)`` (how runs on several machines split it). ``params``
    carries the programme file's days, population need and calibration window (``FeatureParams.of(programme)``).
    """
    started = time.perf_counter()
    days_written = duties_written = 0
    with psycopg.connect(database_url) as conn:
        # Short index-driven reads whose estimated costs are inflated by the number of raw partitions: JIT
        # compilation would cost ~50 ms a statement and save nothing (measured on the 600-officer benchmark).
        conn.execute("SET jit = off")
        row = conn.execute("SELECT now(), (now() AT TIME ZONE %s)::date", (tz,)).fetchone()
        assert row is not None
        snapshot, today = row
        cohort = job_io.read_cohort(conn, full, today, params.n_days, id_range)
        conn.commit()
        part = participants or slice(0, len(cohort.ids))
        ids, day0, lo, hi = cohort.ids[part], cohort.day0[part], cohort.lo[part], cohort.hi[part]
        longest = int(np.max(hi - lo + 1, initial=1))
        size = batch_size or batch_for_budget(memory_mb, longest)
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        bar = tqdm(total=len(ids), unit="participant", desc="features", disable=not progress)
        for sl in _batches(len(ids), size):
            with conn.transaction():
                d, u = run_batch(conn, ids[sl], day0[sl], lo[sl], hi[sl], today, tz, full, params)
                conn.execute("DELETE FROM ingest.dirty_days WHERE participant_id = ANY(%s) AND marked_at <= %s "
                             "AND sleep_date <= %s", (ids[sl], snapshot, today))
            days_written, duties_written = days_written + d, duties_written + u
            bar.update(len(ids[sl]))
        bar.close()
    return FeatureRunSummary(len(ids), days_written, duties_written, time.perf_counter() - started)
