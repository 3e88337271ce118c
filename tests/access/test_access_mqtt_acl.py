"""S1: the broker ACL matrix against a private Mosquitto started with the generated password file and ACL.

Every user x topic publish cell and every user x filter x topic subscribe cell is checked against an expected
table written out here independently of the generator. A denied publish gets MQTT v5 PUBACK 0x87 (or is
dropped) and is never delivered; a denied read is never delivered whatever the subscription filter.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import paho.mqtt.client as mqtt
import psycopg
import pytest
from click.testing import CliRunner
from paho.mqtt.enums import CallbackAPIVersion

from service.cli_access import register
from service.local_servers import PrivateMosquitto
from service.mqtt_acl import AclError, hash_password, plan_users, verify_password, write_files
from service.settings import Settings
from tests.access.access_support import broker_under_acl

GATEWAYS = ("gw-a", "gw-b")
FORCES = ("A", "B")
TOPICS = ("fatigue/v1/gw-a/dev1/hr", "fatigue/v1/gw-b/dev2/rr", "fatigue/v1/reports/A", "fatigue/v1/reports/B")
FILTERS = ("fatigue/v1/+/+/+", "$share/GROUP/fatigue/v1/+/+/+", "fatigue/v1/reports/A", "fatigue/v1/reports/B",
           "$SYS/#", "#")
# Expected rights, written independently of service.mqtt_acl.
WRITES = {"gw-a": {TOPICS[0]}, "gw-b": {TOPICS[1]}, "fatigue-jobs": {TOPICS[2], TOPICS[3]}}
READS = {"fatigue-ingest": {TOPICS[0], TOPICS[1]}, "notice-A": {TOPICS[2]}, "notice-B": {TOPICS[3]}}
USERS = ("gw-a", "gw-b", "fatigue-ingest", "fatigue-jobs", "notice-A", "notice-B", "healthcheck")


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrivateMosquitto, dict[str, str]]]:
    yield from broker_under_acl(tmp_path_factory, GATEWAYS, FORCES, "acl")



class Probe:
    """An MQTT v5 client that records CONNACK, SUBACK and PUBACK reason codes and received topics."""

    def __init__(self, broker: PrivateMosquitto, user: str | None, password: str | None, cid: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
        if user is not None:
            self.client.username_pw_set(user, password)
        self.connack: int | None = None
        self.suback: list[int] = []
        self.puback: dict[int, int] = {}
        self.received: list[tuple[str, bytes]] = []
        self.client.on_connect = lambda c, u, f, rc, p: setattr(self, "connack", rc.value)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.suback.extend(r.value for r in rcs)
        self.client.on_publish = lambda c, u, mid, rc, p: self.puback.__setitem__(mid, rc.value)
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, bytes(m.payload)))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def connected(self) -> bool:
        """True once the broker has answered the CONNECT (accepted or refused)."""
        return self.connack is not None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)


def _matches(flt: str, topic: str) -> bool:
    if flt.startswith("$share/"):
        flt = flt.split("/", 2)[2]
    return mqtt.topic_matches_sub(flt, topic)


@pytest.mark.xfail(strict=True, reason="Mosquitto 2.0.11's acl_file does not check SUBSCRIBE: any client may "
                   "join $share/<ingest group>/...; its share of messages is then dropped by the read check "
                   "(loss, not disclosure). Needs the dynamic-security plugin or a secret group name.")
def test_gateway_cannot_join_ingest_group(acl_broker: tuple[PrivateMosquitto, dict[str, str]]) -> None:
    broker, creds = acl_broker
    ingester = Probe(broker, "fatigue-ingest", creds["fatigue-ingest"], "ing-share")
    intruder = Probe(broker, "gw-b", creds["gw-b"], "gw-b-share")
    publisher = Probe(broker, "gw-a", creds["gw-a"], "gw-a-share")
    _wait(lambda: None not in (ingester.connack, intruder.connack, publisher.connack))
    for probe in (ingester, intruder):
        probe.client.subscribe("$share/ingest/fatigue/v1/+/+/+", qos=1)
    _wait(lambda: bool(ingester.suback and intruder.suback))
    for k in range(10):
        publisher.client.publish("fatigue/v1/gw-a/dev9/hr", str(k).encode(), qos=1)
    _wait(lambda: len(ingester.received) == 10, timeout=3.0)
    try:
        assert intruder.suback[0] >= 0x80 or len(ingester.received) == 10
    finally:
        for probe in (ingester, intruder, publisher):
            probe.close()


def test_anonymous_and_wrong_password_refused(acl_broker: tuple[PrivateMosquitto, dict[str, str]]) -> None:
    broker, creds = acl_broker
    for user, password in [(None, None), ("gw-a", "wrong"), ("gw-a", creds["gw-b"]), ("nobody", "x")]:
        probe = Probe(broker, user, password, f"probe-{user}")
        _wait(probe.connected)
        assert probe.connack is not None and probe.connack >= 0x80, (user, probe.connack)
        probe.close()


def test_acl_matrix(acl_broker: tuple[PrivateMosquitto, dict[str, str]]) -> None:
    broker, creds = acl_broker
    subs = {}
    for user in USERS:
        for k, flt in enumerate(FILTERS):
            probe = Probe(broker, user, creds[user], f"sub-{user}-{k}")
            _wait(probe.connected)
            assert probe.connack == 0, user
            # each user in its own share group (see test_gateway_cannot_join_ingest_group for the shared one)
            group = "ingest" if user == "fatigue-ingest" else f"g-{user}"
            probe.client.subscribe(flt.replace("GROUP", group), qos=1)
            subs[(user, flt)] = probe
    _wait(lambda: all(p.suback for p in subs.values()))
    pubs = {user: Probe(broker, user, creds[user], f"pub-{user}") for user in USERS}
    _wait(lambda: all(p.connack is not None for p in pubs.values()))
    mids = {}
    for user, probe in pubs.items():
        for topic in TOPICS:
            mids[(user, topic)] = probe.client.publish(topic, f"{user}|{topic}".encode(), qos=1).mid
    _wait(lambda: all(len(p.puback) == len(TOPICS) for p in pubs.values()))
    time.sleep(0.5)
    for (user, topic), mid in mids.items():
        allowed = topic in WRITES.get(user, set())
        code = pubs[user].puback.get(mid)
        assert (code == 0) if allowed else (code in (0, 0x87)), (user, topic, code)
    delivered = {(p.decode().split("|")[0], t) for probe in subs.values() for t, p in probe.received
                 if not t.startswith("$SYS")}
    assert delivered == {(u, t) for u, ts in WRITES.items() for t in ts}
    for (user, flt), probe in subs.items():
        got = {t for t, _ in probe.received if not t.startswith("$SYS")}
        expected = {t for t in READS.get(user, set()) if _matches(flt, t)}
        assert got == expected, (user, flt, got)
        sys_seen = any(t.startswith("$SYS") for t, _ in probe.received)
        # the ingester reads the broker's counters ($SYS/broker/#, issue 17) for its fatigue_broker_* gauges
        assert sys_seen == (user in ("healthcheck", "fatigue-ingest") and flt == "$SYS/#"), (user, flt)
    for probe in [*subs.values(), *pubs.values()]:
        probe.close()


@pytest.mark.parametrize("bad", ["gw+1", "gw#", "a/b", "", "x" * 65, "gw 1", "gw\n", "gw\u00e9", "$SYS"])
def test_generator_refuses_bad_ids(bad: str) -> None:
    with pytest.raises(AclError):
        plan_users([bad], ["A"])
    with pytest.raises(AclError):
        plan_users(["gw-a"], [bad])


def test_generator_refuses_reserved_and_colliding_names() -> None:
    for gateways in (["reports"], ["healthcheck"], ["fatigue-ingest"], ["notice-A"]):
        with pytest.raises(AclError):
            plan_users(gateways, ["A"])


def test_password_hash_format_and_stable_regeneration(tmp_path: Path) -> None:
    encoded = hash_password("secret", salt=bytes(12))
    assert encoded.startswith("$7$101$AAAAAAAAAAAAAAAA$") and verify_password("secret", encoded)
    assert not verify_password("Secret", encoded)
    first = write_files(tmp_path, plan_users(["gw-a"], ["A"]))
    creds1, passwd1 = first.credentials_file.read_text(), first.password_file.read_text()
    assert stat.S_IMODE(first.credentials_file.stat().st_mode) == 0o600
    second = write_files(tmp_path, plan_users(["gw-a"], ["A"]))
    assert second.new_users == () and second.credentials_file.read_text() == creds1
    assert second.password_file.read_text() == passwd1
    third = write_files(tmp_path, plan_users(["gw-a", "gw-b"], ["A"]))
    assert third.new_users == ("gw-b",)
    assert creds1.splitlines()[1] in third.credentials_file.read_text()


def test_cli_writes_files_from_database(db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO core.forces (force_id) VALUES ('WMP') ON CONFLICT DO NOTHING")
        conn.execute("INSERT INTO core.gateways (gateway_id, force_id) VALUES ('hub-7', 'WMP') "
                     "ON CONFLICT DO NOTHING")
    group = click.Group("fatigue")
    register(group)
    out = CliRunner().invoke(group, ["mqtt", "acl", "--out", str(tmp_path / "broker")],
                             obj=Settings(database_url=db_url, ingest_group="ing2"))
    assert out.exit_code == 0, out.output
    acl = (tmp_path / "broker" / "acl").read_text()
    assert "user hub-7\ntopic write fatigue/v1/hub-7/#" in acl
    assert "topic read $share/ing2/fatigue/v1/+/+/+" in acl and "user notice-WMP" in acl
    assert "password" not in out.output.lower() or "passwords for" in out.output
