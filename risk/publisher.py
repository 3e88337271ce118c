"""Delivery of the weekly report: outbox folder, MQTT notice (QoS 1) and optional e-mail (smtplib).

The MQTT notice carries only the report id, force, ISO week and time; never personal data.
"""

from __future__ import annotations

import json
import os
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
from risk.db import read_report_flags, record_report, report_recipients
from risk.programme import Programme
from risk.report import Report, build_report, csv_files, render_html

__all__ = ["MqttTarget", "ReportResult", "iso_week_bounds", "make_weekly_report", "publish_notice",
           "send_email", "write_outbox"]


@dataclass(frozen=True)
class MqttTarget:
    """Where to publish report notices."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False


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


def iso_week_bounds(iso_week: str) -> tuple[date, date]:
    """``"2026-W11"`` -> (Monday, Sunday) of that ISO week; ValueError names the expected form."""
    try:
        year, week = iso_week.split("-W")
        monday = date.fromisocalendar(int(year), int(week), 1)
    except ValueError as exc:
        raise ValueError(f"week: expected an ISO week like 2026-W11, got {iso_week!r}") from exc
    return monday, monday + timedelta(days=6)


def write_outbox(outbox: Path, report: Report, html: str, csvs: dict[str, str]) -> tuple[Path, Path, list[Path]]:
    """Write ``report.html`` and the CSVs into ``outbox/<force>/<iso week>/<report id>/`` atomically."""
    final = outbox / report.force_id / report.iso_week / report.report_id
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    (tmp / "report.html").write_text(html, encoding="utf-8")
    for name, text in csvs.items():
        (tmp / name).write_text(text, encoding="utf-8")
    for f in tmp.iterdir():
        os.chmod(f, 0o640)
    os.chmod(tmp, 0o750)
    tmp.rename(final)
    return final, final / "report.html", [final / n for n in csvs]


def publish_notice(target: MqttTarget, report: Report, timeout_s: float = 10.0) -> bool:
    """Publish the notice on ``fatigue/v1/reports/{force_id}`` with QoS 1; True once the broker acknowledged."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fatigue-report-{uuid.uuid4().hex[:8]}")
    if target.username:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set()
    payload = json.dumps({"report_id": report.report_id, "force_id": report.force_id,
                          "iso_week": report.iso_week, "created_at": report.generated_at.isoformat()})
    client.connect(target.host, target.port, keepalive=30)
    client.loop_start()
    try:
        info = client.publish(f"fatigue/v1/reports/{report.force_id}", payload, qos=1)
        info.wait_for_publish(timeout=timeout_s)
        return info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def send_email(smtp_url: str, recipients: list[str], report: Report, html: str, csvs: dict[str, str]) -> int:
    """E-mail the report (HTML body plus CSV attachments) through ``smtp://[user:pass@]host:port?from=ADDR``.

    ``smtps://`` uses implicit TLS; ``?starttls=1`` upgrades a plain connection. Returns the recipient count.
    """
    if not recipients:
        return 0
    url = urlsplit(smtp_url)
    query = parse_qs(url.query)
    sender = query.get("from", ["fatigue-reports@localhost"])[0]
    msg = EmailMessage()
    msg["Subject"] = f"Weekly fatigue report {report.force_id} {report.iso_week}"
    msg["From"], msg["To"] = sender, ", ".join(recipients)
    msg.set_content(f"Weekly fatigue report {report.report_id} for {report.force_id}, {report.iso_week}. "
                    "Open the HTML part or the attached CSV files.")
    msg.add_alternative(html, subtype="html")
    for name, text in csvs.items():
        msg.add_attachment(text.encode("utf-8"), maintype="text", subtype="csv", filename=name)
    smtp_cls: Any = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
    with smtp_cls(url.hostname or "localhost", url.port or (465 if url.scheme == "smtps" else 25),
                  timeout=30) as smtp:
        if query.get("starttls", ["0"])[0] in ("1", "true"):
            smtp.starttls(context=ssl.create_default_context())
        if url.username:
            smtp.login(unquote(url.username), unquote(url.password or ""))
        smtp.send_message(msg)
    return len(recipients)


def make_weekly_report(conn: psycopg.Connection[Any], force_id: str, iso_week: str, outbox: Path,
                       programme: Programme, mqtt_target: MqttTarget | None = None,
                       smtp_url: str | None = None, now: datetime | None = None) -> ReportResult:
    """Build, write, announce and (optionally) e-mail one force's weekly report; record it in risk.reports."""
    week_start, week_end = iso_week_bounds(iso_week)
    flags = read_report_flags(conn, force_id, week_end)
    report = build_report(str(uuid.uuid4()), force_id, iso_week, week_start, week_end, flags, programme,
                          now or datetime.now().astimezone())
    section = read_section(conn, force_id, week_start, programme.compliance, programme.days)  # issue 21
    html, csvs = render_html(report, section), {**csv_files(report), **(section_csv(section) if section else {})}
    folder, html_path, csv_paths = write_outbox(outbox, report, html, csvs)
    notified = publish_notice(mqtt_target, report) if mqtt_target else False
    emailed = send_email(smtp_url, report_recipients(conn, force_id), report, html, csvs) if smtp_url else 0
    n_week = int(((flags["week_end"] >= week_start) & (flags["week_end"] <= week_end)).sum()) if len(flags) else 0
    record_report(conn, report.report_id, force_id, iso_week, week_start, week_end,
                  str(html_path.relative_to(outbox)), [str(p.relative_to(outbox)) for p in csv_paths], n_week,
                  notified, emailed)
    return ReportResult(report.report_id, force_id, iso_week, folder, html_path, tuple(csv_paths), notified,
                        emailed)
