"""Channels of the weekly report: outbox folder, MQTT notice (QoS 1) and e-mail (smtplib).

- The **outbox** folder ``<outbox>/<force>/<iso week>/<report id>/`` holds ``report.html`` (inline SVG charts)
  and the CSV files; it is written to a temporary folder and renamed into place, so it is complete or absent.
- The **MQTT notice** carries only the report id, force, ISO week and time; never personal data.
- The **e-mail** is built from the outbox files: the HTML part shows the charts as PNG images attached inline
  by content id (``cid:``), because common mail clients do not render inline SVG; the CSVs are attachments. Its
  ``Message-ID`` is derived from the report id, so a resend after a crash is recognisably the same message.

:func:`make_weekly_report` is the one-shot form (``fatigue report``); ``fatigue serve`` delivers each channel
separately through :mod:`risk.delivery`, which retries failed channels.
"""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import ssl
import tempfile
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from compliance.db import read_section
from compliance.report_section import section_csv
from risk.charts import inline_png
from risk.db import read_report_flags, record_report, report_recipients
from risk.programme import Programme
from risk.report import Report, build_report, csv_files, render_html

__all__ = ["MqttTarget", "Notice", "ReportResult", "build_email", "iso_week_bounds", "make_weekly_report",
           "publish_notice", "render_report", "send_email", "write_outbox"]


@dataclass(frozen=True)
class MqttTarget:
    """Where to publish report notices."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False


@dataclass(frozen=True)
class Notice:
    """The MQTT notice of a report (no personal data)."""

    report_id: str
    force_id: str
    iso_week: str
    created_at: datetime


@dataclass(frozen=True)
class ReportResult:
    """What a report run produced."""

    report_id: str
    force_id: str
    iso_week: str
    folder: Path
    html_path: Path
    csv_paths: tuple[Path, ...]
    notified: bool
    emailed_to: int


class DeliveryError(RuntimeError):
    """A channel did not confirm delivery (e.g. the broker did not acknowledge the notice in time)."""


def iso_week_bounds(iso_week: str) -> tuple[date, date]:
    """``"2026-W11"`` -> (Monday, Sunday) of that ISO week; ValueError names the expected form."""
    try:
        year, week = iso_week.split("-W")
        monday = date.fromisocalendar(int(year), int(week), 1)
    except ValueError as exc:
        raise ValueError(f"week: expected an ISO week like 2026-W11, got {iso_week!r}") from exc
    return monday, monday + timedelta(days=6)


def render_report(conn: psycopg.Connection[Any], force_id: str, iso_week: str, report_id: str,
                  programme: Programme, now: datetime | None = None) -> tuple[Report, str, dict[str, str], int]:
    """Read the force's flags and build the report; returns it, its HTML, its CSVs and the officers in the week.

    A force with no flags (programme not started or ended, everyone withdrawn) gives a report with zero counts
    and "no data yet" charts, never an error.
    """
    week_start, week_end = iso_week_bounds(iso_week)
    flags = read_report_flags(conn, force_id, week_end)
    report = build_report(report_id, force_id, iso_week, week_start, week_end, flags, programme,
                          now or datetime.now().astimezone())
    n_week = int(((flags["week_end"] >= week_start) & (flags["week_end"] <= week_end)).sum()) if len(flags) else 0
    section = read_section(conn, force_id, week_start, programme.compliance, programme.days)  # issue 21
    csvs = {**csv_files(report), **(section_csv(section) if section else {})}
    return report, render_html(report, section), csvs, n_week


def write_outbox(outbox: Path, report: Report, html: str, csvs: dict[str, str]) -> tuple[Path, Path, list[Path]]:
    """Write ``report.html`` and the CSVs into ``outbox/<force>/<iso week>/<report id>/`` atomically.

    A folder of the same report id left by an interrupted earlier attempt is replaced.
    """
    final = outbox / report.force_id / report.iso_week / report.report_id
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    try:
        (tmp / "report.html").write_text(html, encoding="utf-8")
        for name, text in csvs.items():
            (tmp / name).write_text(text, encoding="utf-8")
        for f in tmp.iterdir():
            os.chmod(f, 0o640)
        os.chmod(tmp, 0o750)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final, final / "report.html", [final / n for n in csvs]


def publish_notice(target: MqttTarget, notice: Notice, timeout_s: float = 10.0) -> bool:
    """Publish the notice on ``fatigue/v1/reports/{force_id}`` with QoS 1; True once the broker acknowledged."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fatigue-report-{uuid.uuid4().hex[:8]}")
    if target.username:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set()
    payload = json.dumps({"report_id": notice.report_id, "force_id": notice.force_id,
                          "iso_week": notice.iso_week, "created_at": notice.created_at.isoformat()})
    client.connect(target.host, target.port, keepalive=30)
    client.loop_start()
    try:
        info = client.publish(f"fatigue/v1/reports/{notice.force_id}", payload, qos=1)
        info.wait_for_publish(timeout=timeout_s)
        return info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def _sender(smtp_url: str) -> str:
    return parse_qs(urlsplit(smtp_url).query).get("from", ["fatigue-reports@localhost"])[0]


def build_email(sender: str, recipients: list[str], report_id: str, force_id: str, iso_week: str, html: str,
                csvs: dict[str, str]) -> EmailMessage:
    """The e-mail of a report: text part, HTML part with PNG charts inline (``cid:``), CSV attachments."""
    msg = EmailMessage()
    msg["Subject"] = f"Weekly fatigue report {force_id} {iso_week}"
    msg["From"], msg["To"] = sender, ", ".join(recipients)
    msg["Message-ID"] = f"<report-{report_id}@fatigue>"
    msg.set_content(f"Weekly fatigue report {report_id} for {force_id}, {iso_week}. "
                    "Open the HTML part or the attached CSV files.")
    mail_html, images = inline_png(html)
    msg.add_alternative(mail_html, subtype="html")
    html_part = msg.get_body(preferencelist=("html",))
    assert isinstance(html_part, EmailMessage)
    for image in images:
        html_part.add_related(image.png, maintype="image", subtype="png", cid=f"<{image.content_id}>",
                              disposition="inline", filename=image.content_id.split("@")[0] + ".png")
    for name, text in csvs.items():
        msg.add_attachment(text.encode("utf-8"), maintype="text", subtype="csv", filename=name)
    return msg


def send_email(smtp_url: str, msg: EmailMessage) -> None:
    """Send ``msg`` through ``smtp://[user:pass@]host:port?from=ADDR``.

    ``smtps://`` uses implicit TLS; ``?starttls=1`` upgrades a plain connection. Raises ``smtplib.SMTPException``
    or ``OSError`` when the server refuses or cannot be reached.
    """
    url = urlsplit(smtp_url)
    query = parse_qs(url.query)
    smtp_cls: Any = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
    with smtp_cls(url.hostname or "localhost", url.port or (465 if url.scheme == "smtps" else 25),
                  timeout=30) as smtp:
        if query.get("starttls", ["0"])[0] in ("1", "true"):
            smtp.starttls(context=ssl.create_default_context())
        if url.username:
            smtp.login(unquote(url.username), unquote(url.password or ""))
        smtp.send_message(msg)


def make_weekly_report(conn: psycopg.Connection[Any], force_id: str, iso_week: str, outbox: Path,
                       programme: Programme, mqtt_target: MqttTarget | None = None,
                       smtp_url: str | None = None, now: datetime | None = None) -> ReportResult:
    """Build, write, announce and (optionally) e-mail one force's weekly report; record it in risk.reports.

    One attempt, no retry (``fatigue serve`` retries through :mod:`risk.delivery`).
    """
    report, html, csvs, n_week = render_report(conn, force_id, iso_week, str(uuid.uuid4()), programme, now)
    folder, html_path, csv_paths = write_outbox(outbox, report, html, csvs)
    notice = Notice(report.report_id, force_id, iso_week, report.generated_at)
    notified = publish_notice(mqtt_target, notice) if mqtt_target else False
    recipients = report_recipients(conn, force_id) if smtp_url else []
    if smtp_url and recipients:
        send_email(smtp_url, build_email(_sender(smtp_url), recipients, report.report_id, force_id, iso_week, html,
                                         csvs))
    week_start, week_end = iso_week_bounds(iso_week)
    record_report(conn, report.report_id, force_id, iso_week, week_start, week_end,
                  str(html_path.relative_to(outbox)), [str(p.relative_to(outbox)) for p in csv_paths], n_week,
                  notified, len(recipients))
    return ReportResult(report.report_id, force_id, iso_week, folder, html_path, tuple(csv_paths), notified,
                        len(recipients))


__all__ += ["DeliveryError"]
