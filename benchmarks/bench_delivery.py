"""Delivery designs compared on Mosquitto's real behaviour: loss, duplicate work and throughput (issue 17).

Run: ``python -m benchmarks.bench_delivery [--messages 1200] [--samples 60]``

Every case uses a private Mosquitto with the delivery settings of ``deploy/mosquitto/mosquitto.conf``, two
ingesters in one group, and the same heart-rate messages; every figure is measured in the same run:

- **old**: shared subscription, subscribe only when the broker reports no session (the code before issue 17),
  and a gateway that treats every PUBACK as success;
- **shared** (chosen): shared subscription, subscribe on every connect; gateways hold and republish on PUBACK
  0x10 and replay the last 30 s after a reconnect;
- **plain**: every ingester has its own plain subscription (each receives every message; the ledger absorbs
  the copies), same gateways.

Scenarios: a graceful broker restart a third of the way through a continuous stream; one of the two
ingesters leaving for good (no retire); and a fault-free stream published as fast as acknowledged, timed
until everything is committed (throughput, as a ratio against **shared**).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from ingest.consumer import IngestConfig, Ingester
from ingest.contract import SUBSCRIPTION, HeartRate, encode, topic_for
from service.local_servers import PrivateMosquitto
from service.logs import configure_logging
from simulators.publisher import publish_messages
from store.migrate import migrate
from tests.conftest import create_database, drop_database
from tests.ingest.support import enrol, expected_hr, hr_message, recent_ms, reset, stored_hr

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEVICES = [f"bd-{i}" for i in range(10)]


class OldIngester(Ingester):
    """The ingester before issue 17: it subscribes only when the broker has no session for it."""

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if flags.session_present:
            self.generation += 1
            self._ready()
        else:
            super()._on_connect(client, userdata, flags, reason, props)


class PlainIngester(Ingester):
    """Every ingester on its own plain subscription: each receives every message."""

    @property
    def topic_filter(self) -> str:
        return SUBSCRIPTION


def _old_gateway(broker: PrivateMosquitto, items: list[tuple[int, str, bytes]], per_s: float) -> None:
    """MQTT 3.1.1 QoS 1 publisher that cannot see reason codes (the simulator before issue 17)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"old-{uuid.uuid4().hex[:6]}",
                         protocol=mqtt.MQTTv311, clean_session=True)
    client.connect(broker.host, broker.port)
    client.loop_start()
    started = time.monotonic()
    pending = []
    for i, (_, topic, payload) in enumerate(items):
        delay = started + i / per_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        pending.append(client.publish(topic, payload, qos=1))
    for info in pending:
        try:
            info.wait_for_publish(60)
        except (RuntimeError, ValueError):  # lost with the connection: this gateway does not resend
            continue
    client.disconnect()
    client.loop_stop()


@contextmanager
def _ingesters(kind: type[Ingester], url: str, broker: PrivateMosquitto, group: str, n: int = 2
               ) -> Iterator[list[Ingester]]:
    ings = [kind(IngestConfig(database_url=url, mqtt_host=broker.host, mqtt_port=broker.port,
                              client_id=f"{group}-{i + 1}", group=group)) for i in range(n)]
    threads = [threading.Thread(target=ing.run, daemon=True) for ing in ings]
    for t in threads:
        t.start()
    for ing in ings:
        if not ing.connected.wait(30):
            raise RuntimeError("ingester did not subscribe")
    try:
        yield ings
    finally:
        for ing in ings:
            ing.stop()
        for t in threads:
            t.join(60)


def _wait(pred: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return pred()


def _ledger(url: str) -> tuple[int, int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*), coalesce(sum(redeliveries), 0), coalesce(sum(samples_written), 0) "
                           "FROM ingest.message_ledger WHERE stream = 'hr'").fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def _outcome(url: str, msgs: list[HeartRate]) -> dict[str, float]:
    with psycopg.connect(url) as conn:
        got, want = stored_hr(conn), expected_hr(msgs)
    n, redeliveries, _ = _ledger(url)
    lost = len(set(want) - set(got))
    return {"undelivered_pct": round(100 * lost / len(want), 1), "doubled": len(got) - len(set(got)),
            "duplicate_work_pct": round(100 * redeliveries / max(n, 1), 1)}


def _case(kind: str, scenario: str, url: str, msgs: list[HeartRate], per_s: float) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn, tempfile.TemporaryDirectory() as tmp:
        reset(conn)
        enrol(conn, Path(tmp), DEVICES, start="2026-11-01")
    t0 = recent_ms(0.01)
    step_ms = 1000 / per_s if per_s else 0.0
    items = [(t0 + int(i * step_ms), topic_for("gw-b", m.device_id, "hr"), encode(m))
             for i, m in enumerate(msgs)]
    ingester: type[Ingester] = {"old": OldIngester, "shared": Ingester, "plain": PlainIngester}[kind]
    with tempfile.TemporaryDirectory() as tmp:
        broker = PrivateMosquitto(Path(tmp) / "broker", deploy_config=True)
        broker.start()
        group = f"b{uuid.uuid4().hex[:6]}"
        try:
            with _ingesters(ingester, url, broker, group) as ings:
                if scenario == "departed":
                    ings[1].stop()
                    time.sleep(1.0)

                def publish() -> None:
                    if kind == "old":
                        _old_gateway(broker, items, per_s)
                    else:
                        publish_messages(items, broker.host, broker.port, speed=1.0 if per_s else None,
                                         max_inflight=200, ack_timeout=60, client_prefix=group)

                started = time.monotonic()
                thread = threading.Thread(target=publish, daemon=True)
                thread.start()
                if scenario == "restart":
                    _wait(lambda: _ledger(url)[0] >= len(msgs) // 3, 60)
                    broker.restart()
                thread.join(300)
                done = _wait(lambda: _ledger(url)[0] >= len(msgs), 20 if scenario != "throughput" else 300)
                seconds = time.monotonic() - started
        finally:
            broker.stop()
    out: dict[str, Any] = {"design": kind, "scenario": scenario, **_outcome(url, msgs), "complete": done}
    if scenario == "throughput":
        out["msgs_per_s"] = round(len(msgs) / seconds, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1200)
    parser.add_argument("--samples", type=int, default=60)
    args = parser.parse_args()
    configure_logging("error")
    base = recent_ms(20)
    per_dev = args.messages // len(DEVICES)
    msgs = [hr_message(dev, base + k * args.samples * 1000, args.samples, seed=k * 100 + i)
            for k in range(per_dev) for i, dev in enumerate(DEVICES)]
    url = create_database(ADMIN_URL, "fatigue_bench_delivery")
    try:
        migrate(url)
        for scenario in ("restart", "departed"):
            for kind in ("old", "shared", "plain"):
                print(_case(kind, scenario, url, msgs, 150.0), flush=True)
        fast = {kind: _case(kind, "throughput", url, msgs, 0.0) for kind in ("shared", "plain")}
        for r in fast.values():
            ratio = r["msgs_per_s"] / fast["shared"]["msgs_per_s"]
            print({**r, "throughput_vs_shared": round(ratio, 2)})
    finally:
        drop_database(ADMIN_URL, url)


if __name__ == "__main__":
    main()
