"""Runs one seeded cohort end to end on a scratch database and returns its flags (I/O edge of validation).

simulate (``simulators.run.simulate_to_dir``) -> admin CSVs (``store.enrolment``) -> every message through the
ingester's own decode and write path (``ingest.prepare.prepare`` + ``ingest.writer.Writer``; only the MQTT hop is
bypassed) -> ``features.job.run_features`` -> ``models.job.run_models`` -> ``risk.job.run_flags``. The
programme starts far enough in the past that every week is closed. The scratch database is dropped afterwards.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import psycopg

from features.job import run_features
from features.params import FeatureParams
from ingest.prepare import Inbound, prepare
from ingest.writer import Writer
from models.job import run_models
from risk.job import run_flags
from risk.programme import CRITERIA, Programme
from simulators.adapter_files import read_log
from simulators.params import FaultRates, SimParams
from simulators.run import simulate_to_dir
from store.enrolment import import_participants, import_roster
from store.migrate import migrate

__all__ = ["CohortRun", "run_cohort", "write_log"]

_LEVEL = {"not_evaluated": -1, "green": 0, "amber": 1, "red": 2}
_OVERALL = {"insufficient_data": -1, "green": 0, "amber": 1, "red": 2}


class CohortRun:
    """Flags of one run (index staff_ref, programme_week; level codes) and the simulation's truth frames."""

    def __init__(self, flags: pd.DataFrame, truth: dict[str, pd.DataFrame], start: date, seconds: float) -> None:
        self.flags, self.truth, self.start, self.seconds = flags, truth, start, seconds


def _scratch(admin_url: str) -> str:
    name = f"fatigue_validate_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{admin_url.rpartition('/')[0]}/{name}"


def _drop(admin_url: str, url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')


def write_log(conn: psycopg.Connection[Any], log: Path, tz: str, programme_days: int = 120,
              batch_size: int = 2000) -> None:
    """Store a simulated message log through the ingester's decode and write path (no MQTT hop), committing
    every ``batch_size`` messages."""
    writer = Writer(conn, ZoneInfo(tz), programme_days=programme_days)
    now = int(time.time() * 1000)
    batch = []
    for rec in read_log(log):
        batch.append(prepare(Inbound(rec.topic, rec.payload), now, 400 * 86_400_000))
        if len(batch) == batch_size:
            writer.write(batch)
            conn.commit()
            batch.clear()
    writer.write(batch)
    conn.commit()


def _load(url: str, out: Path, tz: str, programme_days: int) -> None:
    with psycopg.connect(url) as conn:
        import_participants(conn, out / "participants.csv", ZoneInfo(tz))
        import_roster(conn, out / "roster.csv")
        conn.commit()
        write_log(conn, out / "messages.bin", tz, programme_days)


def _read_flags(conn: psycopg.Connection[Any]) -> pd.DataFrame:
    rows = conn.execute("SELECT i.staff_ref, f.programme_week, f.overall_level, f.criteria "
                        "FROM risk.weekly_flags f JOIN core.identities i USING (participant_id) "
                        "WHERE f.is_current").fetchall()
    out = pd.DataFrame({"staff_ref": [r[0] for r in rows], "programme_week": [int(r[1]) for r in rows],
                        "overall": [_OVERALL[str(r[2])] for r in rows]})
    for c in CRITERIA:
        out[c] = [_LEVEL[str(r[3][c]["level"])] for r in rows]
    return out.set_index(["staff_ref", "programme_week"]).sort_index()


def run_cohort(admin_url: str, params: SimParams, programme: Programme, workdir: Path, faults: str = "default",
               tz: str = "Europe/London", keep: bool = False) -> CohortRun:
    """Simulate, load, compute and flag one cohort; returns its flags and truth.

    Parameters
    ----------
    admin_url : str
        A PostgreSQL URL allowed to create databases; a scratch database is created beside it.
    params : SimParams
        Cohort size, days and seed (the start date is set so that every programme week is closed).
    programme : Programme
        Programme of the flags (``programme.days`` is the simulated length).
    workdir : Path
        Where the simulation files go.
    faults : str
        ``none``, ``default`` or ``heavy``.
    keep : bool
        Keep the scratch database (for inspection).
    """
    started = time.perf_counter()
    start = date.today() - timedelta(days=params.n_days + 10)
    params = replace(params, start_date=start, faults=replace(FaultRates.preset(faults), malformed=0.0))
    out = workdir / f"seed{params.seed}-{faults}"
    simulate_to_dir(params, out)
    url = _scratch(admin_url)
    try:
        migrate(url)
        _load(url, out, tz, programme.days)
        run_features(url, tz, full=True, params=FeatureParams.of(programme))
        run_models(url, tz, warmup_days=programme.warmup_days)
        with psycopg.connect(url) as conn:
            run_flags(conn, start + timedelta(days=params.n_days + 9), programme, tz=tz)
            conn.commit()
            flags = _read_flags(conn)
    finally:
        if not keep:
            _drop(admin_url, url)
    truth = {k: pd.read_parquet(out / "truth" / f"{k}.parquet") for k in ("participants", "days", "duties")}
    return CohortRun(flags, truth, start, time.perf_counter() - started)
