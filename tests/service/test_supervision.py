"""Supervision: one failing job or force never stops the rest; only lasting fatal conditions stop serve, with a
message saying what to do. Real PostgreSQL and Mosquitto; failures are injected as real faults (an unwritable
outbox folder, a closed port, a broker refusing logins) or by a job that raises."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY

from ingest.consumer import IngestConfig
from service.local_servers import PrivateMosquitto, free_port
from service.scheduler import FatalError, Scheduler
from service.serve import broker_refusal
from store.migrate import migrate
from tests.conftest import create_database, drop_database
from tests.service.delivery_support import NOW, WEEK, count, programme_of_states, serve_config

FATIGUE = Path(sys.executable).parent / "fatigue"


@pytest.fixture
def fresh_url(pg_admin_url: str) -> Iterator[str]:
    url = create_database(pg_admin_url, "fatigue_supervise")
    migrate(url)
    try:
        yield url
    finally:
        drop_database(pg_admin_url, url)


def _job_failures(job: str) -> float:
    return sum(s.value for m in REGISTRY.collect() if m.name == "fatigue_scheduler_job_failures"
               for s in m.samples if s.name.endswith("_total") and s.labels.get("job") == job)


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_one_forces_failure_does_not_stop_the_others_and_is_retried(fresh_url: str, tmp_path: Path) -> None:
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        forces = programme_of_states(conn)
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "flagged").write_text("not a folder")  # this force's report cannot be written
    scheduler = Scheduler(serve_config(fresh_url, outbox, None, None))
    scheduler.tick(NOW)
    done = "SELECT count(*) FROM risk.report_deliveries WHERE channel = 'outbox' AND state = 'delivered'"
    assert count(fresh_url, done) == len(forces) - 1
    assert count(fresh_url, "SELECT count(*) FROM risk.report_deliveries d JOIN risk.report_jobs j USING "
                            "(report_id) WHERE j.force_id = 'flagged' AND d.state = 'pending' AND d.attempts = 1 "
                            "AND d.last_error IN ('FileExistsError', 'NotADirectoryError')") == 1
    (outbox / "flagged").unlink()
    scheduler.tick(NOW)
    assert count(fresh_url, done) == len(forces)
    assert len(list((outbox / "flagged" / WEEK).iterdir())) == 1


class _FailingDaily(Scheduler):
    calls = 0

    def dirty(self) -> bool:
        return True

    def run_daily(self) -> None:
        self.calls += 1
        raise ValueError("feature job broke")


def test_a_failing_job_is_counted_backed_off_and_does_not_stop_the_others(fresh_url: str, tmp_path: Path) -> None:
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        forces = programme_of_states(conn)
    clock = _Clock()
    scheduler = _FailingDaily(serve_config(fresh_url, tmp_path / "outbox", None, None, retry_base_s=1.0,
                                                retry_max_s=8.0), clock)
    before = _job_failures("daily")
    scheduler.tick(NOW)  # daily fails; flags and reports still run
    assert _job_failures("daily") - before == 1 and scheduler.calls == 1
    assert count(fresh_url, "SELECT count(*) FROM risk.reports") == len(forces)
    scheduler.tick(NOW)  # backing off (1 s): not tried again at the same instant
    assert scheduler.calls == 1
    clock.t += 1.01
    scheduler.tick(NOW)
    assert scheduler.calls == 2
    clock.t += 1.01  # second failure: 2 s back-off
    scheduler.tick(NOW)
    assert scheduler.calls == 2
    clock.t += 1.0
    scheduler.tick(NOW)
    assert scheduler.calls == 3 and scheduler.fatal is None


def test_database_unreachable_for_good_is_fatal_with_what_to_do(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    clock = _Clock()
    scheduler = Scheduler(serve_config(url, tmp_path / "outbox", None, None, db_fatal_after_s=60.0), clock)
    scheduler.tick(NOW)  # unreachable for 0 s: logged and retried, not fatal
    clock.t += 61
    with pytest.raises(FatalError, match="FATIGUE_DATABASE_URL"):
        scheduler.tick(NOW)


@pytest.fixture
def locked_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMosquitto]:
    broker = PrivateMosquitto(tmp_path_factory.mktemp("locked-broker"), extra_config="allow_anonymous false\n")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _ingest(broker: PrivateMosquitto, user: str | None) -> IngestConfig:
    return IngestConfig(database_url="postgresql://unused", mqtt_host=broker.host, mqtt_port=broker.port,
                        client_id="probe-test", username=user, password="wrong" if user else None)


def test_refused_broker_credentials_stop_serve_with_what_to_do(locked_broker: PrivateMosquitto, fresh_url: str,
                                                               mqtt_broker: Any, tmp_path: Path) -> None:
    assert broker_refusal(_ingest(locked_broker, "fatigue-ingest")) is not None
    assert broker_refusal(_ingest(mqtt_broker, None)) is None  # accepted
    closed = IngestConfig(database_url="postgresql://unused", mqtt_host="127.0.0.1", mqtt_port=free_port(),
                          client_id="probe-test")
    assert broker_refusal(closed) is None  # unreachable is not a refusal: the ingester keeps trying
    env = {**os.environ, "FATIGUE_DATABASE_URL": fresh_url, "FATIGUE_OUTBOX_DIR": str(tmp_path / "outbox"),
           "FATIGUE_MQTT_URL": f"mqtt://fatigue-ingest:wrong@{locked_broker.host}:{locked_broker.port}",
           "FATIGUE_LOG_LEVEL": "warning"}
    done = subprocess.run([str(FATIGUE), "serve", "--no-api", "--no-scheduler"], env=env, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 1
    assert "refused the ingester's login" in done.stderr and "FATIGUE_MQTT_URL" in done.stderr
    assert "wrong" not in done.stderr  # the password is never printed


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_part_is_restarted_and_a_dead_api_is_fatal() -> None:
    import threading

    from service.serve import _Part, _supervise

    stopping = threading.Event()
    runs: list[int] = []

    def body() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("ingester crashed")  # dies once (logged by threading's excepthook)
        stopping.wait(30)

    before = sum(s.value for m in REGISTRY.collect() if m.name == "fatigue_serve_part_restarts"
                 for s in m.samples if s.name.endswith("_total") and s.labels.get("part") == "ingester")
    part = _Part("ingester", lambda: threading.Thread(target=body), True)
    part.start()
    timer = threading.Timer(4.0, stopping.set)
    timer.start()
    assert _supervise([part], None, stopping) == ""  # SIGTERM-like stop after the restart
    assert len(runs) == 2 and part.restarts == 1
    after = sum(s.value for m in REGISTRY.collect() if m.name == "fatigue_serve_part_restarts"
                for s in m.samples if s.name.endswith("_total") and s.labels.get("part") == "ingester")
    assert after - before == 1
    api = _Part("api", lambda: threading.Thread(target=lambda: None), False)
    api.start()
    message = _supervise([api], None, threading.Event())
    assert "api stopped on its own" in message and "start fatigue serve again" in message
