"""Feature runs on several machines: each run claims participant ranges through the database.

``fatigue features --ranges K --run-label L`` on any number of machines (or several times on one): the
participant UUID space is cut into ``K`` equal ranges; a worker takes range ``r`` when it gets the session
advisory lock ``(hashtext('features:' || L), r)`` and the range is not marked done for ``L`` in
``derived.job_ranges`` (migration 121); it runs the feature job on the participants of that range only,
marks the range done and releases the lock. Ranges are visited from a per-worker starting point, so workers
that start together spread over different ranges. A worker that dies releases its locks with its session; its
unfinished range is taken by the next worker that reaches it. Use a new label for every run (e.g. the date
and hour): a label whose ranges are all done does nothing.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

import psycopg

from features.job import FeatureRunSummary, run_features
from features.params import DEFAULT_FEATURE_PARAMS, FeatureParams

__all__ = ["ClaimSummary", "id_range", "run_claimed"]

_SPACE = 1 << 128


@dataclass(frozen=True)
class ClaimSummary:
    """Ranges this worker processed and the summed feature-run summary."""

    ranges: tuple[int, ...]
    features: FeatureRunSummary


def id_range(range_no: int, n_ranges: int) -> tuple[uuid.UUID, uuid.UUID | None]:
    """``[lo, hi)`` participant UUIDs of range ``range_no`` of ``n_ranges`` (``hi`` None for the last)."""
    lo = uuid.UUID(int=-(-range_no * _SPACE // n_ranges))
    hi = None if range_no + 1 == n_ranges else uuid.UUID(int=-(-(range_no + 1) * _SPACE // n_ranges))
    return lo, hi


def _try_claim(conn: psycopg.Connection[tuple[object, ...]], label: str, r: int, n: int, me: str) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(hashtext('features:' || %s), %s)", (label, r)).fetchone()
    if not (row and row[0]):
        return False
    done = conn.execute("SELECT done_at IS NOT NULL FROM derived.job_ranges WHERE job = 'features' "
                        "AND run_label = %s AND range_no = %s", (label, r)).fetchone()
    if done and done[0]:
        conn.execute("SELECT pg_advisory_unlock(hashtext('features:' || %s), %s)", (label, r))
        return False
    conn.execute("INSERT INTO derived.job_ranges (job, run_label, range_no, n_ranges, claimed_by) "
                 "VALUES ('features', %s, %s, %s, %s) ON CONFLICT (job, run_label, range_no) DO UPDATE "
                 "SET claimed_by = EXCLUDED.claimed_by, claimed_at = now()", (label, r, n, me))
    return True


def run_claimed(database_url: str, tz: str, full: bool, n_ranges: int, run_label: str,
                memory_mb: float = 2000.0, params: FeatureParams = DEFAULT_FEATURE_PARAMS) -> ClaimSummary:
    """Claim and process ranges of run ``run_label`` until none is left; see the module docstring."""
    me = f"{socket.gethostname()}:{os.getpid()}"
    done: list[int] = []
    totals = [0, 0, 0, 0.0]
    with psycopg.connect(database_url, autocommit=True) as conn:
        first = uuid.uuid4().int % n_ranges
        for r in [(first + k) % n_ranges for k in range(n_ranges)]:
            if not _try_claim(conn, run_label, r, n_ranges, me):
                continue
            try:
                s = run_features(database_url, tz, full=full, memory_mb=memory_mb, id_range=id_range(r, n_ranges),
                                 params=params)
                conn.execute("UPDATE derived.job_ranges SET done_at = now(), participants = %s WHERE job = 'features' "
                             "AND run_label = %s AND range_no = %s", (s.participants, run_label, r))
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext('features:' || %s), %s)", (run_label, r))
            done.append(r)
            totals = [totals[0] + s.participants, totals[1] + s.days_written, totals[2] + s.duties_written,
                      totals[3] + s.seconds]
    return ClaimSummary(tuple(done), FeatureRunSummary(int(totals[0]), int(totals[1]), int(totals[2]),
                                                       float(totals[3])))
