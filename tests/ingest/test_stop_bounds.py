"""SIGTERM stops the ingester within a bounded time in every state, acknowledging nothing uncommitted."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import psycopg

from ingest.consumer import STOP_BOUND_S
from ingest.contract import encode, topic_for
from service.local_servers import PrivateMosquitto, PrivatePostgres
from store.migrate import migrate
from tests.ingest.support import Publisher, count, enrol, hr_message, recent_ms, wait_until
from tests.ingest.test_ingest_faults import Supervised, _acks_follow_commits


def _ledger(url: str) -> int:
    with psycopg.connect(url) as conn:
        return count(conn, "SELECT count(*) FROM ingest.message_ledger")


def test_sigterm_during_database_outage(private_pg: PrivatePostgres, mqtt_broker: PrivateMosquitto,
                                        tmp_path: Path) -> None:
    from tests.conftest import create_database

    url = create_database(private_pg.url, "fatigue_stop")
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        enrol(conn, tmp_path, ["dev-0"], start="2026-11-01")
    base = recent_ms(10)
    msgs = [hr_message("dev-0", base + i * 60_000, 60, seed=i) for i in range(40)]
    items = [(topic_for("gw-1", "dev-0", "hr"), encode(m)) for m in msgs]
    sup = Supervised(url, mqtt_broker, tmp_path, group=f"stop{uuid.uuid4().hex[:6]}")
    sup.start()
    sup.wait_ready()
    pub = Publisher(mqtt_broker, client_id=f"gw-{uuid.uuid4().hex[:6]}")
    try:
        pub.publish_many(items[:20])
        wait_until(lambda: _ledger(url) == 20, what="first 20 stored")
        private_pg.stop("immediate")
        pub.publish_many(items[20:])  # delivered to the ingester, which cannot commit them
        time.sleep(3.0)  # inside the retry loop with backoff
        assert sup.proc is not None
        started = time.monotonic()
        sup.proc.send_signal(signal.SIGTERM)
        code = sup.proc.wait(STOP_BOUND_S + 10)
        took = time.monotonic() - started
        assert took <= STOP_BOUND_S, f"stopped after {took:.1f} s"
        assert code == 0, (tmp_path / "ingest.err").read_text()[-2000:]
        _acks_follow_commits(sup.trace)  # nothing uncommitted was acknowledged
        private_pg.start()
        sup.start()  # the session kept the 20 unacknowledged messages
        wait_until(lambda: _ledger(url) == 40, timeout=90, what="all 40 stored after the outage")
        assert sup.terminate() == 0
        with psycopg.connect(url) as conn:
            assert count(conn, "SELECT sum(cardinality(bpm)) FROM raw.hr_runs") == 40 * 60
    finally:
        pub.close()
        if sup.proc and sup.proc.poll() is None:
            sup.proc.kill()
