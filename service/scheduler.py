"""The scheduler of ``fatigue serve``: isolated jobs with back-off; only a lasting database outage is fatal.

Jobs, checked on every tick (every ``every_s`` seconds):

- **daily**: when ``ingest.dirty_days`` is not empty, the feature job and then the model job.
- **flags**: once a week, at a weekday and local time (default Monday 12:00 Europe/London), the flag job for
  every closed week. It is due when the latest slot has passed and no flag run (``risk.flag_runs``) started at
  or after it, so a scheduler that was down at the slot catches up at its first tick.
- **reports**: once the slot's flag run exists, every force gets its report for the last complete ISO week
  before the slot (:func:`risk.delivery.enqueue_reports`, idempotent), and every pending, due report channel
  is delivered (:func:`risk.delivery.deliver_due`). Due-ness comes from what was delivered, not from the flag
  run, so a failed or interrupted delivery is retried (with back-off per channel) until it succeeds or an
  operator cancels it (``fatigue deliveries``). Only the latest slot's week is queued: after an outage longer
  than a week, earlier weeks' reports are made by hand (``fatigue report --week W --force F``).
- **exports**: approved researcher export requests are fulfilled (:func:`exports.fulfil.fulfil_due`).

Isolation: an exception in one job is logged (job, error class, and the week for weekly jobs), counted in
``fatigue_scheduler_job_failures_total{job,error}`` and the job is retried after an exponential back-off
(``retry_base_s`` doubling up to ``retry_max_s``); the other jobs, the ingester and the API carry on. Failures
of one force's report are recorded on its delivery rows and never stop another force's. Only a database that
stays unreachable for ``db_fatal_after_s`` raises :class:`FatalError`, whose message says what to do.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import structlog
from prometheus_client import Counter

from exports.fulfil import FulfilConfig, fulfil_due
from features.job import run_features
from ingest.consumer import IngestConfig
from risk.delivery import DeliveryConfig, backoff_s, deliver_due, enqueue_reports, week_of
from risk.job import run_flags
from risk.programme import Programme, load_programme
from risk.publisher import MqttTarget
from service.settings import MetricsAddress
from store.job_metrics import maintain

__all__ = ["FatalError", "Scheduler", "ServeConfig", "WeeklySlot"]

log = structlog.get_logger("service.scheduler")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
JOB_FAILURES = Counter("fatigue_scheduler_job_failures", "Scheduler job runs that failed (retried with back-off)",
                       ("job", "error"))


class FatalError(RuntimeError):
    """The service cannot do its work; the message says what the operator should do."""


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
    exports_dir: Path = Path("var/exports")
    api_admin_database_url: str | None = None
    metrics_addr: MetricsAddress | None = None
    programme: str | None = None  # FATIGUE_PROGRAMME: a TOML file or a packaged version
    pseudonym_key: bytes | None = field(default=None, repr=False)
    key_version: int = 1
    retry_base_s: float = 60.0
    retry_max_s: float = 3600.0
    db_fatal_after_s: float = 900.0


@dataclass
class _JobState:
    failures: int = 0
    next_try: float = 0.0


def _connection_lost(exc: BaseException) -> bool:
    """True for errors that mean the database cannot be reached (not a bad query)."""
    if isinstance(exc, psycopg.InterfaceError):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate or ""
        return state == "" or state.startswith(("08", "57P"))
    return False


class Scheduler:
    """Feature and model jobs when new data has arrived; flags, reports and exports; each job isolated."""

    def __init__(self, config: ServeConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.tz = ZoneInfo(config.timezone)
        self.clock = clock
        self.fatal: str | None = None
        self._state: dict[str, _JobState] = {}
        self._db_down_since: float | None = None

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.config.database_url, autocommit=True, connect_timeout=10)

    def dirty(self) -> bool:
        """True when the ingester or a roster import marked days up to today to recompute (the feature job
        leaves marks of later days for their day, so they must not trigger a run every tick)."""
        with self._connect() as conn:
            row = conn.execute("SELECT EXISTS (SELECT 1 FROM ingest.dirty_days WHERE sleep_date <= "
                               "(now() AT TIME ZONE %s)::date)", (self.config.timezone,)).fetchone()
        return bool(row and row[0])

    def programme(self) -> Programme:
        """The force's programme (``FATIGUE_PROGRAMME``; default the packaged one): it drives every stage."""
        return load_programme(self.config.programme)

    def _last_flag_run(self) -> datetime | None:
        with self._connect() as conn:
            row = conn.execute("SELECT max(started_at) FROM risk.flag_runs").fetchone()
        return row[0] if row else None

    def weekly_due(self, now: datetime) -> bool:
        """The latest weekly slot has passed and no flag run started at or after it."""
        last = self._last_flag_run()
        return last is None or last < self.config.weekly.latest(now)

    def run_daily(self) -> None:
        """Features for participants with new data, then the fatigue model."""
        from features.params import FeatureParams
        from models.job import run_models  # written in parallel; imported late so the CLI loads without it

        programme = self.programme()
        feats = run_features(self.config.database_url, self.config.timezone, params=FeatureParams.of(programme))
        models = run_models(self.config.database_url, self.config.timezone, False,
                            warmup_days=programme.warmup_days)
        log.info("scheduler.features_and_models", participants=feats.participants, days=feats.days_written,
                 duties=models.duties)

    def run_weekly(self, today: date) -> None:
        """The weekly step: storage maintenance, then flags for every closed week as of ``today``.

        Each force's report follows through the outbox (:meth:`run_reports`), not here.
        """
        programme = self.programme()
        with self._connect() as conn:
            maintain(conn)  # partitions ahead + retention (plain); overdue TimescaleDB policy jobs; metrics
            summary = run_flags(conn, today, programme, tz=self.config.timezone)
        log.info("scheduler.flags", as_of=str(today), evaluated=summary.evaluated, issued=summary.issued,
                 revised=summary.revised)

    def run_reports(self, now: datetime) -> None:
        """Enqueue the slot's reports once its flag run exists, then deliver every due report channel."""
        cfg = DeliveryConfig(self.config.outbox_dir, self.programme(), self.config.mqtt_target,
                             self.config.smtp_url, self.config.retry_base_s, self.config.retry_max_s)
        slot = self.config.weekly.latest(now)
        last = self._last_flag_run()
        with self._connect() as conn:
            if last is not None and last >= slot:
                new = enqueue_reports(conn, week_of(slot), cfg.channels)
                if new:
                    log.info("scheduler.reports_due", week=week_of(slot), forces=new)
            tally = deliver_due(conn, cfg)
        if tally.delivered or tally.failed:
            log.info("scheduler.reports", delivered=tally.delivered, failed=len(tally.failed))

    def run_exports(self) -> None:
        """Fulfil approved export requests."""
        c = self.config
        tally = fulfil_due(FulfilConfig(c.database_url, c.exports_dir, c.pseudonym_key, c.key_version,
                                        retry_base_s=c.retry_base_s, retry_max_s=c.retry_max_s))
        if tally.done or tally.attached or tally.failed or tally.retrying:
            log.info("scheduler.exports", done=len(tally.done), attached=len(tally.attached),
                     failed=len(tally.failed), retrying=len(tally.retrying))

    def _jobs(self, now: datetime) -> list[tuple[str, Callable[[], bool], Callable[[], None]]]:
        return [("daily", self.dirty, self.run_daily),
                ("flags", lambda: self.weekly_due(now), lambda: self.run_weekly(now.date())),
                ("reports", lambda: True, lambda: self.run_reports(now)),
                ("exports", lambda: True, self.run_exports),
                ("compliance", lambda: True, lambda: self.run_compliance(now))]

    def run_compliance(self, now: datetime) -> None:
        """Compliance levels and alerts from the data that arrived since the last run (issue 21; every tick)."""
        from compliance.job import run_scheduled

        run_scheduled(self.config.database_url, self.config.timezone, now, self.config.mqtt_target,
                      self.config.outbox_dir, self.programme())

    def _failed(self, name: str, st: _JobState, exc: Exception, now: datetime) -> None:
        st.failures += 1
        wait = backoff_s(st.failures, min(self.config.retry_base_s, self.config.every_s), self.config.retry_max_s)
        st.next_try = self.clock() + wait
        JOB_FAILURES.labels(name, exc.__class__.__name__).inc()
        schema_behind = isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedColumn)
        todo = "run `fatigue db migrate`" if schema_behind else "see the error; the job is retried"
        log.error("scheduler.job_failed", job=name, week=week_of(self.config.weekly.latest(now)),
                  error=exc.__class__.__name__, sqlstate=getattr(exc, "sqlstate", None), attempt=st.failures,
                  retry_in_s=round(wait, 1), todo=todo)
        if not _connection_lost(exc):
            self._db_down_since = None
            return
        self._db_down_since = self._db_down_since or self.clock()
        down = self.clock() - self._db_down_since
        if down >= self.config.db_fatal_after_s:
            raise FatalError(f"the database has been unreachable for {down:.0f} s: check that PostgreSQL is "
                             "running and that FATIGUE_DATABASE_URL points at it, then start fatigue serve again")

    def tick(self, now: datetime | None = None) -> None:
        """One round of every job that is not backing off. Job errors are logged; only FatalError is raised."""
        now = now or datetime.now(self.tz)
        for name, due, job in self._jobs(now):
            st = self._state.setdefault(name, _JobState())
            if self.clock() < st.next_try:
                continue
            try:
                if due():
                    job()
            except Exception as exc:  # isolation: one job's failure never stops the others
                self._failed(name, st, exc, now)
                continue
            st.failures, st.next_try, self._db_down_since = 0, 0.0, None

    def run(self, stopping: threading.Event) -> None:
        """Tick every ``every_s`` seconds until ``stopping`` is set or a fatal condition (kept in :attr:`fatal`)."""
        while not stopping.is_set():
            try:
                self.tick()
            except FatalError as exc:
                self.fatal = str(exc)
                log.critical("scheduler.fatal", reason=self.fatal)
                return
            stopping.wait(self.config.every_s)
