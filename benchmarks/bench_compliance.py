"""Benchmark: the compliance job's incremental run against a full recompute timed in the same run.

Creates a scratch database on the server at ``--admin-url``, applies every migration and generates, server-side,
``--participants`` officers with ``--days`` days of data ending now: one heart-rate run an hour (60 samples, one a
minute), a status every 6 h and a sleep episode a night. Times the first run (a full recompute of every day:
the baseline), then adds one more hour of runs and statuses for everyone and times the incremental run that a
scheduler tick makes. Prints both, the ratio and the participant-days each wrote. The database is dropped.

Run: ``python -m benchmarks.bench_compliance [--participants 700 --days 28]``.
"""

from __future__ import annotations

import argparse
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from compliance.job import ComplianceSummary, run_compliance
from compliance.rules import ComplianceRules
from store.migrate import migrate

_SEED = [
    "INSERT INTO core.forces (force_id) VALUES ('bench')",
    """INSERT INTO core.participants (force_id, role_group, age_band, sex, programme_start)
       SELECT 'bench', 'response', '30-34', 'not_stated', (now() - make_interval(days => %(days)s))::date
       FROM generate_series(1, %(n)s)""",
    """INSERT INTO core.devices (device_id) SELECT 'bd' || row_number() OVER () FROM core.participants""",
    """INSERT INTO core.device_assignments (device_id, participant_id, valid_from)
       SELECT 'bd' || row_number() OVER (ORDER BY participant_id), participant_id, now() - interval '400 days'
       FROM core.participants""",
]
_RUNS = """
INSERT INTO raw.hr_runs (device_id, start_ts, end_ts, participant_id, offsets_ms, bpm, suspect, msg_id)
SELECT a.device_id, h, h + interval '59 minutes', a.participant_id,
       (SELECT array_agg(k * 60000) FROM generate_series(0, 59) k), array_fill(60::smallint, ARRAY[60]),
       array_fill(false, ARRAY[60]), gen_random_uuid()
FROM core.device_assignments a
CROSS JOIN generate_series(%(lo)s::timestamptz, %(hi)s::timestamptz - interval '1 hour', interval '1 hour') h
"""
_STATUS = """
INSERT INTO raw.device_status (device_id, ts, participant_id, battery_pct, worn, online, msg_id)
SELECT a.device_id, h + interval '17 minutes', a.participant_id, 80, true, true, gen_random_uuid()
FROM core.device_assignments a
CROSS JOIN generate_series(%(lo)s::timestamptz, %(hi)s::timestamptz - interval '1 hour', interval '6 hours') h
"""
_SLEEP = """
INSERT INTO raw.sleep_episodes (device_id, start_ts, end_ts, participant_id, in_bed, msg_id)
SELECT a.device_id, d + interval '23 hours', d + interval '31 hours', a.participant_id, true, gen_random_uuid()
FROM core.device_assignments a
CROSS JOIN generate_series(%(lo)s::timestamptz, %(hi)s::timestamptz - interval '32 hours', interval '1 day') d
"""


@dataclass(frozen=True)
class BenchResult:
    """Timings (s) and what each run wrote."""

    full_s: float
    incremental_s: float
    full: ComplianceSummary
    incremental: ComplianceSummary


def _insert(conn: psycopg.Connection[tuple[object, ...]], lo: datetime, hi: datetime) -> None:
    for sql in (_RUNS, _STATUS, _SLEEP):
        conn.execute(sql, {"lo": lo, "hi": hi})
    conn.execute("ANALYZE")


def run(admin_url: str, n: int, days: int) -> BenchResult:
    """Create, seed, time and drop a scratch database; print the figures."""
    name = f"fatigue_bench_compliance_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{admin_url.rpartition('/')[0]}/{name}"
    rules = ComplianceRules()
    try:
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            for sql in _SEED:
                conn.execute(sql, {"n": n, "days": days})
            now = datetime.now().astimezone().replace(minute=0, second=0, microsecond=0)
            _insert(conn, now - timedelta(days=days), now)
            t0 = time.perf_counter()
            full = run_compliance(conn, rules, "Europe/London", now=now, reread=timedelta(0))
            full_s = time.perf_counter() - t0
            _insert(conn, now, now + timedelta(hours=1))
            t0 = time.perf_counter()
            inc = run_compliance(conn, rules, "Europe/London", now=now + timedelta(hours=1), reread=timedelta(0))
            inc_s = time.perf_counter() - t0
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"participants: {n:,}; days of data: {days}; heart-rate samples: {n * days * 24 * 60:,}")
    print(f"full recompute (baseline): {full_s:.2f} s, {full.participant_days:,} participant-days; "
          f"levels {full.levels}")
    print(f"incremental run after one more hour: {inc_s:.2f} s, {inc.participant_days:,} participant-days")
    print(f"ratio incremental / full: {inc_s / max(full_s, 1e-9):.3f}x")
    return BenchResult(full_s, inc_s, full, inc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=700)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    run(args.admin_url, args.participants, args.days)


if __name__ == "__main__":
    main()
