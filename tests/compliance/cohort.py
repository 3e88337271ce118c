"""The four-officer compliance cohort of the tests, fed through the real ingest code path.

Officers (participant index = position): 0 compliant, 1 flat battery, 2 device left in a drawer, 3 lost
gateway (returns with its backlog). Minute 0 is local midnight of the start date (GMT: local = UTC here).
Messages reach PostgreSQL through ``ingest.prepare.prepare`` and ``ingest.writer.Writer`` (the ingester's own
decode, time rules and COPY), in publish order, up to a chosen simulated time; the MQTT hop is covered by the
ingest tests.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg

from ingest.prepare import Inbound, prepare
from ingest.writer import Writer
from simulators.adapter_files import write_admin_csvs
from simulators.compliance_scenarios import Scenario, simulate_scenarios
from simulators.messages import iter_messages
from simulators.model import Simulation
from simulators.params import SimParams
from store.enrolment import import_participants

TZ = ZoneInfo("Europe/London")
START = date(2025, 3, 3)  # GMT until 30 March: local days are UTC days, as in the truth's wear_h_utc_day
N_DAYS = 17
DAY = 1440
COMPLIANT, FLAT, DRAWER, LOST = 0, 1, 2, 3
SCENARIOS = (
    Scenario(),
    Scenario(flat=((7 * DAY + 2 * 60, 8 * DAY + 14 * 60),)),          # flat day 7 02:00 -> day 8 14:00
    Scenario(nonwear=((5 * DAY + 12 * 60, 9 * DAY + 12 * 60),)),      # drawer day 5 12:00 -> day 9 12:00
    Scenario(gateway_down=((6 * DAY, 11 * DAY),)),                    # gateway lost day 6 00:00 -> day 11 00:00
)


def at(day: int, hour: float = 0.0) -> datetime:
    """Simulated time: ``day`` days and ``hour`` hours after local midnight of the start date (UTC here)."""
    return datetime(START.year, START.month, START.day, tzinfo=UTC) + timedelta(days=day, hours=hour)


@dataclass
class Feed:
    """Feeds the simulation's messages into the database in publish order, up to a simulated time."""

    sim: Simulation
    url: str
    position: int = 0

    def until(self, t: datetime) -> int:
        """Ingest every message published before ``t``; returns how many were stored or rejected."""
        limit_ms = int(t.timestamp() * 1000)
        stop = int(np.searchsorted(self.sim.table.publish_ms, limit_ms, side="left"))
        if stop <= self.position:
            return 0
        batch = [(Inbound(m.topic, m.payload), m.publish_ms) for m in iter_messages(self.sim, self.position, stop)]
        with psycopg.connect(self.url, autocommit=False) as conn:
            writer = Writer(conn, TZ)
            writer.write([prepare(msg, pub_ms) for msg, pub_ms in batch])
            conn.commit()
        n, self.position = stop - self.position, stop
        return n


def make_cohort(conn: psycopg.Connection[Any], url: str) -> Feed:
    """Simulate the four officers, enrol them (participants CSV of the simulator) and return the feed."""
    sim = simulate_scenarios(SCENARIOS, SimParams(n_days=N_DAYS, start_date=START, seed=21))
    with tempfile.TemporaryDirectory() as tmp:
        people, _ = write_admin_csvs(sim, Path(tmp))
        import_participants(conn, people, TZ)
    return Feed(sim, url)
