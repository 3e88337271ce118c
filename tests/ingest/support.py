"""Helpers shared by the ingester tests: enrolment, message builders, an in-process ingester, counts."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from ingest.consumer import IngestConfig, Ingester
from ingest.contract import HeartRate, encode, topic_for
from service.local_servers import PrivateMosquitto
from store.enrolment import import_participants

TZ = ZoneInfo("Europe/London")
HEADER = ("force_id,staff_ref,role_group,age_band,sex,programme_start,consent_manager,consent_research,"
          "device_ids,gateway_id\n")
Conn = psycopg.Connection[tuple[object, ...]]


def enrol(conn: Conn, tmp_path: Path, devices: list[str], start: str = "2026-11-01") -> None:
    """Enrol one participant per device, programme starting on ``start``."""
    lines = [f"F1,PC{i:04d},response,30-34,male,{start},true,true,{dev},gw-1\n" for i, dev in enumerate(devices)]
    path = tmp_path / f"people-{uuid.uuid4().hex[:6]}.csv"
    path.write_text(HEADER + "".join(lines))
    import_participants(conn, path, TZ)


def reset(conn: Conn) -> None:
    """Empty every table the ingester writes or reads."""
    conn.execute("TRUNCATE raw.hr_runs, raw.rr_runs, raw.sleep_episodes, raw.device_status, raw.survey_answers, "
                 "ingest.message_ledger, ingest.dead_letters, ingest.quarantine, ingest.dirty_days, "
                 "core.device_assignments, core.devices, core.identities, core.participants, core.gateways, "
                 "core.forces CASCADE")


def hr_message(device: str, start_ms: int, n: int, seed: int = 0, step_ms: int = 1000) -> HeartRate:
    """A heart-rate message of ``n`` samples one second apart (deterministic per seed)."""
    rng = np.random.default_rng(seed)
    bpm = rng.integers(50, 120, n).astype(np.int16)
    msg_id = uuid.UUID(bytes=rng.bytes(16), version=4)
    return HeartRate(msg_id=msg_id, device_id=device, sent_at_ms=start_ms + n * step_ms,
                     t_ms=start_ms + np.arange(n, dtype=np.int64) * step_ms, bpm=bpm,
                     suspect=np.zeros(n, dtype=bool))


def recent_ms(hours_ago: float = 2.0) -> int:
    return int((time.time() - hours_ago * 3600) * 1000) // 1000 * 1000


@dataclass
class Publisher:
    """A QoS 1 publisher that waits for every PUBACK."""

    broker: PrivateMosquitto
    client_id: str = "test-gateway"

    def __post_init__(self) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        self.client.max_queued_messages_set(0)
        self.client.connect(self.broker.host, self.broker.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(30)

    def publish_many(self, items: list[tuple[str, bytes]], window: int = 500) -> None:
        pending = []
        for topic, payload in items:
            pending.append(self.client.publish(topic, payload, qos=1))
            if len(pending) >= window:
                for info in pending:
                    info.wait_for_publish(30)
                pending.clear()
        for info in pending:
            info.wait_for_publish(30)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_records(pub: Publisher, gateway: str, recs: list[object]) -> None:
    pub.publish_many([(topic_for(gateway, r.device_id, r.stream), encode(r)) for r in recs])  # type: ignore[attr-defined]


@contextmanager
def running_ingester(db_url: str, broker: PrivateMosquitto, client_id: str = "ing-test",
                     group: str = "ingest", **kw: object) -> Iterator[Ingester]:
    """An in-process ingester on a thread; stopped (flush, commit, ack) on exit."""
    cfg = IngestConfig(database_url=db_url, mqtt_host=broker.host, mqtt_port=broker.port, client_id=client_id,
                       group=group, **kw)  # type: ignore[arg-type]
    ing = Ingester(cfg)
    thread = threading.Thread(target=ing.run, daemon=True)
    thread.start()
    assert ing.connected.wait(15), "ingester did not connect"
    try:
        yield ing
    finally:
        ing.stop()
        thread.join(30)


def wait_until(predicate: object, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def count(conn: Conn, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return int(str(row[0]))


def stored_samples(conn: Conn) -> int:
    return count(conn, "SELECT coalesce(sum(cardinality(bpm)), 0) FROM raw.hr_runs")


def distinct_samples(conn: Conn) -> int:
    return count(conn, "SELECT count(*) FROM (SELECT DISTINCT device_id, start_ts + o * interval '1 ms' "
                       "FROM raw.hr_runs, unnest(offsets_ms) o) s")


def stored_hr(conn: Conn) -> list[tuple[str, int, int]]:
    """Every stored heart-rate sample as ``(device, epoch ms, bpm)``, sorted, repeats kept."""
    rows = conn.execute(
        "SELECT device_id, (floor(extract(epoch FROM start_ts) * 1000) + o)::bigint, b FROM raw.hr_runs, "
        "unnest(offsets_ms, bpm) AS u(o, b) ORDER BY 1, 2").fetchall()
    return [(str(d), int(str(t)), int(str(b))) for d, t, b in rows]


def expected_hr(msgs: list[HeartRate]) -> list[tuple[str, int, int]]:
    """What a clean run of ``msgs`` stores: each distinct ``(device, sample time)`` once, first value wins."""
    seen: dict[tuple[str, int], int] = {}
    for m in msgs:
        for t, b in zip(m.t_ms.tolist(), m.bpm.tolist(), strict=True):
            seen.setdefault((m.device_id, int(t)), int(b))
    return sorted((d, t, b) for (d, t), b in seen.items())


def ledger_written(conn: Conn) -> int:
    """Samples the ledger says were written."""
    return count(conn, "SELECT coalesce(sum(samples_written), 0) FROM ingest.message_ledger")
