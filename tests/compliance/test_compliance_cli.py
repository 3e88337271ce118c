"""``fatigue compliance`` end to end on the wall clock: table and CSV, names only with --names, an alert whose
MQTT delivery fails (broker away) is kept and published once the broker is back, never twice."""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import psycopg
from click.testing import CliRunner
from paho.mqtt.enums import CallbackAPIVersion

from service.cli import main
from service.local_servers import PrivateMosquitto, free_port

TZ = ZoneInfo("Europe/London")


def _seed(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Six officers of force CLIF enrolled 3 days ago; CLIF-1 has a device heard from an hour ago at 10 %."""
    start = datetime.now(TZ).date() - timedelta(days=3)
    conn.execute("INSERT INTO core.forces (force_id) VALUES ('CLIF')")
    refs: dict[str, str] = {}
    for k in range(6):
        pid = uuid.uuid4()
        conn.execute("INSERT INTO core.participants (participant_id, force_id, role_group, age_band, sex, "
                     "programme_start, consent_manager) VALUES (%s, 'CLIF', 'response', '30-34', 'male', %s, %s)",
                     (pid, start, k % 2 == 1))
        conn.execute("INSERT INTO core.identities VALUES (%s, 'CLIF', %s)", (pid, f"CLIF-{k}"))
        refs[f"CLIF-{k}"] = str(pid)
        if k == 1:
            conn.execute("INSERT INTO core.devices (device_id) VALUES ('dev-cli-1')")
            conn.execute("INSERT INTO core.device_assignments (device_id, participant_id, valid_from) "
                         "VALUES ('dev-cli-1', %s, now() - interval '5 days')", (pid,))
            conn.execute("INSERT INTO raw.device_status (device_id, ts, participant_id, battery_pct, worn, online, "
                         "msg_id) VALUES ('dev-cli-1', now() - interval '1 hour', %s, 10, true, true, %s)",
                         (pid, uuid.uuid4()))
            conn.execute("INSERT INTO ingest.message_ledger (msg_id, payload_sha256, gateway_id, device_id, stream, "
                         "n_samples) VALUES (%s, '\\x00', 'gw-cli', 'dev-cli-1', 'status', 1)", (uuid.uuid4(),))
    return refs


def test_first_tick_on_an_empty_programme_says_what_to_do(db_url: str) -> None:
    result = CliRunner().invoke(main, ["compliance", "--no-update"], env={"FATIGUE_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    assert "nobody is in their programme yet" in result.stdout and "fatigue participants import" in result.stdout


def test_table_csv_names_and_a_delivery_retried(db: psycopg.Connection[Any], db_url: str, tmp_path: Path,
                                                mqtt_broker: PrivateMosquitto) -> None:
    refs = _seed(db)
    runner = CliRunner()
    env = {"FATIGUE_DATABASE_URL": db_url, "FATIGUE_OUTBOX_DIR": str(tmp_path / "outbox"),
           "FATIGUE_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}"}  # nobody listens: delivery fails
    first = runner.invoke(main, ["compliance", "--csv", "-"], env=env)
    assert first.exit_code == 0, first.output
    assert "not published (broker unreachable? retried next run)" in first.stderr
    rows = list(csv.DictReader(io.StringIO(first.stdout)))
    assert len(rows) == 6 and "staff_ref" not in rows[0]
    assert not any(ref in first.stdout for ref in refs)
    level = {r["participant_id"]: r["level"] for r in rows}
    assert level[refs["CLIF-1"]] == "watch", "heard from an hour ago, battery low, 3 days without a valid night"
    assert {level[refs[f"CLIF-{k}"]] for k in (0, 2, 3, 4, 5)} == {"lapsed"}, "never heard from in 3 days"

    table = runner.invoke(main, ["compliance", "--no-update", "--names", "--level", "watch"], env=env)
    assert table.exit_code == 0, table.output
    assert "CLIF-1" in table.stdout and "CLIF-0" not in table.stdout and "battery" in table.stdout
    assert "0 of 3" in table.stdout

    got: list[tuple[str, dict[str, Any]]] = []
    ready = threading.Event()
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cli-alerts")
    listener.on_connect = lambda c, u, f, r, p: c.subscribe("fatigue/v1/alerts/gw-cli/#", qos=1)
    listener.on_subscribe = lambda c, u, m, r, p: ready.set()
    listener.on_message = lambda c, u, m: got.append((m.topic, json.loads(m.payload)))
    listener.connect(mqtt_broker.host, mqtt_broker.port)
    listener.loop_start()
    try:
        assert ready.wait(10)
        env["FATIGUE_MQTT_URL"] = mqtt_broker.url
        for _ in range(2):
            again = runner.invoke(main, ["compliance"], env=env)
            assert again.exit_code == 0, again.output
        deadline = datetime.now().timestamp() + 10
        while not got and datetime.now().timestamp() < deadline:
            threading.Event().wait(0.05)
        threading.Event().wait(0.5)  # a duplicate would arrive right behind
    finally:
        listener.disconnect()
        listener.loop_stop()
    # Only CLIF-1's device has a gateway; 3 missing nights of 3 is watch, not yet the 4 that alert.
    assert [(t, m["state"]) for t, m in got] == [("fatigue/v1/alerts/gw-cli/dev-cli-1/battery", "open")]
    lines = (tmp_path / "outbox" / "compliance" / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == len({json.loads(x)["episode_id"] for x in lines}), "outbox: once per episode"

    # Withdrawal ends the officer's alerts (a clear end); erasure leaves no compliance row behind.
    from compliance.job import run_compliance
    from compliance.rules import ComplianceRules
    from store.enrolment import erase_participant, withdraw_participant

    pid = uuid.UUID(refs["CLIF-1"])
    withdraw_participant(db, pid)
    run_compliance(db, ComplianceRules(), "Europe/London")
    assert db.execute("SELECT count(*) FROM compliance.participant_state WHERE participant_id = %s",
                      (pid,)).fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM compliance.alert_episodes WHERE participant_id = %s "
                      "AND closed_at IS NULL", (pid,)).fetchone() == (0,)
    counts = erase_participant(db, pid)
    assert counts["compliance.alert_episodes"] >= 1 and counts["compliance.device_state"] == 1
    for table in ("daily", "participant_state", "alert_episodes", "device_state"):
        row = db.execute(f"SELECT count(*) FROM compliance.{table} WHERE participant_id = %s", (pid,)).fetchone()
        assert row == (0,), table
