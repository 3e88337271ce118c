"""Fixtures of the risk tests: the derived tables (when the feature/model migrations do not exist yet) and a
small seeder for participants, identities, daily features and duties. Real PostgreSQL only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

# Shared column names of docs/developing.md ("Shared frames"); created only when absent.
DERIVED_DDL = """
CREATE SCHEMA IF NOT EXISTS derived;
CREATE TABLE IF NOT EXISTS derived.daily_features (
    participant_id uuid NOT NULL, sleep_date date NOT NULL, programme_day integer, valid_sleep_day boolean,
    wear_h double precision, n_episodes integer, tib_min double precision, tst_min double precision,
    main_tst_min double precision, nap_min double precision, se_pct double precision, sol_min double precision,
    waso_min double precision, awakenings integer, midpoint_local_h double precision,
    sleep_need_h double precision, debt_net_7d_h double precision, debt_gross_7d_h double precision,
    debt_carry_h double precision, sleep_performance_pct double precision, sri_14d double precision,
    sleep_consistency double precision, valid_hrv_night boolean, rmssd_ms double precision,
    ln_rmssd double precision, sdnn_ms double precision, pnn50_pct double precision, hrv_source text,
    resting_hr_bpm double precision, rhr_source text, hrv_baseline_mean double precision,
    hrv_baseline_sd double precision, rhr_baseline_mean double precision, recovery_score double precision,
    algorithm_version text, computed_at timestamptz DEFAULT now(),
    PRIMARY KEY (participant_id, sleep_date));
CREATE TABLE IF NOT EXISTS derived.duty_features (
    participant_id uuid NOT NULL, start_ts timestamptz NOT NULL, end_ts timestamptz, shift_type text,
    overtime boolean, length_h double precision, long_shift boolean, rest_gap_h double precision,
    quick_return boolean, night_duty boolean, consecutive_nights integer, consecutive_duty_days integer,
    early_start boolean, forward_rotation boolean, time_awake_end_h double precision, algorithm_version text,
    PRIMARY KEY (participant_id, start_ts));
CREATE TABLE IF NOT EXISTS derived.duty_exposure (
    participant_id uuid NOT NULL, start_ts timestamptz NOT NULL, end_ts timestamptz,
    minutes_kss_ge7 double precision, minutes_kss_ge8 double precision, peak_kss double precision,
    minutes_to_kss7 double precision, estimated boolean, model_version text,
    PRIMARY KEY (participant_id, start_ts));
"""

LONDON = ZoneInfo("Europe/London")
Conn = psycopg.Connection[Any]


@dataclass
class Seeder:
    """Insert test rows with the shared column names."""

    conn: Conn

    def force(self, force_id: str) -> str:
        self.conn.execute("INSERT INTO core.forces (force_id) VALUES (%s) ON CONFLICT DO NOTHING", (force_id,))
        return force_id

    def participant(self, force_id: str, start: date, staff_ref: str | None = None,
                    consent_manager: bool = False) -> uuid.UUID:
        self.force(force_id)
        pid = uuid.uuid4()
        self.conn.execute(
            "INSERT INTO core.participants (participant_id, force_id, role_group, age_band, sex, programme_start,"
            " consent_manager) VALUES (%s, %s, 'response', '30-34', 'not_stated', %s, %s)",
            (pid, force_id, start, consent_manager))
        self.conn.execute("INSERT INTO core.identities (participant_id, force_id, staff_ref) VALUES (%s, %s, %s)",
                          (pid, force_id, staff_ref or f"S{pid.hex[:8]}"))
        return pid

    def nights(self, pid: uuid.UUID, start: date, first_day: int, n: int, tst_min: float = 480.0,
               se_pct: float = 92.0, valid: bool = True, **extra: Any) -> None:
        cols = ["participant_id", "sleep_date", "programme_day", "valid_sleep_day", "tst_min", "se_pct",
                "algorithm_version", *extra]
        sql = (f"INSERT INTO derived.daily_features ({', '.join(cols)}) VALUES "
               f"({', '.join(['%s'] * len(cols))}) ON CONFLICT (participant_id, sleep_date) DO UPDATE SET "
               + ", ".join(f"{c} = excluded.{c}" for c in cols[2:]))
        for k in range(n):
            day = first_day + k
            self.conn.execute(sql, (pid, start + timedelta(days=day - 1), day, valid, tst_min, se_pct,
                                    "test", *extra.values()))

    def duty(self, pid: uuid.UUID, start_local: datetime, hours: float, quick_return: bool = False,
             time_awake_end_h: float | None = 14.0, kss7: float | None = 0.0, kss8: float | None = 0.0) -> None:
        s = start_local.replace(tzinfo=LONDON)
        e = s + timedelta(hours=hours)
        self.conn.execute("INSERT INTO core.duties (participant_id, start_ts, end_ts, shift_type) "
                          "VALUES (%s, %s, %s, 'day')", (pid, s, e))
        self.conn.execute(
            "INSERT INTO derived.duty_features (participant_id, start_ts, end_ts, shift_type, overtime, length_h,"
            " long_shift, quick_return, night_duty, consecutive_nights, consecutive_duty_days, early_start,"
            " time_awake_end_h, algorithm_version) VALUES (%s, %s, %s, 'day', false, %s, %s, %s, false, 0, 1,"
            " false, %s, 'test')",
            (pid, s, e, hours, hours > 12, quick_return, time_awake_end_h))
        if kss7 is not None:
            self.conn.execute(
                "INSERT INTO derived.duty_exposure (participant_id, start_ts, end_ts, minutes_kss_ge7,"
                " minutes_kss_ge8, estimated, model_version) VALUES (%s, %s, %s, %s, %s, false, 'test')",
                (pid, s, e, kss7, kss8))


@pytest.fixture
def seed(db: Conn) -> Iterator[Seeder]:
    """A seeder over a database that has the derived tables (created here if no migration made them)."""
    db.execute(DERIVED_DDL)
    yield Seeder(db)
