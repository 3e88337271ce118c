"""Database reads and writes of the daily feature job (the only feature module besides `features.job` that
touches the database).

Reads return columnar NumPy arrays keyed by a participant *index* (the position of the participant in the
job's list), so the kernels never see UUIDs. Times are int64 epoch seconds UTC (milliseconds for beats).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import psycopg

__all__ = ["Cohort", "Duties", "Episodes", "NightSeries", "read_cohort", "read_duties", "read_episodes",
           "read_night_hr", "read_night_rr", "read_wear", "upsert"]

Conn = psycopg.Connection[tuple[object, ...]]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_PIDX = "JOIN unnest(%s::uuid[]) WITH ORDINALITY AS p(participant_id, idx) USING (participant_id)"


@dataclass(frozen=True)
class Cohort:
    """Participants of one run: ids, programme start (days since 1970-01-01) and withdrawal."""

    ids: list[uuid.UUID]
    day0: I64


@dataclass(frozen=True)
class Episodes:
    """Sleep episodes sorted by participant then start; stages as CSR (``offsets`` into ``stages``)."""

    participant: I64
    start: I64
    end: I64
    in_bed: npt.NDArray[np.bool_]
    device_tst_min: F64
    stages: npt.NDArray[np.int8]
    offsets: I64


@dataclass(frozen=True)
class Duties:
    participant: I64
    start: I64
    end: I64
    shift_type: npt.NDArray[np.str_]
    overtime: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class NightSeries:
    """Per-night concatenated samples (CSR by ``offsets``) for the nights listed in ``night``."""

    night: I64
    values: F64
    times_ms: I64
    offsets: I64


def read_cohort(conn: Conn, full: bool) -> Cohort:
    """Participants to recompute: all of them with ``full``, else those with dirty days."""
    where = "" if full else "WHERE participant_id IN (SELECT participant_id FROM ingest.dirty_days)"
    rows = conn.execute(f"SELECT participant_id, programme_start FROM core.participants {where} "
                        "ORDER BY participant_id").fetchall()
    epoch = date(1970, 1, 1)
    ids = [r[0] for r in rows]
    day0 = np.array([(r[1] - epoch).days for r in rows], dtype=np.int64)  # type: ignore[operator]
    return Cohort(ids, day0)  # type: ignore[arg-type]


def read_episodes(conn: Conn, ids: Sequence[uuid.UUID]) -> Episodes:
    """Sleep episodes, one per (participant, start, end): replays under other message ids count once."""
    rows = conn.execute(
        "SELECT DISTINCT ON (p.idx, e.start_ts, e.end_ts) p.idx - 1, extract(epoch FROM e.start_ts)::int8, "
        "extract(epoch FROM e.end_ts)::int8, e.in_bed, e.device_tst_min, e.stages "
        f"FROM raw.sleep_episodes e {_PIDX} ORDER BY p.idx, e.start_ts, e.end_ts, e.ingested_at",
        (list(ids),)).fetchall()
    stages = [np.asarray(r[5] if r[5] is not None else [], dtype=np.int8) for r in rows]
    lengths = np.array([s.size for s in stages], dtype=np.int64)
    return Episodes(
        participant=np.array([r[0] for r in rows], dtype=np.int64),
        start=np.array([r[1] for r in rows], dtype=np.int64),
        end=np.array([r[2] for r in rows], dtype=np.int64),
        in_bed=np.array([r[3] for r in rows], dtype=np.bool_),
        device_tst_min=np.array([np.nan if r[4] is None else r[4] for r in rows], dtype=np.float64),
        stages=np.concatenate(stages) if stages else np.zeros(0, np.int8),
        offsets=np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
    )


def read_duties(conn: Conn, ids: Sequence[uuid.UUID]) -> Duties:
    rows = conn.execute(
        "SELECT p.idx - 1, extract(epoch FROM d.start_ts)::int8, extract(epoch FROM d.end_ts)::int8, "
        f"d.shift_type, d.overtime FROM core.duties d {_PIDX} ORDER BY p.idx, d.start_ts", (list(ids),)).fetchall()
    return Duties(np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int64),
                  np.array([r[2] for r in rows], np.int64), np.array([r[3] for r in rows], dtype=np.str_),
                  np.array([r[4] for r in rows], np.bool_))


def read_wear(conn: Conn, ids: Sequence[uuid.UUID], day0: I64, n_days: int, tz: str) -> F64:
    """Wear hours per participant x programme day from the extent of heart-rate runs.

    A run's duration (first to last sample) is attributed to the local date of its start; runs are at most an
    hour long, so the error at midnight is bounded by that. Days without any run are NaN (no wear signal).
    """
    rows = conn.execute(
        "SELECT p.idx - 1, (timezone(%s, r.start_ts))::date - date '1970-01-01', "
        "sum(extract(epoch FROM r.end_ts - r.start_ts)) / 3600.0 "
        f"FROM raw.hr_runs r {_PIDX} GROUP BY 1, 2", (tz, list(ids))).fetchall()
    wear = np.full((len(ids), n_days), np.nan)
    if rows:
        idx = np.array([r[0] for r in rows], np.int64)
        day = np.array([r[1] for r in rows], np.int64) - day0[idx]
        hours = np.array([r[2] for r in rows], np.float64)
        ok = (day >= 0) & (day < n_days)
        wear[idx[ok], day[ok]] = np.minimum(hours[ok], 24.0)
    return wear


def _main_sleep_table(conn: Conn, night: I64, ids: Sequence[uuid.UUID], participant: I64, start: I64,
                      end: I64) -> None:
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS job_nights (night int8, participant_id uuid, s int8, e int8, "
                 "start_ts timestamptz, end_ts timestamptz) ON COMMIT DROP")
    conn.execute("TRUNCATE job_nights")
    with conn.cursor().copy("COPY job_nights (night, participant_id, s, e) FROM STDIN") as copy:
        for n, p, s, e in zip(night.tolist(), participant.tolist(), start.tolist(), end.tolist(), strict=True):
            copy.write_row((n, ids[p], s, e))
    conn.execute("UPDATE job_nights SET start_ts = to_timestamp(s), end_ts = to_timestamp(e)")


def read_night_hr(conn: Conn, ids: Sequence[uuid.UUID], night: I64, participant: I64, start: I64,
                  end: I64) -> NightSeries:
    """Minute-mean heart rate inside each main sleep ``[start, end)`` (epoch s), one series per night."""
    with conn.transaction():
        _main_sleep_table(conn, night, ids, participant, start, end)
        rows = conn.execute(
            "SELECT n.night, (extract(epoch FROM date_trunc('minute', r.start_ts + o * interval '1 ms')))::int8, "
            "avg(b)::float8 FROM job_nights n JOIN raw.hr_runs r ON r.participant_id = n.participant_id "
            "AND r.start_ts < n.end_ts AND r.end_ts > n.start_ts, unnest(r.offsets_ms, r.bpm) AS u(o, b) "
            "WHERE r.start_ts + o * interval '1 ms' >= n.start_ts AND r.start_ts + o * interval '1 ms' < n.end_ts "
            "GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    return _minute_series(rows)


def read_night_rr(conn: Conn, ids: Sequence[uuid.UUID], night: I64, participant: I64, start: I64,
                  end: I64) -> NightSeries:
    """RR intervals of the runs that start inside each main sleep, in time order, with beat end times."""
    with conn.transaction():
        _main_sleep_table(conn, night, ids, participant, start, end)
        rows = conn.execute(
            "SELECT DISTINCT ON (n.night, r.start_ts) n.night, (extract(epoch FROM r.start_ts) * 1000)::int8, "
            "r.rr_ms FROM job_nights n JOIN raw.rr_runs r ON r.participant_id = n.participant_id "
            "AND r.start_ts >= n.start_ts AND r.start_ts < n.end_ts ORDER BY n.night, r.start_ts").fetchall()
    nights = np.array([r[0] for r in rows], np.int64)
    rr = [np.asarray(r[2], np.float64) for r in rows]
    ends = [int(str(r[1])) + np.cumsum(x).astype(np.int64) for r, x in zip(rows, rr, strict=True)]
    return _csr(nights, rr, ends)


def _minute_series(rows: list[tuple[object, ...]]) -> NightSeries:
    """Rows (night, minute epoch s, mean bpm) -> per-night series on a full minute grid (CSR)."""
    if not rows:
        return NightSeries(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), np.zeros(1, np.int64))
    night = np.array([r[0] for r in rows], np.int64)
    t = np.array([r[1] for r in rows], np.int64)
    v = np.array([r[2] for r in rows], np.float64)
    # fill missing minutes with NaN so that rolling windows are windows of consecutive minutes
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


def _csr(nights: I64, parts: list[F64], ends: list[I64]) -> NightSeries:
    if not parts:
        return NightSeries(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), np.zeros(1, np.int64))
    ids, first = np.unique(nights, return_index=True)
    lengths = np.array([p.size for p in parts], np.int64)
    per_night = np.add.reduceat(lengths, first)
    return NightSeries(ids, np.concatenate(parts), np.concatenate(ends),
                       np.concatenate(([0], np.cumsum(per_night))).astype(np.int64))


def upsert(conn: Conn, table: str, key: tuple[str, ...], columns: Sequence[str], rows: list[tuple[object, ...]]) -> int:
    """Binary-free bulk upsert: COPY into a temporary table, then INSERT ... ON CONFLICT (key) DO UPDATE."""
    if not rows:
        return 0
    cols = ", ".join(columns)
    stage = "stage_" + table.replace(".", "_")
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP")
    conn.execute(f"TRUNCATE {stage}")
    with conn.cursor().copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
    cur = conn.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} "
                       f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}, computed_at = now()")
    return cur.rowcount
