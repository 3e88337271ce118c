"""``fatigue flags`` and ``fatigue report``: weekly fatigue flags and the managers' weekly reports.

Wire with ``service.cli_risk.register(main)`` (add ``"service.cli_risk"`` to ``AREA_MODULES``).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import click

from service.cli_common import programme_for

if TYPE_CHECKING:
    import psycopg

    from risk.publisher import MqttTarget

__all__ = ["register"]


def _settings() -> Any:
    """The settings object of the root command (attributes database_url, mqtt_url, timezone, ...)."""
    return click.get_current_context().find_root().obj


def _connect(url: str) -> psycopg.Connection[Any]:
    import psycopg

    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise click.ClickException(
            f"cannot connect to the database ({exc.__class__.__name__}); is PostgreSQL running, "
            "and is FATIGUE_DATABASE_URL right?") from exc


def _mqtt_target(url: str | None) -> MqttTarget | None:
    from risk.publisher import MqttTarget

    if not url:
        return None
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    return MqttTarget(parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883),
                      parts.username, parts.password, tls)


@click.command("flags")
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Run date (default: today, local). Weeks that ended 2 or more days before it are evaluated.")
@click.option("--programme", "programme_path", type=str, default=None,
              help="Programme TOML file, or a packaged version (programme-v1, programme-v2; default programme-v2).")
def flags_command(as_of: datetime | None, programme_path: str | None) -> None:
    """Issue weekly fatigue flags for closed programme weeks (safe to run twice; late data makes revisions)."""
    from risk.job import run_flags

    s = _settings()
    programme = programme_for(programme_path, s)
    day = as_of.date() if as_of else datetime.now(ZoneInfo(s.timezone)).date()
    with _connect(s.database_url) as conn:
        summary = run_flags(conn, day, programme, tz=s.timezone)
    levels = ", ".join(f"{k} {v}" for k, v in sorted(summary.by_level.items())) or "none"
    click.echo(f"flags as of {day}: {summary.evaluated} weeks evaluated, {summary.issued} issued, "
               f"{summary.revised} revised, {summary.unchanged} unchanged ({levels}).")
    if summary.missing_inputs:
        click.echo(f"warning: missing input tables {', '.join(summary.missing_inputs)}; run `fatigue db migrate`"
                   " and the feature/model jobs.", err=True)
    click.echo("Next: `fatigue report --week YYYY-Www --force FORCE` for each force's weekly report.")


@click.command("report")
@click.option("--week", required=False, default=None,
              help="ISO week like 2026-W11 (default: last complete ISO week).")
@click.option("--force", "force_id", required=True, help="Force id (core.forces).")
@click.option("--outbox", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the report (default: FATIGUE_OUTBOX_DIR).")
@click.option("--programme", "programme_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Programme TOML (labels and thresholds in the report; default FATIGUE_PROGRAMME).")
def report_command(week: str | None, force_id: str, outbox: Path | None, programme_path: Path | None) -> None:
    """Write a force's weekly report (HTML + CSV) to the outbox, announce it on MQTT, e-mail it if configured."""
    from risk.publisher import iso_week_bounds, make_weekly_report

    s = _settings()
    if week is None:
        today = datetime.now(ZoneInfo(s.timezone)).date()
        year, wk, _ = date.fromordinal(today.toordinal() - 7).isocalendar()
        week = f"{year}-W{wk:02d}"
    try:
        iso_week_bounds(week)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--week") from exc
    folder = Path(outbox or s.outbox_dir)
    with _connect(s.database_url) as conn:
        result = make_weekly_report(conn, force_id, week, folder, programme_for(programme_path, s),
                                    _mqtt_target(s.mqtt_url), s.smtp_url)
    click.echo(f"report {result.report_id} for {force_id} {week}: {result.html_path} "
               f"(notice {'published' if result.notified else 'not published'}, "
               f"e-mailed to {result.emailed_to}).")


def register(group: click.Group) -> None:
    """Add ``flags`` and ``report`` to the ``fatigue`` command group."""
    group.add_command(flags_command)
    group.add_command(report_command)
