"""V1: 1,000 bad messages, 50 of each of 20 catalogue classes, among good ones.

Every bad message becomes exactly one dead letter with the reason of its class, every good sample is stored,
and the ingester never restarts (it runs in this process and must still be consuming at the end).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from ingest.contract import MAX_PAYLOAD_BYTES, encode, topic_for
from service.local_servers import PrivateMosquitto
from tests.ingest.support import Conn, Publisher, enrol, hr_message, recent_ms, reset, running_ingester, wait_until

PER_CLASS = 50


def _good(i: int, device: str = "dev-a") -> tuple[str, dict[str, object]]:
    rec = hr_message(device, recent_ms(10) + i * 100_000, 10, seed=10_000 + i)
    return topic_for("gw-1", device, "hr"), json.loads(encode(rec))


def _dump(obj: object) -> bytes:
    return json.dumps(obj).encode()


def _mutate(field: str, value: object) -> Callable[[int], tuple[str, bytes]]:
    def build(i: int) -> tuple[str, bytes]:
        topic, body = _good(i)
        body[field] = value
        return topic, _dump(body)
    return build


def _text(make: Callable[[str, dict[str, object]], str]) -> Callable[[int], tuple[str, bytes]]:
    def build(i: int) -> tuple[str, bytes]:
        topic, body = _good(i)
        return topic, make(_dump(body).decode(), body).encode()
    return build


def _status(firmware: str) -> Callable[[int], tuple[str, bytes]]:
    def build(i: int) -> tuple[str, bytes]:
        body = {"schema": "status/1", "msg_id": str(uuid.uuid4()), "device_id": "dev-a",
                "sent_at": recent_ms(1), "t": recent_ms(1) - i * 1000, "online": True, "firmware": firmware}
        return topic_for("gw-1", "dev-a", "status"), _dump(body)
    return build


def _at(offset_ms: int, device: str = "dev-a") -> Callable[[int], tuple[str, bytes]]:
    def build(i: int) -> tuple[str, bytes]:
        rec = hr_message(device, recent_ms(0) + offset_ms + i * 20_000, 10, seed=20_000 + i)
        return topic_for("gw-1", device, "hr"), encode(rec)
    return build


CLASSES: dict[str, Callable[[int], tuple[str, bytes]]] = {
    "malformed_json": _text(lambda s, b: s[: len(s) // 2]),
    "bad_encoding": lambda i: (topic_for("gw-1", "dev-a", "hr"), b'{"schema": "hr/1", "x": "\xff\xfe' + bytes([i])),
    "schema_violation": _mutate("bpm", "72"),
    "non_finite_number": _text(lambda s, b: s.replace('"bpm": [', '"bpm": [NaN, ', 1)),
    "number_out_of_range": _text(lambda s, b: _dump({**b, "bpm": [40000, *b["bpm"][1:]]}).decode()),  # type: ignore[misc]
    "too_deep": lambda i: (topic_for("gw-1", "dev-a", "hr"), b"[" * (50 + i) + b"]" * (50 + i)),
    "too_many_samples": lambda i: (topic_for("gw-1", "dev-a", "hr"),
                                   encode(hr_message("dev-a", recent_ms(3), 3601, seed=i))),
    # over the contract's limit but inside the broker's packet limit (a bigger packet disconnects the gateway)
    "oversized": lambda i: (topic_for("gw-1", "dev-a", "hr"),
                            b'{"pad": "' + b"x" * (MAX_PAYLOAD_BYTES - 11 + 1 + i) + b'"}'),
    "duplicate_key": _text(lambda s, b: s.replace('{"schema"', '{"device_id": "dev-a", "schema"', 1)),
    "ts_future": _at(3_600_000),
    "too_late": _at(-40 * 24 * 3_600_000),
    "ts_invalid": _mutate("sent_at", "2026-01-01T10:00:00"),
    "ts_unit": _mutate("sent_at", 1_700_000_000),
    "hr_impossible": _text(lambda s, b: _dump({**b, "bpm": [0] * len(b["bpm"])}).decode()),  # type: ignore[arg-type]
    "topic_mismatch": lambda i: (topic_for("gw-1", "dev-b", "hr"), encode(hr_message("dev-a", recent_ms(2), 5, i))),
    "invalid_id": lambda i: (f"fatigue/v1/gw-1/dev$a{i}/hr", encode(hr_message("dev-a", recent_ms(2), 5, i))),
    "bad_text": _status("fw\x07bell"),
    "empty_payload": lambda i: (f"fatigue/v1/gw-1/dev-e{i}/hr", b""),
    "unknown_stream": lambda i: (f"fatigue/v1/gw-1/dev-a/temperature{i % 3}", b"{}"),
    "ts_past": _at(-20 * 24 * 3_600_000, device="dev-late"),  # programme starts later than the data
}


@pytest.mark.parametrize("reason", sorted(CLASSES))
def test_each_builder_hits_its_class(reason: str) -> None:
    """The builders themselves are checked first, so a miss is the ingester's fault, not the test's."""
    from ingest.contract import ContractError, decode

    topic, payload = CLASSES[reason](0)
    if reason in ("ts_future", "too_late", "ts_past"):
        decode(topic, payload)  # valid by the contract; the ingester's time and window rules reject it
        return
    with pytest.raises(ContractError) as err:
        decode(topic, payload)
    assert err.value.reason == reason


def test_thousand_bad_messages(db: Conn, db_url: str, mqtt_broker: PrivateMosquitto, tmp_path: Path) -> None:
    reset(db)
    enrol(db, tmp_path, ["dev-a", "dev-b"], start="2026-11-01")
    from datetime import date, timedelta

    enrol(db, tmp_path, ["dev-late"], start=(date.today() - timedelta(days=3)).isoformat())
    assert len(CLASSES) == 20
    bad = [(reason, *CLASSES[reason](i)) for i in range(PER_CLASS) for reason in sorted(CLASSES)]
    good = [_good(i) for i in range(200)]
    originals = [hr_message("dev-b", recent_ms(30) + i * 100_000, 10, seed=30_000 + i) for i in range(PER_CLASS)]
    conflicting = [replace(r, bpm=r.bpm + 1) for r in originals]
    group = f"g{uuid.uuid4().hex[:6]}"
    pub = Publisher(mqtt_broker, client_id=f"gw-{group}")
    with running_ingester(db_url, mqtt_broker, client_id=f"ing-{group}", group=group) as ing:
        pub.publish_many([(topic_for("gw-1", "dev-b", "hr"), encode(r)) for r in originals])
        items: list[tuple[str, bytes]] = []
        for k, (_, topic, payload) in enumerate(bad):
            items.append((topic, payload))
            if k % 5 == 0 and good:
                t, body = good.pop()
                items.append((t, _dump(body)))
        items += [(t, _dump(b)) for t, b in good]
        items += [(topic_for("gw-1", "dev-b", "hr"), encode(r)) for r in conflicting]
        pub.publish_many(items)
        total = PER_CLASS + 200 + len(bad) + PER_CLASS
        wait_until(lambda: ing.totals.stored + sum(ing.totals.dead.values()) >= total, timeout=120,
                   what="every message processed")
        assert not ing.stopping.is_set() and ing.connected.is_set(), "the ingester must still be consuming"
    pub.close()
    reasons = dict(db.execute("SELECT reason_code, count(*) FROM ingest.dead_letters GROUP BY 1").fetchall())
    expected = {reason: PER_CLASS for reason in CLASSES} | {"conflicting_duplicate": PER_CLASS}
    assert reasons == expected
    assert sum(reasons.values()) == 1000 + PER_CLASS
    samples = db.execute("SELECT coalesce(sum(cardinality(bpm)), 0) FROM raw.hr_runs").fetchone()
    assert samples == ((200 + PER_CLASS) * 10,)
