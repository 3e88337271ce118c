"""``fatigue serve`` as a subprocess: ingest, scheduled features and flags, API health, clean SIGTERM; go-live with
no closed week; kill -9 in the middle of a report delivery and restart."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
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


def _serve(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(FATIGUE), "serve", "--every", "1", "--retry-base", "1", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_fresh_programme_with_no_closed_week_keeps_ingesting_and_answering(
        scratch_db: str, mqtt_broker: PrivateMosquitto, tmp_path: Path) -> None:
    """Go-live: forces enrolled, nobody has a closed week, no flag anywhere. The weekly job runs at the first tick
    and every force gets a clear "no data" report; ingest and API keep working tick after tick."""
    start = date.today() - timedelta(days=2)
    sim = simulate_to_dir(SimParams(n_participants=3, n_days=2, start_date=start, seed=5), tmp_path / "sim")
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        enrolment.import_participants(conn, tmp_path / "sim" / "participants.csv", ZoneInfo("Europe/London"))
        conn.execute("INSERT INTO core.forces (force_id) VALUES ('nobody_yet') ON CONFLICT DO NOTHING")
        forces = _count(scratch_db, "SELECT count(*) FROM core.forces")
    tag, port = uuid.uuid4().hex[:8], free_port()
    env = {**os.environ, "FATIGUE_DATABASE_URL": scratch_db, "FATIGUE_MQTT_URL": mqtt_broker.url,
           "FATIGUE_INGEST_GROUP": f"fresh{tag}", "FATIGUE_OUTBOX_DIR": str(tmp_path / "outbox"),
           "FATIGUE_LOG_LEVEL": "warning"}
    proc = _serve(env, "--host", "127.0.0.1", "--port", str(port), "--client-id", f"fatigue-fresh-{tag}")
    try:
        _wait("the API", lambda: _healthy(port), proc)
        _wait("a report for every force", lambda: _count(
            scratch_db, "SELECT count(*) FROM risk.report_deliveries WHERE channel = 'outbox' "
                        "AND state = 'delivered'") == forces, proc)
        assert _count(scratch_db, "SELECT count(*) FROM risk.weekly_flags") == 0
        messages = [(m.publish_ms, m.topic, m.payload) for m in iter_messages(sim)]
        half = len(messages) // 2
        for batch, at_least in ((messages[:half], 1), (messages[half:], 2)):
            ledger = _count(scratch_db, "SELECT count(*) FROM ingest.message_ledger")
            for _attempt in range(30):  # until the ingester has subscribed; re-publishing is absorbed by the ledger
                publish_messages(batch[:200], mqtt_broker.host, mqtt_broker.port)
                time.sleep(1.0)
                if _count(scratch_db, "SELECT count(*) FROM ingest.message_ledger") > ledger:
                    break
            assert _count(scratch_db, "SELECT count(*) FROM ingest.message_ledger") > ledger, at_least
            for _tick in range(3):  # several scheduler ticks later, still answering
                time.sleep(1.0)
                assert proc.poll() is None and _healthy(port)
        assert _count(scratch_db, "SELECT count(*) FROM risk.reports") == forces  # once, not once per tick
        pages = list((tmp_path / "outbox").rglob("report.html"))
        assert len(pages) == forces and all("not a finding" in p.read_text() for p in pages)
    finally:
        out = _stop(proc)
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]


def test_kill_9_mid_delivery_and_restart_loses_and_doubles_nothing(
        scratch_db: str, mqtt_broker: PrivateMosquitto, tmp_path: Path) -> None:
    from risk.delivery import week_of
    from service.scheduler import WeeklySlot
    from tests.service.delivery_support import Notices, Smtp, programme_of_states

    pytest.importorskip("aiosmtpd.controller", reason="pip install aiosmtpd (dev dependency)")
    slot = WeeklySlot(1, 0, 0).latest(datetime.now(ZoneInfo("Europe/London")))  # Tuesday 00:00
    week = week_of(slot)
    monday = date.fromisocalendar(int(week[:4]), int(week[6:]), 1)
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        forces = sorted(programme_of_states(conn, monday - timedelta(days=7)))
    smtp = Smtp().start()
    smtp.stall.set()
    notices = Notices(mqtt_broker.host, mqtt_broker.port)
    outbox = tmp_path / "outbox"
    env = {**os.environ, "FATIGUE_DATABASE_URL": scratch_db, "FATIGUE_MQTT_URL": mqtt_broker.url,
           "FATIGUE_OUTBOX_DIR": str(outbox), "FATIGUE_SMTP_URL": smtp.url, "FATIGUE_LOG_LEVEL": "warning"}
    args = ("--no-ingest", "--no-api", "--weekly", "TUE 00:00")
    try:
        first = _serve(env, *args)
        try:
            _wait("an e-mail in flight", smtp.stalled.is_set, first)
            first.kill()  # SIGKILL: no cleanup, the claim's transaction dies with the connection
            first.communicate(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
        assert _count(scratch_db, "SELECT count(*) FROM risk.report_deliveries WHERE channel = 'email' "
                                  "AND state = 'delivered'") < len(forces)
        smtp.stall.clear()
        smtp.release.set()
        second = _serve(env, *args)
        try:
            _wait("every delivery", lambda: _count(scratch_db, "SELECT count(*) FROM risk.report_deliveries "
                                                               "WHERE state = 'delivered'") == 3 * len(forces),
                  second)
            time.sleep(2.5)  # two more ticks: nothing is sent again
        finally:
            out = _stop(second)
        assert second.returncode == 0, out[-3000:]
        assert _count(scratch_db, f"SELECT count(*) FROM risk.reports WHERE iso_week = '{week}'") == len(forces)
        flagged = next((outbox / "flagged" / week).iterdir()) / "report.html"
        assert "FL-0" in flagged.read_text()  # a real report, not an empty page
        for force in forces:
            assert len(list((outbox / force / week).iterdir())) == 1, force
        assert len(smtp.received) == len(forces) and set(smtp.per_report().values()) == {1}
        assert sorted(json.loads(p)["force_id"] for p in notices.got) == forces
    finally:
        notices.close()
        smtp.stop()
