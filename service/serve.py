"""``fatigue serve``: ingester, scheduler and API in one process (threads), or any subset of them.

- **ingester**: :class:`ingest.consumer.Ingester` on the shared subscription (as ``fatigue ingest``).
- **scheduler**: every ``every_s`` seconds, when ``ingest.dirty_days`` is not empty, the feature job and then
  the model job; once a week, at a weekday and local time (default Monday 12:00 Europe/London, when the previous
  programme week has closed), the flag job and each force's report for the last complete ISO week. A weekly
  run is due when the latest slot has passed and no flag run (``risk.flag_runs``) started at or after it, so a
  scheduler that was down at the slot catches up at its first tick, and a restart does not repeat it.
- **API**: uvicorn serving :func:`service.api.create_app`.

SIGTERM or SIGINT stops every part cleanly (the ingester commits and acknowledges the batch in hand, uvicorn
finishes open requests, a running job finishes) and the process exits 0. If a part dies on its own the others
are stopped and the process exits 1, so that the supervisor (Docker, systemd) restarts it.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import structlog

from features.job import run_features
from ingest.consumer import IngestConfig, Ingester
from risk.job import run_flags
from risk.programme import load_programme
from risk.publisher import MqttTarget, make_weekly_report
from store.maintenance import ensure_future_partitions

__all__ = ["Scheduler", "ServeConfig", "WeeklySlot", "serve"]

log = structlog.get_logger("service.serve")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class WeeklySlot:
    """A weekday and local wall-clock time, e.g. Monday 12:00."""

    weekday: int = 0
    hour: int = 12
    minute: int = 0

    @staticmethod
    def parse(text: str) -> WeeklySlot:
        """``"MON 12:00"`` -> WeeklySlot(0, 12, 0); ValueError names the expected form."""
        m = re.fullmatch(r"\s*([A-Za-z]{3})[A-Za-z]*\s+(\d{1,2}):(\d{2})\s*", text)
        if not m or m.group(1).lower() not in _DAYS or int(m.group(2)) > 23 or int(m.group(3)) > 59:
            raise ValueError(f"expected a weekday and time like 'MON 12:00', got {text!r}")
        return WeeklySlot(_DAYS.index(m.group(1).lower()), int(m.group(2)), int(m.group(3)))

    def latest(self, now: datetime) -> datetime:
        """The most recent slot at or before ``now`` (an aware datetime in the local zone)."""
        day = now.date() - timedelta(days=(now.weekday() - self.weekday) % 7)
        slot = datetime(day.year, day.month, day.day, self.hour, self.minute, tzinfo=now.tzinfo)
        return slot if slot <= now else slot - timedelta(days=7)


@dataclass(frozen=True)
class ServeConfig:
    """What ``fatigue serve`` runs, from the settings and the command options."""

    database_url: str
    timezone: str
    outbox_dir: Path
    ingest: IngestConfig | None = None
    scheduler: bool = True
    every_s: float = 300.0
    weekly: WeeklySlot = WeeklySlot()
    mqtt_target: MqttTarget | None = None
    smtp_url: str | None = None
    api: bool = True
    api_host: str = "0.0.0.0"
    api_port: int = 8000
    log_level: str = "info"


class Scheduler:
    """Feature and model jobs when new data has arrived; flags and reports once a week."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.tz = ZoneInfo(config.timezone)

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.config.database_url, autocommit=True, connect_timeout=10)

    def dirty(self) -> bool:
        """True when the ingester or a roster import marked days up to today to recompute (the feature job
        leaves marks of later days for their day, so they must not trigger a run every tick)."""
        with self._connect() as conn:
            row = conn.execute("SELECT EXISTS (SELECT 1 FROM ingest.dirty_days WHERE sleep_date <= "
                               "(now() AT TIME ZONE %s)::date)", (self.config.timezone,)).fetchone()
        return bool(row and row[0])

    def weekly_due(self, now: datetime) -> bool:
        """The latest weekly slot has passed and no flag run started at or after it."""
        slot = self.config.weekly.latest(now)
        with self._connect() as conn:
            row = conn.execute("SELECT max(started_at) FROM risk.flag_runs").fetchone()
        last = row[0] if row else None
        return last is None or last < slot

    def run_daily(self) -> None:
        """Features for participants with new data, then the fatigue model."""
        from models.job import run_models  # written in parallel; imported late so the CLI loads without it

        feats = run_features(self.config.database_url, self.config.timezone)
        models = run_models(self.config.database_url, self.config.timezone, False)
        log.info("scheduler.features_and_models", participants=feats.participants, days=feats.days_written,
                 duties=models.duties)

    def run_weekly(self, today: date) -> None:
        """Flags for every closed week as of ``today``, then each force's report for the last ISO week."""
        programme = load_programme(None)
        with self._connect() as conn:
            ensure_future_partitions(conn)  # plain PostgreSQL: next months' raw partitions exist in time
            summary = run_flags(conn, today, programme, tz=self.config.timezone)
            forces = [str(r[0]) for r in conn.execute("SELECT force_id FROM core.forces ORDER BY 1").fetchall()]
            year, week, _ = (today - timedelta(days=7)).isocalendar()
            for force in forces:
                make_weekly_report(conn, force, f"{year}-W{week:02d}", self.config.outbox_dir, programme,
                                   self.config.mqtt_target, self.config.smtp_url)
        log.info("scheduler.weekly", as_of=str(today), evaluated=summary.evaluated, issued=summary.issued,
                 revised=summary.revised, reports=len(forces))

    def tick(self, now: datetime | None = None) -> None:
        """One round: daily jobs if data is dirty, then the weekly job if due. Errors are logged, not raised."""
        now = now or datetime.now(self.tz)
        for name, due, job in (("daily", self.dirty, self.run_daily),
                               ("weekly", lambda: self.weekly_due(now), lambda: self.run_weekly(now.date()))):
            try:
                if due():
                    job()
            except (psycopg.Error, OSError) as exc:  # database or broker away: try again next tick
                log.warning("scheduler.job_failed", job=name, error=exc.__class__.__name__)

    def run(self, stopping: threading.Event) -> None:
        """Tick every ``every_s`` seconds until ``stopping`` is set."""
        while not stopping.is_set():
            self.tick()
            stopping.wait(self.config.every_s)


def _api_server(config: ServeConfig) -> Any:
    import uvicorn

    from service.api import create_app

    app = create_app(config.database_url, config.outbox_dir)
    return uvicorn.Server(uvicorn.Config(app, host=config.api_host, port=config.api_port, access_log=False,
                                         log_level=config.log_level, server_header=False))


def serve(config: ServeConfig, echo: Callable[[str], None] = print) -> int:
    """Run the configured parts until SIGTERM/SIGINT (returns 0) or until one of them dies (returns 1)."""
    stopping = threading.Event()
    threads: dict[str, threading.Thread] = {}
    ingester = Ingester(config.ingest) if config.ingest else None
    server = _api_server(config) if config.api else None
    if ingester is not None:
        threads["ingester"] = threading.Thread(target=ingester.run, name="ingester")
    if config.scheduler:
        threads["scheduler"] = threading.Thread(target=Scheduler(config).run, args=(stopping,), name="scheduler")
    if server is not None:
        threads["api"] = threading.Thread(target=server.run, name="api")
    if not threads:
        echo("nothing to run: every part is switched off")
        return 0

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    for thread in threads.values():
        thread.start()
    echo(f"serving: {', '.join(threads)}" + (f" (API on {config.api_host}:{config.api_port})" if server else "")
         + "; stop with SIGTERM or Ctrl-C")
    failed = ""
    while not stopping.wait(0.5):
        dead = [name for name, t in threads.items() if not t.is_alive()]
        if dead:
            failed = ", ".join(dead)
            log.error("serve.part_stopped", parts=failed)
            break
    if ingester is not None:
        ingester.stop()
    if server is not None:
        server.should_exit = True
    stopping.set()
    deadline = time.monotonic() + 60
    for thread in threads.values():
        thread.join(max(0.1, deadline - time.monotonic()))
    still = [name for name, t in threads.items() if t.is_alive()]
    echo("stopped" + (f"; {failed} had stopped on its own" if failed else "")
         + (f"; {', '.join(still)} did not stop in time" if still else ""))
    return 1 if failed or still else 0
