"""Prometheus metrics and health probes of the long-running processes (ingester, scheduler, API).

Each part keeps its own registry (so tests run several side by side); a process serves the union of the
registries of the parts it runs, plus :class:`DatabaseCollector` (state read from the database at scrape time),
on ``FATIGUE_METRICS_ADDR`` with :class:`MetricsServer`, which also answers ``/healthz`` and ``/readyz``.
``fatigue serve`` serves the same union on the API's ``/metrics``. Metric names are listed, with the alert rules
that use them, in ``deploy/prometheus/README.md``; labels never carry ids or payload values.

Probes return ``None`` when healthy and a short reason otherwise:

- **liveness** (``/healthz``): the parts of this process are running (ingester thread alive, scheduler ticked
  within three intervals). A failing liveness probe means "restart me".
- **readiness** (``/readyz``): additionally the database answers and is migrated, and the ingester holds its
  MQTT subscription. A failing readiness probe means "do not count on me yet" (e.g. the broker is away).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from service.settings import MetricsAddress

__all__ = ["DatabaseCollector", "MetricsServer", "Probe", "SchedulerMetrics", "SubscriptionCollector", "Union",
           "database_probe", "probe_report", "ticking_probe"]

#: A probe: ``None`` when healthy, else a short reason a person can act on.
Probe = Callable[[], str | None]


class Union:
    """Several registries (or collectors) seen as one, for ``generate_latest``."""

    def __init__(self, parts: Iterable[Collector]) -> None:
        self.parts = list(parts)

    def collect(self) -> Iterator[Any]:
        """Every metric family of every part."""
        for part in self.parts:
            yield from part.collect()


@dataclass
class SchedulerMetrics:
    """``fatigue_scheduler_last_tick_timestamp_seconds``: when the scheduler last looked for work (liveness).

    Job failures are counted by the scheduler itself in the process-wide registry
    (``fatigue_scheduler_job_failures_total``), which every process serves too.
    """

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    last_tick_at: float = 0.0

    def __post_init__(self) -> None:
        r = self.registry
        self.last_tick = Gauge("fatigue_scheduler_last_tick_timestamp_seconds",
                               "Unix time of the scheduler's last check for work", registry=r)

    def ticked(self) -> None:
        """Record one scheduler round."""
        self.last_tick_at = time.time()
        self.last_tick.set(self.last_tick_at)


_STATE_SQL = (
    "SELECT (SELECT count(*) FROM ingest.dirty_days), "
    "(SELECT extract(epoch FROM min(marked_at)) FROM ingest.dirty_days), "
    "(SELECT extract(epoch FROM max(started_at)) FROM risk.flag_runs)")


class DatabaseCollector:
    """Gauges read from the database at scrape time (so any process, even a restarted one, reports them).

    ``fatigue_database_up`` (1/0), ``fatigue_dirty_days`` (participant-days waiting for the feature job),
    ``fatigue_dirty_days_oldest_timestamp_seconds`` and ``fatigue_flags_last_run_timestamp_seconds`` (the last
    weekly flag run, from ``risk.flag_runs``). Absent values are left out rather than reported as 0, so that
    missing data never looks like a fresh run.
    """

    def __init__(self, database_url: str, timeout_s: float = 3.0) -> None:
        self.database_url = database_url
        self.timeout_s = timeout_s

    def _read(self) -> tuple[Any, ...] | None:
        import psycopg

        try:
            with psycopg.connect(self.database_url, autocommit=True, connect_timeout=max(1, int(self.timeout_s)),
                                 options=f"-c statement_timeout={int(self.timeout_s * 1000)}") as conn:
                return conn.execute(_STATE_SQL).fetchone()
        except psycopg.Error:
            return None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One read, a handful of gauges."""
        row = self._read()
        yield GaugeMetricFamily("fatigue_database_up", "1 when the database answered the last scrape",
                                value=0 if row is None else 1)
        if row is None:
            return
        yield GaugeMetricFamily("fatigue_dirty_days", "Participant-days waiting for the feature job", value=row[0])
        for name, doc, value in (
                ("fatigue_dirty_days_oldest_timestamp_seconds", "When the oldest waiting day was marked", row[1]),
                ("fatigue_flags_last_run_timestamp_seconds", "Start of the last weekly flag run", row[2])):
            if value is not None:
                yield GaugeMetricFamily(name, doc, value=float(value))


class SubscriptionCollector:
    """``fatigue_ingest_subscribed``: 1 while the ingester is connected and subscribed to the broker."""

    def __init__(self, subscribed: Callable[[], bool]) -> None:
        self.subscribed = subscribed

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One gauge."""
        yield GaugeMetricFamily("fatigue_ingest_subscribed", "1 while connected and subscribed to the broker",
                                value=1 if self.subscribed() else 0)


def database_probe(database_url: str, timeout_s: float = 3.0) -> Probe:
    """Readiness: the database answers within ``timeout_s`` and the schema is migrated."""

    def probe() -> str | None:
        import psycopg

        try:
            with psycopg.connect(database_url, autocommit=True, connect_timeout=max(1, int(timeout_s))) as conn:
                row = conn.execute("SELECT to_regclass('core.participants') IS NOT NULL").fetchone()
        except psycopg.Error as exc:
            return f"database unreachable ({exc.__class__.__name__})"
        return None if row and row[0] else "database not migrated: run `fatigue db migrate`"

    return probe


def probe_report(probes: Mapping[str, Probe]) -> tuple[bool, dict[str, str]]:
    """Run every probe; ``(all ok, {name: "ok" or reason})``."""
    results = {}
    for name, probe in probes.items():
        try:
            results[name] = probe() or "ok"
        except Exception as exc:  # a probe that crashes is a failed probe, not a crashed server
            results[name] = f"probe failed ({exc.__class__.__name__})"
    return all(v == "ok" for v in results.values()), results


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on a background thread (stdlib HTTP server).

    Parameters
    ----------
    address : MetricsAddress
        Where to listen (port 0 picks a free port; see :attr:`port`).
    source : Collector
        What ``/metrics`` exposes (a registry or a :class:`Union`).
    live, ready : mapping of name to Probe
        Liveness and readiness probes (readiness also runs the liveness probes).
    """

    def __init__(self, address: MetricsAddress, source: Collector, live: Mapping[str, Probe] | None = None,
                 ready: Mapping[str, Probe] | None = None) -> None:
        live_probes = dict(live or {})
        ready_probes = {**live_probes, **(ready or {})}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(source))
                elif path in ("/healthz", "/readyz"):
                    ok, checks = probe_report(live_probes if path == "/healthz" else ready_probes)
                    body = {"status": "ok" if ok else "unavailable", "checks": checks}
                    self._send(200 if ok else 503, "application/json", json.dumps(body).encode())
                else:
                    self._send(404, "text/plain", b"not found: try /metrics, /healthz or /readyz\n")

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # scrapes every 15 s: not worth a log line
                return

        self._httpd = ThreadingHTTPServer((address.host, address.port), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()


def ticking_probe(last_tick: Callable[[], float], every_s: float, started: float | None = None) -> Probe:
    """Liveness of a loop: it ticked within ``3 * every_s`` (at least 60 s) of now, or of its start."""
    begun = time.time() if started is None else started
    grace = max(3 * every_s, 60.0)

    def probe() -> str | None:
        last = max(last_tick(), begun)
        late = time.time() - last
        return None if late <= grace else f"no tick for {late:.0f} s (expected every {every_s:.0f} s)"

    return probe
