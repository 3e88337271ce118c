"""Database reads of the daily feature job (with `features.job_write`, the only feature modules that touch the
database besides `features.job`).

Every read is one binary ``COPY`` of fixed-width rows parsed by :mod:`store.copyio` into NumPy columns: no
``fetchall``, no per-row Python. Reads are keyed by a participant *index* (the position in the batch), so the
kernels never see UUIDs, and bounded by each participant's time window ``[a, b)`` (UTC epoch s), so a nightly
run reads a few days, not the whole history. The indexes of migration 120 on ``(participant_id, start_ts)``
serve every raw read. Times are int64 epoch seconds UTC (milliseconds for beats and heart-rate samples).

Assumption (documented in README "Feature job"): a sleep episode or heart-rate/RR run lasts less than
:data:`MAX_SPAN_S` (3 days); reads look that far back from a window's start for rows overlapping it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import psycopg

from features.roster import SHIFT_TYPES
from store.copyio import copy_columns

__all__ = ["DAY_COLUMNS", "MAX_SPAN_S", "Cohort", "Duties", "Episodes", "NightSeries", "Stored", "read_cohort",
           "read_duties", "read_episodes", "read_night_hr", "read_night_rr", "read_sleep_times", "read_stored",
           "read_wear"]

Conn = psycopg.Connection[tuple[object, ...]]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

MAX_SPAN_S = 3 * 86_400
"""Longest sleep episode or sample run the windowed reads allow for (s)."""
_EPOCH = date(1970, 1, 1)
_BATCH = ("unnest(%(ids)s::uuid[], %(a)s::int8[], %(b)s::int8[]) WITH ORDINALITY "
          "AS p(participant_id, a, b, idx)")
#: real columns of derived.daily_features read back as float8 (NaN for NULL); the per-day and window values
DAY_COLUMNS = ("wear_h", "tib_min", "tst_min", "main_tst_min", "nap_min", "se_pct", "sol_min", "waso_min",
               "awakenings", "midpoint_local_h", "sleep_need_h", "debt_net_7d_h", "debt_gross_7d_h",
               "debt_carry_h", "sleep_performance_pct", "sri_14d", "sleep_consistency", "rmssd_ms", "ln_rmssd",
               "sdnn_ms", "pnn50_pct", "resting_hr_bpm", "hrv_baseline_mean", "hrv_baseline_sd",
               "rhr_baseline_mean", "recovery_score")


@dataclass(frozen=True)
class Cohort:
    """Participants of one run, their programme start and the day window to recompute from raw data.

    ``day0`` is days since 1970-01-01; ``lo``/``hi`` are 0-based programme-day indices (inclusive), ``lo > hi``
    when no day needs raw data (only rolling windows or nothing).
    """

    ids: list[uuid.UUID]
    day0: I64
    lo: I64
    hi: I64


@dataclass(frozen=True)
class Episodes:
    """Sleep episodes sorted by participant then start; stages as CSR (``offsets`` into ``stages``)."""

    participant: I64
    start: I64
    end: I64
    in_bed: B
    device_tst_min: F64
    stages: npt.NDArray[np.int8]
    offsets: I64


@dataclass(frozen=True)
class Duties:
    participant: I64
    start: I64
    end: I64
    shift_code: npt.NDArray[np.int8]
    overtime: B


@dataclass(frozen=True)
class NightSeries:
    """Per-night concatenated samples (CSR by ``offsets``) for the nights listed in ``night``."""

    night: I64
    values: F64
    times_ms: I64
    offsets: I64


@dataclass(frozen=True)
class Stored:
    """Stored daily rows and job state as (P, n_days) arrays; ``present`` marks days that have a row."""

    present: B
    valid_sleep_day: B
    n_episodes: I64
    real: dict[str, F64]
    pair_match: F64
    pair_valid: F64


def read_cohort(conn: Conn, full: bool, today: date, n_days: int) -> Cohort:
    """Participants to process and the days of each to recompute from raw data.

    Full: everyone, days ``0 .. today``. Incremental: participants with dirty days up to today, or with days up
    to today (or the programme end) that have no row yet; their window spans the dirty days +- 1 day (a night
    touches the evening before and the day it ends) and every day without a row.
    """
    rows = conn.execute(
        "WITH d AS (SELECT participant_id, min(sleep_date) AS lo, max(sleep_date) AS hi FROM ingest.dirty_days "
        "WHERE sleep_date <= %(today)s GROUP BY 1) "
        "SELECT p.participant_id, p.programme_start - date '1970-01-01', "
        "coalesce(d.lo - p.programme_start - 1, 1000000), coalesce(d.hi - p.programme_start + 1, -1), "
        "coalesce(s.last, p.programme_start - 1) - p.programme_start "
        "FROM core.participants p LEFT JOIN d USING (participant_id) "
        "LEFT JOIN LATERAL (SELECT f.sleep_date AS last FROM derived.daily_features f "
        "WHERE f.participant_id = p.participant_id ORDER BY f.sleep_date DESC LIMIT 1) s ON NOT %(full)s "
        "WHERE %(full)s OR d.participant_id IS NOT NULL "
        "OR coalesce(s.last, p.programme_start - 1) < least(%(today)s, p.programme_start + %(last)s) "
        "ORDER BY p.participant_id", {"today": today, "full": full, "last": n_days - 1}).fetchall()
    ids = [r[0] for r in rows]
    num = np.array([r[1:] for r in rows], dtype=np.int64).reshape(-1, 4)
    day0, dirty_lo, dirty_hi, last = num.T
    top = np.minimum((today - _EPOCH).days - day0, n_days - 1)  # last day that gets a row
    if full:
        lo, hi = np.zeros_like(day0), top
    else:
        unstored = last + 1 <= top
        lo = np.maximum(np.minimum(dirty_lo, np.where(unstored, last + 1, dirty_lo)), 0)
        hi = np.minimum(np.maximum(dirty_hi, np.where(unstored, top, dirty_hi)), top)
    return Cohort(ids, day0.copy(), lo.astype(np.int64), hi.astype(np.int64))  # type: ignore[arg-type]


def _params(ids: Sequence[uuid.UUID], a: I64, b: I64, **extra: object) -> dict[str, object]:
    return {"ids": list(ids), "a": a.tolist(), "b": b.tolist(), **extra}


_EPISODES = (
    "SELECT DISTINCT ON (p.idx, e.start_ts, e.end_ts) p.idx, e.start_ts, e.end_ts, e.in_bed, e.device_tst_min, "
    f"e.stages FROM {_BATCH} JOIN raw.sleep_episodes e ON e.participant_id = p.participant_id "
    "AND e.start_ts >= to_timestamp(p.a - %(span)s) AND e.start_ts < to_timestamp(p.b) "
    "AND e.end_ts > to_timestamp(p.a) "
    "ORDER BY p.idx, e.start_ts, e.end_ts, e.ingested_at, e.device_id")


def read_episodes(conn: Conn, ids: Sequence[uuid.UUID], a: I64, b: I64) -> Episodes:
    """Sleep episodes overlapping ``[a, b)``, one per (participant, start, end): replays count once.

    Two COPYs (headers, then stages unnested in the same order) inside the caller's repeatable-read snapshot.
    """
    params = _params(ids, a, b, span=MAX_SPAN_S)
    head = copy_columns(conn, (
        "SELECT (x.idx - 1)::int4, (extract(epoch FROM x.start_ts))::int8, (extract(epoch FROM x.end_ts))::int8, "
        "x.in_bed, coalesce(x.device_tst_min, 'NaN')::float8, coalesce(cardinality(x.stages), 0)::int4 "
        f"FROM ({_EPISODES}) x"),
        [("p", "int4"), ("s", "int8"), ("e", "int8"), ("in_bed", "bool"), ("tst", "float8"), ("n", "int4")],
        params)
    stages = copy_columns(conn, (
        f"SELECT u.v::int2 FROM ({_EPISODES}) x CROSS JOIN LATERAL unnest(x.stages) WITH ORDINALITY AS u(v, k)"),
        [("v", "int2")], params)["v"]
    lengths = head["n"].astype(np.int64)
    if int(lengths.sum()) != stages.size:
        raise RuntimeError("sleep stages changed between two reads of one snapshot")
    return Episodes(head["p"].astype(np.int64), head["s"], head["e"], head["in_bed"], head["tst"],
                    stages.astype(np.int8), np.concatenate(([0], np.cumsum(lengths))).astype(np.int64))


def read_sleep_times(conn: Conn, ids: Sequence[uuid.UUID], a: I64, b: I64) -> tuple[I64, I64, I64]:
    """(participant, start, end) of the distinct sleep episodes ending in ``[a, b)``: no stages, for time awake."""
    cols = copy_columns(conn, (
        "SELECT DISTINCT (p.idx - 1)::int4, (extract(epoch FROM e.start_ts))::int8, "
        f"(extract(epoch FROM e.end_ts))::int8 FROM {_BATCH} JOIN raw.sleep_episodes e "
        "ON e.participant_id = p.participant_id AND e.start_ts >= to_timestamp(p.a - %(span)s) "
        "AND e.start_ts < to_timestamp(p.b) AND e.end_ts >= to_timestamp(p.a) AND e.end_ts < to_timestamp(p.b)"),
        [("p", "int4"), ("s", "int8"), ("e", "int8")], _params(ids, a, b, span=MAX_SPAN_S))
    return cols["p"].astype(np.int64), cols["s"], cols["e"]


def read_duties(conn: Conn, ids: Sequence[uuid.UUID]) -> Duties:
    """Every duty of the batch (rosters are small: about one row a day), sorted by participant then start."""
    n = len(ids)
    cols = copy_columns(conn, (
        "SELECT (p.idx - 1)::int4, (extract(epoch FROM d.start_ts))::int8, (extract(epoch FROM d.end_ts))::int8, "
        "(coalesce(array_position(%(names)s::text[], d.shift_type), %(other)s) - 1)::int2, d.overtime "
        f"FROM {_BATCH} JOIN core.duties d USING (participant_id) ORDER BY p.idx, d.start_ts"),
        [("p", "int4"), ("s", "int8"), ("e", "int8"), ("code", "int2"), ("overtime", "bool")],
        _params(ids, np.zeros(n, np.int64), np.zeros(n, np.int64), names=list(SHIFT_TYPES),
                other=SHIFT_TYPES.index("other") + 1))
    return Duties(cols["p"].astype(np.int64), cols["s"], cols["e"], cols["code"].astype(np.int8), cols["overtime"])


def read_wear(conn: Conn, ids: Sequence[uuid.UUID], a: I64, b: I64, day0: I64, n_days: int, tz: str) -> F64:
    """Wear hours per participant x programme day from the extent of heart-rate runs starting in ``[a, b)``.

    A run's duration (first to last sample) is attributed to the local date of its start; runs are at most an
    hour long at 1 Hz, so the error at midnight is bounded by that. Durations are summed as integer ms (exact
    in any order). Days without any run are NaN (no wear signal).
    """
    cols = copy_columns(conn, (
        "SELECT (p.idx - 1)::int4, ((timezone(%(tz)s, r.start_ts))::date - date '1970-01-01')::int4, "
        "(extract(epoch FROM r.end_ts - r.start_ts) * 1000)::int8 "
        f"FROM {_BATCH} JOIN raw.hr_runs r ON r.participant_id = p.participant_id "
        "AND r.start_ts >= to_timestamp(p.a) AND r.start_ts < to_timestamp(p.b)"),
        [("p", "int4"), ("day", "int4"), ("ms", "int8")], _params(ids, a, b, tz=tz))
    idx = cols["p"].astype(np.int64)
    day = cols["day"] - day0[idx]
    ok = (day >= 0) & (day < n_days)
    cell = idx[ok] * n_days + day[ok]
    size = len(ids) * n_days
    ms = np.bincount(cell, weights=cols["ms"][ok], minlength=size)  # float64 sums of ints < 2**53: exact
    seen = np.bincount(cell, minlength=size) > 0
    return np.where(seen, np.minimum(ms / 3_600_000.0, 24.0), np.nan).reshape(len(ids), n_days)


def _nights(ids: Sequence[uuid.UUID], night: I64, participant: I64, start: I64, end: I64) -> dict[str, object]:
    return {"ids": list(ids), "night": night.tolist(), "pidx": (participant + 1).tolist(), "s": start.tolist(),
            "e": end.tolist(), "span": MAX_SPAN_S}


_NIGHTS = ("(SELECT n.night, q.participant_id, n.s, n.e FROM unnest(%(night)s::int8[], %(pidx)s::int8[], "
           "%(s)s::int8[], %(e)s::int8[]) AS n(night, pidx, s, e) JOIN unnest(%(ids)s::uuid[]) WITH ORDINALITY "
           "AS q(participant_id, idx) ON q.idx = n.pidx) n")


def read_night_hr(conn: Conn, ids: Sequence[uuid.UUID], night: I64, participant: I64, start: I64,
                  end: I64) -> NightSeries:
    """Minute-mean heart rate inside each main sleep ``[start, end)`` (epoch s), one series per night.

    Samples come back as (night, ms, bpm) rows; the minute means are one ``np.unique`` and two ``np.bincount``
    (integer sums, so exact in any order) instead of a server-side hash aggregate.
    """
    cols = copy_columns(conn, (
        "SELECT n.night::int8, r.t0 + u.o::int8, u.b::int2 FROM " + _NIGHTS + " CROSS JOIN LATERAL ("
        "SELECT (extract(epoch FROM h.start_ts) * 1000)::int8 AS t0, h.offsets_ms, h.bpm FROM raw.hr_runs h "
        "WHERE h.participant_id = n.participant_id AND h.start_ts >= to_timestamp(n.s - %(span)s) "
        "AND h.start_ts < to_timestamp(n.e) AND h.end_ts > to_timestamp(n.s)) r "
        "CROSS JOIN LATERAL unnest(r.offsets_ms, r.bpm) AS u(o, b) "
        "WHERE r.t0 + u.o >= n.s * 1000 AND r.t0 + u.o < n.e * 1000"),
        [("night", "int8"), ("t", "int8"), ("bpm", "int2")], _nights(ids, night, participant, start, end))
    if cols["t"].size == 0:
        return _empty()
    minute = cols["t"] // 60_000
    key = (cols["night"] << 32) | (minute - int(minute.min()))
    uniq, inv = np.unique(key, return_inverse=True)
    mean = np.bincount(inv, weights=cols["bpm"].astype(np.float64)) / np.bincount(inv)
    return _minute_series(uniq >> 32, (uniq & 0xFFFFFFFF) * 60 + int(minute.min()) * 60, mean)


def read_night_rr(conn: Conn, ids: Sequence[uuid.UUID], night: I64, participant: I64, start: I64,
                  end: I64) -> NightSeries:
    """RR intervals of the runs that start inside each main sleep, in time order, with beat end times (ms).

    Runs starting at the same instant on two devices count once (the first device by id).
    """
    cols = copy_columns(conn, (
        "SELECT n.night::int8, r.t0, u.k::int8, u.v::int2 FROM " + _NIGHTS + " CROSS JOIN LATERAL ("
        "SELECT DISTINCT ON (x.start_ts) (extract(epoch FROM x.start_ts) * 1000)::int8 AS t0, x.rr_ms "
        "FROM raw.rr_runs x WHERE x.participant_id = n.participant_id AND x.start_ts >= to_timestamp(n.s) "
        "AND x.start_ts < to_timestamp(n.e) ORDER BY x.start_ts, x.device_id) r "
        "CROSS JOIN LATERAL unnest(r.rr_ms) WITH ORDINALITY AS u(v, k)"),
        [("night", "int8"), ("t0", "int8"), ("k", "int8"), ("rr", "int2")],
        _nights(ids, night, participant, start, end))
    nights, t0, k = cols["night"], cols["t0"], cols["k"]
    if nights.size == 0:
        return _empty()
    order = np.lexsort((k, t0, nights))
    nights, t0, rr = nights[order], t0[order], cols["rr"][order].astype(np.float64)
    new_run = np.r_[True, (nights[1:] != nights[:-1]) | (t0[1:] != t0[:-1])]
    csum = np.cumsum(rr)
    run_base = (csum - rr)[new_run]  # cumulative sum before each run's first beat
    ends = t0 + (csum - np.repeat(run_base, np.diff(np.r_[np.flatnonzero(new_run), rr.size]))).astype(np.int64)
    ids_, first = np.unique(nights, return_index=True)
    offsets = np.r_[first, nights.size].astype(np.int64)
    return NightSeries(ids_, rr, ends, offsets)


def _empty() -> NightSeries:
    return NightSeries(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), np.zeros(1, np.int64))


def _minute_series(night: I64, t: I64, v: F64) -> NightSeries:
    """Sorted (night, minute epoch s, mean bpm) -> per-night series on a full minute grid (CSR)."""
    first = np.r_[True, night[1:] != night[:-1]]
    starts = t[np.maximum.accumulate(np.where(first, np.arange(t.size), 0))]  # each night's first minute
    minute = (t - starts) // 60
    ids, inv = np.unique(night, return_inverse=True)
    length = np.zeros(ids.size, np.int64)
    np.maximum.at(length, inv, minute + 1)
    offsets = np.concatenate(([0], np.cumsum(length)))
    values = np.full(int(offsets[-1]), np.nan)
    values[offsets[inv] + minute] = v
    times = np.repeat(starts[first], length) + 60 * (np.arange(int(offsets[-1])) - np.repeat(offsets[:-1], length))
    return NightSeries(ids, values, times * 1000, offsets)


def read_stored(conn: Conn, ids: Sequence[uuid.UUID], day0: I64, n_days: int) -> Stored:
    """The stored daily rows and SRI pair state of the batch as (P, n_days) arrays (NaN / False where none)."""
    n = len(ids)
    fields = [("p", "int4"), ("d", "int4"), ("valid", "bool"), ("n_ep", "int2"), ("pm", "float8"), ("pv", "float8"),
              *[(c, "float8") for c in DAY_COLUMNS]]
    reals = ", ".join(f"coalesce(f.{c}, 'NaN')::float8" for c in DAY_COLUMNS)
    cols = copy_columns(conn, (
        "SELECT (p.idx - 1)::int4, (f.sleep_date - date '1970-01-01' - p.a)::int4, f.valid_sleep_day, "
        "f.n_episodes::int2, coalesce(s.pair_match, 'NaN')::float8, coalesce(s.pair_valid, 'NaN')::float8, "
        f"{reals} FROM {_BATCH} JOIN derived.daily_features f ON f.participant_id = p.participant_id "
        "AND f.sleep_date >= date '1970-01-01' + p.a::int4 AND f.sleep_date < date '1970-01-01' + p.b::int4 "
        "LEFT JOIN derived.daily_state s ON s.participant_id = f.participant_id AND s.sleep_date = f.sleep_date"),
        fields, _params(ids, day0, day0 + n_days))
    cell = cols["p"].astype(np.int64) * n_days + cols["d"]

    def grid(x: npt.NDArray[np.generic], fill: object) -> npt.NDArray[np.generic]:
        out = np.full(n * n_days, fill, dtype=x.dtype)
        out[cell] = x
        return out.reshape(n, n_days)

    present = np.zeros(n * n_days, np.bool_)
    present[cell] = True
    return Stored(present.reshape(n, n_days), grid(cols["valid"], False),  # type: ignore[arg-type]
                  grid(cols["n_ep"].astype(np.int64), 0),  # type: ignore[arg-type]
                  {c: grid(cols[c], np.nan) for c in DAY_COLUMNS},  # type: ignore[misc]
                  grid(cols["pm"], np.nan), grid(cols["pv"], np.nan))  # type: ignore[arg-type]
