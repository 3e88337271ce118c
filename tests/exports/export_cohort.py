"""Simulated export cohort for the export tests: skewed force sizes, identities, devices, daily features, flags."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from exports.job import ExportRequest, ExportResult, run_export

FORCE_SIZES = (120, 70, 45, 35, 20, 10)  # 300 participants, skewed
DAYS = 120
MASTER_KEY = bytes(range(32))
ROLES = ("response", "firearms", "investigation", "contact_management", "other")
AGES = ("18-24", "25-29", "30-34", "35-39", "40-44", "45-49", "50-54", "55+")


@dataclass(frozen=True)
class Cohort:
    """What was inserted: participant ids (str), the ids that must never leave, and who is (in)eligible."""

    participant_ids: list[str]
    staff_refs: list[str]
    device_ids: list[str]
    gateway_ids: list[str]
    no_consent: list[str]
    withdrawn: list[str]
    starts: dict[str, date]


def _people(rng: np.random.Generator) -> list[dict[str, Any]]:
    out = []
    for f, size in enumerate(FORCE_SIZES):
        for _ in range(size):
            out.append({"force_id": f"force{f + 1}",
                        "role_group": rng.choice(ROLES, p=[0.5, 0.08, 0.25, 0.1, 0.07]),
                        "age_band": rng.choice(AGES, p=[0.08, 0.16, 0.18, 0.16, 0.14, 0.12, 0.1, 0.06]),
                        "sex": rng.choice(["male", "female", "other", "not_stated"], p=[0.64, 0.34, 0.01, 0.01]),
                        "programme_start": date(2026, 1, 5) + timedelta(days=int(rng.integers(0, 28))),
                        "consent_research": bool(rng.random() > 0.04)})
    return out


def _insert_people(conn: psycopg.Connection[Any], people: list[dict[str, Any]]) -> list[str]:
    ids = []
    for p in people:
        row = conn.execute("""INSERT INTO core.participants (force_id, role_group, age_band, sex, programme_start,
                              consent_research) VALUES (%(force_id)s, %(role_group)s, %(age_band)s, %(sex)s,
                              %(programme_start)s, %(consent_research)s) RETURNING participant_id::text""",
                           p).fetchone()
        assert row is not None
        ids.append(str(row[0]))
    return ids


def _daily_rows(rng: np.random.Generator, pid: str, start: date) -> list[tuple[Any, ...]]:
    rows = []
    for d in range(1, DAYS + 1):
        valid = bool(rng.random() > 0.1)
        tst = float(rng.normal(400, 60))
        rows.append((pid, start + timedelta(days=d - 1), d, valid, 22.5, 1, tst + 30, tst, tst - 20, 20.0,
                     float(rng.uniform(80, 97)), 12.3, 25.1, 4.0, float(rng.uniform(0, 24)), 8.0, 1.23, 2.5, 0.5,
                     88.8, 71.3, 0.81, True, float(rng.normal(45, 10)), 3.8, 55.5, 22.2, "rr",
                     float(rng.normal(58, 6)), "device", 3.8, 0.3, 58.2, 66.6, "features-1.0"))
    return rows


def _flags(rng: np.random.Generator, pid: str, force: str, start: date) -> list[tuple[Any, ...]]:
    rows = []
    for week in range(1, DAYS // 7 + 1):
        ws = start + timedelta(days=7 * (week - 1))
        level = str(rng.choice(["green", "amber", "red", "insufficient_data"], p=[0.6, 0.25, 0.1, 0.05]))
        crit = {"H1": {"value": 5.2, "unit": "h", "level": "amber",
                       "reason": f"slept 5.2 h on {ws.isoformat()}, staff PC0001"},
                "S4": {"value": 1, "unit": "", "level": "green", "reason": "ok"}}
        rows.append((pid, force, week, ws, ws + timedelta(days=6), level, json.dumps(crit)))
    return rows


def build_cohort(conn: psycopg.Connection[Any], seed: int = 7) -> Cohort:
    """Insert the cohort (about 36 000 daily rows) and return what the tests need to know."""
    rng = np.random.default_rng(seed)
    for f in range(len(FORCE_SIZES)):
        conn.execute("INSERT INTO core.forces (force_id, name) VALUES (%s, %s)", (f"force{f + 1}", f"Force {f}"))
        conn.execute("INSERT INTO core.gateways (gateway_id, force_id) VALUES (%s, %s)",
                     (f"GW-F{f + 1}", f"force{f + 1}"))
    people = _people(rng)
    ids = _insert_people(conn, people)
    staff, devices = [], []
    with conn.cursor() as cur:
        for i, (pid, p) in enumerate(zip(ids, people, strict=True)):
            staff.append(f"PC{i + 1:04d}")
            devices.append(f"DEV-{i + 1:05d}-W")
            cur.execute("INSERT INTO core.identities VALUES (%s, %s, %s)", (pid, p["force_id"], staff[-1]))
            cur.execute("INSERT INTO core.devices (device_id) VALUES (%s)", (devices[-1],))
    with conn.cursor().copy("COPY derived.daily_features (participant_id, sleep_date, programme_day, "
                            "valid_sleep_day, wear_h, n_episodes, tib_min, tst_min, main_tst_min, nap_min, se_pct, "
                            "sol_min, waso_min, awakenings, midpoint_local_h, sleep_need_h, debt_net_7d_h, "
                            "debt_gross_7d_h, debt_carry_h, sleep_performance_pct, sri_14d, sleep_consistency, "
                            "valid_hrv_night, rmssd_ms, ln_rmssd, sdnn_ms, pnn50_pct, hrv_source, resting_hr_bpm, "
                            "rhr_source, hrv_baseline_mean, hrv_baseline_sd, rhr_baseline_mean, recovery_score, "
                            "algorithm_version) FROM STDIN") as copy:
        for pid, p in zip(ids, people, strict=True):
            for row in _daily_rows(rng, pid, p["programme_start"]):
                copy.write_row(row)
    if conn.execute("SELECT to_regclass('risk.weekly_flags')").fetchone() != (None,):
        with conn.cursor().copy("COPY risk.weekly_flags (participant_id, force_id, programme_week, week_start, "
                                "week_end, overall_level, criteria, programme_version, algorithm_version) "
                                "FROM STDIN") as copy:
            for pid, p in zip(ids, people, strict=True):
                for row in _flags(rng, pid, p["force_id"], p["programme_start"]):
                    copy.write_row((*row, "programme-v1", "flags-1"))
    no_consent = [i for i, p in zip(ids, people, strict=True) if not p["consent_research"]]
    consenting = [i for i in ids if i not in no_consent]
    return Cohort(ids, staff, devices, [f"GW-F{f + 1}" for f in range(len(FORCE_SIZES))], no_consent,
                  consenting[:3], {i: p["programme_start"] for i, p in zip(ids, people, strict=True)})


TABLES = ("participants", "daily_features", "weekly_flags", "aggregates")


@dataclass(frozen=True)
class Run:
    """One delivered export and its tables."""

    result: ExportResult
    tables: dict[str, pd.DataFrame]


@dataclass(frozen=True)
class World:
    """The session's database, cohort and exports (a1 parquet, b csv, a2 csv after withdrawals, a_after weeks 2-4)."""

    url: str
    cohort: Cohort
    a1: Run
    a2: Run
    b: Run
    a_after: Run


def read_tables(out: Path) -> dict[str, pd.DataFrame]:
    """The four tables of a delivered export."""
    if (out / "participants.parquet").exists():
        return {t: pd.read_parquet(out / f"{t}.parquet") for t in TABLES}
    return {t: pd.read_csv(out / f"{t}.csv", keep_default_na=False, na_values=[""]) for t in TABLES}


def export(url: str, out: Path, project: str, fmt: str = "parquet", **kw: Any) -> Run:
    """Run one export with the test master key."""
    req = ExportRequest(project=project, out=out, master_key=MASTER_KEY, key_version=1, requester="tester",
                        fmt=fmt, **kw)
    result = run_export(url, req)
    return Run(result, read_tables(out))
