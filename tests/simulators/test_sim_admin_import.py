"""The simulator's participants.csv and roster.csv load through the real admin importers."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from simulators.adapter_files import write_admin_csvs
from simulators.model import simulate
from simulators.params import SimParams
from store.enrolment import import_participants, import_roster


def test_admin_csvs_import(db: psycopg.Connection[tuple[object, ...]], tmp_path: Path) -> None:
    sim = simulate(SimParams(n_participants=12, n_days=40, start_date=date(2025, 3, 10), seed=21))
    people, roster = write_admin_csvs(sim, tmp_path)
    import_participants(db, people, ZoneInfo("Europe/London"))
    summary = import_roster(db, roster)
    n_duties = int(sim.roster.on_duty.sum())
    assert summary.inserted == n_duties
    row = db.execute("SELECT count(*) FROM core.duties").fetchone()
    assert row is not None and row[0] == n_duties
