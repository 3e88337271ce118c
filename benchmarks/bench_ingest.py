"""Ingest benchmark: end-to-end MQTT -> database samples per second, against two baselines.

Run: ``python -m benchmarks.bench_ingest [--samples 200000] [--per-message 1000]``

All three are timed in the same run on the same samples:

- **ceiling**: a bare binary ``COPY`` of the samples, one row each, into a table keyed ``(device_id, ts)``;
- **naive**: an ingester that inserts each message's samples as it arrives (auto-ack, one transaction per
  message, ``executemany`` of ``INSERT ... ON CONFLICT DO NOTHING``), timed on a subsample and scaled;
- **ingester**: ``ingest.consumer.Ingester`` (QoS 1, acknowledgement after commit, ledger, run rows), fed
  through a private Mosquitto by a QoS 1 publisher using the contract's encoder (the simulator's encoder).

The figure that matters is ingester / ceiling (target >= 0.5).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from ingest.consumer import IngestConfig, Ingester
from ingest.contract import HeartRate, decode, encode, topic_for
from service.local_servers import PrivateMosquitto
from store.enrolment import import_participants
from store.migrate import migrate

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _messages(n_samples: int, per_msg: int, devices: int) -> list[HeartRate]:
    rng = np.random.default_rng(7)
    start = int(time.time() * 1000) - 20 * 24 * 3600 * 1000
    out = []
    for i in range(n_samples // per_msg):
        dev = i % devices
        t0 = start + (i // devices) * per_msg * 1000
        out.append(HeartRate(msg_id=uuid.UUID(bytes=rng.bytes(16), version=4), device_id=f"bench-{dev}",
                             sent_at_ms=t0, t_ms=t0 + np.arange(per_msg, dtype=np.int64) * 1000,
                             bpm=rng.integers(45, 150, per_msg).astype(np.int16),
                             suspect=np.zeros(per_msg, dtype=bool)))
    return out


def _ceiling(url: str, msgs: list[HeartRate]) -> float:
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE bench_ceiling (device_id text, ts timestamptz, bpm smallint, "
                     "PRIMARY KEY (device_id, ts))")
        conn.commit()
        rows = [(m.device_id, datetime.fromtimestamp(t / 1000, UTC), int(b))
                for m in msgs for t, b in zip(m.t_ms.tolist(), m.bpm.tolist(), strict=True)]
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY bench_ceiling FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "timestamptz", "int2"])
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return time.perf_counter() - started


def _publish(broker: PrivateMosquitto, msgs: list[HeartRate], window: int = 500) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-gw-{uuid.uuid4().hex[:6]}",
                         protocol=mqtt.MQTTv5)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    pending = []
    for m in msgs:
        pending.append(client.publish(topic_for("gw-1", m.device_id, "hr"), encode(m), qos=1))
        if len(pending) >= window:
            for info in pending:
                info.wait_for_publish(60)
            pending.clear()
    for info in pending:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def _naive(url: str, broker: PrivateMosquitto, msgs: list[HeartRate]) -> float:
    """Auto-ack subscriber inserting each message's samples as it arrives."""
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("CREATE TABLE IF NOT EXISTS bench_naive (device_id text, ts timestamptz, bpm smallint, "
                 "PRIMARY KEY (device_id, ts))")
    done = threading.Event()
    seen = [0]

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        rec = decode(msg.topic, msg.payload)
        assert isinstance(rec, HeartRate)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO bench_naive VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                            [(rec.device_id, datetime.fromtimestamp(t / 1000, UTC), int(b))
                             for t, b in zip(rec.t_ms.tolist(), rec.bpm.tolist(), strict=True)])
        seen[0] += 1
        if seen[0] == len(msgs):
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-naive", protocol=mqtt.MQTTv5)
    sub.on_message = on_message
    sub.connect(broker.host, broker.port)
    sub.subscribe("fatigue/v1/+/+/hr", qos=1)
    sub.loop_start()
    time.sleep(0.5)  # let the subscription settle before timing
    started = time.perf_counter()
    _publish(broker, msgs)
    done.wait(600)
    elapsed = time.perf_counter() - started
    sub.disconnect()
    sub.loop_stop()
    conn.close()
    return elapsed


def _ours(url: str, broker: PrivateMosquitto, msgs: list[HeartRate]) -> float:
    cfg = IngestConfig(database_url=url, mqtt_host=broker.host, mqtt_port=broker.port, client_id="bench-ingest",
                       group="bench", batch_size=200, batch_age_s=0.05)
    ing = Ingester(cfg)
    thread = threading.Thread(target=ing.run, daemon=True)
    thread.start()
    ing.connected.wait(15)
    time.sleep(0.5)
    started = time.perf_counter()
    _publish(broker, msgs)
    while ing.totals.stored < len(msgs):
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    ing.stop()
    thread.join(30)
    return elapsed


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--per-message", type=int, default=1000)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--naive-fraction", type=float, default=0.1)
    args = parser.parse_args(argv)
    msgs = _messages(args.samples, args.per_message, args.devices)
    n = sum(m.t_ms.size for m in msgs)
    name = f"fatigue_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        migrate(url)
        with tempfile.TemporaryDirectory() as tmp, psycopg.connect(url, autocommit=True) as conn:
            people = Path(tmp) / "people.csv"
            people.write_text("force_id,staff_ref,role_group,age_band,sex,programme_start,consent_manager,"
                              "consent_research,device_ids,gateway_id\n" + "".join(
                                  f"B,PC{i},response,30-34,male,{datetime.now(UTC).date().isoformat()},true,true,"
                                  f"bench-{i},gw-1\n" for i in range(args.devices)))
            # programme started 30 days ago so that the samples sit inside the programme window
            import_participants(conn, people, ZoneInfo("Europe/London"))
            conn.execute("UPDATE core.participants SET programme_start = current_date - 30")
            conn.execute("UPDATE core.device_assignments SET valid_from = now() - interval '31 days'")
            broker = PrivateMosquitto(Path(tmp) / "broker")
            broker.start()
            try:
                ceiling = _ceiling(url, msgs)
                ours = _ours(url, broker, msgs)
                k = max(1, int(len(msgs) * args.naive_fraction))
                naive = _naive(url, broker, msgs[:k]) * len(msgs) / k
            finally:
                broker.stop()
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    rates = {"ceiling": n / ceiling, "ingester": n / ours, "naive": n / naive}
    print(f"samples: {n:,} in {len(msgs):,} messages of {args.per_message}")
    print(f"bare binary COPY, one row per sample (ceiling): {rates['ceiling']:>12,.0f} samples/s")
    print(f"ingester, MQTT QoS 1, ack after commit:          {rates['ingester']:>12,.0f} samples/s")
    print(f"naive per-message INSERT ingester (scaled):      {rates['naive']:>12,.0f} samples/s")
    print(f"ratio ingester / ceiling: {rates['ingester'] / rates['ceiling']:.2f}  (target >= 0.5)")
    print(f"ratio ingester / naive:   {rates['ingester'] / rates['naive']:.1f}x")
    return rates


if __name__ == "__main__":
    main()
