"""Prometheus metrics of storage maintenance (``fatigue_db_*``).

Two kinds, so that health is never stale:

- :class:`JobHealthCollector`: each job's health, read from the database at every scrape
  (``fatigue_db_maintenance_job_healthy{job,target}`` 1/0, ``..._last_success_timestamp_seconds``, and
  ``fatigue_db_maintenance_health_up`` 0 when the database could not be read). Register it in the registry a
  ``/metrics`` endpoint serves: ``registry.register(JobHealthCollector(settings.database_url))``.
- :class:`MaintenanceMetrics`: what maintenance runs did (``fatigue_db_maintenance_job_runs_total{job,outcome}``,
  ``fatigue_db_partitions_dropped_total``, ``fatigue_db_maintenance_last_run_timestamp_seconds``), set by
  :func:`record`; :func:`maintain` (the scheduler's weekly maintenance step) runs
  :func:`store.maintenance.run_maintenance` and records it into the process-wide default registry
  (:func:`default_metrics`).

Alert on ``fatigue_db_maintenance_job_healthy == 0`` (a policy job overdue, failing or paused; in plain
PostgreSQL mode, retention not run for eight days) and on ``fatigue_db_maintenance_health_up == 0``. Labels are
job and table names, never ids of people.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from store.maintenance import JobHealth, MaintenanceReport, job_health, run_maintenance

__all__ = ["JobHealthCollector", "MaintenanceMetrics", "default_metrics", "maintain", "record"]


class JobHealthCollector(Collector):
    """Live job health: one short read-only query per scrape (see module docstring).

    Parameters
    ----------
    database_url : str
        Where to read job health.
    timeout_s : float
        Connect and statement timeout (s), so a slow database cannot hang a scrape.
    """

    def __init__(self, database_url: str, timeout_s: float = 5.0) -> None:
        self.database_url = database_url
        self.timeout_s = timeout_s

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (GaugeMetricFamily("fatigue_db_maintenance_job_healthy", "1 when the job ran successfully within "
                                  "its schedule, 0 when overdue, failing or paused", labels=["job", "target"]),
                GaugeMetricFamily("fatigue_db_maintenance_job_last_success_timestamp_seconds",
                                  "Latest successful finish of the job (0 if never)", labels=["job", "target"]),
                GaugeMetricFamily("fatigue_db_maintenance_health_up", "1 when job health could be read"))

    def describe(self) -> Iterable[Metric]:
        """The metric names without reading the database (registration must not query it)."""
        return self._families()

    def _read(self) -> tuple[JobHealth, ...]:
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=max(1, int(self.timeout_s))) as conn:
            conn.execute(f"SET statement_timeout = {int(self.timeout_s * 1000)}")
            return job_health(conn)

    def collect(self) -> Iterable[Metric]:
        """Read every job's health now; on failure only ``fatigue_db_maintenance_health_up 0``."""
        healthy, last, up = self._families()
        try:
            health = self._read()
        except (psycopg.Error, LookupError):
            up.add_metric([], 0)
            return (up,)
        for h in health:
            healthy.add_metric([h.job, h.target], 1 if h.healthy else 0)
            last.add_metric([h.job, h.target], h.last_success.timestamp() if h.last_success else 0)
        up.add_metric([], 1)
        return healthy, last, up


@dataclass
class MaintenanceMetrics:
    """Counters of what maintenance did, in their own registry unless one is given."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.runs = Counter("fatigue_db_maintenance_job_runs", "Overdue policy jobs run by maintenance with "
                            "run_job, by outcome", ["job", "outcome"], registry=r)
        self.partitions_dropped = Counter("fatigue_db_partitions_dropped", "Monthly raw partitions dropped past "
                                          "retention (plain PostgreSQL mode)", registry=r)
        self.last_run = Gauge("fatigue_db_maintenance_last_run_timestamp_seconds", "End of the last maintenance "
                              "run", registry=r)


_DEFAULT: list[MaintenanceMetrics] = []


def default_metrics() -> MaintenanceMetrics:
    """The counters registered once in prometheus_client's process-wide default registry."""
    if not _DEFAULT:
        _DEFAULT.append(MaintenanceMetrics(REGISTRY))
    return _DEFAULT[0]


def record(report: MaintenanceReport, metrics: MaintenanceMetrics | None = None) -> None:
    """Count one maintenance run (default: :func:`default_metrics`)."""
    m = metrics or default_metrics()
    for run in report.jobs_run:
        m.runs.labels(run.job, "success" if run.succeeded else "failure").inc()
    m.partitions_dropped.inc(sum(d.partition is not None for d in report.dropped))
    m.last_run.set_to_current_time()


def maintain(conn: psycopg.Connection[tuple[object, ...]], now: datetime | None = None,
             metrics: MaintenanceMetrics | None = None) -> MaintenanceReport:
    """:func:`store.maintenance.run_maintenance`, counted in ``metrics`` (default :func:`default_metrics`)."""
    report = run_maintenance(conn, now=now)
    record(report, metrics)
    return report
