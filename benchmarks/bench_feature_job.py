"""Benchmark of the real feature job on a populated database, against the binary-COPY floor of the same run.

Run: ``python -m benchmarks.bench_feature_job [--participants 600] [--days 120] [--admin-url URL] [--keep]``.

A fresh database is migrated and filled server-side (``generate_series``, seeded by participant and day) with
``N`` participants x ``days``: one 8-h main sleep per night with 30-s stages, heart rate as 1-h runs of one
sample a minute around the clock from local midnight (wear), RR as one 5-min run of ~300 beats per hour of
sleep, duties on four
days of seven. The last programme day is left empty. Then, in this run:

1. **floor**: binary ``COPY`` of every raw column the job reads (all participants, whole history), bytes only;
2. **full**: ``run_features(full=True)`` in a child process (its peak RSS is the job's peak memory);
3. **nightly**: one new night for everyone (dirty marks as the ingester sets them), then the incremental run.

Printed: seconds, ms per participant, full / floor ratio (target <= 2x), nightly ms per participant (target
<= 5 ms), peak RSS of each child, the temp files the two runs made (pg_stat_database) and EXPLAIN (ANALYZE,
BUFFERS) temp-block counts of the night reads.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
import uuid
from datetime import date, timedelta

import psycopg

from features.job import run_features
from store.copyio import copy_floor_bytes
from store.migrate import migrate

TZ = "Europe/London"
_FILL = """
INSERT INTO core.forces (force_id) VALUES ('bench') ON CONFLICT DO NOTHING;
INSERT INTO core.participants (force_id, role_group, age_band, sex, programme_start)
SELECT 'bench', 'response', '30-39', 'not_stated', %(start)s::date FROM generate_series(1, %(n)s);
CREATE TEMP TABLE nights AS
SELECT p.participant_id, d, p.participant_id::text AS dev,
       ((%(start)s::date + d)::timestamp - interval '1 hour' + (hashtext(p.participant_id::text || d) %% 60)
        * interval '1 minute') AT TIME ZONE 'Europe/London' AS s
FROM core.participants p, generate_series(%(d0)s::int, %(d1)s::int) d;
"""
_RAW = """
INSERT INTO raw.sleep_episodes (device_id, start_ts, end_ts, participant_id, in_bed, stages, msg_id)
SELECT dev, s, s + interval '8 hours', participant_id, true,
       ARRAY(SELECT CASE WHEN k < 20 OR k %% 97 = 0 THEN 0 ELSE 1 + (k / 40) %% 3 END
             FROM generate_series(0, 959) k)::smallint[], gen_random_uuid() FROM nights;
INSERT INTO raw.hr_runs (device_id, start_ts, end_ts, participant_id, offsets_ms, bpm, suspect, msg_id)
SELECT dev, t, t + interval '59 minutes', participant_id, ARRAY(SELECT k * 60000 FROM generate_series(0, 59) k),
       ARRAY(SELECT (CASE WHEN h < 7 THEN 55 ELSE 75 END + (k * 7 + d) %% 9)::smallint
             FROM generate_series(0, 59) k),
       array_fill(false, ARRAY[60]), gen_random_uuid()
FROM nights, generate_series(0, 23) h,
     LATERAL (SELECT ((%(start)s::date + d)::timestamp + h * interval '1 hour') AT TIME ZONE 'Europe/London') x(t);
INSERT INTO raw.rr_runs (device_id, start_ts, end_ts, participant_id, rr_ms, artifact, msg_id)
SELECT dev, s + h * interval '1 hour', s + h * interval '1 hour' + interval '5 minutes', participant_id,
       ARRAY(SELECT (950 + (k * 37 + h * 11 + d) %% 120)::smallint FROM generate_series(0, 299) k),
       array_fill(false, ARRAY[300]), gen_random_uuid() FROM nights, generate_series(0, 7) h;
INSERT INTO core.duties (participant_id, start_ts, end_ts, shift_type)
SELECT participant_id, s + interval '10 hours', s + interval '18 hours', 'late' FROM nights WHERE d %% 7 < 4
ON CONFLICT DO NOTHING;
"""
_FLOOR = [
    "SELECT participant_id, start_ts, end_ts, in_bed, device_tst_min, stages FROM raw.sleep_episodes",
    "SELECT participant_id, start_ts, end_ts, offsets_ms, bpm FROM raw.hr_runs",
    "SELECT participant_id, start_ts, rr_ms FROM raw.rr_runs",
    "SELECT participant_id, start_ts, end_ts, shift_type, overtime FROM core.duties",
]


def _fill(url: str, n: int, start: date, d0: int, d1: int, mark_dirty: bool) -> None:
    with psycopg.connect(url) as conn:
        if d0 == 0:
            conn.execute(_FILL.split(";")[0])
            conn.execute(_FILL.split(";")[1], {"start": start, "n": n})
        conn.execute(_FILL.split(";")[2], {"start": start, "d0": d0, "d1": d1})
        for stmt in _RAW.split(";")[:-1]:
            conn.execute(stmt, {"start": start})
        if mark_dirty:
            conn.execute("INSERT INTO ingest.dirty_days SELECT DISTINCT participant_id, d FROM ("
                         "SELECT participant_id, (timezone('Europe/London', s))::date AS d FROM nights UNION ALL "
                         "SELECT participant_id, (timezone('Europe/London', s + interval '8 hours'))::date FROM nights"
                         ") x ON CONFLICT DO NOTHING")
        conn.execute("ANALYZE")


def _child(url: str, full: bool, out: mp.Queue) -> None:  # type: ignore[type-arg]
    t = time.perf_counter()
    summary = run_features(url, TZ, full=full)
    out.put((time.perf_counter() - t, summary.participants, summary.days_written,
             resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def _timed_job(url: str, full: bool) -> tuple[float, int, int, float]:
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    proc = ctx.Process(target=_child, args=(url, full, q))
    proc.start()
    result = q.get()
    proc.join()
    return result  # type: ignore[no-any-return]


def _floor(url: str) -> tuple[float, int]:
    with psycopg.connect(url) as conn:
        t = time.perf_counter()
        total = sum(copy_floor_bytes(conn, q) for q in _FLOOR)
        return time.perf_counter() - t, total


def _temp_blocks(url: str) -> tuple[int, int]:
    """EXPLAIN (ANALYZE, BUFFERS) of the biggest read (all night heart rate of 50 participants): temp blocks."""
    with psycopg.connect(url) as conn:
        plan = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT count(*) FROM (SELECT participant_id FROM "
            "core.participants ORDER BY 1 LIMIT 50) p JOIN raw.hr_runs r USING (participant_id), "
            "unnest(r.offsets_ms, r.bpm) u(o, b)").fetchone()
    top = plan[0][0]["Plan"] if plan else {}  # type: ignore[index]
    return int(top.get("Temp Read Blocks", 0)), int(top.get("Temp Written Blocks", 0))


def _temp_files(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT temp_files FROM pg_stat_database WHERE datname = current_database()").fetchone()
    return int(str(row[0])) if row else 0


def run(url: str, n: int, days: int) -> dict[str, float]:
    """Populate ``url`` with ``n`` x ``days``, then floor, full and nightly; prints and returns the figures."""
    start = date.today() - timedelta(days=days - 1)
    t = time.perf_counter()
    _fill(url, n, start, 0, days - 2, mark_dirty=False)
    print(f"populated {n} participants x {days - 1} nights in {time.perf_counter() - t:.1f} s")
    floor_s, floor_b = _floor(url)
    print(f"floor   binary COPY of the raw columns: {floor_s:.2f} s, {floor_b / 1e6:.0f} MB, "
          f"{1000 * floor_s / n:.1f} ms/participant")
    temp0 = _temp_files(url)
    full_s, parts, rows, rss = _timed_job(url, True)
    temp_files = _temp_files(url) - temp0
    print(f"full    run_features(full=True): {full_s:.2f} s, {parts} participants, {rows} rows, "
          f"{1000 * full_s / n:.1f} ms/participant, {full_s / floor_s:.2f}x floor (target <= 2x), "
          f"peak RSS {rss:.0f} MB")
    _fill(url, n, start, days - 1, days - 1, mark_dirty=True)
    temp0 = _temp_files(url)  # the fill's own statements are not the job's
    night_s, night_parts, night_rows, night_rss = _timed_job(url, False)
    temp_files += _temp_files(url) - temp0
    print(f"nightly one new night each: {night_s:.2f} s, {night_parts} participants, {night_rows} rows, "
          f"{1000 * night_s / max(night_parts, 1):.2f} ms/participant (target <= 5 ms), peak RSS {night_rss:.0f} MB")
    temp = _temp_blocks(url)
    print(f"temp files written by the two job runs: {temp_files}; EXPLAIN of the night heart-rate read of 50 "
          f"participants: temp read/written blocks {temp[0]}/{temp[1]}")
    return {"floor_s": floor_s, "full_s": full_s, "full_rows": rows, "full_participants": parts,
            "nightly_s": night_s, "nightly_participants": night_parts, "nightly_rows": night_rows,
            "temp_files": temp_files, "temp_blocks": temp[0] + temp[1]}


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--participants", type=int, default=600)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    args = ap.parse_args(argv)
    name = f"bench_feature_job_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = args.admin_url.rpartition("/")[0] + "/" + name
    try:
        migrate(url)
        return run(url, args.participants, args.days)
    finally:
        if args.keep:
            print(f"kept {url}")
        else:
            with psycopg.connect(args.admin_url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
