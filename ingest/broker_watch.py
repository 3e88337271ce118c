"""The broker's own counters (``$SYS``) as gauges, on a separate best-effort MQTT connection.

Kept off the ingest connection on purpose: a broker that refuses ``$SYS`` subscriptions by closing the
connection (the demo's embedded rumqttd does) or an ACL that denies them must never disturb ingestion. The
watcher gives up after the broker drops it before any counter arrived, and logs that once.
"""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.metrics import BROKER_SYS_TOPICS, IngestMetrics

__all__ = ["BrokerWatch"]

log = structlog.get_logger("ingest")


class BrokerWatch:
    """Subscribes (QoS 0, clean session) to :data:`ingest.metrics.BROKER_SYS_TOPICS` and sets the gauges."""

    def __init__(self, host: str, port: int, client_id: str, metrics: IngestMetrics, username: str | None = None,
                 password: str | None = None, tls: bool = False) -> None:
        self.metrics = metrics
        self.seen = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set()
        self.client.reconnect_delay_set(min_delay=1, max_delay=60)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.host, self.port = host, port

    def start(self) -> None:
        """Connect in the background; failures only cost the gauges."""
        self.client.connect_async(self.host, self.port, keepalive=60, clean_start=True)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            client.subscribe([(t, SubscribeOptions(qos=0)) for t in BROKER_SYS_TOPICS])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.seen.set()
        self.metrics.broker_counter(msg.topic, bytes(msg.payload))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not self.seen.is_set() and getattr(reason, "is_failure", False):
            log.info("broker_counters_unavailable", detail="the broker closed the $SYS connection; no "
                     "fatigue_broker_* gauges (ingestion is not affected)")
            client.disconnect()  # stop reconnecting
