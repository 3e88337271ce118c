"""Delivery through Mosquitto's real behaviour (issue 17, points 1, 2 and 5), with the deploy config.

The first two tests pin the broker behaviour the design rests on (docs/ingest.md "Delivery design"); if a
Mosquitto upgrade changes it, they fail and the design note must be revisited. The others publish
continuously through broker restarts and compare what is stored with a clean run of the same messages.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.contract import HeartRate, encode, topic_for
from service.local_servers import PrivateMosquitto
from simulators.publisher import NO_MATCHING_SUBSCRIBERS, PublishStats, publish_messages
from tests.ingest.support import (
    Conn,
    count,
    enrol,
    expected_hr,
    hr_message,
    ledger_written,
    recent_ms,
    reset,
    running_ingester,
    stored_hr,
    wait_until,
)

DEVICES = [f"dev-{i}" for i in range(4)]


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMosquitto]:
    """A private broker with the deploy config that the test may restart or kill."""
    b = PrivateMosquitto(tmp_path_factory.mktemp("mosquitto-restart"), deploy_config=True)
    b.start()
    try:
        yield b
    finally:
        b.stop(signal.SIGKILL)


@pytest.fixture
def clean(db: Conn, tmp_path: Path) -> Conn:
    reset(db)
    enrol(db, tmp_path, DEVICES, start="2026-11-01")
    return db


@dataclass
class RawClient:
    """A bare MQTT v5 client: records PUBACK reason codes and received messages."""

    broker: PrivateMosquitto
    client_id: str
    clean_start: bool = False
    acks: list[int] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)
    session_present: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        self.client.on_publish = lambda _c, _u, _m, reason, _p: self.acks.append(int(reason.value))
        self.client.on_message = lambda _c, _u, msg: self.received.append(bytes(msg.payload))
        self.client.on_connect = lambda _c, _u, flags, _r, _p: self.session_present.append(
            bool(flags.session_present))
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect(self.broker.host, self.broker.port, clean_start=self.clean_start, properties=props)
        self.client.loop_start()
        wait_until(lambda: self.session_present, timeout=15, what=f"{self.client_id} connected")

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.subscribe(topic, options=SubscribeOptions(qos=1))
        assert done.wait(10)

    def publish(self, topic: str, payload: bytes) -> int:
        n = len(self.acks)
        self.client.publish(topic, payload, qos=1)
        wait_until(lambda: len(self.acks) > n, timeout=10, what="PUBACK")
        return self.acks[n]

    def close(self) -> None:
        """Disconnect and wait until the DISCONNECT has gone out (the session is then kept, not in use)."""
        gone = threading.Event()
        self.client.on_disconnect = lambda *_a: gone.set()
        self.client.disconnect()
        gone.wait(10)
        self.client.loop_stop()


def test_broker_forgets_shared_subscription_on_graceful_restart(broker: PrivateMosquitto) -> None:
    """Evidence for the design: the session survives a restart, its $share subscription does not."""
    sub = RawClient(broker, "evidence-sub")
    sub.subscribe("$share/ev/fatigue/v1/+/+/+")
    pub = RawClient(broker, "evidence-pub", clean_start=True)
    assert pub.publish("fatigue/v1/gw/dev/hr", b"1") == 0
    wait_until(lambda: len(sub.received) == 1, what="delivery before restart")
    sub.close()
    pub.close()
    broker.restart()
    sub, pub = RawClient(broker, "evidence-sub"), RawClient(broker, "evidence-pub", clean_start=True)
    try:
        assert sub.session_present == [True]
        assert pub.publish("fatigue/v1/gw/dev/hr", b"2") == NO_MATCHING_SUBSCRIBERS  # dropped by the broker
        sub.subscribe("$share/ev/fatigue/v1/+/+/+")  # what the ingester now does on every connect
        assert pub.publish("fatigue/v1/gw/dev/hr", b"3") == 0
        wait_until(lambda: b"3" in sub.received, what="delivery after subscribing again")
        assert b"2" not in sub.received
    finally:
        sub.close()
        pub.close()


def test_offline_member_of_a_shared_group_is_dealt_its_share(broker: PrivateMosquitto) -> None:
    """Evidence for the design: Mosquitto deals an offline persistent member its round-robin share."""
    a, b = RawClient(broker, "member-a"), RawClient(broker, "member-b")
    for m in (a, b):
        m.subscribe("$share/st/fatigue/v1/+/+/+")
    b.close()  # leaves, session kept
    pub = RawClient(broker, "share-pub", clean_start=True)
    try:
        for i in range(20):
            assert pub.publish("fatigue/v1/gw/dev/hr", str(i).encode()) == 0
        time.sleep(1.0)
        assert 0 < len(a.received) < 20  # the rest waits in member-b's session
        b = RawClient(broker, "member-b")
        wait_until(lambda: len(a.received) + len(b.received) == 20, what="stranded share delivered to member-b")
    finally:
        for c in (a, b, pub):
            c.close()


def _stream(n_per_device: int, samples: int = 30) -> list[HeartRate]:
    base = recent_ms(20)
    return [hr_message(dev, base + k * samples * 1000, samples, seed=k * 10 + i)
            for k in range(n_per_device) for i, dev in enumerate(DEVICES)]


def _publish_in_background(broker: PrivateMosquitto, msgs: list[HeartRate], per_s: float,
                           out: list[PublishStats]) -> threading.Thread:
    t0 = recent_ms(0.01)  # publish times are real times: the gateway's last will carries the first one
    triples = [(t0 + int(i * 1000 / per_s), topic_for("gw-1", m.device_id, "hr"), encode(m))
               for i, m in enumerate(msgs)]

    def run() -> None:
        try:
            out.append(publish_messages(triples, broker.host, broker.port, speed=1.0, max_inflight=100,
                                        ack_timeout=120, client_prefix=f"gw{uuid.uuid4().hex[:4]}"))
        except Exception as exc:  # reported by the test's assertion on ``out``
            out.append(exc)  # type: ignore[arg-type]
            raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _assert_clean_run(conn: Conn, msgs: list[HeartRate], totals_samples: int) -> dict[str, Any]:
    want = expected_hr(msgs)
    got = stored_hr(conn)
    report = {"published_samples": len(want), "stored": len(got), "lost": len(set(want) - set(got)),
              "doubled": len(got) - len(set(got)),
              "absorbed": count(conn, "SELECT coalesce(sum(redeliveries), 0) FROM ingest.message_ledger")}
    print(report)
    assert got == want, report
    assert count(conn, "SELECT count(*) FROM ingest.message_ledger WHERE stream = 'hr'") == len(msgs)
    assert count(conn, "SELECT sum(samples_written) FROM ingest.message_ledger WHERE stream = 'hr'") == len(want)
    wills = count(conn, "SELECT count(*) FROM raw.device_status")
    assert ledger_written(conn) == len(want) + wills == totals_samples
    dead = conn.execute("SELECT reason_code, detail, topic FROM ingest.dead_letters").fetchall()
    assert dead == [], dead
    # the gateway's last will (online=false) may fire when the broker goes away; it is a status row, not data
    assert count(conn, "SELECT count(*) FROM raw.device_status WHERE online") == 0
    return report


def _all_in_ledger(conn: Conn, n: int) -> bool:
    return count(conn, "SELECT count(*) FROM ingest.message_ledger WHERE stream = 'hr'") >= n


def test_graceful_broker_restart_mid_stream(clean: Conn, db_url: str, broker: PrivateMosquitto) -> None:
    """Publishing continues before, during and after a SIGTERM restart of the broker: 0 lost, 0 doubled."""
    msgs = _stream(100)  # 400 messages, published at 80/s for 5 s
    group = f"g{uuid.uuid4().hex[:6]}"
    stats: list[PublishStats] = []
    with running_ingester(db_url, broker, client_id=f"ing-{group}", group=group) as ing:
        publisher = _publish_in_background(broker, msgs, 80.0, stats)
        wait_until(lambda: count(clean, "SELECT count(*) FROM ingest.message_ledger") >= 80, what="first part")
        broker.restart()
        publisher.join(180)
        assert stats and isinstance(stats[0], PublishStats), stats
        assert stats[0].acked == len(msgs) + stats[0].replayed and stats[0].failed == 0, stats
        wait_until(lambda: _all_in_ledger(clean, len(msgs)), timeout=120, what="every message stored")
    _assert_clean_run(clean, msgs, ing.totals.samples)  # (whether the gap produced 0x10 answers is timing)
    assert ing.generation >= 2  # it did reconnect, and subscribed again on a present session


def test_gateways_hold_until_an_ingester_subscribes(clean: Conn, db_url: str, broker: PrivateMosquitto) -> None:
    """Nobody subscribed: every PUBACK is 0x10; the gateways hold and republish until the ingester arrives."""
    msgs = _stream(20)
    stats: list[PublishStats] = []
    publisher = _publish_in_background(broker, msgs, 200.0, stats)
    time.sleep(2.0)  # all 80 published and answered 0x10: held
    group = f"g{uuid.uuid4().hex[:6]}"
    with running_ingester(db_url, broker, client_id=f"ing-{group}", group=group) as ing:
        publisher.join(120)
        assert stats and isinstance(stats[0], PublishStats), stats
        assert stats[0].held >= len(msgs) and stats[0].acked == len(msgs) and stats[0].failed == 0, stats
        wait_until(lambda: _all_in_ledger(clean, len(msgs)), timeout=60, what="held messages stored")
    _assert_clean_run(clean, msgs, ing.totals.samples)


def test_departed_ingester_share_is_detected_and_recovered_by_retiring_its_slot(
        clean: Conn, db_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """One of two ingesters leaves for good: its share waits, the gauges show it, retiring the slot drains it."""
    broker = PrivateMosquitto(tmp_path_factory.mktemp("mosquitto-departed"), deploy_config=True,
                              extra_config="sys_interval 1\n")
    broker.start()
    try:
        group = f"g{uuid.uuid4().hex[:6]}"
        first, second = _stream(40), _stream(70)[160:]
        with running_ingester(db_url, broker, client_id=f"{group}-1", group=group) as stays:
            with running_ingester(db_url, broker, client_id=f"{group}-2", group=group):
                pass  # slot 2 subscribed, then left for good (its session and share stay at the broker)
            stats: list[PublishStats] = []
            _publish_in_background(broker, first, 200.0, stats).join(120)
            assert stats[0].acked == len(first) and stats[0].held == 0  # the broker accepted everything...
            time.sleep(2.0)
            stored = count(clean, "SELECT count(*) FROM ingest.message_ledger WHERE stream = 'hr'")
            assert 0 < stored < len(first)  # ...and dealt part of it to the departed slot
            gauge = stays.metrics.broker["$SYS/broker/clients/disconnected"]
            wait_until(lambda: gauge._value.get() >= 1, timeout=15, what="departed slot visible in the gauges")
            done = subprocess.run(
                [sys.executable, "-m", "service.cli", "ingest-retire", "--client-id", f"{group}-2", "--idle", "2"],
                env={**os.environ, "FATIGUE_DATABASE_URL": db_url, "FATIGUE_MQTT_URL": broker.url,
                     "FATIGUE_INGEST_GROUP": group, "FATIGUE_LOG_LEVEL": "warning"},
                capture_output=True, text=True, timeout=120, check=False)
            assert done.returncode == 0, done.stderr
            drained = re.search(r"drained (\d+) message\(s\) \((\d+) samples\)", done.stdout + done.stderr)
            assert drained and int(drained[1]) > 0, done.stdout + done.stderr
            wait_until(lambda: _all_in_ledger(clean, len(first)), timeout=60, what="stranded share drained")
            stats.clear()
            _publish_in_background(broker, second, 200.0, stats).join(120)
            wait_until(lambda: _all_in_ledger(clean, len(first) + len(second)), timeout=60,
                       what="later messages all reach the remaining ingester")
        _assert_clean_run(clean, first + second, stays.totals.samples + int(drained[2]))
    finally:
        broker.stop(signal.SIGKILL)


@pytest.mark.slow
def test_broker_kill9_mid_stream(clean: Conn, db_url: str, broker: PrivateMosquitto) -> None:
    """SIGKILL of the broker twice mid-stream (deploy autosave 10 s): gateways resend what was not acknowledged
    and replay the last 30 s after reconnecting; the ledger absorbs the repeats. 0 lost, 0 doubled."""
    msgs = _stream(300)  # 1,200 messages at 60/s: 20 s of publishing
    group = f"g{uuid.uuid4().hex[:6]}"
    stats: list[PublishStats] = []
    with running_ingester(db_url, broker, client_id=f"ing-{group}", group=group) as ing:
        publisher = _publish_in_background(broker, msgs, 60.0, stats)
        for floor in (200, 600):
            wait_until(lambda floor=floor: _all_in_ledger(clean, floor), timeout=120, what=f"{floor} stored")
            broker.stop(signal.SIGKILL)
            broker.start()
        publisher.join(300)
        assert stats and isinstance(stats[0], PublishStats) and stats[0].failed == 0 and stats[0].replayed > 0, stats
        wait_until(lambda: _all_in_ledger(clean, len(msgs)), timeout=180, what="every message stored")
    report = _assert_clean_run(clean, msgs, ing.totals.samples)
    assert report["absorbed"] > 0  # the replays were real and were absorbed


@pytest.mark.slow
def test_graceful_restarts_under_sustained_load(clean: Conn, db_url: str, broker: PrivateMosquitto) -> None:
    """Three graceful broker restarts during 2,000 messages (the long variant of the default-run test)."""
    msgs = _stream(500)
    group = f"g{uuid.uuid4().hex[:6]}"
    stats: list[PublishStats] = []
    with running_ingester(db_url, broker, client_id=f"ing-{group}", group=group) as ing:
        publisher = _publish_in_background(broker, msgs, 100.0, stats)
        for floor in (300, 800, 1300):
            wait_until(lambda floor=floor: _all_in_ledger(clean, floor), timeout=120, what=f"{floor} stored")
            broker.restart()
        publisher.join(300)
        assert stats and isinstance(stats[0], PublishStats) and stats[0].failed == 0, stats
        wait_until(lambda: _all_in_ledger(clean, len(msgs)), timeout=180, what="every message stored")
    _assert_clean_run(clean, msgs, ing.totals.samples)
