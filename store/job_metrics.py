"""Prometheus metrics of storage maintenance (``fatigue_db_*``): job health, runs, partitions dropped.

:func:`record` sets them from a :class:`store.maintenance.MaintenanceReport`;
:func:`store.maintenance.run_maintenance` records every run into the process-wide default registry
(:func:`default_metrics`) unless given other metrics, and that registry is what a ``/metrics`` endpoint of that process
exposes (``prometheus_client.generate_latest()`` or ``start_http_server``). Labels are job and table names,
never ids of people.

Alert on ``fatigue_db_maintenance_job_healthy == 0``: a policy job that is overdue, failing or paused (or, in
plain PostgreSQL mode, a retention run older than eight days).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

if TYPE_CHECKING:
    from store.maintenance import MaintenanceReport

__all__ = ["MaintenanceMetrics", "default_metrics", "record"]


@dataclass
class MaintenanceMetrics:
    """The gauges and counters, in their own registry unless one is given."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.healthy = Gauge("fatigue_db_maintenance_job_healthy", "1 when the job ran successfully within its "
                             "schedule, 0 when overdue, failing or paused", ["job", "target"], registry=r)
        self.last_success = Gauge("fatigue_db_maintenance_job_last_success_timestamp_seconds",
                                  "Latest successful finish of the job (0 if never)", ["job", "target"], registry=r)
        self.runs = Counter("fatigue_db_maintenance_job_runs", "Overdue policy jobs run by maintenance with "
                            "run_job, by outcome", ["job", "outcome"], registry=r)
        self.partitions_dropped = Counter("fatigue_db_partitions_dropped", "Monthly raw partitions dropped past "
                                          "retention (plain PostgreSQL mode)", registry=r)
        self.last_run = Gauge("fatigue_db_maintenance_last_run_timestamp_seconds", "End of the last maintenance "
                              "run", registry=r)


_DEFAULT: list[MaintenanceMetrics] = []


def default_metrics() -> MaintenanceMetrics:
    """The metrics registered once in prometheus_client's process-wide default registry."""
    if not _DEFAULT:
        _DEFAULT.append(MaintenanceMetrics(REGISTRY))
    return _DEFAULT[0]


def record(report: MaintenanceReport, metrics: MaintenanceMetrics | None = None) -> None:
    """Set the metrics from one maintenance run (default: :func:`default_metrics`)."""
    m = metrics or default_metrics()
    for h in report.health:
        m.healthy.labels(h.job, h.target).set(1 if h.healthy else 0)
        m.last_success.labels(h.job, h.target).set(h.last_success.timestamp() if h.last_success else 0)
    for run in report.jobs_run:
        m.runs.labels(run.job, "success" if run.succeeded else "failure").inc()
    m.partitions_dropped.inc(sum(d.partition is not None for d in report.dropped))
    m.last_run.set_to_current_time()
