"""The four-officer cohort (compliant, flat battery, drawer, lost gateway) replayed in simulated time.

Every 6 simulated hours the messages published so far are ingested and the compliance job runs with ``now`` at
that time, delivering alerts to a real Mosquitto and to an outbox folder. Expected times follow from the
scenarios (tests/compliance/cohort.py) and the default thresholds (risk/programme_v1.toml [compliance]):
silent 12 h watch / 48 h lapsed / 24 h alert, unworn 24 h watch, battery alert below 15 %, valid nights
< 5 watch / < 4 lapsed and alert, a valid night = sleep ending that day + >= 16 h wear.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from compliance.job import MqttTarget, run_compliance
from compliance.metrics import ComplianceMetrics
from risk.programme import load_programme
from service.local_servers import PrivateMosquitto
from simulators.truth import truth_frames
from tests.compliance.cohort import COMPLIANT, DRAWER, FLAT, LOST, N_DAYS, at, make_cohort

STEP_H = 6
CHECKPOINTS = [at(d, h) for d in range(N_DAYS) for h in range(0, 24, STEP_H)]


@dataclass
class Listener:
    """Collects every alert message from the broker."""

    broker: PrivateMosquitto
    messages: list[tuple[str, dict[str, Any], bool]] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def start(self) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="compliance-test-listener")
        client.on_connect = lambda c, u, f, r, p: c.subscribe("fatigue/v1/alerts/#", qos=1)
        client.on_subscribe = lambda c, u, m, r, p: self.ready.set()
        client.on_message = lambda c, u, m: self.messages.append((m.topic, json.loads(m.payload), m.retain))
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        assert self.ready.wait(15), "listener did not subscribe"
        return client


@dataclass
class Replay:
    """What the replay saw: level and reasons of each officer at each checkpoint, and the episodes."""

    levels: dict[int, dict[datetime, tuple[str, list[str]]]]
    episodes: list[tuple[int, str, datetime, datetime | None]]
    pids: list[Any]
    staff: list[str]
    listener: Listener
    outbox: Path
    metrics: ComplianceMetrics
    feed: Any
    url: str


@pytest.fixture(scope="module")
def replay(db_url: str, mqtt_broker: PrivateMosquitto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replay]:
    outbox = tmp_path_factory.mktemp("outbox")
    listener = Listener(mqtt_broker)
    client = listener.start()
    rules = load_programme(None).compliance
    metrics = ComplianceMetrics()
    target = MqttTarget(mqtt_broker.host, mqtt_broker.port)
    with psycopg.connect(db_url, autocommit=True) as conn:
        feed = make_cohort(conn, db_url)
        pids = [r[0] for r in conn.execute("SELECT participant_id FROM core.identities ORDER BY staff_ref")]
        staff = [r[0] for r in conn.execute("SELECT staff_ref FROM core.identities ORDER BY staff_ref")]
        levels: dict[int, dict[datetime, tuple[str, list[str]]]] = {i: {} for i in range(4)}
        for t in CHECKPOINTS:
            feed.until(t)
            run_compliance(conn, rules, "Europe/London", programme_days=120, now=t, mqtt=target, outbox=outbox,
                           metrics=metrics, reread=timedelta(0))  # the feed has committed: read only new rows
            for pid, level, reasons in conn.execute(
                    "SELECT participant_id, level, reasons FROM compliance.participant_state").fetchall():
                levels[pids.index(pid)][t] = (level, list(reasons))
        episodes = [(pids.index(r[0]), r[1], r[2], r[3]) for r in conn.execute(
            "SELECT participant_id, kind, opened_at, closed_at FROM compliance.alert_episodes ORDER BY opened_at")]
    # The session's broker is shared: keep live messages (not retained ones of other tests) of this cohort.
    gateways = set(feed.sim.cohort.gateway_id)
    listener.messages = [m for m in listener.messages if not m[2] and m[0].split("/")[3] in gateways]
    try:
        yield Replay(levels, episodes, pids, staff, listener, outbox, metrics, feed, db_url)
    finally:
        client.disconnect()
        client.loop_stop()


def _episodes(r: Replay, who: int) -> list[tuple[str, datetime, datetime | None]]:
    return [(k, o, c) for p, k, o, c in r.episodes if p == who]


def test_every_officer_is_evaluated_from_the_first_tick(replay: Replay) -> None:
    for who in range(4):
        assert len(replay.levels[who]) == len(CHECKPOINTS)
        assert replay.levels[who][at(0, 0)] == ("ok", []), "no data yet on day 1 is not a lapse"


def test_compliant_officer_stays_ok_and_never_alerted(replay: Replay) -> None:
    assert {lv for lv, _ in replay.levels[COMPLIANT].values()} == {"ok"}
    assert _episodes(replay, COMPLIANT) == []


def test_flat_battery(replay: Replay) -> None:
    """Flat day 7 02:00 -> day 8 14:00. Statuses come at hh:17 every 6 h: the 00:17 one before it reads 4 %,
    the first after it (18:17) 95 % (charged)."""
    eps = _episodes(replay, FLAT)
    assert [(k, o, c) for k, o, c in eps if k == "battery"] == [("battery", at(7, 6), at(9, 0))]
    # last sample 01:59 day 7 -> silent 24 h at 01:59 day 8 -> seen at 06:00; data again from 14:00.
    assert [(k, o, c) for k, o, c in eps if k == "silent"] == [("silent", at(8, 6), at(8, 18))]
    assert {k for k, _, _ in eps} == {"battery", "silent"}
    assert replay.levels[FLAT][at(7, 0)] == ("ok", [])
    assert replay.levels[FLAT][at(7, 6)] == ("watch", ["battery"])
    assert "silent" in replay.levels[FLAT][at(8, 6)][1]
    assert all(lv != "lapsed" for lv, _ in replay.levels[FLAT].values()), "36 h flat never reaches 48 h silence"
    assert replay.levels[FLAT][at(10, 0)][0] in ("ok", "watch")


def test_device_left_in_a_drawer(replay: Replay) -> None:
    """Off the wrist day 5 12:00 -> day 9 12:00 but powered: statuses keep coming (never 'silent'); days 5-9
    have < 16 h wear, so 5 nights are invalid."""
    eps = _episodes(replay, DRAWER)
    assert eps == [("nights", at(9, 0), at(14, 0))], "fires once: day 8 is the 4th missing night of 7"
    assert replay.levels[DRAWER][at(6, 6)] == ("ok", [])
    assert replay.levels[DRAWER][at(6, 12)][0] == "watch" and "unworn" in replay.levels[DRAWER][at(6, 12)][1]
    assert replay.levels[DRAWER][at(9, 0)][0] == "lapsed"
    assert replay.levels[DRAWER][at(14, 0)] == ("watch", ["nights"]), "4 of 7 valid: no longer lapsed, watch"
    assert replay.levels[DRAWER][at(15, 0)] == ("ok", [])
    assert all("silent" not in why for _, why in replay.levels[DRAWER].values())


def test_lost_gateway_and_its_backlog(replay: Replay) -> None:
    """Gateway offline day 6 00:00 -> day 11 00:00; its backlog flushes within minutes of its return."""
    eps = _episodes(replay, LOST)
    assert [(k, o, c) for k, o, c in eps if k == "silent"] == [("silent", at(7, 0), at(11, 6))]
    assert [(k, o, c) for k, o, c in eps if k == "nights"] == [("nights", at(10, 0), at(11, 6))]
    assert replay.levels[LOST][at(6, 12)][0] == "watch"
    assert replay.levels[LOST][at(8, 0)][0] == "lapsed"
    assert replay.levels[LOST][at(11, 6)] == ("ok", []), "the backlog fills the missing nights back in"


def test_each_episode_is_published_once_open_and_once_closed(replay: Replay) -> None:
    msgs = replay.listener.messages
    assert len(replay.episodes) == 5
    for who, kind, _, closed in replay.episodes:
        assert closed is not None
        mine = [(t, m) for t, m, _ in msgs if m["kind"] == kind and m["device_id"] in t
                and t.split("/")[4] == replay.feed.sim.cohort.device_a[who]]
        assert [m["state"] for _, m in mine] == ["open", "closed"], (who, kind)
        gateway = replay.feed.sim.cohort.gateway_id[who]
        assert {t for t, _ in mine} == {f"fatigue/v1/alerts/{gateway}/{replay.feed.sim.cohort.device_a[who]}/{kind}"}
    assert len(msgs) == 10


def test_no_personal_data_on_mqtt_but_the_admin_outbox_names_officers(replay: Replay) -> None:
    wire = json.dumps([(t, m) for t, m, _ in replay.listener.messages])
    for ref in replay.staff:
        assert ref not in wire
    for pid in replay.pids:
        assert str(pid) not in wire
    path = replay.outbox / "compliance" / "alerts.jsonl"
    assert path.stat().st_mode & 0o077 == 0, "outbox file readable by others"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == 10
    assert {ln["staff_ref"] for ln in lines} == {replay.staff[FLAT], replay.staff[DRAWER], replay.staff[LOST]}
    assert all(ln["what_to_do"] for ln in lines)


def test_metrics_count_each_kind(replay: Replay) -> None:
    reg = replay.metrics.registry
    assert reg.get_sample_value("fatigue_compliance_alerts_opened_total", {"kind": "silent"}) == 2
    assert reg.get_sample_value("fatigue_compliance_alerts_opened_total", {"kind": "battery"}) == 1
    assert reg.get_sample_value("fatigue_compliance_alerts_opened_total", {"kind": "nights"}) == 2
    assert reg.get_sample_value("fatigue_compliance_alerts_closed_total", {"kind": "nights"}) == 2
    assert reg.get_sample_value("fatigue_compliance_alerts_open", {"kind": "silent"}) == 0
    assert reg.get_sample_value("fatigue_compliance_deliveries_total", {"channel": "mqtt"}) == 10
    assert reg.get_sample_value("fatigue_compliance_participants", {"level": "ok"}) == 4


def test_a_second_run_changes_nothing(replay: Replay) -> None:
    before = len(replay.listener.messages)
    daily = "SELECT participant_id, day, wear_min, sleep_episodes FROM compliance.daily ORDER BY 1, 2"
    with psycopg.connect(replay.url, autocommit=True) as conn:
        rows = conn.execute(daily).fetchall()
        s = run_compliance(conn, load_programme(None).compliance, "Europe/London", now=CHECKPOINTS[-1])
        assert (s.opened, s.closed) == (0, 0)
        assert conn.execute("SELECT count(*) FROM compliance.alert_episodes").fetchone() == (5,)
        assert conn.execute(daily).fetchall() == rows, "recomputing the re-read days gives the same rows"
    assert len(replay.listener.messages) == before


def test_wear_agrees_with_the_simulators_ground_truth(replay: Replay) -> None:
    truth = truth_frames(replay.feed.sim, ("days",))["days"]
    with psycopg.connect(replay.url, autocommit=True) as conn:
        rows = conn.execute("SELECT i.staff_ref, d.day, d.wear_min / 60.0, d.sleep_episodes FROM compliance.daily d "
                            "JOIN core.identities i USING (participant_id)").fetchall()
    got = {(r[0], r[1]): float(r[2] or 0.0) for r in rows}
    complete = truth[truth["programme_day"] <= N_DAYS - 1]
    diffs = [abs(got.get((s, d), 0.0) - w) for s, d, w in
             zip(complete["staff_ref"], complete["sleep_date"], complete["wear_h_utc_day"], strict=True)]
    assert len(diffs) == 4 * (N_DAYS - 1)
    assert max(diffs) <= 1 / 60, f"worn hours differ from the truth by up to {max(diffs):.3f} h"
    sleeps = {(r[0], r[1]): int(r[3]) for r in rows}
    mine = complete[complete["staff_ref"] == replay.staff[COMPLIANT]]
    assert [sleeps.get((replay.staff[COMPLIANT], d), 0) for d in mine["sleep_date"]] == mine["n_episodes"].tolist(), \
        "every sleep episode of the compliant officer is counted on the day it ends"
    drawer_days = complete[(complete["staff_ref"] == replay.staff[DRAWER]) & (complete["wear_h_utc_day"] == 0)]
    assert len(drawer_days) == 3, "days 6-8 in the drawer have no wear at all"
    assert all((s, d) not in got or got[(s, d)] == 0.0 for s, d in zip(drawer_days["staff_ref"],
                                                                      drawer_days["sleep_date"], strict=True))


def test_a_gateway_that_reconnects_gets_the_current_state(replay: Replay, mqtt_broker: PrivateMosquitto) -> None:
    """Alerts are retained: a gateway subscribing afterwards sees each alert's last state (here: closed)."""
    gateway = replay.feed.sim.cohort.gateway_id[LOST]
    device = replay.feed.sim.cohort.device_a[LOST]
    got: list[tuple[str, dict[str, Any], bool]] = []
    ready = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="compliance-test-late-gateway")
    c.on_connect = lambda cl, u, f, r, p: cl.subscribe(f"fatigue/v1/alerts/{gateway}/#", qos=1)
    c.on_subscribe = lambda cl, u, m, r, p: ready.set()
    c.on_message = lambda cl, u, m: got.append((m.topic, json.loads(m.payload), m.retain))
    c.connect(mqtt_broker.host, mqtt_broker.port)
    c.loop_start()
    try:
        assert ready.wait(10)
        threading.Event().wait(1.0)
    finally:
        c.disconnect()
        c.loop_stop()
    assert sorted((t, m["state"], retained) for t, m, retained in got) == [
        (f"fatigue/v1/alerts/{gateway}/{device}/nights", "closed", True),
        (f"fatigue/v1/alerts/{gateway}/{device}/silent", "closed", True)]
