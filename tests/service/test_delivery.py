"""The report outbox: every force's weekly report delivered once per channel, through refusals, two schedulers
and every state of a force. Real PostgreSQL, Mosquitto and an aiosmtpd server; the scheduler runs in-process."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY

from risk.delivery import backoff_s, cancel_deliveries, list_deliveries
from service.scheduler import Scheduler
from store.migrate import migrate
from tests.conftest import create_database, drop_database
from tests.service.delivery_support import NOW, WEEK, Notices, Smtp, count, programme_of_states, serve_config

pytest.importorskip("aiosmtpd.controller", reason="pip install aiosmtpd (dev dependency)")
FORCES = ("empty", "flagged", "insufficient", "late", "oneweek", "withdrawn")


@pytest.fixture
def fresh_url(pg_admin_url: str) -> Iterator[str]:
    url = create_database(pg_admin_url, "fatigue_delivery")
    migrate(url)
    try:
        yield url
    finally:
        drop_database(pg_admin_url, url)


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    server = Smtp().start()
    try:
        yield server
    finally:
        server.stop()


def _failures(channel: str) -> float:
    return sum(s.value for m in REGISTRY.collect() if m.name == "fatigue_report_delivery_failures"
               for s in m.samples if s.name.endswith("_total") and s.labels.get("channel") == channel)


def _assert_once_everywhere(url: str, outbox: Path, smtp: Smtp, notices: Notices) -> None:
    assert count(url, "SELECT count(*) FROM risk.reports") == len(FORCES)
    assert count(url, "SELECT count(DISTINCT force_id) FROM risk.reports WHERE iso_week = %s", (WEEK,)) == len(FORCES)
    assert count(url, "SELECT count(*) FROM risk.report_deliveries WHERE state <> 'delivered'") == 0
    for force in FORCES:
        assert len(list((outbox / force / WEEK).iterdir())) == 1, force  # one folder, no leftovers
    ids = smtp.per_report()
    assert len(ids) == len(FORCES) and set(ids.values()) == {1}, ids
    assert sorted(str(m["To"]) for m in smtp.received) == sorted(f"frm-{f}@example.police.uk" for f in FORCES)
    notes = [json.loads(p) for p in notices.got]
    assert sorted(n["force_id"] for n in notes) == sorted(FORCES)
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('fatigue.all_forces', 'on', true)")
        rows = conn.execute("SELECT report_id::text, force_id, notified_mqtt, emailed_to FROM risk.reports").fetchall()
    assert all(r[2] and r[3] == 1 for r in rows)
    assert {f"<report-{r[0]}@fatigue>" for r in rows} == set(ids)
    assert {n["report_id"] for n in notes} == {r[0] for r in rows}


def test_smtp_refusing_two_ticks_then_accepting_delivers_every_report_once(
        fresh_url: str, smtp: Smtp, mqtt_broker: Any, tmp_path: Path) -> None:
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        programme_of_states(conn)
    outbox = tmp_path / "outbox"
    scheduler = Scheduler(serve_config(fresh_url, outbox, smtp, mqtt_broker))
    notices = Notices(mqtt_broker.host, mqtt_broker.port)
    before = _failures("email")
    try:
        smtp.refuse.set()
        scheduler.tick(NOW)
        assert count(fresh_url, "SELECT count(*) FROM risk.report_deliveries WHERE channel = 'outbox' "
                                "AND state = 'delivered'") == len(FORCES)
        assert count(fresh_url, "SELECT count(*) FROM risk.report_deliveries WHERE channel = 'email' "
                                "AND state = 'pending' AND attempts = 1 AND last_error = 'SMTPDataError 451'") \
            == len(FORCES)
        scheduler.tick(NOW)
        assert smtp.refused == 2 * len(FORCES) and not smtp.received
        smtp.refuse.clear()
        scheduler.tick(NOW)
        scheduler.tick(NOW)  # nothing left: nothing repeated
        for _ in range(100):
            if len(notices.got) >= len(FORCES):
                break
            threading.Event().wait(0.05)
        _assert_once_everywhere(fresh_url, outbox, smtp, notices)
    finally:
        notices.close()
    assert _failures("email") - before == 2 * len(FORCES)
    mails = {r["force_id"]: r for r in list_deliveries(psycopg.connect(fresh_url, autocommit=True))
             if r["channel"] == "email"}
    assert all(r["attempts"] == 3 and r["state"] == "delivered" for r in mails.values())
    # a restarted scheduler (new process state) repeats nothing
    Scheduler(serve_config(fresh_url, outbox, smtp, mqtt_broker)).tick(NOW)
    assert len(smtp.received) == len(FORCES)


def test_two_schedulers_on_one_database_deliver_every_report_once(
        fresh_url: str, smtp: Smtp, mqtt_broker: Any, tmp_path: Path) -> None:
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        programme_of_states(conn)
    outbox = tmp_path / "outbox"
    smtp.delay_s = 0.3  # deliveries overlap in time
    schedulers = [Scheduler(serve_config(fresh_url, outbox, smtp, mqtt_broker)) for _ in range(2)]
    notices = Notices(mqtt_broker.host, mqtt_broker.port)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(s: Scheduler) -> None:
        try:
            start.wait(10)
            for _ in range(3):
                s.tick(NOW)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in schedulers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors
        for _ in range(100):
            if len(notices.got) >= len(FORCES):
                break
            threading.Event().wait(0.05)
        _assert_once_everywhere(fresh_url, outbox, smtp, notices)
        assert len(notices.got) == len(FORCES)
    finally:
        notices.close()


def _report_html(outbox: Path, force: str) -> str:
    (folder,) = (outbox / force / WEEK).iterdir()
    return (folder / "report.html").read_text()


def test_every_state_of_a_force_renders_a_clear_page_and_email(fresh_url: str, smtp: Smtp, tmp_path: Path) -> None:
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        states = programme_of_states(conn)
    outbox = tmp_path / "outbox"
    Scheduler(serve_config(fresh_url, outbox, smtp, None)).tick(NOW)
    assert count(fresh_url, "SELECT count(*) FROM risk.report_deliveries WHERE state = 'delivered'") == 2 * len(states)
    pages = {force: _report_html(outbox, force) for force in states}
    for force in ("empty", "withdrawn", "late"):
        assert pages[force].count("<svg") >= 2, force  # the trend charts render instead of crashing
        assert "Officers with a flag this week: <span class=\"count\">0</span>" in pages[force]
        assert "No data for this week, not a finding" in pages[force]  # zeros never read as "all well"
    assert all("not a finding" not in pages[f] for f in ("flagged", "insufficient", "oneweek"))
    assert "FL-0" in pages["flagged"] and "FL-5" not in pages["flagged"]
    one = pages["oneweek"]  # one closed week: single points, each officer's chart has one dot per series
    assert "OW-0" in one and "no data yet" not in one and one.count("<circle") >= 6 * 2
    assert "not a finding" not in one
    assert "WD-" not in pages["withdrawn"]  # withdrawn officers never appear
    assert re.search(r'class="count">not shown<|class="count">6<', pages["insufficient"])
    assert "no values to show" in pages["insufficient"]  # mean sleep suppressed/absent: said, not drawn as 0
    for msg in smtp.received:
        html = msg.get_body(("html",))
        assert html is not None
        body = html.get_content()
        assert "<svg" not in body and "cid:chart-1@fatigue" in body
        cids = {str(p["Content-ID"]) for p in msg.walk() if p.get_content_type() == "image/png"}
        assert cids and all(f"cid:{c.strip('<>')}" in body for c in cids)
        assert all(p.get_content_disposition() == "inline" for p in msg.walk() if p.get_content_type() == "image/png")
        assert any(p.get_content_type() == "multipart/related" for p in msg.walk())
        pngs = [p.get_content() for p in msg.walk() if p.get_content_type() == "image/png"]
        assert all(b.startswith(b"\x89PNG") for b in pngs)
        names = sorted(p.get_filename() for p in msg.iter_attachments() if p.get_content_type() == "text/csv")
        assert names == ["counts.csv", "flagged_officers.csv", "trends.csv"]


def test_operator_cancels_a_failing_channel_and_it_is_never_tried_again(
        fresh_url: str, smtp: Smtp, tmp_path: Path) -> None:
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        programme_of_states(conn)
    outbox = tmp_path / "outbox"
    scheduler = Scheduler(serve_config(fresh_url, outbox, smtp, None))
    smtp.refuse.set()
    scheduler.tick(NOW)
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        assert cancel_deliveries(conn, "flagged", WEEK, "email", "op") == 1
        assert cancel_deliveries(conn, "flagged", WEEK, "email", "op") == 0  # nothing pending any more
        assert cancel_deliveries(conn, "flagged", WEEK, "outbox", "op") == 0  # delivered stays delivered
    smtp.refuse.clear()
    scheduler.tick(NOW)
    assert sorted(str(m["To"]).split("@")[0] for m in smtp.received) == sorted(
        f"frm-{f}" for f in FORCES if f != "flagged")
    assert count(fresh_url, "SELECT count(*) FROM risk.report_deliveries WHERE state = 'cancelled' "
                            "AND cancelled_by = 'op'") == 1


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_s(n, 60, 3600) for n in (1, 2, 3, 7, 50)] == [60, 120, 240, 3600, 3600]
    assert backoff_s(1, 0, 3600) == 0


def test_broker_down_then_back_notices_each_report_once(fresh_url: str, fresh_broker: Any, tmp_path: Path) -> None:
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        programme_of_states(conn)
    scheduler = Scheduler(serve_config(fresh_url, tmp_path / "outbox", None, fresh_broker))
    fresh_broker.stop()
    scheduler.tick(NOW)
    pending = ("SELECT count(*) FROM risk.report_deliveries WHERE channel = 'mqtt' AND state = 'pending' "
               "AND attempts = 1")
    assert count(fresh_url, pending) == len(FORCES)
    assert count(fresh_url, "SELECT count(*) FROM risk.reports WHERE notified_mqtt") == 0
    fresh_broker.start()
    notices = Notices(fresh_broker.host, fresh_broker.port)
    try:
        scheduler.tick(NOW)
        scheduler.tick(NOW)
        for _ in range(100):
            if len(notices.got) >= len(FORCES):
                break
            threading.Event().wait(0.05)
        threading.Event().wait(0.5)
        assert sorted(json.loads(p)["force_id"] for p in notices.got) == sorted(FORCES)
    finally:
        notices.close()
    assert count(fresh_url, "SELECT count(*) FROM risk.reports WHERE notified_mqtt") == len(FORCES)
