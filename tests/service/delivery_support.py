"""Helpers of the delivery tests: a fresh migrated database, an SMTP server that can refuse or stall, a notice
listener, and a small programme of forces in every state. Real PostgreSQL, Mosquitto and aiosmtpd only."""

from __future__ import annotations

import email
import email.policy
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from risk.publisher import MqttTarget
from service.local_servers import free_port
from service.scheduler import ServeConfig, WeeklySlot
from tests.risk.conftest import DERIVED_DDL, Seeder

LONDON = ZoneInfo("Europe/London")
START = date(2026, 3, 2)  # programme weeks end 8 and 15 March 2026 (ISO weeks 2026-W10 and 2026-W11)
NOW = datetime(2026, 3, 18, 13, 0, tzinfo=LONDON)  # after the slot Monday 16 March 12:00; reports for 2026-W11
WEEK = "2026-W11"


@dataclass
class Smtp:
    """aiosmtpd on a free port: answers 451 to DATA while ``refuse`` is set; while ``stall`` is set, holds RCPT
    until ``release`` and then closes (the message is never accepted)."""

    refuse: threading.Event = field(default_factory=threading.Event)
    stall: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    stalled: threading.Event = field(default_factory=threading.Event)
    delay_s: float = 0.0
    received: list[EmailMessage] = field(default_factory=list)
    refused: int = 0
    port: int = 0
    controller: Any = None

    def start(self) -> Smtp:
        from aiosmtpd.controller import Controller

        smtp = self

        class Handler:
            async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                                  rcpt_options: Any) -> str:
                import asyncio

                if smtp.stall.is_set():  # the client is mid-delivery and the message not yet accepted
                    smtp.stalled.set()
                    while not smtp.release.is_set():
                        await asyncio.sleep(0.05)
                    return "421 4.3.0 closing"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                import asyncio

                if smtp.refuse.is_set():
                    smtp.refused += 1
                    return "451 4.3.0 mail system busy, try again later"
                if smtp.delay_s:
                    await asyncio.sleep(smtp.delay_s)
                msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
                assert isinstance(msg, EmailMessage)
                smtp.received.append(msg)
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?from=reports@example.police.uk"

    def stop(self) -> None:
        self.release.set()
        self.controller.stop()

    def per_report(self) -> Counter[str]:
        """Messages received per Message-ID."""
        return Counter(str(m["Message-ID"]) for m in self.received)


class Notices:
    """Subscribes to every report notice and keeps the payloads."""

    def __init__(self, host: str, port: int) -> None:
        self.got: list[bytes] = []
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-notices-{uuid.uuid4().hex[:6]}")
        self.client.on_connect = lambda c, *a: (c.subscribe("fatigue/v1/reports/+", qos=1), ready.set())
        self.client.on_message = lambda c, u, m: self.got.append(bytes(m.payload))
        self.client.connect(host, port)
        self.client.loop_start()
        assert ready.wait(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def programme_of_states(conn: psycopg.Connection[Any], start: date = START) -> dict[str, str]:
    """Forces in every state a deployment passes through; returns force -> state.

    flagged: 12 officers, 5 short sleepers consenting; oneweek: 6 officers with one closed week;
    insufficient: 6 officers with no valid night; empty: a force with no officer yet; withdrawn: 5 officers,
    all withdrawn; late: officers whose programme starts after the report week (no closed week yet).
    ``start`` is the programme start (weeks end ``start + 6`` and ``start + 13``).
    """
    conn.execute(DERIVED_DDL)
    seed = Seeder(conn)
    for k in range(12):
        pid = seed.participant("flagged", start, f"FL-{k}", consent_manager=k < 5)
        seed.nights(pid, start, 1, 14, tst_min=300 if k < 5 else 480)
    for k in range(6):
        pid = seed.participant("insufficient", start, f"IN-{k}")
        seed.nights(pid, start, 1, 14, valid=False)
    for k in range(6):  # joined a week later: one closed week, a single point in every chart
        pid = seed.participant("oneweek", start + timedelta(days=7), f"OW-{k}", consent_manager=True)
        seed.nights(pid, start + timedelta(days=7), 1, 7, tst_min=330)
    seed.force("empty")
    for k in range(5):
        pid = seed.participant("withdrawn", start, f"WD-{k}", consent_manager=True)
        seed.nights(pid, start, 1, 14, tst_min=300)
    conn.execute("UPDATE core.participants SET withdrawn_at = %s WHERE force_id = 'withdrawn'",
                 (datetime.combine(start + timedelta(days=8), time(), LONDON),))
    for k in range(3):
        seed.participant("late", start + timedelta(days=35), f"LT-{k}")
    for force in ("flagged", "oneweek", "insufficient", "empty", "withdrawn", "late"):
        conn.execute("INSERT INTO risk.report_recipients VALUES (%s, %s)", (force, f"frm-{force}@example.police.uk"))
    return {"flagged": "flags", "oneweek": "one week", "insufficient": "insufficient", "empty": "no officers",
            "withdrawn": "withdrawn", "late": "not started"}


def serve_config(db_url: str, outbox: Path, smtp: Smtp | None, broker: Any | None, **kw: Any) -> ServeConfig:
    """A scheduler-only configuration with immediate retries (back-off base 0 s unless given)."""
    kw.setdefault("retry_base_s", 0.0)
    return ServeConfig(database_url=db_url, timezone="Europe/London", outbox_dir=outbox, ingest=None,
                       scheduler=True, every_s=1.0, weekly=WeeklySlot(), api=False,
                       mqtt_target=MqttTarget(broker.host, broker.port) if broker else None,
                       smtp_url=smtp.url if smtp else None, exports_dir=outbox.parent / "exports",
                       **kw)


def count(url: str, sql: str, params: tuple[Any, ...] = ()) -> int:
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('fatigue.all_forces', 'on', true)")
        row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row else 0
