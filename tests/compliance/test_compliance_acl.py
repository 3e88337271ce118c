"""Alert topics under the generated broker ACL (real Mosquitto): a gateway reads its own alerts only and cannot
forge any; the jobs user publishes them; the ingester never sees them; a gateway named 'alerts' is refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from service.local_servers import PrivateMosquitto
from service.mqtt_acl import AclError, plan_users
from tests.access.access_support import broker_under_acl


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrivateMosquitto, dict[str, str]]]:
    yield from broker_under_acl(tmp_path_factory, ["gw-a", "gw-b"], ["F1"], "alert")



def _client(server: PrivateMosquitto, user: str, password: str, subscribe: str | None,
            got: list[str]) -> mqtt.Client:
    ready = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-alerts", protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    c.on_connect = lambda cl, u, f, r, p: cl.subscribe(subscribe, qos=1) if subscribe else ready.set()
    c.on_subscribe = lambda cl, u, m, r, p: ready.set()
    c.on_message = lambda cl, u, m: got.append(m.topic)
    c.connect(server.host, server.port)
    c.loop_start()
    assert ready.wait(10), f"{user} not ready"
    return c


def test_gateways_read_only_their_own_alerts(broker: tuple[PrivateMosquitto, dict[str, str]]) -> None:
    server, creds = broker
    got_a: list[str] = []
    got_b: list[str] = []
    got_ing: list[str] = []
    a = _client(server, "gw-a", creds["gw-a"], "fatigue/v1/alerts/#", got_a)  # asks for all: gets its own
    b = _client(server, "gw-b", creds["gw-b"], "fatigue/v1/alerts/gw-b/#", got_b)
    ing = _client(server, "fatigue-ingest", creds["fatigue-ingest"], "fatigue/v1/+/+/+", got_ing)
    jobs = _client(server, "fatigue-jobs", creds["fatigue-jobs"], None, [])
    try:
        for gw in ("gw-a", "gw-b"):
            jobs.publish(f"fatigue/v1/alerts/{gw}/dev1/silent", b"{}", qos=1).wait_for_publish(5)
        b.publish("fatigue/v1/alerts/gw-a/dev1/battery", b"{}", qos=1).wait_for_publish(5)  # forged: denied
        deadline = time.monotonic() + 5
        while (len(got_a) < 1 or len(got_b) < 1) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
    finally:
        for c in (a, b, ing, jobs):
            c.disconnect()
            c.loop_stop()
    assert got_a == ["fatigue/v1/alerts/gw-a/dev1/silent"]
    assert got_b == ["fatigue/v1/alerts/gw-b/dev1/silent"]
    assert got_ing == [], "six levels: never in the ingester's fatigue/v1/+/+/+"


def test_a_gateway_named_alerts_is_refused() -> None:
    with pytest.raises(AclError, match="reserved"):
        plan_users(["alerts"], ["F1"])
