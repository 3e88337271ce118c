"""An MQTT broker that installs with pip, for ``fatigue demo`` on machines without Mosquitto.

The broker is rumqttd (Rust), shipped compiled inside the ``iotcore`` wheel and started here as a child process
(``python -m iotcore --config rumqttd.toml``) on free loopback ports under the demo folder. No pure-Python broker
on PyPI speaks the MQTT 5 the ingester needs (shared subscriptions, session expiry, Receive Maximum), and
rumqttd does. rumqttd accepts one protocol version per listener, so the broker has two:

- an MQTT 5 listener for the ingester (``ingest_port``);
- an MQTT 3.1.1 listener for gateways, the simulator and report notices (``gateway_port``).

Both feed the same router: a message published on one is delivered to subscribers on the other.

Limits, measured against rumqttd 0.20 (iotcore 0.4.0) and kept in ``tests/service/test_embedded_broker.py``:
QoS 1 delivery, shared subscriptions, Receive Maximum and messages queued for an offline persistent session all
work; but a persistent session that reconnects while deliveries are still unacknowledged gets neither those nor
the queued ones back (Mosquitto redelivers all of them). The demo's ingester stays connected from start to end,
so the demo is unaffected; production and ``fatigue serve`` use Mosquitto, as ``docker-compose.yml`` does.
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from service.local_servers import free_port, stop_process, wait_for_port

__all__ = ["EmbeddedBroker", "embedded_broker_available"]

_CONFIG = """# rumqttd configuration written by fatigue demo (service/embedded_broker.py)
id = 0

[router]
id = 0
max_connections = 1000
max_outgoing_packet_count = 1000
max_segment_size = 104857600
max_segment_count = 10

[v5.1]
name = "ingest-v5"
listen = "{host}:{ingest_port}"
next_connection_delay_ms = 1
    [v5.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = {max_payload}
    max_inflight_count = 1000
    dynamic_filters = true

[v4.1]
name = "gateways-v311"
listen = "{host}:{gateway_port}"
next_connection_delay_ms = 1
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = {max_payload}
    max_inflight_count = 1000
    dynamic_filters = true
"""


def embedded_broker_available() -> bool:
    """True when the ``iotcore`` wheel (the embedded rumqttd broker) is installed."""
    return importlib.util.find_spec("iotcore") is not None


@dataclass
class EmbeddedBroker:
    """rumqttd on two free loopback ports: MQTT 5 for the ingester, MQTT 3.1.1 for publishers.

    Parameters
    ----------
    root : Path
        Folder for ``rumqttd.toml`` and ``broker.log``.
    max_payload : int
        Largest accepted message, bytes (rumqttd's default of 20 kB is below a 1,000-sample message).
    """

    root: Path
    host: str = "127.0.0.1"
    ingest_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    max_payload: int = 4 << 20
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ingester's address (MQTT 5 listener)."""
        return f"mqtt://{self.host}:{self.ingest_port}"

    @property
    def config_path(self) -> Path:
        return self.root / "rumqttd.toml"

    def start(self, timeout: float = 15.0) -> None:
        """Write the configuration, start the broker and wait until both listeners accept connections.

        The child process is not tied to this one, so ``fatigue demo --keep`` can leave it running.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(_CONFIG.format(host=self.host, ingest_port=self.ingest_port,
                                                   gateway_port=self.gateway_port, max_payload=self.max_payload),
                                    encoding="utf-8")
        with (self.root / "broker.log").open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "service.embedded_broker", str(self.config_path)],
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            start_new_session=True)
        try:
            wait_for_port(self.host, self.ingest_port, timeout)
            wait_for_port(self.host, self.gateway_port, timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``) and wait for its ports to close."""
        if self.process is None:
            return
        stop_process(self.process, signal.SIGTERM, timeout)
        self.process = None
        for port in (self.ingest_port, self.gateway_port):
            wait_for_port(self.host, port, timeout, up=False)


def main(argv: list[str] | None = None) -> None:
    """Child-process entry point: ``python -m service.embedded_broker CONFIG`` runs rumqttd until signalled.

    rumqttd reports every routed packet through ``tracing`` spans at ERROR level, so its logger is raised to
    CRITICAL; iotcore's own warnings still reach ``broker.log``.
    """
    from iotcore import Broker

    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("rumqttd").setLevel(logging.CRITICAL)
    Broker(config_path=args[0]).run_forever()


if __name__ == "__main__":
    main()
