"""Database I/O of the compliance job: incremental reads of the raw streams and the compliance tables.

Incremental rule: each run reads raw rows with ``ingested_at`` after the stored watermark minus
:data:`REREAD`, up to the database clock at the start of the run. Re-reading the last minutes catches rows of
ingest transactions that started before the previous run but committed after it; everything computed from
them is idempotent (latest times use ``greatest``, touched days are recomputed in full from the raw rows).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from compliance.report_section import ComplianceSection, section_from_days
from compliance.rules import ComplianceRules

__all__ = ["REREAD", "VIEW_COLUMNS", "day_range_samples", "read_section", "read_state_inputs", "read_view",
           "read_watermark", "touched_ranges", "update_device_state", "upsert_daily", "write_participant_state",
           "write_watermark"]

Conn = psycopg.Connection[Any]
#: How far before the watermark each run re-reads (longest ingest transaction we tolerate).
REREAD = timedelta(minutes=10)

_STREAM_MAX = """
WITH new AS (
    SELECT device_id, participant_id, 'hr' AS s, max(end_ts) AS t FROM raw.hr_runs
     WHERE ingested_at > %(since)s AND ingested_at <= %(until)s GROUP BY 1, 2
    UNION ALL SELECT device_id, participant_id, 'rr', max(end_ts) FROM raw.rr_runs
     WHERE ingested_at > %(since)s AND ingested_at <= %(until)s GROUP BY 1, 2
    UNION ALL SELECT device_id, participant_id, 'sleep', max(end_ts) FROM raw.sleep_episodes
     WHERE ingested_at > %(since)s AND ingested_at <= %(until)s GROUP BY 1, 2
    UNION ALL SELECT device_id, participant_id, 'status', max(ts) FROM raw.device_status
     WHERE ingested_at > %(since)s AND ingested_at <= %(until)s GROUP BY 1, 2
    UNION ALL SELECT device_id, participant_id, 'survey', max(ts) FROM raw.survey_answers
     WHERE ingested_at > %(since)s AND ingested_at <= %(until)s GROUP BY 1, 2
), per_device AS (
    SELECT device_id, (array_agg(participant_id ORDER BY t DESC) FILTER (WHERE participant_id IS NOT NULL))[1] AS pid,
           max(t) FILTER (WHERE s = 'hr') AS hr, max(t) FILTER (WHERE s = 'rr') AS rr,
           max(t) FILTER (WHERE s = 'sleep') AS sl, max(t) FILTER (WHERE s = 'status') AS st,
           max(t) FILTER (WHERE s = 'survey') AS su
    FROM new GROUP BY device_id
)
INSERT INTO compliance.device_state AS d (device_id, participant_id, last_hr_ts, last_rr_ts, last_sleep_ts,
                                          last_status_ts, last_survey_ts)
SELECT device_id, pid, hr, rr, sl, st, su FROM per_device
ON CONFLICT (device_id) DO UPDATE SET
    participant_id = coalesce(excluded.participant_id, d.participant_id),
    last_hr_ts = greatest(d.last_hr_ts, excluded.last_hr_ts),
    last_rr_ts = greatest(d.last_rr_ts, excluded.last_rr_ts),
    last_sleep_ts = greatest(d.last_sleep_ts, excluded.last_sleep_ts),
    last_status_ts = greatest(d.last_status_ts, excluded.last_status_ts),
    last_survey_ts = greatest(d.last_survey_ts, excluded.last_survey_ts),
    updated_at = now()
"""

# The latest status of each device: replaced only by a newer one (a late, older status changes nothing).
_LATEST_STATUS = """
UPDATE compliance.device_state d SET battery_pct = coalesce(s.battery_pct, d.battery_pct), worn = s.worn,
       online = s.online, updated_at = now()
FROM (SELECT DISTINCT ON (device_id) device_id, ts, battery_pct, worn, online FROM raw.device_status
      WHERE ingested_at > %(since)s AND ingested_at <= %(until)s ORDER BY device_id, ts DESC) s
WHERE d.device_id = s.device_id AND s.ts >= d.last_status_ts
"""

_GATEWAY = """
UPDATE compliance.device_state d SET gateway_id = l.gateway_id
FROM (SELECT DISTINCT ON (device_id) device_id, gateway_id FROM ingest.message_ledger
      WHERE received_at > %(since)s AND received_at <= %(until)s ORDER BY device_id, received_at DESC) l
WHERE d.device_id = l.device_id
"""

# Participant-day ranges touched by new rows (a "not worn" status also affects the next day).
_TOUCHED = """
SELECT participant_id, min(lo), max(hi) FROM (
    SELECT participant_id, timezone(%(tz)s, start_ts)::date AS lo, timezone(%(tz)s, end_ts)::date AS hi
      FROM raw.hr_runs WHERE ingested_at > %(since)s AND ingested_at <= %(until)s
    UNION ALL SELECT participant_id, timezone(%(tz)s, end_ts)::date, timezone(%(tz)s, end_ts)::date
      FROM raw.sleep_episodes WHERE ingested_at > %(since)s AND ingested_at <= %(until)s
    UNION ALL SELECT participant_id, timezone(%(tz)s, ts)::date, timezone(%(tz)s, ts)::date + 1
      FROM raw.device_status WHERE ingested_at > %(since)s AND ingested_at <= %(until)s
                               AND participant_id IS NOT NULL
) t GROUP BY participant_id
"""


def read_watermark(conn: Conn) -> tuple[datetime | None, datetime]:
    """(stored watermark or None, the database clock now)."""
    row = conn.execute("SELECT (SELECT ingested_through FROM compliance.watermark), clock_timestamp()").fetchone()
    assert row is not None
    return row[0], row[1]


def write_watermark(conn: Conn, until: datetime) -> None:
    """Store ``until`` as the watermark."""
    conn.execute("INSERT INTO compliance.watermark (ingested_through) VALUES (%s) ON CONFLICT (singleton) "
                 "DO UPDATE SET ingested_through = excluded.ingested_through, updated_at = now()", (until,))


def update_device_state(conn: Conn, since: datetime, until: datetime) -> None:
    """Fold new rows into the last message per stream, the latest status and the latest gateway per device."""
    params = {"since": since, "until": until}
    conn.execute(_STREAM_MAX, params)
    conn.execute(_LATEST_STATUS, params)
    conn.execute(_GATEWAY, params)


def touched_ranges(conn: Conn, since: datetime, until: datetime, tz: str) -> list[tuple[uuid.UUID, date, date]]:
    """``(participant, first day, last day)`` touched by rows ingested in ``(since, until]``."""
    rows = conn.execute(_TOUCHED, {"since": since, "until": until, "tz": tz}).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def day_range_samples(conn: Conn, ids: Sequence[uuid.UUID], lo: Sequence[datetime],
                      hi: Sequence[datetime]) -> dict[str, np.ndarray]:
    """Heart-rate samples, statuses and sleep-episode ends of participant ``i`` in ``[lo[i], hi[i])``.

    Returns arrays keyed ``hr_row, hr_run, hr_t`` (samples in run order), ``st_row, st_dev, st_t, st_worn``
    and ``sl_row, sl_t`` (row = index into ``ids``; times UTC epoch seconds).
    """
    args = (list(ids), list(lo), list(hi))
    span = ("FROM unnest(%s::uuid[], %s::timestamptz[], %s::timestamptz[]) WITH ORDINALITY AS w(pid, lo, hi, i) ")
    # One row per run; the offsets travel as one text each and are parsed by NumPy in one call (no row per
    # sample on the wire or in Python).
    hr = conn.execute(
        "SELECT w.i - 1, extract(epoch FROM r.start_ts)::float8, cardinality(r.offsets_ms), "
        "array_to_string(r.offsets_ms, ' ') " + span +
        "JOIN raw.hr_runs r ON r.participant_id = w.pid AND r.start_ts < w.hi AND r.end_ts >= w.lo "
        "ORDER BY r.device_id, r.start_ts", args).fetchall()
    st = conn.execute(
        "SELECT w.i - 1, dense_rank() OVER (ORDER BY s.device_id), extract(epoch FROM s.ts), "
        "CASE WHEN s.worn THEN 1 WHEN NOT s.worn THEN 0 ELSE -1 END " + span +
        "JOIN raw.device_status s ON s.participant_id = w.pid AND s.ts < w.hi AND s.ts >= w.lo - interval '1 day'",
        args).fetchall()
    sl = conn.execute(
        "SELECT w.i - 1, extract(epoch FROM e.end_ts) " + span +
        "JOIN raw.sleep_episodes e ON e.participant_id = w.pid AND e.end_ts < w.hi AND e.end_ts >= w.lo",
        args).fetchall()

    def col(rows: list[Any], k: int, dtype: Any) -> np.ndarray:
        return np.array([r[k] for r in rows], dtype=dtype)

    n = col(hr, 2, np.int64)
    offsets_ms = np.fromstring(" ".join(r[3] for r in hr), dtype=np.float64, sep=" ") if hr else np.zeros(0)
    run = np.repeat(np.arange(len(hr)), n)
    hr_t = col(hr, 1, np.float64)[run] + offsets_ms / 1000.0
    return {"hr_row": col(hr, 0, np.int64)[run], "hr_run": run, "hr_t": hr_t,
            "st_row": col(st, 0, np.int64), "st_dev": col(st, 1, np.int64), "st_t": col(st, 2, np.float64),
            "st_worn": col(st, 3, np.int8), "sl_row": col(sl, 0, np.int64), "sl_t": col(sl, 1, np.float64)}


def upsert_daily(conn: Conn, ids: Sequence[uuid.UUID], days: Sequence[date], wear_min: np.ndarray,
                 sleep_n: np.ndarray) -> int:
    """Replace ``compliance.daily`` rows of each (participant, day); ``wear_min`` NaN is stored as NULL (no
    wear signal). Rows with neither a wear signal nor sleep are deleted, so "no row" keeps meaning "no data"."""
    if not ids:
        return 0
    conn.execute(
        "DELETE FROM compliance.daily d USING unnest(%s::uuid[], %s::date[]) AS k(pid, day) "
        "WHERE d.participant_id = k.pid AND d.day = k.day", (list(ids), list(days)))
    keep = np.isfinite(wear_min) | (sleep_n > 0)
    with conn.cursor() as cur, cur.copy(
            "COPY compliance.daily (participant_id, day, wear_min, sleep_episodes) FROM STDIN") as copy:
        for i in np.flatnonzero(keep):
            wear = float(wear_min[i]) if np.isfinite(wear_min[i]) else None
            copy.write_row((ids[int(i)], days[int(i)], wear, int(sleep_n[i])))
    return int(keep.sum())


_INPUTS = """
SELECT p.participant_id, p.force_id, p.programme_start, a.device_id, a.valid_from,
       extract(epoch FROM greatest(d.last_hr_ts, d.last_rr_ts, d.last_sleep_ts, d.last_status_ts)),
       extract(epoch FROM d.last_hr_ts), d.battery_pct, d.worn, d.online, d.gateway_id,
       EXISTS (SELECT 1 FROM compliance.alert_episodes e WHERE e.participant_id = p.participant_id
               AND e.kind = 'battery' AND e.closed_at IS NULL)
FROM core.participants p
LEFT JOIN LATERAL (SELECT x.device_id, x.valid_from FROM core.device_assignments x
                   WHERE x.participant_id = p.participant_id AND x.valid_from <= %(now)s
                   ORDER BY (x.valid_to IS NULL OR x.valid_to > %(now)s) DESC, x.valid_from DESC LIMIT 1) a ON true
LEFT JOIN compliance.device_state d ON d.device_id = a.device_id
WHERE p.withdrawn_at IS NULL AND p.programme_start <= %(today)s
  AND p.programme_start + %(days)s > %(today)s
ORDER BY p.participant_id
"""


def read_state_inputs(conn: Conn, now: datetime, today: date, programme_days: int, window_days: int
                      ) -> tuple[list[tuple[Any, ...]], np.ndarray, np.ndarray]:
    """Participants in their programme now, with current device state, and their daily rows.

    Returns
    -------
    (rows, wear_min, sleep_n)
        ``rows`` as selected by ``_INPUTS``; matrices of shape (P, window_days) ending on ``today``
        (``wear_min`` NaN where there is no wear signal).
    """
    rows = conn.execute(_INPUTS, {"now": now, "today": today, "days": programme_days}).fetchall()
    P = len(rows)
    wear = np.full((P, window_days), np.nan)
    sleep = np.zeros((P, window_days), np.int64)
    if P:
        first = today - timedelta(days=window_days - 1)
        daily = conn.execute(
            "SELECT k.i - 1, d.day - %s, d.wear_min, d.sleep_episodes "
            "FROM unnest(%s::uuid[]) WITH ORDINALITY AS k(pid, i) "
            "JOIN compliance.daily d ON d.participant_id = k.pid AND d.day BETWEEN %s AND %s",
            (first, [r[0] for r in rows], first, today)).fetchall()
        if daily:
            idx = np.array([r[0] for r in daily], np.int64), np.array([r[1] for r in daily], np.int64)
            wear[idx] = [np.nan if r[2] is None else float(r[2]) for r in daily]
            sleep[idx] = [r[3] for r in daily]
    return rows, wear, sleep


def write_participant_state(conn: Conn, records: Sequence[tuple[Any, ...]]) -> None:
    """Replace ``compliance.participant_state`` with ``records`` (participants out of programme drop out)."""
    conn.execute("DELETE FROM compliance.participant_state")
    with conn.cursor() as cur, cur.copy(
            "COPY compliance.participant_state (participant_id, force_id, device_id, level, reasons, last_seen_ts, "
            "last_worn_ts, silent_h, battery_pct, worn, online, wear_h_today, wear_h_7d, nights_sleep_7d, "
            "valid_nights_7d, expected_nights_7d, days_since_valid_night, evaluated_at) FROM STDIN") as copy:
        for rec in records:
            copy.write_row(rec)


#: Columns of the compliance view (CLI table and CSV, admin API), in order.
VIEW_COLUMNS: tuple[str, ...] = (
    "force_id", "participant_id", "staff_ref", "device_id", "level", "reasons", "last_seen_ts", "silent_h",
    "last_worn_ts", "battery_pct", "worn", "online", "wear_h_today", "wear_h_7d", "nights_sleep_7d",
    "valid_nights_7d", "expected_nights_7d", "days_since_valid_night", "last_hr_ts", "last_rr_ts", "last_sleep_ts",
    "last_status_ts", "last_survey_ts", "gateway_id", "evaluated_at")

_VIEW = """
SELECT s.force_id, s.participant_id, CASE WHEN %(names)s THEN i.staff_ref END, s.device_id, s.level, s.reasons,
       s.last_seen_ts, s.silent_h, s.last_worn_ts, s.battery_pct, s.worn, s.online, s.wear_h_today, s.wear_h_7d,
       s.nights_sleep_7d, s.valid_nights_7d, s.expected_nights_7d, s.days_since_valid_night, d.last_hr_ts,
       d.last_rr_ts, d.last_sleep_ts, d.last_status_ts, d.last_survey_ts, d.gateway_id, s.evaluated_at
FROM compliance.participant_state s
LEFT JOIN core.identities i ON i.participant_id = s.participant_id AND %(names)s
LEFT JOIN compliance.device_state d ON d.device_id = s.device_id
WHERE (%(force)s::text IS NULL OR s.force_id = %(force)s)
  AND array_position(%(levels)s::text[], s.level) IS NOT NULL
ORDER BY array_position(ARRAY['lapsed', 'watch', 'ok'], s.level), s.force_id, s.silent_h DESC NULLS LAST,
         s.participant_id
LIMIT %(limit)s OFFSET %(offset)s
"""


def read_view(conn: Conn, *, force_id: str | None = None, names: bool = False,
              levels: Sequence[str] = ("ok", "watch", "lapsed"), limit: int = 100_000,
              offset: int = 0) -> list[dict[str, Any]]:
    """The latest evaluation, worst first; ``staff_ref`` is filled only with ``names`` (administrators)."""
    rows = conn.execute(_VIEW, {"names": names, "force": force_id, "levels": list(levels), "limit": limit,
                                "offset": offset}).fetchall()
    return [dict(zip(VIEW_COLUMNS, r, strict=True)) for r in rows]


_WEEK = """
SELECT p.participant_id, p.consent_manager, CASE WHEN p.consent_manager THEN i.staff_ref END,
       p.programme_start - %(lo)s, p.programme_start + %(days)s - %(lo)s
FROM core.participants p LEFT JOIN core.identities i ON i.participant_id = p.participant_id
WHERE p.force_id = %(force)s AND p.programme_start <= %(hi)s AND p.programme_start + %(days)s > %(lo)s
  AND (p.withdrawn_at IS NULL OR p.withdrawn_at::date > %(hi)s)
ORDER BY p.participant_id
"""



def read_section(conn: Conn, force_id: str, week_start: date, rules: ComplianceRules,
                 programme_days: int = 120) -> ComplianceSection | None:
    """The weekly report's compliance section of ``force_id`` for the week starting ``week_start`` (Monday).

    None when the compliance job has never run (no watermark): an absent computation must not read as
    "everybody lapsed". The staff reference of an officer who did not consent is never fetched.
    """
    if conn.execute("SELECT 1 FROM compliance.watermark").fetchone() is None:
        return None
    hi = week_start + timedelta(days=6)
    rows = conn.execute(_WEEK, {"force": force_id, "lo": week_start, "hi": hi, "days": programme_days}).fetchall()
    wear, sleep = np.full((len(rows), 7), np.nan), np.zeros((len(rows), 7), np.int64)
    daily = conn.execute(
        "SELECT k.i - 1, d.day - %s, d.wear_min, d.sleep_episodes FROM unnest(%s::uuid[]) WITH ORDINALITY "
        "AS k(pid, i) JOIN compliance.daily d ON d.participant_id = k.pid AND d.day BETWEEN %s AND %s",
        (week_start, [r[0] for r in rows], week_start, hi)).fetchall()
    if daily:
        idx = np.array([r[0] for r in daily], np.int64), np.array([r[1] for r in daily], np.int64)
        wear[idx] = [np.nan if r[2] is None else float(r[2]) for r in daily]
        sleep[idx] = [int(r[3]) for r in daily]
    return section_from_days(week_start, wear, sleep, np.array([r[3] for r in rows], np.int64),
                             np.array([r[4] for r in rows], np.int64), np.array([bool(r[1]) for r in rows], bool),
                             [r[2] for r in rows], rules)
