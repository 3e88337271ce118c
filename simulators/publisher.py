"""Publish simulated messages over MQTT: one paho-mqtt 2.x client per gateway, QoS 1, bounded in flight.

Back-pressure: paho queues without limit and, once more than 65,535 messages are waiting for an ack, its
16-bit message ids wrap and queued messages are silently overwritten (paho.mqtt.python issue #377). A single
semaphore bounds the messages published but not yet acknowledged across all gateways (released in
``on_publish``, i.e. on PUBACK), so the simulator never runs more than ``max_inflight`` ahead of the broker.

Each client sets a last will on its device's ``status`` stream (``online=false``); a clean disconnect at the
end does not fire it. ``speed`` replays at a time-acceleration factor (``publish_ms`` deltas divided by
``speed``); ``None`` publishes as fast as the broker acknowledges.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from tqdm import tqdm

from ingest.contract import ContractError, DeviceStatus, encode, parse_topic, topic_for

__all__ = ["InFlightWindow", "PublishError", "PublishStats", "gateway_client", "publish_messages",
           "will_payload"]

_WILL_NAMESPACE = uuid.UUID("6f6c2a52-6b9e-4c1e-9a53-5d8a0f1f2b11")


class PublishError(RuntimeError):
    """The broker refused a connection or did not acknowledge every message in time."""


@dataclass
class PublishStats:
    """What a publish run did."""

    published: int = 0
    acked: int = 0
    failed: int = 0
    clients: int = 0
    seconds: float = 0.0
    max_in_flight: int = 0

    @property
    def rate(self) -> float:
        """Acknowledged messages per second."""
        return self.acked / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class InFlightWindow:
    """Counting window of unacknowledged messages shared by all clients."""

    limit: int
    sem: threading.BoundedSemaphore = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    peak: int = 0
    acked: int = 0
    failed: int = 0

    def __post_init__(self) -> None:
        self.sem = threading.BoundedSemaphore(self.limit)

    def take(self, timeout: float) -> None:
        """Wait for a free slot (at most ``timeout`` s) before publishing one message."""
        if not self.sem.acquire(timeout=timeout):
            raise PublishError(f"no PUBACK for {timeout:.0f} s with {self.limit} messages in flight")
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def give(self, ok: bool) -> None:
        """Release a slot when the broker acknowledged (``ok``) or refused a message."""
        with self.lock:
            self.in_flight -= 1
            self.acked += ok
            self.failed += not ok
        self.sem.release()


def will_payload(gateway_id: str, device_id: str, t_ms: int) -> bytes:
    """Deterministic ``status`` payload with ``online=false`` used as a gateway client's last will."""
    mid = uuid.uuid5(_WILL_NAMESPACE, f"{gateway_id}/{device_id}/{t_ms}")
    return encode(DeviceStatus(mid, device_id, t_ms, t_ms, False, None, None, None))


def gateway_client(host: str, port: int, gateway_id: str, device_id: str, t_ms: int, window: InFlightWindow,
                   prefix: str, keepalive: int) -> mqtt.Client:
    """Connect one gateway's client (QoS 1 publisher, last will ``online=false`` on ``device_id``'s status).

    Each PUBACK releases a slot of ``window``. Waits for the CONNACK; raises :class:`PublishError` if refused.
    """
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-{gateway_id}",
                         protocol=mqtt.MQTTv311, clean_session=True)
    client.max_inflight_messages_set(min(window.limit, 1000))
    client.will_set(topic_for(gateway_id, device_id, "status"), will_payload(gateway_id, device_id, t_ms), qos=1)
    connected = threading.Event()
    refused: list[Any] = []

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            refused.append(reason)
        connected.set()

    def on_publish(_c: mqtt.Client, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        window.give(not getattr(reason, "is_failure", False))

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect(host, port, keepalive=keepalive)
    client.loop_start()
    if not connected.wait(15.0) or refused:
        client.loop_stop()
        raise PublishError(f"gateway {gateway_id}: broker {host}:{port} refused or did not answer the CONNECT")
    return client


def _pace(first_ms: int | None, publish_ms: int, started: float, speed: float | None) -> int:
    if speed is None:
        return publish_ms if first_ms is None else first_ms
    first = publish_ms if first_ms is None else first_ms
    delay = started + (publish_ms - first) / 1000.0 / speed - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    return first


def publish_messages(messages: Iterable[tuple[int, str, bytes]], host: str, port: int, *,
                     speed: float | None = None, max_inflight: int = 1000, ack_timeout: float = 60.0,
                     progress: bool = False, total: int | None = None, client_prefix: str = "fatigue-sim",
                     keepalive: int = 60) -> PublishStats:
    """Publish ``(publish_ms, topic, payload)`` in order, QoS 1, one client per gateway of the topic.

    Parameters
    ----------
    messages : iterable of (int, str, bytes)
        Messages in publish order (from :func:`simulators.messages.iter_messages` or a log replay).
    host, port : str, int
        The broker.
    speed : float, optional
        Time acceleration (e.g. 3600 = one simulated hour per second); ``None`` = as fast as acknowledged.
    max_inflight : int
        Bound on published-but-unacknowledged messages over all clients (must stay far below 65,535).
    ack_timeout : float
        Seconds to wait for a free slot or for the final acknowledgements before :class:`PublishError`.
    progress : bool
        Show a tqdm progress bar.
    total : int, optional
        Number of messages, for the progress bar.
    client_prefix : str
        MQTT client ids are ``{client_prefix}-{gateway_id}``.
    keepalive : int
        MQTT keepalive (s).

    Returns
    -------
    PublishStats
    """
    if not 1 <= max_inflight <= 20000:
        raise ValueError("max_inflight must be 1..20000 (paho overwrites past 65,535 queued messages)")
    window = InFlightWindow(max_inflight)
    clients: dict[str, mqtt.Client] = {}
    stats = PublishStats()
    started = time.perf_counter()
    first_ms: int | None = None
    try:
        for publish_ms, topic, payload in tqdm(messages, total=total, disable=not progress, unit="msg"):
            first_ms = _pace(first_ms, publish_ms, started, speed)
            gw, dev = _route(topic)
            if gw not in clients:
                clients[gw] = gateway_client(host, port, gw, dev, publish_ms, window, client_prefix, keepalive)
            window.take(ack_timeout)
            info = clients[gw].publish(topic, payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
                window.give(False)
            stats.published += 1
        _drain(window, ack_timeout)
    finally:
        for client in clients.values():
            client.disconnect()
            client.loop_stop()
    stats.acked, stats.failed, stats.clients = window.acked, window.failed, len(clients)
    stats.seconds, stats.max_in_flight = time.perf_counter() - started, window.peak
    return stats


def _route(topic: str) -> tuple[str, str]:
    """Gateway and device of a topic; malformed-but-routable topics fall back to the raw levels."""
    try:
        t = parse_topic(topic)
        return t.gateway_id, t.device_id
    except ContractError:
        parts = topic.split("/")
        return parts[2], parts[3]


def _drain(window: InFlightWindow, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while True:
        with window.lock:
            if window.in_flight == 0:
                return
        if time.perf_counter() > deadline:
            raise PublishError(f"{window.in_flight} messages not acknowledged after {timeout:.0f} s")
        time.sleep(0.01)

