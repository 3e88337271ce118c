"""Benchmark: evaluate and write one programme week of flags for 150,000 participants.

Creates a scratch database on the server at ``--admin-url`` (default: the shared local server), applies every
migration, generates synthetic daily features, duties, duty features and exposure server-side, then times one
``risk.job.run_flags`` call. Prints the total time next to the time the same run spent reading its inputs from
the database (the baseline) and the ratio. The scratch database is dropped at the end.

Run: ``python -m benchmarks.bench_flags [--participants 150000]``.
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import date, timedelta

import psycopg

from risk.job import FlagRunSummary, run_flags
from risk.programme import load_programme
from store.migrate import migrate

START = date(2026, 3, 2)
TARGET_S = 60.0

_SEED_SQL = [
    "INSERT INTO core.forces (force_id) SELECT 'bench_' || f FROM generate_series(0, 42) f",
    """INSERT INTO core.participants (force_id, role_group, age_band, sex, programme_start, consent_manager)
       SELECT 'bench_' || (i %% 43), 'response', '30-34', 'not_stated', %(start)s, i %% 3 = 0
       FROM generate_series(1, %(n)s) i""",
    """INSERT INTO derived.daily_features (participant_id, sleep_date, programme_day, valid_sleep_day, tst_min,
           se_pct, debt_net_7d_h, sri_14d, valid_hrv_night, ln_rmssd, resting_hr_bpm, hrv_baseline_mean,
           hrv_baseline_sd, rhr_baseline_mean, algorithm_version)
       SELECT p.participant_id, p.programme_start + d - 1, d, random() > 0.1, 300 + random() * 240,
              75 + random() * 20, CASE WHEN d = 7 THEN random() * 16 END, 60 + random() * 30, random() > 0.2,
              3.5 + random(), 50 + random() * 10, NULL, NULL, NULL, 'bench'
       FROM core.participants p CROSS JOIN generate_series(1, 7) d""",
    """INSERT INTO core.duties (participant_id, start_ts, end_ts, shift_type)
       SELECT p.participant_id, ((p.programme_start + 2 * k - 2)::timestamp + interval '7 hours')
                  AT TIME ZONE 'Europe/London',
              ((p.programme_start + 2 * k - 2)::timestamp + interval '17 hours') AT TIME ZONE 'Europe/London',
              'day'
       FROM core.participants p CROSS JOIN generate_series(1, 4) k""",
    """INSERT INTO derived.duty_features (participant_id, start_ts, end_ts, shift_type, overtime, length_h,
           long_shift, quick_return, night_duty, consecutive_nights, consecutive_duty_days, early_start,
           time_awake_end_h, algorithm_version)
       SELECT participant_id, start_ts, end_ts, shift_type, false, 10, random() < 0.05, random() < 0.1, false,
              0, 1, false, 10 + random() * 10, 'bench' FROM core.duties""",
    """INSERT INTO derived.duty_exposure (participant_id, start_ts, end_ts, minutes_kss_ge7, minutes_kss_ge8,
           estimated, model_version)
       SELECT participant_id, start_ts, end_ts, random() * 90, random() * 70, false, 'bench'
       FROM core.duties""",
    "ANALYZE",
]


def _with_db(url: str, name: str) -> str:
    return f"{url.rpartition('/')[0]}/{name}"


def seed(url: str, n: int) -> float:
    """Fill the scratch database; returns seconds taken."""
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for sql in _SEED_SQL:
            conn.execute(sql, {"n": n, "start": START})
    return time.perf_counter() - t0


def run(admin_url: str, n: int) -> FlagRunSummary:
    """Create, seed, time and drop a scratch database; print the figures; return the summary."""
    name = f"fatigue_bench_flags_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_db(admin_url, name)
    try:
        migrate(url)
        seeded = seed(url, n)
        programme = load_programme()
        with psycopg.connect(url, autocommit=True) as conn:
            t0 = time.perf_counter()
            summary = run_flags(conn, START + timedelta(days=8), programme)
            total = time.perf_counter() - t0
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    t = summary.timings_s
    print(f"participants: {n:,}; seeded in {seeded:.1f} s; weeks evaluated {summary.evaluated:,}, "
          f"issued {summary.issued:,}; levels {summary.by_level}")
    print(f"run_flags total: {total:.2f} s (target < {TARGET_S:.0f} s: {'OK' if total < TARGET_S else 'MISSED'})")
    print(f"  read inputs {t['read_s']:.2f} s | evaluate {t['evaluate_s']:.2f} s | write {t['write_s']:.2f} s")
    print(f"ratio total / read-inputs baseline: {total / max(t['read_s'], 1e-9):.2f}x; "
          f"evaluate / read: {t['evaluate_s'] / max(t['read_s'], 1e-9):.3f}x")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=150_000)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    run(args.admin_url, args.participants)


if __name__ == "__main__":
    main()
