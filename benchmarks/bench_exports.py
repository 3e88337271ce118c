"""Benchmark: export the whole programme (120 days) for 150 000 participants; target < 60 s.

Creates a scratch database on the shared server (``FATIGUE_BENCH_PG_URL`` or postgres@127.0.0.1:5432), fills it
server-side with synthetic participants, identities and daily features (``generate_series``; foreign-key triggers
skipped for the bulk load), then times in the same run:

- baseline: read the same rows from the database into NumPy arrays (the export's own columnar reader,
  :mod:`exports.daily_read`, with no anonymising, writing or checking);
- export: ``run_export`` to parquet (read, anonymise, aggregate, write, independent check, ledger, move).

Prints both figures and their ratio, then drops the database. ``python -m benchmarks.bench_exports
[--participants N] [--days D]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from exports import db
from exports.job import ExportRequest, run_export
from store.migrate import migrate

ADMIN_URL = os.environ.get("FATIGUE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET_S = 60.0

_PEOPLE = """
INSERT INTO core.participants (participant_id, force_id, role_group, age_band, sex, programme_start,
                               consent_research, withdrawn_at)
SELECT gen_random_uuid(), 'force' || (1 + (i %% 43)),
       (ARRAY['response','firearms','investigation','contact_management','other'])[1 + (i * 7) %% 5],
       (ARRAY['18-24','25-29','30-34','35-39','40-44','45-49','50-54','55+'])[1 + (i * 13) %% 8],
       (ARRAY['female','male','male','not_stated'])[1 + (i * 3) %% 4],
       date '2026-01-05' + (i %% 28), (i %% 50) <> 0, CASE WHEN i %% 97 = 0 THEN now() END
FROM generate_series(1, %(n)s) AS i"""

_DAILY = """
INSERT INTO derived.daily_features
SELECT p.participant_id, p.programme_start + d - 1, d, random() > 0.1, 20 + random() * 4, 1,
       430 + random() * 60, 380 + random() * 60, 360 + random() * 60, random() * 30, 80 + random() * 17,
       random() * 30, random() * 60, random() * 8, random() * 24, 7.5 + random(), random() * 5,
       random() * 8, random() * 2, 80 + random() * 20, 60 + random() * 30, random(), random() > 0.2,
       25 + random() * 50, 3.2 + random(), 40 + random() * 40, random() * 30, 'rr', 50 + random() * 20,
       'device', 3.8, 0.3, 58, random() * 100, 'features-1.0', now()
FROM core.participants p CROSS JOIN generate_series(1, %(days)s) AS d"""


def _populate(url: str, n: int, days: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO core.forces (force_id) SELECT 'force' || i FROM generate_series(1, 43) i")
        conn.execute(_PEOPLE, {"n": n})
        conn.execute("""INSERT INTO core.identities SELECT participant_id, force_id,
                        'PC' || row_number() OVER (ORDER BY participant_id) FROM core.participants""")
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")  # skip FK triggers for the bulk load
            conn.execute(_DAILY, {"days": days})
        conn.execute("VACUUM ANALYZE derived.daily_features")


def _read_baseline(url: str, days: int) -> tuple[float, int]:
    start = time.perf_counter()
    rows = 0
    with psycopg.connect(url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.transaction():
            people = db.eligible_participants(conn)
            for chunk in db.read_daily(conn, people["participant_id"], 1, days):
                rows += chunk.rows
    return time.perf_counter() - start, rows


def run(n: int, days: int, keep: bool = False, admin_url: str = ADMIN_URL) -> dict[str, float]:
    """Create, fill, time and drop the scratch database on ``admin_url``'s server; returns the figures."""
    name = f"fatigue_bench_exports_{uuid.uuid4().hex[:10]}"
    url = f"{admin_url.rpartition('/')[0]}/{name}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    out_root = Path(tempfile.mkdtemp(prefix="bench-exports-"))
    try:
        migrate(url)
        t0 = time.perf_counter()
        _populate(url, n, days)
        load_s = time.perf_counter() - t0
        read_s, rows = _read_baseline(url, days)
        req = ExportRequest(project="bench", out=out_root / "export", master_key=b"b" * 32, key_version=1,
                            requester="bench", to_week=(days + 6) // 7)
        t0 = time.perf_counter()
        result = run_export(url, req)
        export_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in result.out.iterdir())
        return {"participants": n, "days": days, "rows_read": rows, "load_s": load_s, "read_s": read_s,
                "export_s": export_s, "ratio": export_s / read_s, "rows_exported": result.row_counts["daily_features"],
                "k": result.k_achieved, "bytes": size}
    finally:
        shutil.rmtree(out_root, ignore_errors=True)
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    """Command-line entry point: print the export time, the read baseline and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=150_000)
    parser.add_argument("--days", type=int, default=120)
    args = parser.parse_args()
    f = run(args.participants, args.days)
    print(f"bench_exports: {f['participants']:.0f} participants x {f['days']:.0f} days, "
          f"{f['rows_read']:.0f} daily rows read, {f['rows_exported']:.0f} exported, k {f['k']:.0f}, "
          f"{f['bytes'] / 1e6:.0f} MB written (synthetic load {f['load_s']:.1f} s)")
    print(f"  read baseline (columnar read only)  {f['read_s']:8.1f} s")
    print(f"  full export (checked, ledgered)     {f['export_s']:8.1f} s   target < {TARGET_S:.0f} s: "
          f"{'met' if f['export_s'] < TARGET_S else 'NOT met'}")
    print(f"  ratio export / read                 {f['ratio']:8.2f}")


if __name__ == "__main__":
    main()
