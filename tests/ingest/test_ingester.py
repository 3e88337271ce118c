"""The ingester against a real broker and database: storage, duplicates, quarantine, dead letters, poison."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ingest.contract import topic_for
from service.local_servers import PrivateMosquitto
from tests.ingest.support import (
    Conn,
    Publisher,
    count,
    enrol,
    hr_message,
    publish_records,
    recent_ms,
    reset,
    running_ingester,
    stored_samples,
    wait_until,
)


@pytest.fixture
def clean(db: Conn, tmp_path: Path) -> Conn:
    reset(db)
    enrol(db, tmp_path, ["dev-a", "dev-b"], start="2026-11-01")
    return db


@pytest.fixture
def pub(mqtt_broker: PrivateMosquitto) -> Publisher:
    p = Publisher(mqtt_broker, client_id=f"gw-{uuid.uuid4().hex[:6]}")
    yield p  # type: ignore[misc]
    p.close()


def test_stores_samples_once_and_absorbs_duplicates(clean: Conn, db_url: str, mqtt_broker: PrivateMosquitto,
                                                    pub: Publisher) -> None:
    base = recent_ms(5)
    msgs = [hr_message("dev-a", base + i * 60_000, 60, seed=i) for i in range(20)]
    group = f"g{uuid.uuid4().hex[:6]}"
    with running_ingester(db_url, mqtt_broker, client_id=f"ing-{group}", group=group) as ing:
        publish_records(pub, "gw-1", msgs + msgs[:5])
        wait_until(lambda: ing.totals.stored + ing.totals.duplicates >= 25, what="25 messages processed")
    assert stored_samples(clean) == 20 * 60
    assert count(clean, "SELECT count(*) FROM ingest.message_ledger") == 20
    assert count(clean, "SELECT sum(redeliveries) FROM ingest.message_ledger") == 5
    assert count(clean, "SELECT count(*) FROM ingest.dead_letters") == 0
    assert count(clean, "SELECT count(*) FROM ingest.dirty_days") >= 1
    assert ing.metrics.duplicates._value.get() == 5


def test_conflicting_duplicate_and_unknown_device(clean: Conn, db_url: str, mqtt_broker: PrivateMosquitto,
                                                  pub: Publisher, tmp_path: Path) -> None:
    base = recent_ms(3)
    first = hr_message("dev-a", base, 30, seed=1)
    conflicting = replace(first, bpm=first.bpm + 1)
    stranger = hr_message("dev-new", base, 30, seed=2)
    group = f"g{uuid.uuid4().hex[:6]}"
    with running_ingester(db_url, mqtt_broker, client_id=f"ing-{group}", group=group) as ing:
        publish_records(pub, "gw-1", [first])
        wait_until(lambda: ing.totals.stored == 1, what="first stored")
        publish_records(pub, "gw-1", [conflicting, stranger])
        wait_until(lambda: ing.totals.quarantined == 1 and sum(ing.totals.dead.values()) == 1, what="processed")
    assert count(clean, "SELECT count(*) FROM ingest.dead_letters WHERE reason_code = 'conflicting_duplicate'") == 1
    # the first version is kept
    kept = clean.execute("SELECT bpm FROM raw.hr_runs").fetchone()
    assert kept is not None and list(kept[0]) == first.bpm.tolist()  # type: ignore[call-overload]
    assert count(clean, "SELECT count(*) FROM ingest.quarantine WHERE replayed_at IS NULL") == 1

    from ingest.quarantine import replay_quarantine
    from tests.ingest.support import TZ

    enrol(clean, tmp_path, ["dev-new"], start="2026-11-01")
    import psycopg

    with psycopg.connect(db_url) as conn:
        totals, waiting = replay_quarantine(conn, TZ)
    assert (totals.stored, waiting) == (1, 0)
    assert stored_samples(clean) == 60


def test_time_rules(clean: Conn, db_url: str, mqtt_broker: PrivateMosquitto, pub: Publisher) -> None:
    now = recent_ms(0)
    future = hr_message("dev-a", now + 3_600_000, 10, seed=3)            # all future -> ts_future
    mostly_ok = hr_message("dev-a", now - 100_000, 100, seed=4)          # last 5 of 100 samples future
    mostly_ok = replace(mostly_ok, t_ms=mostly_ok.t_ms.copy())
    mostly_ok.t_ms[-5:] = now + 3_600_000 + np.arange(5)
    before = hr_message("dev-b", recent_ms(24 * 40), 10, seed=5)          # 40 days old -> too_late
    group = f"g{uuid.uuid4().hex[:6]}"
    with running_ingester(db_url, mqtt_broker, client_id=f"ing-{group}", group=group) as ing:
        publish_records(pub, "gw-1", [future, mostly_ok, before])
        wait_until(lambda: ing.totals.stored + sum(ing.totals.dead.values()) == 3, what="3 processed")
    reasons = dict(clean.execute("SELECT reason_code, count(*) FROM ingest.dead_letters GROUP BY 1").fetchall())
    assert reasons == {"ts_future": 1, "too_late": 1}
    assert stored_samples(clean) == 95
    assert ing.totals.dropped_future == 5


def test_bad_input_is_dead_lettered_and_acknowledged(clean: Conn, db_url: str, mqtt_broker: PrivateMosquitto,
                                                     pub: Publisher) -> None:
    good = hr_message("dev-a", recent_ms(2), 10, seed=6)
    bad = [(topic_for("gw-1", "dev-a", "hr"), b"{not json"),
           (topic_for("gw-1", "dev-a", "hr"), b""),
           (topic_for("gw-1", "dev-a", "hr"), b'{"schema": "hr/1", "bpm": NaN}'),
           (topic_for("gw-1", "dev-a", "hr"), b"\xff\xfe\xfa")]
    group = f"g{uuid.uuid4().hex[:6]}"
    with running_ingester(db_url, mqtt_broker, client_id=f"ing-{group}", group=group) as ing:
        pub.publish_many(bad)
        publish_records(pub, "gw-1", [good])
        wait_until(lambda: ing.totals.stored == 1 and sum(ing.totals.dead.values()) == 4, what="all processed")
    rows = clean.execute("SELECT reason_code, length(payload) FROM ingest.dead_letters ORDER BY 1").fetchall()
    assert len(rows) == 4
    assert {r[0] for r in rows} <= {"malformed_json", "empty_payload", "non_finite_number", "bad_encoding",
                                    "schema_violation"}
    assert stored_samples(clean) == 10


def test_poison_message_is_isolated(clean: Conn, db_url: str, mqtt_broker: PrivateMosquitto,
                                    pub: Publisher) -> None:
    # A constraint the contract does not know: the poison passes decoding and fails in the database.
    clean.execute("SELECT store.alter_timeseries('raw.hr_runs', 'ADD CONSTRAINT test_poison CHECK (bpm[1] <> 123)')")
    try:
        base = recent_ms(4)
        msgs = [hr_message("dev-a", base + i * 60_000, 30, seed=100 + i) for i in range(30)]
        poison = replace(msgs[17], bpm=msgs[17].bpm.copy())
        poison.bpm[0] = 123
        msgs[17] = poison
        group = f"g{uuid.uuid4().hex[:6]}"
        with running_ingester(db_url, mqtt_broker, client_id=f"ing-{group}", group=group,
                              batch_size=200, batch_age_s=1.0) as ing:
            publish_records(pub, "gw-1", msgs)
            wait_until(lambda: ing.totals.stored + sum(ing.totals.dead.values()) >= 30, what="batch processed")
        assert count(clean, "SELECT count(*) FROM ingest.dead_letters WHERE reason_code = 'db_constraint'") == 1
        assert count(clean, "SELECT count(*) FROM raw.hr_runs") == 29
    finally:
        clean.execute("SELECT store.alter_timeseries('raw.hr_runs', 'DROP CONSTRAINT test_poison')")


def test_messages_published_while_down_arrive_after_restart(clean: Conn, db_url: str,
                                                             mqtt_broker: PrivateMosquitto, pub: Publisher) -> None:
    """R6: the paho default clean_start would lose these; a persistent session keeps them."""
    group = f"g{uuid.uuid4().hex[:6]}"
    client_id = f"ing-{group}"
    with running_ingester(db_url, mqtt_broker, client_id=client_id, group=group):
        pass  # creates the session and subscription, then disconnects
    base = recent_ms(6)
    msgs = [hr_message("dev-b", base + i * 60_000, 10, seed=200 + i) for i in range(100)]
    publish_records(pub, "gw-1", msgs)
    with running_ingester(db_url, mqtt_broker, client_id=client_id, group=group) as ing:
        wait_until(lambda: ing.totals.stored == 100, timeout=60, what="100 queued messages")
    assert count(clean, "SELECT count(*) FROM raw.hr_runs") == 100


def test_two_ingesters_share_the_subscription(clean: Conn, db_url: str, mqtt_broker: PrivateMosquitto,
                                              pub: Publisher) -> None:
    group = f"g{uuid.uuid4().hex[:6]}"
    base = recent_ms(8)
    msgs = [hr_message("dev-a" if i % 2 else "dev-b", base + i * 60_000, 20, seed=300 + i) for i in range(400)]
    with running_ingester(db_url, mqtt_broker, client_id=f"a-{group}", group=group) as one, \
            running_ingester(db_url, mqtt_broker, client_id=f"b-{group}", group=group) as two:
        publish_records(pub, "gw-1", msgs)
        wait_until(lambda: one.totals.stored + two.totals.stored == 400, what="400 stored")
        assert one.totals.stored > 0 and two.totals.stored > 0, "load was not shared"
    assert count(clean, "SELECT count(*) FROM raw.hr_runs") == 400
    assert stored_samples(clean) == 400 * 20


def test_logs_hold_no_payload_values_and_metrics_count(clean: Conn, db_url: str, mqtt_broker: PrivateMosquitto,
                                                       pub: Publisher, capsys: pytest.CaptureFixture[str]) -> None:
    from prometheus_client import generate_latest

    from ingest.contract import DeviceStatus, encode

    status = DeviceStatus(msg_id=uuid.uuid4(), device_id="dev-a", sent_at_ms=recent_ms(1), t_ms=recent_ms(1),
                          online=True, battery_pct=77, worn=True, firmware="SECRETFW9")
    hr = hr_message("dev-a", recent_ms(2), 30, seed=9)
    group = f"g{uuid.uuid4().hex[:6]}"
    with running_ingester(db_url, mqtt_broker, client_id=f"ing-{group}", group=group) as ing:
        pub.publish(topic_for("gw-1", "dev-a", "status"), encode(status))
        pub.publish(topic_for("gw-1", "dev-a", "hr"), b'{"bpm": [12345678]}')
        publish_records(pub, "gw-1", [hr])
        wait_until(lambda: ing.totals.stored == 2 and sum(ing.totals.dead.values()) == 1, what="processed")
    logged = capsys.readouterr()
    text = logged.out + logged.err
    for secret in ("SECRETFW9", "12345678", "dev-a", "gw-1", str(status.msg_id), "PC000"):
        assert secret not in text
    metrics = generate_latest(ing.metrics.registry).decode()
    assert 'fatigue_ingest_samples_total{stream="hr"} 30.0' in metrics
    assert 'fatigue_ingest_dead_letters_total{reason="schema_violation"} 1.0' in metrics
