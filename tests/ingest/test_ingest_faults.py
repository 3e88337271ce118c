"""Fault injection (reliability_security.md section 6, R1-R4, sized for CI): the ingester is killed, crashes at
named points, loses its database or its broker; nothing is lost and nothing is stored twice.

Accounting follows the Jepsen vocabulary: published, stored, lost, duplicate_rows, duplicates_absorbed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from ingest.contract import encode, topic_for
from service.local_servers import PrivateMosquitto, PrivatePostgres
from store.migrate import migrate
from tests.ingest.support import Publisher, count, enrol, hr_message, recent_ms, wait_until


@dataclass
class Supervised:
    """A `fatigue ingest` process restarted whenever it dies, like a process supervisor would."""

    db_url: str
    broker: PrivateMosquitto
    tmp: Path
    crash_points: str | None = None
    batch_size: int = 20
    max_crashes: int = 5
    group: str = field(default_factory=lambda: f"g{uuid.uuid4().hex[:6]}")
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    crashes: int = 0

    @property
    def trace(self) -> Path:
        return self.tmp / "trace.log"

    def start(self) -> None:
        env = {**os.environ, "FATIGUE_DATABASE_URL": self.db_url, "FATIGUE_MQTT_URL": self.broker.url,
               "FATIGUE_INGEST_GROUP": self.group, "FATIGUE_LOG_LEVEL": "warning"}
        if self.crash_points and self.crashes < self.max_crashes:
            env["FATIGUE_CRASH_POINTS"] = self.crash_points
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "ingest", "--client-id", f"ing-{self.group}", "--batch-size",
             str(self.batch_size), "--batch-age", "0.05", "--trace", str(self.trace)],
            env=env, stdout=subprocess.DEVNULL, stderr=open(self.tmp / "ingest.err", "ab"))  # noqa: SIM115

    def wait_ready(self) -> None:
        """Wait until the first process has subscribed (messages published before that have no subscriber)."""
        wait_until(lambda: self.trace.exists() and "ready" in self.trace.read_text(), timeout=60,
                   what="ingester subscribed")

    def ensure_running(self) -> None:
        assert self.proc is not None
        code = self.proc.poll()
        if code is not None:
            assert code == 137, f"ingester exited with {code}: {(self.tmp / 'ingest.err').read_text()[-2000:]}"
            self.crashes += 1
            self.restarts += 1
            self.start()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.restarts += 1
        self.start()

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@pytest.fixture
def stream_db(pg_admin_url: str, tmp_path: Path) -> Iterator[str]:
    from tests.conftest import create_database, drop_database

    url = create_database(pg_admin_url, "fatigue_fault")
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        enrol(conn, tmp_path, [f"dev-{i}" for i in range(10)], start="2026-11-01")
    yield url
    drop_database(pg_admin_url, url)


def _messages(n_msgs: int, samples: int) -> list[tuple[str, bytes]]:
    base = recent_ms(24)
    return [(topic_for("gw-1", f"dev-{i % 10}", "hr"),
             encode(hr_message(f"dev-{i % 10}", base + (i // 10) * samples * 1000, samples, seed=i)))
            for i in range(n_msgs)]


def _publish_in_background(broker: PrivateMosquitto, items: list[tuple[str, bytes]]) -> threading.Thread:
    def run() -> None:
        pub = Publisher(broker, client_id=f"gw-{uuid.uuid4().hex[:6]}")
        pub.publish_many(items, window=200)
        pub.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _report(url: str, published: int) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        stored = count(conn, "SELECT coalesce(sum(cardinality(bpm)), 0) FROM raw.hr_runs")
        distinct = count(conn, "SELECT count(*) FROM (SELECT DISTINCT device_id, start_ts + o * interval '1 ms' "
                               "FROM raw.hr_runs, unnest(offsets_ms) o) s")
        absorbed = count(conn, "SELECT coalesce(sum(redeliveries), 0) FROM ingest.message_ledger")
        dead = count(conn, "SELECT count(*) FROM ingest.dead_letters")
    report = {"published": published, "stored": distinct, "lost": published - distinct,
              "duplicate_rows": stored - distinct, "duplicates_absorbed": absorbed, "dead_lettered": dead}
    print(json.dumps(report))
    return report


def _stored(url: str) -> int:
    with psycopg.connect(url) as conn:
        return count(conn, "SELECT coalesce(sum(cardinality(bpm)), 0) FROM raw.hr_runs")


def _acks_follow_commits(trace: Path) -> None:
    committed: set[str] = set()
    for line in trace.read_text().splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "commit":
            committed.update(rest.split())
        elif kind == "ack":
            assert rest in committed, f"acknowledged {rest} before its commit"


def test_kill9_five_times_during_100k_samples(stream_db: str, mqtt_broker: PrivateMosquitto,
                                              tmp_path: Path) -> None:
    """R1 (CI size): 1,000 messages x 100 samples, ingester SIGKILLed 5 times mid-stream."""
    items = _messages(1000, 100)
    sup = Supervised(stream_db, mqtt_broker, tmp_path)
    sup.start()
    sup.wait_ready()
    publisher = _publish_in_background(mqtt_broker, items)
    for kill in range(5):
        floor = _stored(stream_db) + 8_000  # kill only after real progress since the last restart
        wait_until(lambda floor=floor: _stored(stream_db) >= floor, timeout=120,
                   what=f"progress before kill {kill + 1}")
        sup.kill9()
    publisher.join(120)
    wait_until(lambda: _stored(stream_db) >= 100_000, timeout=180, what="all samples stored")
    assert sup.terminate() == 0
    report = _report(stream_db, 100_000)
    assert report["lost"] == 0 and report["duplicate_rows"] == 0 and report["dead_lettered"] == 0
    assert sup.restarts == 5


@pytest.mark.parametrize("point", ["after_commit", "mid_copy", "before_commit"])
def test_crash_points(point: str, stream_db: str, mqtt_broker: PrivateMosquitto, tmp_path: Path) -> None:
    """R2: crashes exactly between COMMIT and PUBACK, inside COPY, and before COMMIT.

    Each batch crashes with probability 0.5 until 5 crashes have happened; then the supervisor restarts the
    ingester without crash points and the stream must complete with nothing lost or doubled.
    """
    items = _messages(400, 50)
    sup = Supervised(stream_db, mqtt_broker, tmp_path, crash_points=f"{point}:0.5", batch_size=10)
    sup.start()
    sup.wait_ready()
    _publish_in_background(mqtt_broker, items).join(120)

    def done() -> bool:
        sup.ensure_running()
        return _stored(stream_db) >= 20_000

    wait_until(done, timeout=240, what="all samples stored despite crashes")
    sup.terminate()
    report = _report(stream_db, 20_000)
    assert sup.crashes == 5, f"{sup.crashes} crashes at {point}"
    assert report["lost"] == 0 and report["duplicate_rows"] == 0
    if point == "after_commit":
        assert report["duplicates_absorbed"] > 0, "the COMMIT/PUBACK window was never hit"


def test_database_restart_and_outage(private_pg: PrivatePostgres, mqtt_broker: PrivateMosquitto,
                                     tmp_path: Path) -> None:
    """R3: immediate-mode restart and a 10 s stop mid-stream; no acknowledgement before its commit."""
    from tests.conftest import create_database

    url = create_database(private_pg.url, "fatigue_r3")
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        enrol(conn, tmp_path, [f"dev-{i}" for i in range(10)], start="2026-11-01")
    items = _messages(600, 100)
    sup = Supervised(url, mqtt_broker, tmp_path)
    sup.start()
    sup.wait_ready()
    publisher = _publish_in_background(mqtt_broker, items)
    wait_until(lambda: _stored(url) >= 10_000, timeout=60, what="first samples")
    private_pg.restart("immediate")
    wait_until(lambda: _stored(url) >= 25_000, timeout=90, what="progress after restart")
    private_pg.stop("immediate")
    # the outage lasts while the ingester keeps retrying; 10 s measured on the monotonic clock
    import time

    resume_at = time.monotonic() + 10
    wait_until(lambda: time.monotonic() >= resume_at, timeout=15, what="10 s outage")
    private_pg.start()
    publisher.join(120)
    wait_until(lambda: _stored(url) >= 60_000, timeout=180, what="backlog drained")
    assert sup.terminate() == 0
    report = _report(url, 60_000)
    assert report["lost"] == 0 and report["duplicate_rows"] == 0
    _acks_follow_commits(sup.trace)


def test_broker_graceful_restart(stream_db: str, fresh_broker: PrivateMosquitto, tmp_path: Path) -> None:
    """R4: Mosquitto restarted with SIGTERM mid-stream; its persistence keeps the ingester's queue."""
    items = _messages(500, 40)
    sup = Supervised(stream_db, fresh_broker, tmp_path)
    sup.start()
    sup.wait_ready()
    _publish_in_background(fresh_broker, items).join(120)
    wait_until(lambda: _stored(stream_db) >= 2_000, timeout=60, what="first samples")
    fresh_broker.restart()
    wait_until(lambda: _stored(stream_db) >= 20_000, timeout=180, what="all samples after broker restart")
    assert sup.terminate() == 0
    report = _report(stream_db, 20_000)
    assert report["lost"] == 0 and report["duplicate_rows"] == 0


def test_sigterm_exits_cleanly(stream_db: str, mqtt_broker: PrivateMosquitto, tmp_path: Path) -> None:
    sup = Supervised(stream_db, mqtt_broker, tmp_path)
    sup.start()
    sup.wait_ready()
    _publish_in_background(mqtt_broker, _messages(50, 10)).join(60)
    wait_until(lambda: _stored(stream_db) >= 500, timeout=60, what="stored")
    assert sup.terminate() == 0
