"""One source for the size limits (issue 17, point 5): contract, broker configs and docs agree, and a payload
exactly at the limit on the longest topic travels end to end through the deploy-config broker."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.contract import MAX_PAYLOAD_BYTES, decode, encode, topic_for
from ingest.contract_base import BROKER_MAX_PACKET_BYTES
from service.local_servers import DEPLOY_MOSQUITTO_CONF, PrivateMosquitto
from tests.ingest.support import (
    Conn,
    Publisher,
    count,
    enrol,
    hr_message,
    recent_ms,
    reset,
    running_ingester,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
LONG_GATEWAY, LONG_DEVICE = "g" * 64, "d" * 64  # the longest ids: the longest topic


def _spaced(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def _padded(payload: bytes, size: int) -> bytes:
    """The same JSON object, padded with insignificant whitespace to exactly ``size`` bytes."""
    assert len(payload) <= size
    return payload[:-1] + b" " * (size - len(payload)) + b"}"


def test_broker_configs_and_docs_follow_the_contract() -> None:
    deploy = re.findall(r"^max_packet_size\s+(\d+)", DEPLOY_MOSQUITTO_CONF.read_text(), re.M)
    assert deploy == [str(BROKER_MAX_PACKET_BYTES)]
    longest_topic = len(topic_for(LONG_GATEWAY, LONG_DEVICE, "survey"))
    assert MAX_PAYLOAD_BYTES + 5 + 2 + longest_topic + 2 + 3 * 1024 <= BROKER_MAX_PACKET_BYTES
    contract_doc = (ROOT / "docs" / "contract.md").read_text()
    assert _spaced(MAX_PAYLOAD_BYTES) in contract_doc and _spaced(BROKER_MAX_PACKET_BYTES) in contract_doc


def test_private_broker_config_carries_the_packet_limit(tmp_path: Path) -> None:
    for deploy in (False, True):
        broker = PrivateMosquitto(tmp_path / f"b{deploy}", deploy_config=deploy)
        broker.write_config()
        assert f"max_packet_size {BROKER_MAX_PACKET_BYTES}\n" in broker.config_path.read_text()


@pytest.fixture
def clean(db: Conn, tmp_path: Path) -> Conn:
    reset(db)
    start = datetime.fromtimestamp(recent_ms(20 * 24) / 1000, UTC).date().isoformat()
    enrol(db, tmp_path, [LONG_DEVICE], start=start)
    return db


def test_payload_at_the_limit_end_to_end(clean: Conn, db_url: str, deploy_broker: PrivateMosquitto) -> None:
    msg = hr_message(LONG_DEVICE, recent_ms(3), 3600, seed=4)
    topic = topic_for(LONG_GATEWAY, LONG_DEVICE, "hr")
    at_limit = _padded(encode(msg), MAX_PAYLOAD_BYTES)
    over = _padded(encode(replace(msg, msg_id=uuid.uuid4())), MAX_PAYLOAD_BYTES + 1)
    assert decode(topic, at_limit).n_samples == 3600
    group = f"g{uuid.uuid4().hex[:6]}"
    pub = Publisher(deploy_broker, client_id=f"gw-{uuid.uuid4().hex[:6]}")
    try:
        with running_ingester(db_url, deploy_broker, client_id=f"ing-{group}", group=group) as ing:
            pub.publish(topic, at_limit)
            pub.publish(topic, over)  # fits the packet limit: the broker accepts it, the contract refuses it
            wait_until(lambda: ing.totals.stored + sum(ing.totals.dead.values()) == 2, what="both processed")
            assert pub.client.is_connected()  # the gateway was never disconnected for packet size
    finally:
        pub.close()
    assert count(clean, "SELECT sum(cardinality(bpm)) FROM raw.hr_runs") == 3600
    assert clean.execute("SELECT reason_code FROM ingest.dead_letters").fetchall() == [("oversized",)]
