"""Publishing through a private Mosquitto: every message arrives, with bounded messages in flight."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.contract import DeviceStatus, decode
from simulators.adapter_files import write_log
from simulators.messages import iter_messages
from simulators.model import simulate
from simulators.params import SimParams
from simulators.publisher import InFlightWindow, gateway_client, publish_messages
from simulators.run import replay


class Subscriber:
    """QoS 1 subscriber (subscribed before anything is published) keeping topics with one gateway prefix."""

    def __init__(self, host: str, port: int, prefix: str) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.prefix = f"fatigue/v1/{prefix}"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{prefix}", clean_session=True)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_connect = lambda c, *_a: c.subscribe("fatigue/v1/+/+/+", qos=1)
        self.client.connect(host, port)
        self.client.loop_start()
        assert subscribed.wait(15)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.startswith(self.prefix):
            with self.lock:
                self.received.append((msg.topic, bytes(msg.payload)))

    def wait_for(self, n: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= n:
                    break
            time.sleep(0.05)
        time.sleep(0.2)
        with self.lock:
            return len(self.received)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _synthetic(n: int, gateways: int, tag: str) -> Iterator[tuple[int, str, bytes]]:
    for i in range(n):
        yield i, f"fatigue/v1/{tag}{i % gateways:03d}/WR{i % gateways:05d}A/hr", b'{"n":%d}' % i


def _publish_and_count(broker: Any, n: int, tag: str, max_inflight: int) -> None:
    sub = Subscriber(broker.host, broker.port, tag)
    try:
        stats = publish_messages(_synthetic(n, 20, tag), broker.host, broker.port, max_inflight=max_inflight,
                                 client_prefix=f"pub-{tag}")
        assert stats.published == stats.acked == n and stats.failed == 0
        assert stats.max_in_flight <= max_inflight
        assert sub.wait_for(n, 120) == n
        payloads = {p for _t, p in sub.received}
        assert len(payloads) == n
    finally:
        sub.close()


def test_publish_20k_all_received(mqtt_broker: Any) -> None:
    _publish_and_count(mqtt_broker, 20_000, "gwa", max_inflight=500)


@pytest.mark.slow
def test_publish_over_100k_all_received(mqtt_broker: Any) -> None:
    _publish_and_count(mqtt_broker, 120_000, "gwb", max_inflight=2000)


def test_simulated_cohort_published_and_replayed(mqtt_broker: Any, tmp_path: Path) -> None:
    sim = simulate(SimParams(n_participants=3, n_days=7, seed=9))
    msgs = list(iter_messages(sim))
    expected = sorted((m.topic, m.payload) for m in msgs)
    sub = Subscriber(mqtt_broker.host, mqtt_broker.port, "GW")
    try:
        stats = publish_messages(((m.publish_ms, m.topic, m.payload) for m in msgs), mqtt_broker.host,
                                 mqtt_broker.port, max_inflight=100, client_prefix="pub-sim")
        assert stats.acked == len(msgs) and stats.clients == 3
        assert sub.wait_for(len(msgs), 60) == len(msgs)
        assert sorted(sub.received) == expected
        log = tmp_path / "messages.bin"
        write_log(iter(msgs), log)
        again = replay(log, mqtt_broker.host, mqtt_broker.port, max_inflight=50)
        assert again.acked == len(msgs)
        assert sub.wait_for(2 * len(msgs), 60) == 2 * len(msgs)
    finally:
        sub.close()


def test_time_acceleration_paces_publishing(mqtt_broker: Any) -> None:
    msgs = [(i * 100_000, "fatigue/v1/gwt000/WR00000A/hr", b'{"n":%d}' % i) for i in range(11)]
    sub = Subscriber(mqtt_broker.host, mqtt_broker.port, "gwt")  # without one, gateways hold (PUBACK 0x10)
    try:
        stats = publish_messages(iter(msgs), mqtt_broker.host, mqtt_broker.port, speed=1000.0,
                                 client_prefix="pub-t")
    finally:
        sub.close()
    # 1 000 000 ms of simulated time at 1000x is one second of wall time
    assert stats.acked == 11 and stats.seconds >= 0.95


def test_last_will_is_an_offline_status(mqtt_broker: Any) -> None:
    sub = Subscriber(mqtt_broker.host, mqtt_broker.port, "gww")
    window = InFlightWindow(10)
    client = gateway_client(mqtt_broker.host, mqtt_broker.port, "gww001", "WR00001A", 1_750_000_000_000, window,
                            "pub-w", 60)
    try:
        sock = client.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)  # vanish without DISCONNECT: the broker publishes the will
        assert sub.wait_for(1, 20) == 1
        topic, payload = sub.received[0]
        rec = decode(topic, payload)
        assert isinstance(rec, DeviceStatus) and rec.online is False and topic.endswith("/WR00001A/status")
    finally:
        client.loop_stop()
        sub.close()
