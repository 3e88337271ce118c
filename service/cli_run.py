"""``fatigue demo``, ``fatigue serve`` and ``fatigue simulate``: see it work, run it for real, make test data."""

from __future__ import annotations

import json
import socket
from datetime import date, datetime
from pathlib import Path

import click

from service.cli_common import lateness_warning, programme_for, show_progress
from service.settings import DEFAULT_DATABASE_URL, DEFAULT_MQTT_URL, Settings

__all__ = ["register"]


def _settings() -> Settings:
    obj = click.get_current_context().find_root().obj
    assert isinstance(obj, Settings)
    return obj


@click.command("simulate")
@click.option("--participants", type=click.IntRange(1), default=100, show_default=True)
@click.option("--days", type=click.IntRange(2), default=120, show_default=True)
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Local programme start date (default: the Monday that makes the programme end 1-7 days ago).")
@click.option("--seed", type=int, default=0, show_default=True, help="One seed gives byte-identical output.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write participants.csv, roster.csv, truth/ and messages.bin here.")
@click.option("--publish", is_flag=True, help="Publish to the broker at FATIGUE_MQTT_URL.")
@click.option("--replay", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Publish an existing messages.bin (implies --publish).")
@click.option("--speed", type=float, default=None, help="Time acceleration (default: as fast as acknowledged).")
@click.option("--no-faults", is_flag=True, help="Clean data: no device or transport faults.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def simulate_command(participants: int, days: int, start: datetime | None, seed: int, out: Path | None, publish: bool,
                     replay: Path | None, speed: float | None, no_faults: bool, quiet: bool) -> None:
    """Simulate a seeded police cohort: write files (--out), publish live (--publish) or replay a log (--replay).

    \b
    fatigue simulate --participants 60 --days 120 --out var/sim
    fatigue participants import var/sim/participants.csv && fatigue roster import var/sim/roster.csv
    fatigue simulate --replay var/sim/messages.bin --speed 3600
    """
    from simulators.run import cli_entry

    if not (out or publish or replay):
        raise click.UsageError("give --out DIR, --publish or --replay FILE")
    from service.demo import demo_start_date  # the same default as the demo: the programme ended last week

    settings = _settings()
    today = date.today()
    first_day = start.date() if start else demo_start_date(today, days)
    if replay:
        first_day = _replayed_start(replay) or first_day
    warning = lateness_warning(first_day, today, settings.ingest_max_lateness_days)
    if warning:
        click.echo(warning, err=True)
    argv = ["--participants", str(participants), "--days", str(days), "--start", first_day.isoformat(),
            "--seed", str(seed)]
    if out:
        argv += ["--out", str(out)]
    if publish or replay:
        mq = settings.mqtt
        if mq.tls or mq.username:
            raise click.ClickException("the simulator publishes without TLS or login; point FATIGUE_MQTT_URL at a "
                                       "plain mqtt:// listener (e.g. a private Mosquitto) to publish")
        argv += ["--publish", f"{mq.host}:{mq.port}"]
    if replay:
        argv += ["--replay", str(replay)]
    if speed is not None:
        argv += ["--speed", str(speed)]
    if no_faults:
        argv.append("--no-faults")
    if not show_progress(quiet):
        argv.append("--quiet")
    code = cli_entry(argv)
    if code:
        raise click.ClickException("publishing did not complete: some messages were not acknowledged")
    if out and not (publish or replay):
        click.echo(f"next: `fatigue participants import {out}/participants.csv`, "
                   f"`fatigue roster import {out}/roster.csv`, then `fatigue simulate --replay "
                   f"{out}/messages.bin` with `fatigue ingest` running")


def _replayed_start(messages: Path) -> date | None:
    """The programme start recorded in the ``manifest.json`` beside a replayed ``messages.bin``, if any."""
    try:
        manifest = json.loads((messages.parent / "manifest.json").read_text(encoding="utf-8"))
        return date.fromisoformat(manifest["params"]["start_date"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@click.command("demo")
@click.option("--participants", type=click.IntRange(1), default=60, show_default=True, help="Officers.")
@click.option("--forces", type=click.IntRange(1, 5), default=3, show_default=True, help="Forces (1-5).")
@click.option("--days", type=click.IntRange(14, 365), default=120, show_default=True, help="Programme days.")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default=Path("var/demo"),
              show_default=True, help="Demo folder (reset on every run; pseudonym.key is kept).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--keep", is_flag=True, help="Leave the demo's PostgreSQL and MQTT broker running afterwards.")
@click.option("--broker", type=click.Choice(["auto", "mosquitto", "embedded"]), default="auto", show_default=True,
              help="MQTT broker to start: auto uses Mosquitto when installed, otherwise the broker embedded in "
                   "the iotcore wheel (rumqttd).")
@click.option("--services", type=click.Choice(["auto", "embedded", "configured"]), default="auto",
              show_default=True,
              help="auto: use FATIGUE_DATABASE_URL / FATIGUE_MQTT_URL when they differ from the defaults, "
                   "otherwise start private servers in the demo folder.")
def demo_command(participants: int, forces: int, days: int, folder: Path, seed: int, keep: bool,
                 broker: str, services: str) -> None:
    """See it work: private services, a simulated cohort over MQTT, features, models, flags, reports, export."""
    from service.demo import DemoOptions, format_summary, run_demo
    from service.logs import configure_logging

    s = _settings()
    if s.log_level != "debug":
        configure_logging("error")  # step lines and progress bars tell the story; component logs would bury it
    configured_db = services == "configured" or (services == "auto" and s.database_url != DEFAULT_DATABASE_URL)
    configured_mq = services == "configured" or (services == "auto" and s.mqtt_url != DEFAULT_MQTT_URL)
    mq = s.mqtt
    opts = DemoOptions(participants=participants, forces=forces, days=days, folder=folder, seed=seed, keep=keep,
                       broker=broker, timezone=s.timezone, ingest_group=s.ingest_group,
                       client_id=f"fatigue-demo-{socket.gethostname()}", progress=show_progress(False))
    try:
        summary = run_demo(opts, database_url=s.database_url if configured_db else None,
                           mqtt_url=s.mqtt_url if configured_mq else None, mqtt_host=mq.host, mqtt_port=mq.port,
                           pseudonym_key=s.pseudonym_key, key_version=s.pseudonym_key_version, echo=click.echo)
    except (RuntimeError, TimeoutError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    for line in format_summary(summary, keep):
        click.echo(line)


@click.command("serve")
@click.option("--ingest/--no-ingest", default=True, show_default=True, help="Run the MQTT ingester.")
@click.option("--scheduler/--no-scheduler", default=True, show_default=True,
              help="Run features+models when data is dirty, and weekly flags and reports.")
@click.option("--api/--no-api", default=True, show_default=True, help="Serve the HTTP API.")
@click.option("--client-id", default=None,
              help="Stable MQTT client id of this ingester slot (default fatigue-serve-<group>-1; "
                   "see fatigue ingest-retire).")
@click.option("--every", type=click.FloatRange(0.5), default=300.0, show_default=True,
              help="Seconds between scheduler checks for dirty days.")
@click.option("--weekly", default="MON 12:00", show_default=True,
              help="Weekday and local time (FATIGUE_TIMEZONE) of the weekly flags and reports.")
@click.option("--host", default="0.0.0.0", show_default=True, help="API listen address.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="API port.")
@click.option("--retry-base", type=click.FloatRange(0), default=60.0, show_default=True,
              help="Seconds before the first retry of a failed job or report delivery (doubles up to an hour).")
def serve_command(ingest: bool, scheduler: bool, api: bool, client_id: str | None, every: float, weekly: str,
                  host: str, port: int, retry_base: float) -> None:
    """Run the ingester, the scheduler and the API in one process (or a subset); SIGTERM stops it cleanly."""
    from ingest.consumer import IngestConfig
    from risk.publisher import MqttTarget
    from service.serve import ServeConfig, WeeklySlot, serve

    s = _settings()
    try:
        slot = WeeklySlot.parse(weekly)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--weekly") from exc
    mq = s.mqtt
    ingest_config = IngestConfig(
        database_url=s.database_url, mqtt_host=mq.host, mqtt_port=mq.port,
        client_id=client_id or f"fatigue-serve-{s.ingest_group}-1", group=s.ingest_group,
        username=mq.username, password=mq.password, tls=mq.tls, timezone=s.timezone,
        max_lateness_days=s.ingest_max_lateness_days,
        programme_days=programme_for(None, s).days) if ingest else None
    config = ServeConfig(database_url=s.database_url, timezone=s.timezone, outbox_dir=s.outbox_dir,
                         ingest=ingest_config, scheduler=scheduler, every_s=every, weekly=slot,
                         mqtt_target=MqttTarget(mq.host, mq.port, mq.username, mq.password, mq.tls),
                         smtp_url=s.smtp_url, api=api, api_host=host, api_port=port, log_level=s.log_level,
                         exports_dir=s.exports_dir, pseudonym_key=s.pseudonym_key,
                         key_version=s.pseudonym_key_version, retry_base_s=retry_base,
                         api_admin_database_url=s.api_admin_database_url,
                         metrics_addr=s.metrics_addr, programme=getattr(s, "programme", None))
    code = serve(config, echo=lambda line: click.echo(line, err=True))
    if code:
        raise SystemExit(code)


def register(group: click.Group) -> None:
    """Add ``demo``, ``serve`` and ``simulate`` to the main CLI."""
    group.add_command(demo_command)
    group.add_command(serve_command)
    group.add_command(simulate_command)
