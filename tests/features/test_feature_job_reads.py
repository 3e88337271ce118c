"""The feature job's reads are built for scale: no temp files, participant indexes usable (issue 22).

Every statement of one full batch runs under ``auto_explain`` (ANALYZE, BUFFERS) and its plans come back as
notices; none may read or write temp blocks. With sequential scans priced out, the raw-table reads must use
the migration-120 indexes on (participant_id, start_ts), i.e. they can read only a batch's participants.
"""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import psycopg

from features import job_io
from features.job import N_DAYS, run_batch
from ingest.prepare import Inbound
from tests.features.test_feature_job_incremental import TZ, _deliver, _reset, world  # noqa: F401

_EXPLAIN = ("-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=0 "
            "-c auto_explain.log_analyze=on -c auto_explain.log_buffers=on -c auto_explain.log_level=notice "
            "-c auto_explain.log_nested_statements=on")


def _plans(url: str, extra: str = "") -> list[str]:
    plans: list[str] = []
    with psycopg.connect(url, options=_EXPLAIN + extra) as conn:
        conn.add_notice_handler(lambda d: plans.append(d.message_primary or ""))
        today = conn.execute("SELECT (now() AT TIME ZONE %s)::date", (TZ,)).fetchone()[0]  # type: ignore[index]
        assert isinstance(today, date)
        cohort = job_io.read_cohort(conn, True, today, N_DAYS)
        run_batch(conn, cohort.ids, cohort.day0, cohort.lo, cohort.hi, today, TZ, True)
        conn.rollback()
    return [p for p in plans if "plan:" in p]


def test_full_batch_reads_write_no_temp_files(world: tuple[str, list[Inbound]]) -> None:  # noqa: F811
    url, messages = world
    _reset(url)
    _deliver(url, messages)
    plans = _plans(url)
    raw = [p for p in plans if re.search(r"on (hr_runs|rr_runs|sleep_episodes)", p)]
    assert len(raw) >= 4, "the episode, wear, heart-rate and RR reads were all explained"
    assert not [p for p in plans if "temp read" in p or "temp written" in p]
    assert np.mean(["Buffers:" in p for p in raw]) == 1.0, "BUFFERS are reported, so 'no temp' is a finding"


def test_raw_reads_can_use_the_participant_indexes(world: tuple[str, list[Inbound]]) -> None:  # noqa: F811
    url, messages = world
    _reset(url)
    _deliver(url, messages)
    plans = _plans(url, " -c enable_seqscan=off")
    for table in ("hr_runs", "rr_runs", "sleep_episodes"):
        reads = [p for p in plans if re.search(rf"on {table}\w*", p)]
        assert reads, table
        assert all(re.search(rf"(Index|Index Only|Bitmap Index) Scan (using|on) {table}\w*participant", p)
                   for p in reads), f"{table} read without its participant index"
