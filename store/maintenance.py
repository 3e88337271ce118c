"""Storage maintenance, the same policy in both storage modes.

- Plain PostgreSQL (``partitioned`` mode): create the coming monthly partitions of every raw stream, and drop
  the monthly partitions that lie wholly past retention (``store.raw_retention``, 485 days; the same number
  is the hypertables' retention policy in TimescaleDB mode, see migration 090).
- TimescaleDB mode: chunks are created on demand and compression and retention are TimescaleDB policy jobs;
  maintenance runs the overdue ones itself (:mod:`store.policy_jobs`).

:func:`run_maintenance` does all of it and returns a :class:`MaintenanceReport`; ``fatigue db maintain`` calls it,
the scheduler's weekly maintenance calls it through :func:`store.job_metrics.maintain` (which also counts the
run in Prometheus metrics), and :func:`job_health` is what the live health metric shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from store.policy_jobs import JobRun, is_overdue, policy_jobs, run_overdue_jobs

__all__ = ["PLAIN_RETENTION_EVERY", "DroppedPartition", "JobHealth", "MaintenanceReport",
           "drop_expired_partitions", "ensure_future_partitions", "job_health", "maintenance_summary",
           "run_maintenance"]

#: Plain-mode retention is healthy when it last succeeded within this time (weekly maintenance plus a day).
PLAIN_RETENTION_EVERY = timedelta(days=8)
Conn = psycopg.Connection[tuple[object, ...]]


@dataclass(frozen=True)
class DroppedPartition:
    """A monthly partition dropped whole (``rows_deleted`` None), or rows removed from a DEFAULT partition."""

    parent: str
    partition: str | None
    rows_deleted: int | None


@dataclass(frozen=True)
class JobHealth:
    """One maintenance job's health: ``healthy`` is False when it is overdue, failing or paused."""

    job: str
    target: str
    healthy: bool
    last_success: datetime | None


@dataclass(frozen=True)
class MaintenanceReport:
    """What one maintenance run did.

    Attributes
    ----------
    mode : str
        ``timescaledb`` or ``partitioned``.
    partitions_created : int
        Monthly partitions created ahead (plain mode).
    dropped : tuple of DroppedPartition
        Partitions dropped past retention and DEFAULT rows removed (plain mode).
    jobs_run : tuple of JobRun
        Overdue TimescaleDB policy jobs run with ``run_job``.
    health : tuple of JobHealth
        Every job's health after this run.
    """

    mode: str
    partitions_created: int
    dropped: tuple[DroppedPartition, ...]
    jobs_run: tuple[JobRun, ...]
    health: tuple[JobHealth, ...]

    @property
    def ok(self) -> bool:
        """Every job ran successfully and is healthy now."""
        return all(r.succeeded for r in self.jobs_run) and all(h.healthy for h in self.health)


def _mode(conn: Conn) -> str:
    row = conn.execute("SELECT mode FROM store.storage_mode").fetchone()
    if row is None:
        raise LookupError("storage mode not decided; run `fatigue db migrate` first")
    return str(row[0])


def ensure_future_partitions(conn: Conn, months_ahead: int = 3) -> int | None:
    """Create the monthly partitions of every raw stream from last month to ``months_ahead`` months ahead.

    Returns the number of partitions created, or None when raw streams are TimescaleDB hypertables (chunks are
    created on demand there). Rows that had landed in a DEFAULT partition move into their new month.
    """
    if _mode(conn) != "partitioned":
        return None
    row = conn.execute(
        "SELECT coalesce(sum(store.ensure_partitions(table_name, (now() - interval '1 month')::date, "
        "(now() + make_interval(months => %s))::date)), 0) FROM store.timeseries_tables", (months_ahead,)).fetchone()
    return int(str(row[0])) if row else 0


def drop_expired_partitions(conn: Conn, now: datetime | None = None) -> tuple[DroppedPartition, ...] | None:
    """Drop the monthly partitions of every raw stream that lie wholly before ``now`` minus retention.

    Rows of a DEFAULT partition from such months are deleted too. The run is recorded in
    ``store.maintenance_runs`` (job ``drop_expired_partitions``). Returns None in TimescaleDB mode, where the
    retention policy jobs do this (see :func:`store.policy_jobs.run_overdue_jobs`).
    """
    if _mode(conn) != "partitioned":
        return None
    with conn.transaction():
        started = conn.execute("SELECT clock_timestamp()").fetchone()
        rows = conn.execute("SELECT parent, dropped, rows_deleted FROM store.drop_expired_partitions(coalesce(%s, "
                            "now()))", (now,)).fetchall()
        dropped = tuple(DroppedPartition(str(p), None if d is None else str(d), None if n is None else int(str(n)))
                        for p, d, n in rows)
        detail = f"{sum(d.partition is not None for d in dropped)} partition(s) dropped, " \
                 f"{sum(d.rows_deleted or 0 for d in dropped)} DEFAULT row(s) deleted"
        conn.execute("INSERT INTO store.maintenance_runs (job, started_at, succeeded, detail) "
                     "VALUES ('drop_expired_partitions', %s, true, %s)", (started[0] if started else None, detail))
    return dropped


def job_health(conn: Conn, now: datetime | None = None) -> tuple[JobHealth, ...]:
    """Health of every maintenance job: the TimescaleDB policy jobs, or plain-mode retention."""
    if now is None:
        row = conn.execute("SELECT now()").fetchone()
        now = row[0] if row else datetime.now().astimezone()  # type: ignore[assignment]
    assert now is not None
    if _mode(conn) == "timescaledb":
        return tuple(JobHealth(j.job, j.target, j.scheduled and not is_overdue(j, now), j.last_success)
                     for j in policy_jobs(conn))
    row = conn.execute("SELECT max(finished_at) FROM store.maintenance_runs "
                       "WHERE job = 'drop_expired_partitions' AND succeeded").fetchone()
    last: datetime | None = row[0] if row else None  # type: ignore[assignment]
    healthy = last is not None and now - last <= PLAIN_RETENTION_EVERY
    return (JobHealth("drop_expired_partitions", "raw.*", healthy, last),)


def run_maintenance(conn: Conn, months_ahead: int = 3, now: datetime | None = None) -> MaintenanceReport:
    """Everything maintenance does in this storage mode, then every job's health (see module docstring).

    Parameters
    ----------
    conn : psycopg.Connection
        An autocommit connection.
    months_ahead : int
        Plain mode: create partitions up to this many months ahead.
    now : datetime, optional
        Plain mode: the time retention counts back from (default the database's ``now()``); tests pass it.
    """
    mode = _mode(conn)
    if mode == "partitioned":
        created = ensure_future_partitions(conn, months_ahead) or 0
        dropped = drop_expired_partitions(conn, now) or ()
        report = MaintenanceReport(mode, created, dropped, (), job_health(conn, now))
    else:
        runs = tuple(run_overdue_jobs(conn))
        report = MaintenanceReport(mode, 0, (), runs, job_health(conn))
    return report


def maintenance_summary(report: MaintenanceReport) -> str:
    """Lines for a person: what maintenance did and each job's health."""
    lines = [f"storage mode: {report.mode}"]
    if report.mode == "partitioned":
        parts = [d.partition for d in report.dropped if d.partition]
        rows = sum(d.rows_deleted or 0 for d in report.dropped)
        lines.append(f"created {report.partitions_created} partition(s) ahead")
        lines.append(f"dropped {len(parts)} partition(s) past retention" + (f": {', '.join(parts)}" if parts else ""))
        if rows:
            lines.append(f"deleted {rows} row(s) past retention from DEFAULT partitions")
    else:
        lines.append(f"ran {len(report.jobs_run)} overdue policy job(s)" + (":" if report.jobs_run else ""))
        lines += [f"  job {r.job_id} {r.job} on {r.target}: " + (f"ok in {r.seconds:.1f} s" if r.succeeded
                  else f"FAILED: {r.error}") for r in report.jobs_run]
    for h in report.health:
        when = h.last_success.isoformat(timespec="seconds") if h.last_success else "never"
        state = "ok" if h.healthy else "UNHEALTHY (overdue, failing or paused)"
        lines.append(f"health: {h.job} {h.target}: {state}; last success {when}")
    return "\n".join(lines)
