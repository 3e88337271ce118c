"""Cohorts for the privacy tests, written straight into ``core`` and ``risk.weekly_flags`` (real PostgreSQL).

Each officer has a programme start (staggered cohorts: different weekdays and weeks), consent to be named or
not, an optional withdrawal, and one current flag per programme week with a mean-sleep (S1) value; some flags
are second revisions. The levels and values are chosen by the test, so small groups are easy to build.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]
LEVELS = ("red", "amber", "green", "insufficient_data")
_SLEEP = {"red": 5.5, "amber": 6.6, "green": 7.4, "insufficient_data": None}


@dataclass(frozen=True)
class Officer:
    """One officer of a cohort; ``levels[k]`` is the level of programme week k+1."""

    staff_ref: str
    start: date
    named: bool
    levels: tuple[str, ...]
    withdrawn: bool = False
    withdrawn_on: date | None = None  # withdrawal date (``withdrawn`` alone: long before the programme)
    revised_weeks: frozenset[int] = frozenset()
    jitter_h: float = 0.0


@dataclass
class Cohort:
    force: str
    officers: list[Officer]
    ids: dict[str, uuid.UUID] = field(default_factory=dict)


def random_cohort(force: str, n: int, seed: int, first: date, n_weeks: int = 6, p_named: float = 0.7,
                  n_withdrawn: int = 1, stagger_days: int = 20) -> Cohort:
    """``n`` officers with random consent, staggered starts, random levels, a few revisions and withdrawals."""
    rng = np.random.default_rng(seed)
    officers = []
    for k in range(n):
        levels = tuple(str(v) for v in rng.choice(LEVELS, size=n_weeks, p=[0.12, 0.23, 0.55, 0.10]))
        officers.append(Officer(f"{force}-{k:03d}", first + timedelta(days=int(rng.integers(0, stagger_days + 1))),
                                bool(rng.random() < p_named), levels, withdrawn=k < n_withdrawn,
                                revised_weeks=frozenset(int(w) for w in rng.choice(n_weeks, 1) if rng.random() < 0.3),
                                jitter_h=float(rng.normal(0, 0.3))))
    return Cohort(force, officers)


def _criteria(level: str, sleep: float | None) -> dict[str, Any]:
    if sleep is None:
        return {"S1": {"value": None, "level": "insufficient_data", "reason": "fewer than 4 valid nights"}}
    lv = level if level in ("red", "amber") else "green"
    return {"S1": {"value": round(sleep, 3), "level": lv, "reason": f"mean sleep {sleep:.2f} h over 7 valid nights"}}


def seed_cohort(conn: Conn, cohort: Cohort) -> Cohort:
    """Write the cohort; flags of withdrawn officers stay in the table (the views must hide them)."""
    conn.execute("SET fatigue.all_forces = 'on'")
    conn.execute("INSERT INTO core.forces (force_id) VALUES (%s) ON CONFLICT DO NOTHING", (cohort.force,))
    for o in cohort.officers:
        pid = uuid.uuid4()
        cohort.ids[o.staff_ref] = pid
        conn.execute("INSERT INTO core.participants (participant_id, force_id, role_group, age_band, sex, "
                     "programme_start, consent_manager, consent_research, withdrawn_at) VALUES "
                     "(%s, %s, 'response', '30-34', 'not_stated', %s, %s, true, %s)",
                     (pid, cohort.force, o.start, o.named,
                      datetime(o.withdrawn_on.year, o.withdrawn_on.month, o.withdrawn_on.day, 12, tzinfo=UTC)
                      if o.withdrawn_on else datetime(2020, 1, 1, tzinfo=UTC) if o.withdrawn else None))
        conn.execute("INSERT INTO core.identities VALUES (%s, %s, %s)", (pid, cohort.force, o.staff_ref))
        for k, level in enumerate(o.levels):
            base = _SLEEP[level]
            sleep = None if base is None else base + o.jitter_h
            ws = o.start + timedelta(days=7 * k)
            args = (pid, cohort.force, k + 1, ws, ws + timedelta(days=6), level, Jsonb(_criteria(level, sleep)))
            if k in o.revised_weeks:
                old = conn.execute(
                    "INSERT INTO risk.weekly_flags (participant_id, force_id, programme_week, week_start, week_end,"
                    " overall_level, criteria, programme_version, algorithm_version, is_current) VALUES "
                    "(%s, %s, %s, %s, %s, 'insufficient_data', '{}', 'v1', 'a1', false) RETURNING flag_id",
                    args[:5]).fetchone()
                assert old is not None
                conn.execute(
                    "INSERT INTO risk.weekly_flags (participant_id, force_id, programme_week, week_start, week_end,"
                    " overall_level, criteria, programme_version, algorithm_version, revision, supersedes) VALUES "
                    "(%s, %s, %s, %s, %s, %s, %s, 'v1', 'a1', 2, %s)", (*args, old[0]))
            else:
                conn.execute(
                    "INSERT INTO risk.weekly_flags (participant_id, force_id, programme_week, week_start, week_end,"
                    " overall_level, criteria, programme_version, algorithm_version) VALUES "
                    "(%s, %s, %s, %s, %s, %s, %s, 'v1', 'a1')", args)
    conn.execute("RESET fatigue.all_forces")
    return cohort


def seven(force: str, start: date) -> Cohort:
    """The issue's example: 7 officers of whom 2 refused consent, four programme weeks, one start date.

    Report week (week 4): named 2 red, 1 amber, 2 green; not named 1 red, 1 green.
    """
    def o(ref: str, named: bool, levels: str, jitter: float) -> Officer:
        return Officer(f"{force}-{ref}", start, named, tuple({"r": "red", "a": "amber", "g": "green",
                                                               "i": "insufficient_data"}[c] for c in levels),
                       jitter_h=jitter)
    return Cohort(force, [o("N1", True, "garr", 0.1), o("N2", True, "gaar", -0.2), o("N3", True, "ggga", 0.0),
                          o("N4", True, "gggg", 0.3), o("N5", True, "iggg", -0.1),
                          o("X1", False, "ggrr", -0.35), o("X2", False, "gagg", 0.2)])


def cohort_rows(cohort: Cohort) -> list[dict[str, Any]]:
    """The cohort's current flags as rows (what ``risk.manager_flags`` holds for it), without a database."""
    rows = []
    for o in cohort.officers:
        if o.withdrawn:
            continue
        pid = cohort.ids.setdefault(o.staff_ref, uuid.uuid4())
        for k, level in enumerate(o.levels):
            base = _SLEEP[level]
            ws = o.start + timedelta(days=7 * k)
            rows.append({"flag_id": str(uuid.uuid4()), "participant_id": pid, "programme_week": k + 1,
                         "week_start": ws, "week_end": ws + timedelta(days=6), "overall_level": level,
                         "criteria": _criteria(level, None if base is None else base + o.jitter_h),
                         "revision": 2 if k in o.revised_weeks else 1, "consent_manager": o.named,
                         "staff_ref": o.staff_ref if o.named else None})
    return rows
