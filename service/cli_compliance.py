"""``fatigue compliance``: who is not wearing the device (table or CSV), after an incremental update.

Wire with ``service.cli_compliance.register(main)`` (``"service.cli_compliance"`` in ``AREA_MODULES``).
"""

from __future__ import annotations

import csv
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from zoneinfo import ZoneInfo

import click

from service.cli_common import programme_for
from service.settings import Settings

if TYPE_CHECKING:  # heavy imports only inside the command: `fatigue --help` stays fast
    from compliance.job import ComplianceSummary

__all__ = ["register"]

_TABLE = (("level", "level", 6), ("who", "", 12), ("device", "device_id", 12), ("reasons", "reasons", 22),
          ("silent", "silent_h", 7), ("batt", "battery_pct", 5), ("worn", "worn", 5), ("online", "online", 6),
          ("wear today", "wear_h_today", 10), ("wear 7d", "wear_h_7d", 8), ("valid nights", "", 12),
          ("since valid", "days_since_valid_night", 11))


def _cell(key: str, row: dict[str, Any]) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(value) or "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _table(rows: list[dict[str, Any]], names: bool, out: TextIO) -> None:
    out.write("  ".join(f"{h:<{w}}" for h, _, w in _TABLE).rstrip() + "\n")
    for r in rows:
        who = (r["staff_ref"] or "-") if names else str(r["participant_id"])[:8]
        cells = []
        for head, key, width in _TABLE:
            if head == "who":
                text = who
            elif head == "valid nights":
                text = f"{r['valid_nights_7d']} of {r['expected_nights_7d']}"
            else:
                text = _cell(key, r)
            cells.append(f"{text:<{width}}")
        out.write("  ".join(cells).rstrip() + "\n")


def _csv(rows: list[dict[str, Any]], names: bool, out: TextIO) -> None:
    from compliance.db import VIEW_COLUMNS

    cols = [c for c in VIEW_COLUMNS if names or c != "staff_ref"]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(cols)
    for r in rows:
        writer.writerow(["|".join(r[c]) if isinstance(r[c], list) else ("" if r[c] is None else r[c])
                         for c in cols])


def _summary_line(summary: ComplianceSummary) -> str:
    if summary.skipped:
        return "another compliance run is in progress (the scheduler?); showing the state it last stored"
    failed = (f", {summary.publish_failed} not published (broker unreachable? retried next run)"
              if summary.publish_failed else "")
    return (f"updated {summary.participant_days} participant-day(s); alerts: {summary.opened} opened, "
            f"{summary.closed} closed, {summary.published} published, {summary.notified} to the outbox{failed}")


@click.command("compliance")
@click.option("--force", "force_id", default=None, help="Only this force.")
@click.option("--level", "levels", type=click.Choice(["ok", "watch", "lapsed"]), multiple=True,
              help="Only these levels (repeatable; default all).")
@click.option("--names", is_flag=True, help="Show staff references (programme administrators only).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), default=None,
              help="Write CSV to this file ('-' for standard output) instead of the table.")
@click.option("--no-update", is_flag=True, help="Show the stored state; do not read new data or send alerts.")
@click.option("--programme", "programme_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Programme TOML with a [compliance] table (default FATIGUE_PROGRAMME).")
@click.option("--metrics-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write this run's Prometheus metrics here (node_exporter textfile collector).")
def compliance_command(force_id: str | None, levels: tuple[str, ...], names: bool, csv_path: Path | None,
                       no_update: bool, programme_path: Path | None, metrics_file: Path | None) -> None:
    """Programme compliance: last message per stream, battery, wear, valid nights and a level (ok/watch/lapsed).

    Unless --no-update, new data is read first and alerts (device silent, low battery, too few valid nights)
    are published on MQTT for the gateways and written to the administrator's outbox, once per episode.
    """
    import psycopg
    from prometheus_client import write_to_textfile

    from compliance.db import read_view
    from compliance.job import MqttTarget, run_compliance
    from compliance.metrics import ComplianceMetrics

    s = click.get_current_context().find_root().obj
    assert isinstance(s, Settings)
    programme = programme_for(programme_path, s)
    try:
        conn = psycopg.connect(s.database_url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise click.ClickException(f"cannot connect to the database ({exc.__class__.__name__}); is PostgreSQL "
                                   "running, and is FATIGUE_DATABASE_URL right?") from exc
    with conn:
        if not no_update:
            metrics = ComplianceMetrics()
            m = s.mqtt
            summary = run_compliance(conn, programme.compliance, s.timezone, programme_days=programme.days,
                                     now=datetime.now(ZoneInfo(s.timezone)),
                                     mqtt=MqttTarget(m.host, m.port, m.username, m.password, m.tls),
                                     outbox=s.outbox_dir, metrics=metrics)
            if metrics_file:
                write_to_textfile(str(metrics_file), metrics.registry)
            click.echo(_summary_line(summary), err=True)
        rows = read_view(conn, force_id=force_id, names=names, levels=levels or ("ok", "watch", "lapsed"))
    if csv_path is not None:
        if str(csv_path) == "-":
            _csv(rows, names, sys.stdout)
        else:
            with csv_path.open("w", newline="", encoding="utf-8") as fh:
                _csv(rows, names, fh)
            click.echo(f"{len(rows)} row(s) written to {csv_path}", err=True)
        return
    if not rows:
        click.echo("nobody is in their programme yet (or nobody matches); enrol with `fatigue participants import`.")
        return
    _table(rows, names, sys.stdout)
    counts = {lv: sum(r["level"] == lv for r in rows) for lv in ("lapsed", "watch", "ok")}
    click.echo(f"{counts['lapsed']} lapsed, {counts['watch']} watch, {counts['ok']} ok. Next: contact the lapsed "
               "officers (--names shows who; --csv FILE for a spreadsheet).", err=True)


def register(group: click.Group) -> None:
    """Add ``compliance`` to the ``fatigue`` command group."""
    group.add_command(compliance_command)
