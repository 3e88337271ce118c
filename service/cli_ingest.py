"""``fatigue ingest`` and ``fatigue quarantine replay``."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

import click

from service.cli_common import programme_for
from service.settings import Settings


def _settings() -> Settings:
    obj = click.get_current_context().find_root().obj
    assert isinstance(obj, Settings)
    return obj



@click.command("ingest")
@click.option("--client-id", default=None,
              help="Stable MQTT client id of this replica slot; the broker keeps this id's session (and its "
                   "share of the group's messages) across restarts. Default: fatigue-ingest-<group>-1. Give "
                   "every replica its own id, reuse it for a replacement, retire it with `fatigue ingest-retire`.")
@click.option("--metrics-addr", default=None, metavar="HOST:PORT",
              help="Serve /metrics, /healthz and /readyz here (overrides FATIGUE_METRICS_ADDR; ':9101' = every "
                   "interface, '127.0.0.1:9101' = loopback only, 'off' = none).")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None, hidden=True,
              help="Old spelling of --metrics-addr :PORT (every interface).")
@click.option("--batch-size", type=int, default=200, show_default=True, help="Messages per transaction.")
@click.option("--batch-age", type=float, default=0.2, show_default=True, help="Seconds before a batch flushes.")
@click.option("--receive-maximum", type=int, default=1000, show_default=True,
              help="Unacknowledged messages the broker may send at once.")
@click.option("--idle-exit", type=float, default=None, help="Exit after this many idle seconds (for jobs).")
@click.option("--trace", type=click.Path(path_type=Path), default=None, hidden=True)
def ingest_command(client_id: str | None, metrics_addr: str | None, metrics_port: int | None, batch_size: int,
                   batch_age: float, receive_maximum: int, idle_exit: float | None, trace: Path | None) -> None:
    """Consume sensor messages from MQTT into the database (runs until SIGTERM).

    Subscribes with QoS 1 to $share/<FATIGUE_INGEST_GROUP>/fatigue/v1/+/+/+ and acknowledges each message
    only after its rows, or its dead letter, are committed. Run several with the same group to share load.
    """
    from prometheus_client import REGISTRY

    from ingest.consumer import IngestConfig, Ingester
    from ingest.crashpoints import CrashPoints
    from service.metrics import DatabaseCollector, MetricsServer, SubscriptionCollector, Union, database_probe
    from service.settings import SettingsError, parse_metrics_addr

    s = _settings()
    try:
        address = parse_metrics_addr(metrics_addr, "--metrics-addr") if metrics_addr else s.metrics_addr
    except SettingsError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics-addr") from exc
    if metrics_port:
        address = parse_metrics_addr(f":{metrics_port}")
    mq = s.mqtt
    config = IngestConfig(
        database_url=s.database_url, mqtt_host=mq.host, mqtt_port=mq.port,
        client_id=client_id or f"fatigue-ingest-{s.ingest_group}-1",
        group=s.ingest_group, username=mq.username, password=mq.password, tls=mq.tls, timezone=s.timezone,
        receive_maximum=receive_maximum, batch_size=batch_size, batch_age_s=batch_age, trace_path=trace,
        max_lateness_days=s.ingest_max_lateness_days, programme_days=programme_for(None, s).days)
    ingester = Ingester(config, crash=CrashPoints(s.crash_points))
    exporter = None
    if address is not None:
        exporter = MetricsServer(
            address, Union([REGISTRY, ingester.metrics.registry, DatabaseCollector(s.database_url),
                            SubscriptionCollector(ingester.connected.is_set)]),
            ready={"database": database_probe(s.database_url),
                   "broker_subscription": lambda: None if ingester.connected.is_set() else "not subscribed yet"})
        click.echo(f"metrics on http://{address}/metrics (health: /healthz, /readyz)", err=True)

    def _stop(signum: int, frame: FrameType | None) -> None:
        ingester.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(f"ingesting from {mq.host}:{mq.port} as {config.client_id} (group {config.group}); "
               "stop with Ctrl-C or SIGTERM", err=True)
    try:
        totals = ingester.run(idle_exit_s=idle_exit)
    finally:
        if exporter is not None:
            exporter.close()
    click.echo(f"stopped: {totals.stored} messages, {totals.samples} samples stored, "
               f"{sum(totals.dead.values())} dead-lettered, {totals.quarantined} quarantined, "
               f"{totals.duplicates} duplicates absorbed", err=True)


@click.command("ingest-retire")
@click.option("--client-id", required=True, help="Client id of the replica slot that will not come back.")
@click.option("--idle", type=float, default=3.0, show_default=True,
              help="Seconds without messages after which the slot's queue counts as drained.")
def ingest_retire(client_id: str, idle: float) -> None:
    """Drain a departed ingester's broker session into the database, then end the session.

    The broker keeps dealing an offline member of the shared group its round-robin share until its session
    expires (7 days). Run this for every ingester slot you remove (scale-down, renamed client id); do not run
    it while an ingester with that client id is running.
    """
    from ingest.consumer import IngestConfig, Ingester

    s = _settings()
    mq = s.mqtt
    config = IngestConfig(
        database_url=s.database_url, mqtt_host=mq.host, mqtt_port=mq.port, client_id=client_id,
        group=s.ingest_group, username=mq.username, password=mq.password, tls=mq.tls, timezone=s.timezone,
        max_lateness_days=s.ingest_max_lateness_days, broker_counters=False,
        programme_days=programme_for(None, s).days)
    ingester = Ingester(config)

    def _stop(signum: int, frame: FrameType | None) -> None:
        ingester.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        totals = ingester.retire(idle_s=idle)
    except RuntimeError as exc:
        raise click.ClickException(f"{exc}; check the broker and run `fatigue ingest-retire` again") from exc
    if ingester.stopping.is_set():
        raise click.ClickException("interrupted: the slot's session is kept; run `fatigue ingest-retire` again")
    click.echo(f"retired {client_id}: drained {totals.stored} message(s) ({totals.samples} samples) and ended "
               "its broker session; the group now deals its messages to the remaining ingesters")


@click.group("quarantine")
def quarantine_group() -> None:
    """Messages from devices that were not enrolled when they arrived."""


@quarantine_group.command("replay")
def quarantine_replay() -> None:
    """Ingest quarantined messages whose device is now enrolled."""
    import psycopg

    from ingest.quarantine import replay_quarantine

    s = _settings()
    try:
        conn = psycopg.connect(s.database_url, autocommit=False, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise click.ClickException(f"cannot connect to the database ({exc.__class__.__name__})") from exc
    with conn:
        totals, waiting = replay_quarantine(conn, s.tz, max_lateness_days=s.ingest_max_lateness_days)
    click.echo(f"replayed {totals.stored} message(s) ({totals.samples} samples), "
               f"{sum(totals.dead.values())} dead-lettered; {waiting} still waiting for enrolment")
    if waiting:
        click.echo("next: enrol the remaining devices with `fatigue participants import`, then replay again")


def register(group: click.Group) -> None:
    """Add the ingest commands to the main CLI."""
    group.add_command(ingest_command)
    group.add_command(ingest_retire)
    group.add_command(quarantine_group)
