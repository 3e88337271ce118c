"""The report outbox: every force's weekly report delivered once per channel, retried until it succeeds.

State lives in the database (``store/migrations/070_delivery_outbox.sql``):

- :func:`enqueue_reports` makes one ``risk.report_jobs`` row per force for the ISO week (its ``report_id`` is
  fixed there) and one ``risk.report_deliveries`` row per configured channel. It is idempotent, so it may run
  on every tick of every scheduler.
- :func:`deliver_due` claims one pending, due channel at a time with ``SELECT ... FOR UPDATE SKIP LOCKED`` and
  keeps that row lock for the whole delivery, in one transaction that also marks the row ``delivered``. A second
  scheduler skips a locked row, and sees ``delivered`` once the first commits: a delivered channel is never
  repeated, also after a restart. A failed channel gets ``attempts + 1``, its error class and a
  ``next_attempt_at`` with exponential back-off (:func:`backoff_s`); other forces and channels carry on.
- The ``outbox`` channel builds the report (under the fixed id), writes its folder and inserts the
  ``risk.reports`` row in the same transaction. ``mqtt`` and ``email`` wait for it and are built from the
  recorded report and its files, so every channel carries the same report.

The one window no protocol can close: if the process dies after the broker acknowledged the notice or the SMTP
server accepted the e-mail, but before the transaction committed, that channel is sent once more on restart,
with the same report id and the same ``Message-ID`` (``<report-<id>@fatigue>``), so receivers can recognise it.

An operator lists and cancels deliveries with ``fatigue deliveries`` (:func:`list_deliveries`,
:func:`cancel_deliveries`).
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import structlog
from prometheus_client import Counter

from risk.channels import CHANNELS
from risk.db import record_report, report_recipients
from risk.programme import Programme
from risk.publisher import (
    DeliveryError,
    MqttTarget,
    Notice,
    _sender,
    build_email,
    iso_week_bounds,
    publish_notice,
    render_report,
    send_email,
    write_outbox,
)

__all__ = ["CHANNELS", "Claim", "DeliveryConfig", "DeliveryTally", "backoff_s", "cancel_deliveries",
           "deliver_due", "enqueue_reports", "list_deliveries", "retry_deliveries", "week_of"]

log = structlog.get_logger("risk.delivery")
Conn = psycopg.Connection[Any]

DELIVERIES = Counter("fatigue_report_deliveries", "Report channel deliveries that succeeded", ("channel",))
DELIVERY_FAILURES = Counter("fatigue_report_delivery_failures",
                            "Report channel delivery attempts that failed (retried with back-off)",
                            ("channel", "error"))


@dataclass(frozen=True)
class DeliveryConfig:
    """Where and how reports are delivered, and how failed channels are retried."""

    outbox_dir: Path
    programme: Programme
    mqtt_target: MqttTarget | None = None
    smtp_url: str | None = None
    retry_base_s: float = 60.0
    retry_max_s: float = 3600.0

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels configured: always the outbox, MQTT and e-mail when their targets are set."""
        return ("outbox",) + (("mqtt",) if self.mqtt_target else ()) + (("email",) if self.smtp_url else ())


@dataclass(frozen=True)
class Claim:
    """A delivery row locked by this transaction."""

    report_id: str
    channel: str
    attempts: int
    force_id: str
    iso_week: str


@dataclass
class DeliveryTally:
    """What one :func:`deliver_due` call did."""

    delivered: dict[str, int] = field(default_factory=dict)
    failed: list[tuple[str, str, str, str]] = field(default_factory=list)  # force, week, channel, error class


def backoff_s(attempts: int, base_s: float, max_s: float) -> float:
    """Seconds to wait after the ``attempts``-th failure: ``base * 2**(attempts-1)``, at most ``max_s``."""
    return float(min(max_s, base_s * 2.0 ** max(0, min(attempts - 1, 30))))


def enqueue_reports(conn: Conn, iso_week: str, channels: tuple[str, ...]) -> int:
    """Make the report job of every force for ``iso_week`` (once) with one delivery row per channel.

    Returns the number of new jobs. Idempotent: forces that already have the week's job are left alone.
    """
    with conn.transaction():
        row = conn.execute("""
            WITH new AS (
                INSERT INTO risk.report_jobs (force_id, iso_week)
                SELECT force_id, %(week)s FROM core.forces ORDER BY force_id
                ON CONFLICT (force_id, iso_week) DO NOTHING RETURNING report_id),
            rows AS (
                INSERT INTO risk.report_deliveries (report_id, channel)
                SELECT report_id, c FROM new CROSS JOIN unnest(%(channels)s::text[]) AS c RETURNING 1)
            SELECT (SELECT count(*) FROM new), (SELECT count(*) FROM rows)""",
                           {"week": iso_week, "channels": list(channels)}).fetchone()
    return int(row[0]) if row else 0


_CLAIM = """
SELECT d.report_id::text, d.channel, d.attempts, j.force_id, j.iso_week
FROM risk.report_deliveries d JOIN risk.report_jobs j USING (report_id)
WHERE d.state = 'pending' AND d.next_attempt_at <= now() AND NOT (d.report_id::text || ':' || d.channel = ANY(%(skip)s))
  AND (d.channel = 'outbox' OR EXISTS (SELECT 1 FROM risk.report_deliveries o WHERE o.report_id = d.report_id
                                       AND o.channel = 'outbox' AND o.state = 'delivered'))
ORDER BY d.channel <> 'outbox', d.next_attempt_at, j.force_id
LIMIT 1
FOR UPDATE OF d SKIP LOCKED
"""


def _recorded(conn: Conn, report_id: str) -> tuple[Any, ...] | None:
    with conn.transaction():
        conn.execute("SELECT set_config('fatigue.all_forces', 'on', true)")
        return conn.execute("SELECT html_path, csv_paths, created_at FROM risk.reports WHERE report_id = %s",
                            (report_id,)).fetchone()


def _set_report(conn: Conn, report_id: str, column: str, value: Any) -> None:
    with conn.transaction():
        conn.execute("SELECT set_config('fatigue.all_forces', 'on', true)")
        conn.execute(f"UPDATE risk.reports SET {column} = %s WHERE report_id = %s", (value, report_id))


def _outbox(conn: Conn, c: Claim, cfg: DeliveryConfig) -> str:
    """Build and write the report under its fixed id and record it (skipped when already recorded)."""
    if _recorded(conn, c.report_id) is not None:
        return "already recorded"
    report, html, csvs, n_week = render_report(conn, c.force_id, c.iso_week, c.report_id, cfg.programme)
    _folder, html_path, csv_paths = write_outbox(cfg.outbox_dir, report, html, csvs)
    week_start, week_end = iso_week_bounds(c.iso_week)
    record_report(conn, c.report_id, c.force_id, c.iso_week, week_start, week_end,
                  str(html_path.relative_to(cfg.outbox_dir)), [str(p.relative_to(cfg.outbox_dir)) for p in csv_paths],
                  n_week, False, 0)
    return f"{n_week} officers in the week"


def _mqtt(conn: Conn, c: Claim, cfg: DeliveryConfig) -> str:
    row = _recorded(conn, c.report_id)
    assert row is not None and cfg.mqtt_target is not None
    if not publish_notice(cfg.mqtt_target, Notice(c.report_id, c.force_id, c.iso_week, row[2])):
        raise DeliveryError("the broker did not acknowledge the notice in time")
    _set_report(conn, c.report_id, "notified_mqtt", True)
    return "notice acknowledged"


def _email(conn: Conn, c: Claim, cfg: DeliveryConfig) -> str:
    row = _recorded(conn, c.report_id)
    assert row is not None and cfg.smtp_url is not None
    recipients = report_recipients(conn, c.force_id)
    if not recipients:
        log.warning("delivery.no_recipients", force=c.force_id, week=c.iso_week,
                    todo="add addresses to risk.report_recipients to e-mail later reports")
        return "no recipients configured for the force"
    html = (cfg.outbox_dir / row[0]).read_text(encoding="utf-8")
    csvs = {Path(p).name: (cfg.outbox_dir / p).read_text(encoding="utf-8") for p in row[1]}
    send_email(cfg.smtp_url, build_email(_sender(cfg.smtp_url), recipients, c.report_id, c.force_id, c.iso_week,
                                         html, csvs))
    _set_report(conn, c.report_id, "emailed_to", len(recipients))
    return f"sent to {len(recipients)} recipients"


_CHANNEL_WORK: dict[str, Callable[[Conn, Claim, DeliveryConfig], str]] = {
    "outbox": _outbox, "mqtt": _mqtt, "email": _email}


def _error_text(exc: BaseException) -> str:
    """Error class and, for SMTP replies, the code only (a reply may quote addresses)."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.__class__.__name__} {exc.smtp_code}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "SMTPRecipientsRefused"
    if isinstance(exc, psycopg.Error):
        return f"{exc.__class__.__name__} {exc.sqlstate or ''}".strip()
    return exc.__class__.__name__


def _deliver_one(conn: Conn, cfg: DeliveryConfig, skip: list[str], tally: DeliveryTally) -> bool:
    """Claim, deliver and settle one due channel in one transaction; False when nothing is due."""
    with conn.transaction():
        row = conn.execute(_CLAIM, {"skip": skip}).fetchone()
        if row is None:
            return False
        c = Claim(str(row[0]), str(row[1]), int(row[2]), str(row[3]), str(row[4]))
        try:
            with conn.transaction():  # savepoint: a failed delivery leaves only its failure record
                detail = _CHANNEL_WORK[c.channel](conn, c, cfg)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise  # the database went away: the claim is void, the scheduler backs off
        except Exception as exc:  # any failure of one channel is recorded and retried
            error = _error_text(exc)
            wait = backoff_s(c.attempts + 1, cfg.retry_base_s, cfg.retry_max_s)
            conn.execute("UPDATE risk.report_deliveries SET attempts = attempts + 1, last_error = %s, "
                         "next_attempt_at = now() + make_interval(secs => %s), updated_at = now() "
                         "WHERE report_id = %s AND channel = %s", (error[:300], wait, c.report_id, c.channel))
            DELIVERY_FAILURES.labels(c.channel, exc.__class__.__name__).inc()
            tally.failed.append((c.force_id, c.iso_week, c.channel, error))
            skip.append(f"{c.report_id}:{c.channel}")
            log.warning("delivery.failed", force=c.force_id, week=c.iso_week, channel=c.channel, error=error,
                        attempt=c.attempts + 1, retry_in_s=round(wait, 1))
            return True
        conn.execute("UPDATE risk.report_deliveries SET state = 'delivered', attempts = attempts + 1, "
                     "delivered_at = now(), detail = %s, last_error = NULL, updated_at = now() "
                     "WHERE report_id = %s AND channel = %s", (detail[:300], c.report_id, c.channel))
    DELIVERIES.labels(c.channel).inc()
    tally.delivered[c.channel] = tally.delivered.get(c.channel, 0) + 1
    log.info("delivery.done", force=c.force_id, week=c.iso_week, channel=c.channel, detail=detail)
    return True


def deliver_due(conn: Conn, cfg: DeliveryConfig, limit: int = 10_000) -> DeliveryTally:
    """Deliver every pending channel that is due (outbox first), each in its own transaction.

    ``conn`` must be in autocommit mode (each delivery is one explicit transaction). A channel that fails is
    not tried again in the same call. Database connection errors propagate (nothing is half-recorded).
    """
    tally = DeliveryTally()
    skip: list[str] = []
    for _ in range(limit):
        if not _deliver_one(conn, cfg, skip, tally):
            break
    return tally


def list_deliveries(conn: Conn, *, state: str | None = None, force_id: str | None = None,
                    iso_week: str | None = None) -> list[dict[str, Any]]:
    """Delivery rows (newest week first) as dicts: force, week, report id, channel, state, attempts, errors."""
    rows = conn.execute("""
        SELECT j.force_id, j.iso_week, d.report_id::text, d.channel, d.state, d.attempts, d.last_error, d.detail,
               d.next_attempt_at, d.delivered_at
        FROM risk.report_deliveries d JOIN risk.report_jobs j USING (report_id)
        WHERE (%(state)s::text IS NULL OR d.state = %(state)s) AND (%(force)s::text IS NULL OR j.force_id = %(force)s)
          AND (%(week)s::text IS NULL OR j.iso_week = %(week)s)
        ORDER BY j.iso_week DESC, j.force_id, array_position(ARRAY['outbox', 'mqtt', 'email'], d.channel)""",
                        {"state": state, "force": force_id, "week": iso_week}).fetchall()
    keys = ("force_id", "iso_week", "report_id", "channel", "state", "attempts", "last_error", "detail",
            "next_attempt_at", "delivered_at")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def _pending_update(conn: Conn, set_sql: str, params: dict[str, Any]) -> int:
    cur = conn.execute(f"""
        UPDATE risk.report_deliveries d SET {set_sql}, updated_at = now()
        FROM risk.report_jobs j
        WHERE j.report_id = d.report_id AND d.state = 'pending' AND j.force_id = %(force)s
          AND j.iso_week = %(week)s AND (%(channel)s::text IS NULL OR d.channel = %(channel)s)""", params)
    return cur.rowcount


def cancel_deliveries(conn: Conn, force_id: str, iso_week: str, channel: str | None, operator: str) -> int:
    """Cancel the pending channels of one force's report (all channels when ``channel`` is None)."""
    return _pending_update(conn, "state = 'cancelled', cancelled_by = %(who)s",
                           {"force": force_id, "week": iso_week, "channel": channel, "who": operator})


def retry_deliveries(conn: Conn, force_id: str, iso_week: str, channel: str | None = None) -> int:
    """Make the pending channels of one force's report due now (skip the remaining back-off)."""
    return _pending_update(conn, "next_attempt_at = now()", {"force": force_id, "week": iso_week,
                                                             "channel": channel})


def week_of(now: datetime) -> str:
    """The ISO week before the one containing ``now`` (the last complete ISO week), e.g. ``2026-W11``."""
    year, week, _ = (now.date() - timedelta(days=7)).isocalendar()
    return f"{year}-W{week:02d}"

