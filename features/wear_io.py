"""Reads the non-wear evidence of a batch of participants: heart-rate coverage and device statuses.

SQL does the set work (gaps-and-islands of ``raw.hr_runs`` over a window function, inner gaps of long runs,
statuses saying not worn or battery flat) so only islands and gaps cross the wire; :mod:`features.wear` turns
them into non-wear intervals. Participant ``i`` is the 0-based position of its id in ``ids``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg

from features.wear import FLAT_BATTERY_PCT, MIN_GAP_S, NonWear, hr_gaps, nonwear_intervals, status_marks

__all__ = ["read_nonwear"]

Conn = psycopg.Connection[Any]
_PIDX = "JOIN unnest(%(ids)s::uuid[]) WITH ORDINALITY AS p(participant_id, idx) USING (participant_id)"
_ISLANDS = f"""
WITH r AS (
    SELECT p.idx - 1 AS i, r.start_ts AS s, r.end_ts AS e,
           max(r.end_ts) OVER (PARTITION BY p.idx ORDER BY r.start_ts
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_e
    FROM raw.hr_runs r {_PIDX}),
g AS (
    SELECT i, s, e, sum((prev_e IS NULL OR s - prev_e >= make_interval(secs => %(gap)s))::int)
                    OVER (PARTITION BY i ORDER BY s) AS island
    FROM r)
SELECT i, floor(extract(epoch FROM min(s)))::int8, ceil(extract(epoch FROM max(e)))::int8
FROM g GROUP BY i, island"""
_INNER = f"""
SELECT p.idx - 1, floor(extract(epoch FROM r.start_ts) + u.o0 / 1000.0)::int8,
       ceil(extract(epoch FROM r.start_ts) + u.o / 1000.0)::int8
FROM raw.hr_runs r {_PIDX}
CROSS JOIN LATERAL (SELECT o, lag(o) OVER (ORDER BY k) AS o0
                    FROM unnest(r.offsets_ms) WITH ORDINALITY AS x(o, k)) u
WHERE r.end_ts - r.start_ts >= make_interval(secs => %(gap)s) AND u.o - u.o0 >= %(gap)s * 1000"""
_STATUS = f"""
SELECT p.idx - 1, extract(epoch FROM d.ts)::int8, d.worn::int, d.battery_pct
FROM raw.device_status d {_PIDX}
WHERE d.worn = false OR d.battery_pct <= %(flat)s"""


def read_nonwear(conn: Conn, ids: Sequence[uuid.UUID]) -> NonWear:
    """Non-wear intervals (UTC epoch s) of ``ids``: heart-rate gaps >= 60 min and not-worn / flat statuses."""
    params = {"ids": list(ids), "gap": MIN_GAP_S, "flat": FLAT_BATTERY_PCT}
    islands = conn.execute(_ISLANDS, params).fetchall()
    inner = conn.execute(_INNER, params).fetchall()
    status = conn.execute(_STATUS, params).fetchall()
    ip = np.array([r[0] for r in islands], np.int64)
    gaps = hr_gaps(ip, np.array([r[1] for r in islands], np.int64), np.array([r[2] for r in islands], np.int64),
                   len(ids))
    inner_gaps = NonWear(np.array([r[0] for r in inner], np.int64), np.array([r[1] for r in inner], np.int64),
                         np.array([r[2] for r in inner], np.int64))
    sp = np.array([r[0] for r in status], np.int64)
    st = np.array([r[1] for r in status], np.int64)
    worn = np.array([np.nan if r[2] is None else r[2] for r in status], np.float64)
    bat = np.array([np.nan if r[3] is None else r[3] for r in status], np.float64)
    return nonwear_intervals(gaps, inner_gaps, status_marks(sp, st, worn, bat))
