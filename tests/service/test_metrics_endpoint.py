"""`fatigue ingest` serves /metrics, /healthz and /readyz on FATIGUE_METRICS_ADDR; readiness follows the broker.

Real PostgreSQL and a private Mosquitto that the test stops and restarts (never the shared servers).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from service.local_servers import PrivateMosquitto, free_port
from service.metrics import DatabaseCollector, MetricsServer, SchedulerMetrics, Union
from service.settings import MetricsAddress, SettingsError, load_settings, parse_metrics_addr
from store.migrate import migrate


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()
    except OSError:
        return 0, ""


def _wait(predicate: object, timeout: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize(("raw", "expected"), [
    (":9108", MetricsAddress("0.0.0.0", 9108)), ("0.0.0.0:9101", MetricsAddress("0.0.0.0", 9101)),
    ("127.0.0.1:9", MetricsAddress("127.0.0.1", 9)), ("[::1]:9108", MetricsAddress("::1", 9108)),
    ("off", None), ("", None), (None, None)])
def test_metrics_address_forms(raw: str | None, expected: MetricsAddress | None) -> None:
    assert parse_metrics_addr(raw) == expected


@pytest.mark.parametrize("raw", ["9108", "host:", "host:70000", "a b:1", ":port"])
def test_bad_metrics_address_names_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="FATIGUE_METRICS_ADDR"):
        load_settings({"FATIGUE_METRICS_ADDR": raw})


def test_database_gauges_say_when_the_database_is_away(db_url: str) -> None:
    text = _exposition(DatabaseCollector(db_url))
    assert "fatigue_database_up 1.0" in text and "fatigue_dirty_days 0.0" in text
    assert "fatigue_flags_last_run_timestamp_seconds" not in text  # no run yet: absent, not 0 (= 1970)
    text = _exposition(DatabaseCollector("postgresql://nobody@127.0.0.1:1/none", timeout_s=1))
    assert "fatigue_database_up 0.0" in text and "fatigue_dirty_days" not in text


def _exposition(collector: DatabaseCollector) -> str:
    from prometheus_client import generate_latest

    return generate_latest(collector).decode()  # type: ignore[arg-type]


def test_metrics_server_answers_probes_and_unknown_paths() -> None:
    sched = SchedulerMetrics()
    state = {"late": "no tick for 900 s"}
    server = MetricsServer(MetricsAddress("127.0.0.1", 0), Union([sched.registry]),
                           live={"scheduler_ticking": lambda: state["late"]})
    try:
        base = f"http://127.0.0.1:{server.port}"
        code, body = _get(base + "/healthz")
        assert code == 503 and json.loads(body)["checks"] == {"scheduler_ticking": "no tick for 900 s"}
        state["late"] = None  # type: ignore[assignment]
        assert _get(base + "/healthz")[0] == 200 and _get(base + "/readyz")[0] == 200
        assert "fatigue_scheduler_last_tick_timestamp_seconds 0.0" in _get(base + "/metrics")[1]
        assert _get(base + "/nope")[0] == 404
    finally:
        server.close()


def test_ingest_metrics_on_every_interface_and_readiness_follows_the_broker(
        db_url: str, fresh_broker: PrivateMosquitto, tmp_path: Path) -> None:
    migrate(db_url)
    port = free_port()
    env = {**os.environ, "FATIGUE_DATABASE_URL": db_url, "FATIGUE_MQTT_URL": fresh_broker.url,
           "FATIGUE_METRICS_ADDR": f":{port}", "FATIGUE_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "ingest", "--client-id", "metrics-test"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _get(base + "/readyz")[0] == 200, what="ingester ready")
        status, text = _get(base + "/metrics")
        assert status == 200 and "fatigue_ingest_last_commit_timestamp_seconds" in text
        assert "fatigue_database_up 1.0" in text
        fresh_broker.stop()
        _wait(lambda: _get(base + "/readyz")[0] == 503, what="not ready without the broker")
        _, body = _get(base + "/readyz")
        assert json.loads(body)["checks"]["broker_subscription"] != "ok"
        assert _get(base + "/healthz")[0] == 200  # alive: the ingester waits for the broker, no restart needed
        fresh_broker.start()
        _wait(lambda: _get(base + "/readyz")[0] == 200, what="ready again after the broker restarted")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert f"metrics on http://0.0.0.0:{port}/metrics" in err.decode()


def test_serve_exposes_every_part_on_the_api_and_the_metrics_address(
        db_url: str, mqtt_broker: PrivateMosquitto) -> None:
    migrate(db_url)
    api_port, metrics_port = free_port(), free_port()
    env = {**os.environ, "FATIGUE_DATABASE_URL": db_url, "FATIGUE_MQTT_URL": mqtt_broker.url,
           "FATIGUE_METRICS_ADDR": f"127.0.0.1:{metrics_port}", "FATIGUE_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--client-id", "serve-metrics-test",
                             "--host", "127.0.0.1", "--port", str(api_port), "--every", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for base in (f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{metrics_port}"):
            _wait(lambda b=base: _get(b + "/readyz")[0] == 200, what=f"{base} ready")  # type: ignore[misc]
            checks = json.loads(_get(base + "/readyz")[1])["checks"]
            assert {"database", "broker_subscription", "scheduler_ticking", "ingester_thread"} <= set(checks)
            text = _get(base + "/metrics")[1]
            for name in ("fatigue_ingest_last_commit_timestamp_seconds", "fatigue_scheduler_last_tick_timestamp",
                         "fatigue_dirty_days", "fatigue_database_up 1.0", "fatigue_api_requests_total"):
                assert name in text, f"{name} missing from {base}/metrics"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err.decode()[-2000:]
