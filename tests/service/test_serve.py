"""``fatigue serve`` as a subprocess: ingest, scheduled features and flags, API health, clean SIGTERM."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from service.local_servers import PrivateMosquitto, free_port
from simulators.messages import iter_messages
from simulators.params import SimParams
from simulators.publisher import publish_messages
from simulators.run import simulate_to_dir
from store import enrolment
from store.migrate import migrate
from tests.conftest import create_database, drop_database

FATIGUE = Path(sys.executable).parent / "fatigue"


def _wait(what: str, condition: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"fatigue serve exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.3)


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('fatigue.all_forces', 'on', true)")
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@pytest.fixture
def scratch_db(pg_admin_url: str) -> Iterator[str]:
    url = create_database(pg_admin_url, "fatigue_serve")
    migrate(url)
    try:
        yield url
    finally:
        drop_database(pg_admin_url, url)


def test_serve_ingests_schedules_serves_and_stops_on_sigterm(scratch_db: str, mqtt_broker: PrivateMosquitto,
                                                             tmp_path: Path) -> None:
    start = date.today() - timedelta(days=21)
    start -= timedelta(days=start.weekday())
    params = SimParams(n_participants=4, n_days=14, start_date=start, seed=3)
    sim = simulate_to_dir(params, tmp_path / "sim")
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        enrolment.import_participants(conn, tmp_path / "sim" / "participants.csv", ZoneInfo("Europe/London"))
        enrolment.import_roster(conn, tmp_path / "sim" / "roster.csv")
    tag, port = uuid.uuid4().hex[:8], free_port()
    env = {**os.environ, "FATIGUE_DATABASE_URL": scratch_db, "FATIGUE_MQTT_URL": mqtt_broker.url,
           "FATIGUE_INGEST_GROUP": f"serve{tag}", "FATIGUE_INGEST_MAX_LATENESS_DAYS": "200",
           "FATIGUE_OUTBOX_DIR": str(tmp_path / "outbox"), "FATIGUE_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([str(FATIGUE), "serve", "--every", "1", "--host", "127.0.0.1", "--port", str(port),
                             "--client-id", f"fatigue-serve-test-{tag}"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait("the API", lambda: _healthy(port), proc)
        messages = list(itertools.islice(((m.publish_ms, m.topic, m.payload) for m in iter_messages(sim)), 400))
        for _attempt in range(30):  # until the ingester has subscribed; re-publishing is absorbed by the ledger
            stats = publish_messages(messages, mqtt_broker.host, mqtt_broker.port)
            assert stats.acked == stats.published == len(messages)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and _count(scratch_db, "SELECT count(*) FROM ingest.message_ledger") == 0:
                time.sleep(0.2)
            if _count(scratch_db, "SELECT count(*) FROM ingest.message_ledger") > 0:
                break
        _wait("ingested messages", lambda: _count(scratch_db, "SELECT count(*) FROM ingest.message_ledger") > 0, proc)
        _wait("daily features", lambda: _count(scratch_db, "SELECT count(*) FROM derived.daily_features") > 0, proc)
        _wait("weekly flags", lambda: _count(scratch_db, "SELECT count(*) FROM risk.weekly_flags") > 0, proc)
        assert _healthy(port)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out[-2000:]
    assert "stopped" in out
