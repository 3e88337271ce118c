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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import psycopg

from features.roster import SHIFT_TYPES
from store.copyio import decode_array, decode_arrays, fetch_blobs, fetch_columns

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


def read_cohort(conn: Conn, full: bool, today: date, n_days: int,
                id_range: tuple[uuid.UUID, uuid.UUID | None] | None = None) -> Cohort:
    """Participants to process and the days of each to recompute from raw data.

    Full: everyone, days ``0 .. today``. Incremental: participants with dirty days up to today, or with days up
    to today (or the programme end) that have no row yet; their window spans the dirty days to 2 days after the
    last (a night's evening samples are dated the day before it ends) and every day without a row.
    ``id_range`` = ``[lo, hi)`` restricts the cohort to a participant UUID range (``hi`` None: open; see
    `features.job_claims`).
    """
    lo_id, hi_id = id_range if id_range else (uuid.UUID(int=0), None)
    rows = conn.execute(
        "WITH d AS (SELECT participant_id, min(sleep_date) AS lo, max(sleep_date) AS hi FROM ingest.dirty_days "
        "WHERE sleep_date <= %(today)s GROUP BY 1) "
        "SELECT p.participant_id, p.programme_start - date '1970-01-01', "
        "coalesce(d.lo - p.programme_start, 1000000), coalesce(d.hi - p.programme_start + 2, -1), "
        "coalesce(s.last, p.programme_start - 1) - p.programme_start "
        "FROM core.participants p LEFT JOIN d USING (participant_id) "
        "LEFT JOIN LATERAL (SELECT f.sleep_date AS last FROM derived.daily_features f "
        "WHERE f.participant_id = p.participant_id ORDER BY f.sleep_date DESC LIMIT 1) s ON NOT %(full)s "
        "WHERE (%(full)s OR d.participant_id IS NOT NULL "
        "OR coalesce(s.last, p.programme_start - 1) < least(%(today)s, p.programme_start + %(last)s)) "
        "AND p.participant_id >= %(lo)s AND (%(hi)s::uuid IS NULL OR p.participant_id < %(hi)s)",
        {"today": today, "full": full, "last": n_days - 1, "lo": lo_id, "hi": hi_id}).fetchall()
    rows.sort(key=lambda r: str(r[0]))  # by participant id (an ORDER BY of a national cohort could spill to disk)
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


def _csr_take(values: npt.NDArray[np.generic], counts: I64, take: I64) -> tuple[npt.NDArray[np.generic], I64]:
    """Segments ``take`` (in that order) of a CSR array with segment lengths ``counts``; new values, offsets."""
    starts = np.cumsum(counts) - counts
    n = counts[take]
    k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    return values[np.repeat(starts[take], n) + k], np.concatenate(([0], np.cumsum(n))).astype(np.int64)


def read_episodes(conn: Conn, ids: Sequence[uuid.UUID], a: I64, b: I64) -> Episodes:
    """Sleep episodes overlapping ``[a, b)``, one per (participant, start, end): replays count once (the first
    ingested; ties by device). One aggregate row of ``array_send`` blobs; de-duplicated and sorted here."""
    blobs = fetch_blobs(conn, (
        "SELECT array_send(array_agg((p.idx - 1)::int4)), array_send(array_agg(extract(epoch FROM e.start_ts)::int8)), "
        "array_send(array_agg(extract(epoch FROM e.end_ts)::int8)), "
        "array_send(array_agg((extract(epoch FROM e.ingested_at) * 1000000)::int8)), "
        "array_send(array_agg(hashtext(e.device_id))), array_send(array_agg(e.in_bed)), "
        "array_send(array_agg(coalesce(e.device_tst_min, 'NaN')::float8)), "
        "array_send(array_agg(coalesce(cardinality(e.stages), 0))), "
        "string_agg(array_send(coalesce(e.stages, '{}'::smallint[])), ''::bytea) "
        f"FROM {_BATCH} JOIN raw.sleep_episodes e ON e.participant_id = p.participant_id "
        "AND e.start_ts >= to_timestamp(p.a - %(span)s) AND e.start_ts < to_timestamp(p.b) "
        "AND e.end_ts > to_timestamp(p.a)"), _params(ids, a, b, span=MAX_SPAN_S))
    kinds = ("int4", "int8", "int8", "int8", "int4", "bool", "float8", "int4")
    pidx, start, end, ingested, dev, in_bed, tst, n = (decode_array(x, k) for x, k in zip(blobs, kinds, strict=False))
    order = np.lexsort((dev, ingested, end, start, pidx))
    first = np.r_[True, (np.diff(pidx[order]) != 0) | (np.diff(start[order]) != 0) | (np.diff(end[order]) != 0)]
    first = first[:order.size]  # no episodes: nothing to take
    take = order[first]
    stages, offsets = _csr_take(decode_arrays(blobs[8], n, "int2"), n.astype(np.int64), take)
    return Episodes(pidx[take].astype(np.int64), start[take], end[take], in_bed[take].astype(np.bool_), tst[take],
                    stages.astype(np.int8), offsets)


def read_sleep_times(conn: Conn, ids: Sequence[uuid.UUID], a: I64, b: I64) -> tuple[I64, I64, I64]:
    """(participant, start, end) of the distinct sleep episodes ending in ``[a, b)``: no stages, for time awake."""
    cols = fetch_columns(conn, (
        "SELECT DISTINCT (p.idx - 1)::int4, (extract(epoch FROM e.start_ts))::int8, "
        f"(extract(epoch FROM e.end_ts))::int8 FROM {_BATCH} JOIN raw.sleep_episodes e "
        "ON e.participant_id = p.participant_id AND e.start_ts >= to_timestamp(p.a - %(span)s) "
        "AND e.start_ts < to_timestamp(p.b) AND e.end_ts >= to_timestamp(p.a) AND e.end_ts < to_timestamp(p.b)"),
        [("p", "int4"), ("s", "int8"), ("e", "int8")], _params(ids, a, b, span=MAX_SPAN_S))
    return cols["p"].astype(np.int64), cols["s"], cols["e"]


def read_duties(conn: Conn, ids: Sequence[uuid.UUID]) -> Duties:
    """Every duty of the batch (rosters are small: about one row a day), sorted by participant then start."""
    n = len(ids)
    cols = fetch_columns(conn, (
        "SELECT (p.idx - 1)::int4, (extract(epoch FROM d.start_ts))::int8, (extract(epoch FROM d.end_ts))::int8, "
        "(coalesce(array_position(%(names)s::text[], d.shift_type), %(other)s) - 1)::int2, d.overtime "
        f"FROM {_BATCH} JOIN core.duties d USING (participant_id)"),  # sorted below: no server sort
        [("p", "int4"), ("s", "int8"), ("e", "int8"), ("code", "int2"), ("overtime", "bool")],
        _params(ids, np.zeros(n, np.int64), np.zeros(n, np.int64), names=list(SHIFT_TYPES),
                other=SHIFT_TYPES.index("other") + 1))
    o = np.lexsort((cols["s"], cols["p"]))  # the kernels need participant-then-start order; do not trust SQL
    return Duties(cols["p"][o].astype(np.int64), cols["s"][o], cols["e"][o], cols["code"][o].astype(np.int8),
                  cols["overtime"][o])


def read_wear(conn: Conn, ids: Sequence[uuid.UUID], a: I64, b: I64, day0: I64, n_days: int, tz: str) -> F64:
    """Wear hours per participant x programme day from the extent of heart-rate runs starting in ``[a, b)``.

    A run's duration (first to last sample) is attributed to the local date of its start; runs are at most an
    hour long at 1 Hz, so the error at midnight is bounded by that. Durations are summed as integer ms (exact
    in any order). Days without any run are NaN (no wear signal).
    """
    cols = fetch_columns(conn, (
        "SELECT (p.idx - 1)::int4, ((timezone(%(tz)s, r.start_ts))::date - date '1970-01-01')::int4, "
        "sum((extract(epoch FROM r.end_ts - r.start_ts) * 1000)::int8)::int8 "
        f"FROM {_BATCH} JOIN raw.hr_runs r ON r.participant_id = p.participant_id "
        "AND r.start_ts >= to_timestamp(p.a) AND r.start_ts < to_timestamp(p.b) GROUP BY 1, 2"),
        [("p", "int4"), ("day", "int4"), ("ms", "int8")], _params(ids, a, b, tz=tz))
    idx = cols["p"].astype(np.int64)
    day = cols["day"] - day0[idx]
    ok = (day >= 0) & (day < n_days)
    cell = idx[ok] * n_days + day[ok]
    size = len(ids) * n_days
    ms = np.zeros(size)
    ms[cell] = cols["ms"][ok]  # one row per participant-day: integer ms summed on the server, exact
    seen = np.zeros(size, np.bool_)
    seen[cell] = True
    return np.where(seen, np.minimum(ms / 3_600_000.0, 24.0), np.nan).reshape(len(ids), n_days)


def _nights(ids: Sequence[uuid.UUID], night: I64, participant: I64, start: I64, end: I64) -> dict[str, object]:
    return {"ids": list(ids), "night": night.tolist(), "pidx": (participant + 1).tolist(), "s": start.tolist(),
            "e": end.tolist(), "span": MAX_SPAN_S}


# the participant of each night by array subscript, not by joining a second unnest: a join of two unnests is
# estimated at 100+ times its size and planned as a parallel sequential scan of the whole raw table
_NIGHTS = ("(SELECT n.night, q.ids[n.pidx] AS participant_id, n.s, n.e FROM (SELECT %(ids)s::uuid[] AS ids) q, "
           "unnest(%(night)s::int8[], %(pidx)s::int8[], %(s)s::int8[], %(e)s::int8[]) AS n(night, pidx, s, e)) n")


NIGHTS_PER_QUERY = 1000
"""Nights per aggregate read: bounds one blob row (1 Hz heart rate: ~170 kB a night) far below 1 GB."""


def _night_chunks(night: I64) -> list[slice]:
    return [slice(i, i + NIGHTS_PER_QUERY) for i in range(0, night.size, NIGHTS_PER_QUERY)]


@contextmanager
def _index_nested_loops(conn: Conn) -> Iterator[None]:
    """Plan the night reads as what they are, one index range scan per night. On a small database the
    planner over-estimates the runs per night (the look-back span) and hash-joins a parallel scan of the
    whole raw table for every 1,000 nights (measured: 3.5 s instead of 2.1 s for 60 officers x 120 nights)."""
    conn.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL enable_seqscan = off")
    try:
        yield
    finally:
        conn.execute("RESET enable_hashjoin; RESET enable_mergejoin; RESET enable_seqscan")


def read_night_hr(conn: Conn, ids: Sequence[uuid.UUID], night: I64, participant: I64, start: I64,
                  end: I64) -> NightSeries:
    """Minute-mean heart rate inside each main sleep ``[start, end)`` (epoch s), one series per night.

    The runs overlapping each night come back whole as ``array_send`` blobs; samples are cut to the night and
    averaged per minute here (``np.bincount`` on each night's minute grid; integer sums, exact in any order).
    """
    parts: list[tuple[I64, I64, npt.NDArray[np.int16]]] = []
    for sl in _night_chunks(night):
        with _index_nested_loops(conn):
            blobs = fetch_blobs(conn, (
                "SELECT array_send(array_agg(n.night)), array_send(array_agg(r.t0)), "
                "array_send(array_agg(cardinality(r.bpm))), string_agg(array_send(r.offsets_ms::int8[]), ''::bytea), "
                "string_agg(array_send(r.bpm), ''::bytea) FROM " + _NIGHTS + " CROSS JOIN LATERAL ("
                "SELECT (extract(epoch FROM h.start_ts) * 1000)::int8 AS t0, h.offsets_ms, h.bpm FROM raw.hr_runs h "
                "WHERE h.participant_id = n.participant_id AND h.start_ts >= to_timestamp(n.s - %(span)s) "
                "AND h.start_ts < to_timestamp(n.e) AND h.end_ts > to_timestamp(n.s)) r"),
                _nights(ids, night[sl], participant[sl], start[sl], end[sl]))
        n = decode_array(blobs[2], "int4").astype(np.int64)
        run_night = decode_array(blobs[0], "int8")
        t = np.repeat(decode_array(blobs[1], "int8"), n) + decode_arrays(blobs[3], n, "int8")
        nid = np.repeat(run_night, n)
        pos = np.searchsorted(night, nid)  # nights are sorted and unique
        keep = (t >= start[pos] * 1000) & (t < end[pos] * 1000)
        parts.append((pos[keep], t[keep] // 60_000, decode_arrays(blobs[4], n, "int2")[keep]))
    if not parts or sum(p[0].size for p in parts) == 0:
        return _empty()
    pos, minute, bpm = (np.concatenate([p[i] for p in parts]) for i in range(3))
    # one grid cell per minute of each night [start, end]: sums and counts by bincount, no sort
    m_lo, m_hi = start // 60, (end - 1) // 60
    offsets = np.concatenate(([0], np.cumsum(m_hi - m_lo + 1)))
    cell = offsets[pos] + (minute - m_lo[pos])
    count = np.bincount(cell, minlength=int(offsets[-1]))
    total = np.asarray(np.bincount(cell, weights=bpm.astype(np.float64), minlength=int(offsets[-1])), np.float64)
    return _minute_grid(night, m_lo, offsets, count, total)


def _minute_grid(night: I64, m_lo: I64, offsets: I64, count: I64, total: F64) -> NightSeries:
    """Per night, the minutes from its first to its last sample (CSR), mean bpm or NaN for empty minutes."""
    nz = np.flatnonzero(count)
    owner = np.searchsorted(offsets, nz, side="right") - 1
    head = np.r_[True, owner[1:] != owner[:-1]]
    tail = np.r_[owner[1:] != owner[:-1], True]
    first, last, has = nz[head], nz[tail], owner[head]
    length = last - first + 1
    k = np.arange(int(length.sum())) - np.repeat(np.cumsum(length) - length, length)
    cells = np.repeat(first, length) + k
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(count[cells] > 0, total[cells] / count[cells], np.nan)
    minutes = m_lo[np.repeat(has, length)] + (cells - offsets[np.repeat(has, length)])
    return NightSeries(night[has], values, minutes * 60_000, np.concatenate(([0], np.cumsum(length))).astype(np.int64))


def read_night_rr(conn: Conn, ids: Sequence[uuid.UUID], night: I64, participant: I64, start: I64,
                  end: I64) -> NightSeries:
    """RR intervals of the runs that start inside each main sleep, in time order, with beat end times (ms).

    Runs starting at the same instant on two devices count once (the first device by id).
    """
    parts: list[tuple[I64, I64, I64, npt.NDArray[np.int16]]] = []
    for sl in _night_chunks(night):
        with _index_nested_loops(conn):
            blobs = fetch_blobs(conn, (
                "SELECT array_send(array_agg(n.night)), array_send(array_agg(r.t0)), "
                "array_send(array_agg(cardinality(r.rr_ms))), string_agg(array_send(r.rr_ms), ''::bytea) "
                "FROM " + _NIGHTS + " CROSS JOIN LATERAL ("
                "SELECT DISTINCT ON (x.start_ts) (extract(epoch FROM x.start_ts) * 1000)::int8 AS t0, x.rr_ms "
                "FROM raw.rr_runs x WHERE x.participant_id = n.participant_id AND x.start_ts >= to_timestamp(n.s) "
                "AND x.start_ts < to_timestamp(n.e) ORDER BY x.start_ts, x.device_id) r"),
                _nights(ids, night[sl], participant[sl], start[sl], end[sl]))
        n = decode_array(blobs[2], "int4").astype(np.int64)
        parts.append((decode_array(blobs[0], "int8"), decode_array(blobs[1], "int8"), n,
                      decode_arrays(blobs[3], n, "int2")))
    if not parts or sum(p[0].size for p in parts) == 0:
        return _empty()
    run_night, t0, n = (np.concatenate([p[i] for p in parts]) for i in range(3))
    values = np.concatenate([p[3] for p in parts])
    order = np.lexsort((t0, run_night))  # per run, not per beat
    if not (order == np.arange(order.size)).all():
        values, _ = _csr_take(values, n, order)
        run_night, t0, n = run_night[order], t0[order], n[order]
    rr = values.astype(np.float64)
    csum = np.cumsum(rr)
    run_first = np.cumsum(n) - n  # index of each run's first beat
    before_run = np.concatenate(([0.0], csum))[run_first]  # sum of all beats before the run
    ends = np.repeat(t0, n) + (csum - np.repeat(before_run, n)).astype(np.int64)
    new_night = np.r_[True, run_night[1:] != run_night[:-1]]
    return NightSeries(run_night[new_night], rr, ends, np.r_[run_first[new_night], rr.size].astype(np.int64))


def _empty() -> NightSeries:
    return NightSeries(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), np.zeros(1, np.int64))


def read_stored(conn: Conn, ids: Sequence[uuid.UUID], day0: I64, n_days: int) -> Stored:
    """The stored daily rows and SRI pair state of the batch as (P, n_days) arrays (NaN / False where none)."""
    n = len(ids)
    fields = [("p", "int4"), ("d", "int4"), ("valid", "bool"), ("n_ep", "int2"), ("pm", "float8"), ("pv", "float8"),
              *[(c, "float8") for c in DAY_COLUMNS]]
    reals = ", ".join(f"coalesce(f.{c}, 'NaN')::float8" for c in DAY_COLUMNS)
    cols = fetch_columns(conn, (
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
