"""``fatigue serve``: ingester, scheduler and API in one process (threads), or any subset of them.

- **ingester**: :class:`ingest.consumer.Ingester` on the shared subscription (as ``fatigue ingest``).
- **scheduler**: :class:`service.scheduler.Scheduler` -- features and models when data is dirty; weekly flags;
  the report outbox (every force's report, each channel retried until delivered); researchers' approved exports.
- **API**: uvicorn serving :func:`service.api.create_app` (report paths relative to the outbox folder, export
  files relative to the exports folder).

Supervision: no job failure stops another part (see :mod:`service.scheduler`). If the ingester or the scheduler
thread dies of an unexpected error it is restarted after a back-off (``fatigue_serve_part_restarts_total``).
The service stops on its own (exit 1, with a message saying what to do) only when it cannot do its work:

- the broker refuses the ingester's user name or password (checked before starting; fix ``FATIGUE_MQTT_URL``);
- the database stays unreachable for ``db_fatal_after_s`` (default 15 min);
- the API cannot serve (e.g. its port is taken).

SIGTERM or SIGINT stops every part cleanly (the ingester commits and acknowledges the batch in hand, uvicorn
finishes open requests, a running job finishes) and the process exits 0.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import REGISTRY, Counter
from prometheus_client.registry import Collector

from ingest.consumer import IngestConfig, Ingester
from service.metrics import (
    DatabaseCollector,
    MetricsServer,
    Probe,
    SchedulerMetrics,
    SubscriptionCollector,
    Union,
    database_probe,
    ticking_probe,
)
from service.scheduler import FatalError, Scheduler, ServeConfig, WeeklySlot
from store.job_metrics import JobHealthCollector

__all__ = ["FatalError", "Scheduler", "ServeConfig", "WeeklySlot", "broker_refusal", "serve"]

log = structlog.get_logger("service.serve")
PART_RESTARTS = Counter("fatigue_serve_part_restarts", "Parts of fatigue serve restarted after dying", ("part",))
_REFUSED = {134: "bad user name or password", 135: "not authorised"}


def broker_refusal(ingest: IngestConfig, timeout_s: float = 10.0) -> str | None:
    """Connect once with the ingester's credentials; the refusal reason if the broker rejects them, else None.

    An unreachable broker is not a refusal (the ingester keeps reconnecting); only CONNACK reason codes 134 (bad
    user name or password) and 135 (not authorised) are.
    """
    got: list[int] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{ingest.client_id[:40]}-probe-{uuid.uuid4().hex[:6]}",
                         protocol=mqtt.MQTTv5)
    if ingest.username:
        client.username_pw_set(ingest.username, ingest.password)
    if ingest.tls:
        client.tls_set()

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        got.append(int(reason.value))
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(ingest.mqtt_host, ingest.mqtt_port, keepalive=10)
    except OSError as exc:
        log.warning("serve.broker_unreachable", error=exc.__class__.__name__,
                    todo="the ingester keeps trying; check that the broker is running")
        return None
    client.loop_start()
    try:
        done.wait(timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
    return _REFUSED.get(got[0]) if got else None


class _ObservedScheduler(Scheduler):
    """The scheduler, recording each tick (``fatigue_scheduler_last_tick_timestamp_seconds``, liveness)."""

    def __init__(self, config: ServeConfig, metrics: SchedulerMetrics) -> None:
        super().__init__(config)
        self.metrics = metrics

    def tick(self, now: Any = None) -> None:
        self.metrics.ticked()
        super().tick(now)


class _CurrentIngester:
    """The ingester's metrics and subscription state, following restarts of the ingester part."""

    def __init__(self) -> None:
        self.current: Ingester | None = None

    def subscribed(self) -> bool:
        return self.current is not None and self.current.connected.is_set()

    def collect(self) -> Any:
        """The current ingester's metric families (none before it first starts)."""
        if self.current is not None:
            yield from self.current.metrics.registry.collect()


def _thread_probe(part: _Part) -> Probe:
    return lambda: None if part.thread is not None and part.thread.is_alive() else "stopped"


def _probes(config: ServeConfig, ingester: _CurrentIngester | None, scheduler: _ObservedScheduler | None,
            parts: list[_Part]) -> tuple[dict[str, Probe], dict[str, Probe]]:
    """Liveness (parts running) and readiness (database, broker subscription) probes of this process."""
    live: dict[str, Probe] = {f"{p.name}_thread": _thread_probe(p) for p in parts if p.name != "api"}
    ready: dict[str, Probe] = {"database": database_probe(config.database_url)}
    if scheduler is not None:
        live["scheduler_ticking"] = ticking_probe(lambda: scheduler.metrics.last_tick_at, config.every_s)
    if ingester is not None:
        ready["broker_subscription"] = lambda: None if ingester.subscribed() else (
            "not connected and subscribed to the broker; check FATIGUE_MQTT_URL and the broker")
    return live, ready


def _api_server(config: ServeConfig, metrics: Union, live: dict[str, Probe], ready: dict[str, Probe]) -> Any:
    import uvicorn

    from service.api import create_app

    app = create_app(config.database_url, config.outbox_dir, exports_dir=config.exports_dir,
                     admin_database_url=config.api_admin_database_url, metrics_sources=metrics.parts,
                     live_probes=live, ready_probes=ready)
    return uvicorn.Server(uvicorn.Config(app, host=config.api_host, port=config.api_port, access_log=False,
                                         log_level=config.log_level, server_header=False))


@dataclass
class _Part:
    """One supervised thread and how to make it again."""

    name: str
    make: Callable[[], threading.Thread]
    restartable: bool
    thread: threading.Thread | None = None
    restarts: int = 0
    restart_at: float | None = None
    stop: list[Callable[[], None]] = field(default_factory=list)

    def start(self) -> None:
        self.thread = self.make()
        self.thread.start()


def _parts(config: ServeConfig, stopping: threading.Event, scheduler: _ObservedScheduler | None,
           ingester: _CurrentIngester | None) -> list[_Part]:
    parts: list[_Part] = []
    if config.ingest is not None and ingester is not None:
        ingest = config.ingest

        def make_ingester() -> threading.Thread:
            ingester.current = Ingester(ingest)
            return threading.Thread(target=ingester.current.run, name="ingester")

        def stop_ingester() -> None:
            if ingester.current is not None:
                ingester.current.stop()

        parts.append(_Part("ingester", make_ingester, True, stop=[stop_ingester]))
    if scheduler is not None:
        parts.append(_Part("scheduler", lambda: threading.Thread(target=scheduler.run, args=(stopping,),
                                                                 name="scheduler"), True))
    return parts


def _metrics(config: ServeConfig, ingester: _CurrentIngester | None,
             scheduler: _ObservedScheduler | None) -> Union:
    """Every part's metrics as one (the process-wide registry holds the scheduler's and delivery counters)."""
    parts: list[Collector] = [REGISTRY, DatabaseCollector(config.database_url)]
    if ingester is not None:
        parts += [ingester, SubscriptionCollector(ingester.subscribed)]
    if scheduler is not None:
        parts += [scheduler.metrics.registry, JobHealthCollector(config.database_url)]
    return Union(parts)


def _supervise(parts: list[_Part], scheduler: Scheduler | None, stopping: threading.Event) -> str:
    """Watch the parts until SIGTERM/SIGINT ("") or a fatal condition (its message)."""
    while not stopping.wait(0.5):
        if scheduler is not None and scheduler.fatal:
            return scheduler.fatal
        for part in parts:
            assert part.thread is not None
            if part.thread.is_alive():
                continue
            if not part.restartable:
                return (f"the {part.name} stopped on its own (is its port taken or its address wrong? see the log "
                        "above): fix it and start fatigue serve again")
            now = time.monotonic()
            if part.restart_at is None:
                part.restart_at = now + min(60.0, 2.0 ** part.restarts)
                log.error("serve.part_died", part=part.name, restart_in_s=part.restart_at - now)
            elif now >= part.restart_at:
                part.restarts += 1
                part.restart_at = None
                PART_RESTARTS.labels(part.name).inc()
                part.start()
    return ""


def serve(config: ServeConfig, echo: Callable[[str], None] = print) -> int:
    """Run the configured parts until SIGTERM/SIGINT (returns 0) or a fatal condition (returns 1)."""
    if config.ingest is not None:
        refused = broker_refusal(config.ingest)
        if refused:
            echo(f"the MQTT broker refused the ingester's login ({refused}): check the user and password in "
                 "FATIGUE_MQTT_URL (and the broker's password file), then start fatigue serve again")
            return 1
    stopping = threading.Event()
    scheduler = _ObservedScheduler(config, SchedulerMetrics()) if config.scheduler else None
    ingester = _CurrentIngester() if config.ingest is not None else None
    parts = _parts(config, stopping, scheduler, ingester)
    metrics = _metrics(config, ingester, scheduler)
    live, ready = _probes(config, ingester, scheduler, parts)
    server = _api_server(config, metrics, live, ready) if config.api else None
    if server is not None:  # the separate metrics port shows the API's request metrics too
        metrics.parts.append(server.config.app.state.metrics_registry)
        parts.append(_Part("api", lambda: threading.Thread(target=server.run, name="api"), False))
    if not parts:
        echo("nothing to run: every part is switched off")
        return 0
    exporter = MetricsServer(config.metrics_addr, metrics, live, ready) if config.metrics_addr else None

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    for part in parts:
        part.start()
    echo(f"serving: {', '.join(p.name for p in parts)}"
         + (f" (API on {config.api_host}:{config.api_port})" if server else "") + "; stop with SIGTERM or Ctrl-C")
    fatal = _supervise(parts, scheduler, stopping)
    if fatal:
        log.critical("serve.fatal", reason=fatal)
    for part in parts:
        for stop in part.stop:
            stop()
    if server is not None:
        server.should_exit = True
    stopping.set()
    deadline = time.monotonic() + 60
    for part in parts:
        if part.thread is not None:
            part.thread.join(max(0.1, deadline - time.monotonic()))
    still = [p.name for p in parts if p.thread is not None and p.thread.is_alive()]
    if exporter is not None:
        exporter.close()
    echo("stopped" + (f": {fatal}" if fatal else "") + (f"; {', '.join(still)} did not stop in time" if still else ""))
    return 1 if fatal or still else 0
