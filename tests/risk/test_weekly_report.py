"""The weekly report: privacy (consent, small cells), outbox files, MQTT notice, e-mail, headless rendering."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pandas as pd
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from risk.job import run_flags
from risk.programme import load_programme
from risk.publisher import MqttTarget, make_weekly_report
from risk.report import build_report, render_html
from service.local_servers import free_port

Conn = psycopg.Connection[Any]
START = date(2026, 3, 2)  # weeks end 8 and 15 March 2026; ISO weeks 2026-W10 and 2026-W11
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _cohort(seed: Any, force: str) -> dict[str, uuid.UUID]:
    """3 consenting red officers, 2 non-consenting red, 9 green."""
    people = {}
    for k in range(3):
        people[f"RED-C{k}"] = seed.participant(force, START, f"RED-C{k}", consent_manager=True)
    for k in range(2):
        people[f"RED-N{k}"] = seed.participant(force, START, f"RED-N{k}", consent_manager=False)
    for k in range(9):
        people[f"OK-{k}"] = seed.participant(force, START, f"OK-{k}", consent_manager=k % 2 == 0)
    for ref, pid in people.items():
        seed.nights(pid, START, 1, 14, tst_min=300 if ref.startswith("RED") else 480)
    return people


def _counts(html: str) -> list[str]:
    return re.findall(r'class="count">([^<]*)<', html)


def _tiles(html: str) -> list[tuple[str, str]]:
    return [(label.strip(), n) for n, label in re.findall(r'<span class="count">([^<]*)</span>([^<]*)</div>', html)]


def _listen(broker: Any, topic: str, got: list[bytes], ready: threading.Event) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:6]}")

    def on_connect(c: mqtt.Client, *args: Any) -> None:
        c.subscribe(topic, qos=1)
        ready.set()

    def on_message(c: mqtt.Client, userdata: Any, m: mqtt.MQTTMessage) -> None:
        got.append(bytes(m.payload))

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def test_report_privacy_outbox_and_notice(db: Conn, seed: Any, mqtt_broker: Any, tmp_path: Path) -> None:
    force = "rep_f"
    _cohort(seed, force)
    programme = load_programme()
    run_flags(db, date(2026, 3, 20), programme)
    got: list[bytes] = []
    ready = threading.Event()
    listener = _listen(mqtt_broker, f"fatigue/v1/reports/{force}", got, ready)
    assert ready.wait(10)
    try:
        result = make_weekly_report(db, force, "2026-W11", tmp_path, programme,
                                    MqttTarget(mqtt_broker.host, mqtt_broker.port),
                                    now=datetime(2026, 3, 20, 12, tzinfo=UTC))
        for _ in range(100):
            if got:
                break
            threading.Event().wait(0.05)
    finally:
        listener.loop_stop()
        listener.disconnect()
    html = result.html_path.read_text()
    for k in range(3):
        assert f"RED-C{k}" in html
    assert "RED-N" not in html and "OK-" not in html
    assert not set(_counts(html)) & {"1", "2", "3", "4"}
    assert "not shown" in html and "mean sleep 5 h over 7 valid nights, below 6 h" in html
    # 6 officers not named (2 red, 4 green): red and green are hidden, the zeros and the total are shown
    assert dict(_tiles(html)) == {"red": "not shown", "amber": "0", "green": "not shown",
                                  "insufficient data": "0"}
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    names = sorted(p.name for p in result.folder.iterdir())
    assert names == ["counts.csv", "flagged_officers.csv", "report.html", "trends.csv"]
    csv_text = "".join(p.read_text() for p in result.csv_paths)
    assert "RED-N" not in csv_text and "OK-" not in csv_text and "RED-C0" in csv_text
    assert not re.search(r",[1-4]\n", (result.folder / "counts.csv").read_text())
    assert result.notified and len(got) == 1
    notice = json.loads(got[0])
    assert notice == {"report_id": result.report_id, "force_id": force, "iso_week": "2026-W11",
                      "created_at": "2026-03-20T12:00:00+00:00"}
    row = db.execute("SELECT force_id, iso_week, html_path FROM risk.reports WHERE report_id = %s",
                     (result.report_id,)).fetchone()
    assert row is not None and row[0] == force and row[2].endswith("report.html")


@pytest.mark.chromium
def test_report_renders_in_headless_chromium(db: Conn, seed: Any, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if chromium is None:
        pytest.skip("apt-get install chromium")
    _cohort(seed, "shot_f")
    programme = load_programme()
    run_flags(db, date(2026, 3, 20), programme)
    html_path = make_weekly_report(db, "shot_f", "2026-W11", tmp_path, programme).html_path
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "risk_weekly_report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1100,1800", html_path.as_uri()], check=True, timeout=120,
                   capture_output=True)
    assert shot.exists() and shot.stat().st_size > 10_000


def test_report_is_emailed(db: Conn, seed: Any, tmp_path: Path) -> None:
    aiosmtpd = pytest.importorskip("aiosmtpd.controller", reason="pip install aiosmtpd (dev dependency)")
    from aiosmtpd.handlers import Message

    received: list[Any] = []

    class Collect(Message):
        def handle_message(self, message: Any) -> None:
            received.append(message)

    force = "mail_f"
    _cohort(seed, force)
    db.execute("INSERT INTO risk.report_recipients VALUES (%s, 'frm@example.police.uk')", (force,))
    programme = load_programme()
    run_flags(db, date(2026, 3, 20), programme)
    port = free_port()
    controller = aiosmtpd.Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        result = make_weekly_report(db, force, "2026-W11", tmp_path, programme,
                                    smtp_url=f"smtp://127.0.0.1:{port}?from=reports@example.police.uk")
    finally:
        controller.stop()
    assert result.emailed_to == 1 and len(received) == 1
    msg = received[0]
    assert msg["To"] == "frm@example.police.uk" and "mail_f" in msg["Subject"]
    body = msg.as_string()
    assert "RED-N" not in body


def _frame(levels: list[str], consent: bool = False) -> pd.DataFrame:
    crit = {"S1": {"value": 6.5, "level": "amber", "reason": "mean sleep 6 h 30 min over 7 valid nights, below 7 h"}}
    return pd.DataFrame({"participant_id": [uuid.uuid4() for _ in levels], "programme_week": 3,
                         "week_end": date(2026, 3, 15), "overall_level": levels, "criteria": [crit] * len(levels),
                         "revision": 1, "consent_manager": consent, "staff_ref": None})


def _report(flags: pd.DataFrame) -> Any:
    return build_report("r1", "f", "2026-W11", date(2026, 3, 9), date(2026, 3, 15), flags, load_programme(),
                        datetime(2026, 3, 16, tzinfo=UTC))


def test_small_counts_and_complementary_suppression() -> None:
    r = _report(_frame(["red"] * 3 + ["amber"] * 10 + ["green"] * 20))
    shown = dict(r.counts)
    # red 3 (R1), amber 10 (R3), green 20 (else red + amber = 33 - 20 would be known)
    assert shown == {"red": "not shown", "amber": "not shown", "green": "not shown", "insufficient_data": "0"}
    assert r.total == "33" and r.unnamed_flagged == "not shown" and r.flagged == ()
    assert r.trends[-1][1:4] == ("33", "not shown", "not shown")  # the report week in the trends: same pattern
    ones = dict(_report(_frame(["red", "amber"] + ["green"] * 10)).counts)  # 1 + 1 = 2 would pin both
    assert ones == {"red": "not shown", "amber": "not shown", "green": "not shown", "insufficient_data": "0"}


def test_few_unnamed_officers_hide_every_count() -> None:
    few = _report(_frame(["amber"] * 4))
    assert dict(few.counts) == dict.fromkeys(("red", "amber", "green", "insufficient_data"), "not shown")
    assert few.total == "4" and few.trends[0][2:] == ("not shown", "not shown", "not shown")
    html = render_html(few)
    assert not set(_counts(html)) - {"4", "not shown"}


def test_mean_needs_five_unnamed_officers() -> None:
    named = _frame(["green"] * 6, consent=True).assign(staff_ref=[f"N{k}" for k in range(6)])
    r = _report(pd.concat([named, _frame(["green"] * 4)], ignore_index=True))
    assert r.trends[-1][4] == "not shown"  # 10 officers, but only 4 not named: the mean would give them away
    r = _report(pd.concat([named, _frame(["green"] * 5)], ignore_index=True))
    assert r.trends[-1][4] == "6 h 30 min"
