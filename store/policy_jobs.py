"""TimescaleDB policy jobs (compression, retention): read their health, run the overdue ones with ``run_job``.

TimescaleDB runs its policies in background workers. When those fail (for example every job ends in
``cannot drop portal "" while it is being set up`` on PostgreSQL 15.20 with TimescaleDB 2.17-2.28), chunks
stay uncompressed and raw data outlives its retention, silently. :func:`run_overdue_jobs` closes that gap: it
reads each policy job's last success (TimescaleDB's ``timescaledb_information.job_stats`` and this service's
own ledger ``store.maintenance_runs``), runs every overdue job in the foreground with ``CALL run_job(id)``,
and records the outcome. ``fatigue db maintain`` and the scheduler's weekly maintenance call it.

A job is overdue (:func:`is_overdue`) when it is scheduled, not running now, and either never succeeded, or
last succeeded more than ``OVERDUE_FACTOR`` schedule intervals ago, or its last background run failed after
its last success. A paused job (``scheduled = false``) is reported unhealthy and left alone: somebody paused
it on purpose, and ``SELECT alter_job(id, scheduled => true)`` resumes it.

References
----------
TimescaleDB docs: ``timescaledb_information.jobs``, ``timescaledb_information.job_stats``, ``run_job``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg import sql

__all__ = ["OVERDUE_FACTOR", "POLICIES", "JobRun", "PolicyJob", "is_overdue", "policy_jobs", "run_overdue_jobs"]

#: A job is overdue when its last success is older than this many schedule intervals (plus the grace below).
OVERDUE_FACTOR = 1.5
#: The data policies checked. TimescaleDB's own jobs (ids below 1000: telemetry, job-history retention) are
#: not: telemetry fails on every offline server and says nothing about this service's data.
POLICIES = ("policy_compression", "policy_retention", "policy_refresh_continuous_aggregate", "policy_reorder")
#: Extra slack for a background worker that starts a little late (s).
GRACE = timedelta(minutes=10)
Conn = psycopg.Connection[tuple[object, ...]]

_JOBS_SQL = """
SELECT j.job_id, j.proc_name::text, coalesce(j.hypertable_schema || '.' || j.hypertable_name, ''), j.schedule_interval,
       j.scheduled, greatest(nullif(s.last_successful_finish, '-infinity'), m.last_ok),
       s.last_run_status::text, s.job_status::text,
       CASE WHEN s.last_run_status = 'Failed' THEN nullif(s.last_run_started_at, '-infinity') END
FROM timescaledb_information.jobs j
LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
LEFT JOIN (SELECT job_id, max(finished_at) AS last_ok FROM store.maintenance_runs
           WHERE succeeded AND job_id IS NOT NULL GROUP BY job_id) m ON m.job_id = j.job_id
WHERE j.job_id >= 1000 AND j.proc_name::text = ANY(%s)
ORDER BY j.job_id
"""


@dataclass(frozen=True)
class PolicyJob:
    """One TimescaleDB policy job as seen now.

    Attributes
    ----------
    job_id : int
        TimescaleDB job id.
    job : str
        Procedure name, e.g. ``policy_compression`` or ``policy_retention``.
    target : str
        The hypertable, ``schema.table``.
    schedule_interval : timedelta
        How often the background worker should run it.
    scheduled : bool
        False when paused.
    last_success : datetime or None
        Latest successful finish, by the background worker or by ``run_job`` from this service.
    last_status : str or None
        ``Success`` or ``Failed`` for the last background run; None if it never ran there.
    running : bool
        A run is in progress now.
    last_failure : datetime or None
        Start of the last background run when that run failed.
    """

    job_id: int
    job: str
    target: str
    schedule_interval: timedelta
    scheduled: bool
    last_success: datetime | None
    last_status: str | None
    running: bool
    last_failure: datetime | None


@dataclass(frozen=True)
class JobRun:
    """What one foreground ``run_job`` did: which job, whether it succeeded, how long it took (s), the error."""

    job_id: int
    job: str
    target: str
    succeeded: bool
    seconds: float
    error: str = ""


def is_overdue(job: PolicyJob, now: datetime) -> bool:
    """True when ``job`` should be run now (see the module docstring for the rule)."""
    if not job.scheduled or job.running:
        return False
    if job.last_success is None:
        return True
    if job.last_failure is not None and job.last_failure > job.last_success:
        return True
    return now - job.last_success > job.schedule_interval * OVERDUE_FACTOR + GRACE


def _timescaledb_mode(conn: Conn) -> bool:
    row = conn.execute("SELECT mode FROM store.storage_mode").fetchone()
    return row is not None and row[0] == "timescaledb"


def policy_jobs(conn: Conn) -> list[PolicyJob]:
    """Every TimescaleDB policy job with its health inputs; empty in plain PostgreSQL mode."""
    if not _timescaledb_mode(conn):
        return []
    rows = conn.execute(_JOBS_SQL, (list(POLICIES),)).fetchall()
    return [PolicyJob(int(str(r[0])), str(r[1]), str(r[2]), r[3], bool(r[4]), r[5], r[6],  # type: ignore[arg-type]
                      r[7] == "Running", r[8]) for r in rows]  # type: ignore[arg-type]


def _call_run_job(job_id: int) -> sql.Composed:
    """``CALL run_job(<id>)`` with the id inlined, so that psycopg sends it without parameters over the simple
    query protocol (as psql does): the policy procedures commit between chunks, which a procedure may only do
    when CALL runs in its own transaction, and the simple protocol keeps it out of the unnamed extended-protocol
    portal that the PostgreSQL 15.20 failure (``cannot drop portal ""``) is about."""
    return sql.SQL("CALL run_job({})").format(sql.Literal(int(job_id)))


def _record(conn: Conn, run: JobRun, started: datetime) -> None:
    conn.execute("INSERT INTO store.maintenance_runs (job, job_id, target, started_at, succeeded, detail) "
                 "VALUES (%s, %s, %s, %s, %s, %s)",
                 (run.job, run.job_id, run.target, started, run.succeeded, run.error[:500]))


def _run_one(conn: Conn, job: PolicyJob) -> JobRun:
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    started: datetime = row[0] if row else datetime.now().astimezone()  # type: ignore[assignment]
    t0 = time.perf_counter()
    try:
        conn.execute(_call_run_job(job.job_id))
        run = JobRun(job.job_id, job.job, job.target, True, time.perf_counter() - t0)
    except psycopg.OperationalError:
        raise  # the connection is gone: nothing can be recorded, the caller reports it
    except psycopg.Error as exc:
        run = JobRun(job.job_id, job.job, job.target, False, time.perf_counter() - t0,
                     f"{exc.__class__.__name__}: {exc}".strip())
    _record(conn, run, started)
    return run


def run_overdue_jobs(conn: Conn, now: datetime | None = None) -> list[JobRun]:
    """Run every overdue policy job once with ``CALL run_job`` and record each outcome.

    Parameters
    ----------
    conn : psycopg.Connection
        An autocommit connection (``run_job`` commits between chunks, so it cannot run in a transaction).
    now : datetime, optional
        The time to judge overdue against (default: the database's ``now()``).

    Returns
    -------
    list of JobRun
        One entry per job run, in job id order; empty in plain PostgreSQL mode or when nothing is overdue.
        A failed job is reported (and recorded in ``store.maintenance_runs``), not raised.
    """
    if not conn.autocommit:
        raise ValueError("run_overdue_jobs needs an autocommit connection (CALL run_job commits as it goes)")
    jobs = policy_jobs(conn)
    if now is None:
        row = conn.execute("SELECT now()").fetchone()
        now = row[0] if row else datetime.now().astimezone()  # type: ignore[assignment]
    assert now is not None
    return [_run_one(conn, job) for job in jobs if is_overdue(job, now)]
