"""Incremental feature runs equal a full recompute, whatever order the data arrives in (issue 22).

A simulated cohort's messages arrive through the ingester's write path in a random order, cut into random
deliveries; the incremental job runs after each delivery. At the end the stored daily and duty rows must be
identical to what ``--full`` computes from the same raw data, and a nightly run must read only its window.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.job import run_features
from ingest.prepare import Inbound, prepare
from ingest.writer import Writer
from simulators.adapter_files import read_log
from simulators.params import FaultRates, SimParams
from simulators.run import simulate_to_dir
from store.enrolment import import_participants, import_roster
from store.migrate import migrate
from tests.conftest import create_database, drop_database

TZ = "Europe/London"
DAYS = 21
_RESET = ("TRUNCATE raw.hr_runs, raw.rr_runs, raw.sleep_episodes, raw.device_status, raw.survey_answers, "
          "ingest.message_ledger, ingest.dirty_days, derived.daily_features, derived.daily_state, "
          "derived.duty_features")


@pytest.fixture(scope="module")
def world(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[Inbound]]]:
    url = create_database(pg_admin_url, "fatigue_incr")
    migrate(url)
    out = tmp_path_factory.mktemp("sim")
    start = date.today() - timedelta(days=DAYS + 2)
    params = replace(SimParams(n_participants=3, n_days=DAYS, start_date=start, seed=5),
                     faults=FaultRates(malformed=0.0))
    simulate_to_dir(params, out)
    with psycopg.connect(url) as conn:
        import_participants(conn, out / "participants.csv", ZoneInfo(TZ))
        import_roster(conn, out / "roster.csv")
        conn.commit()
    messages = [Inbound(rec.topic, rec.payload) for rec in read_log(out / "messages.bin")]
    yield url, messages
    drop_database(pg_admin_url, url)


def _deliver(url: str, messages: list[Inbound]) -> None:
    with psycopg.connect(url) as conn:
        writer = Writer(conn, ZoneInfo(TZ))
        now = int(time.time() * 1000)
        for lo in range(0, len(messages), 500):
            writer.write([prepare(m, now, 400 * 86_400_000) for m in messages[lo:lo + 500]])
            conn.commit()


def _snapshot(url: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    with psycopg.connect(url) as conn:
        frames = []
        for table, key in (("derived.daily_features", "participant_id, sleep_date"),
                           ("derived.duty_features", "participant_id, start_ts")):
            cur = conn.execute(f"SELECT * FROM {table} ORDER BY {key}")
            names = [d.name for d in cur.description or []]
            frames.append(pd.DataFrame(cur.fetchall(), columns=names).drop(columns=["computed_at"]))
    return frames[0], frames[1]


def _reset(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(_RESET)


@pytest.fixture(scope="module")
def reference(world: tuple[str, list[Inbound]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    url, messages = world
    _reset(url)
    _deliver(url, messages)
    run_features(url, TZ, full=True)
    daily, duty = _snapshot(url)
    assert len(daily) == 3 * (DAYS + 3)
    assert daily.valid_sleep_day.sum() > 2 * DAYS, "the reference holds real nights, not only empty days"
    assert daily.sri_14d.notna().sum() > DAYS and daily.hrv_baseline_mean.notna().any()
    return daily, duty


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), deliveries=st.integers(2, 6), by_time=st.booleans())
def test_incremental_runs_equal_full_recompute(world: tuple[str, list[Inbound]],
                                               reference: tuple[pd.DataFrame, pd.DataFrame], seed: int,
                                               deliveries: int, by_time: bool) -> None:
    url, messages = world
    _reset(url)
    rng = np.random.default_rng(seed)
    # either shuffled completely (late data everywhere) or in time order with a few messages held back
    order = rng.permutation(len(messages))
    if by_time:
        late = rng.random(len(messages)) < 0.05
        order = np.r_[np.flatnonzero(~late), np.flatnonzero(late)]
    cuts = np.sort(rng.choice(np.arange(1, len(messages)), deliveries - 1, replace=False))
    for part in np.split(order, cuts):
        _deliver(url, [messages[i] for i in part])
        run_features(url, TZ)
    daily, duty = _snapshot(url)
    pd.testing.assert_frame_equal(daily, reference[0])
    pd.testing.assert_frame_equal(duty, reference[1])
    run_features(url, TZ, full=True)  # and --full over the incrementally built tables changes nothing
    pd.testing.assert_frame_equal(_snapshot(url)[0], reference[0])


def test_nightly_run_reads_only_its_window(world: tuple[str, list[Inbound]],
                                           reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """Re-marking one day recomputes its window from raw data and writes nothing that did not change."""
    url, messages = world
    _reset(url)
    _deliver(url, messages)
    run_features(url, TZ, full=True)
    with psycopg.connect(url) as conn:
        pid, start = conn.execute("SELECT participant_id, programme_start FROM core.participants "
                                  "ORDER BY participant_id LIMIT 1").fetchone()  # type: ignore[misc]
        conn.execute("INSERT INTO ingest.dirty_days VALUES (%s, %s)", (pid, start + timedelta(days=DAYS - 3)))
        conn.commit()
    summary = run_features(url, TZ)
    assert summary.participants == 1
    assert summary.days_written == 0, "the same raw data gives the same rows: nothing rewritten"
    pd.testing.assert_frame_equal(_snapshot(url)[0], reference[0])
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM ingest.dirty_days").fetchone() == (0,)


def test_shuffled_arrival_equals_full_recompute(world: tuple[str, list[Inbound]],
                                                reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """One fixed adversarial order for the default run (the property test above is marked slow)."""
    url, messages = world
    _reset(url)
    order = np.random.default_rng(22).permutation(len(messages))
    for part in np.array_split(order, 3):
        _deliver(url, [messages[i] for i in part])
        run_features(url, TZ)
    daily, duty = _snapshot(url)
    pd.testing.assert_frame_equal(daily, reference[0])
    pd.testing.assert_frame_equal(duty, reference[1])


def test_two_worker_processes_equal_one(world: tuple[str, list[Inbound]],
                                        reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    from features.job_parallel import run_parallel

    url, messages = world
    _reset(url)
    _deliver(url, messages)
    summary = run_parallel(url, TZ, True, workers=2)
    assert summary.participants == 3
    daily, duty = _snapshot(url)
    pd.testing.assert_frame_equal(daily, reference[0])
    pd.testing.assert_frame_equal(duty, reference[1])


def test_runs_claiming_ranges_side_by_side_cover_everyone_once(
        world: tuple[str, list[Inbound]], reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """Two workers of one labelled run split the ranges; a range left claimed by a dead worker is taken over."""
    from concurrent.futures import ThreadPoolExecutor

    from features.job_claims import id_range, run_claimed

    url, messages = world
    _reset(url)
    _deliver(url, messages)
    with psycopg.connect(url) as conn:  # a worker that claimed range 0 and died (its lock went with it)
        conn.execute("INSERT INTO derived.job_ranges (job, run_label, range_no, n_ranges, claimed_by) "
                     "VALUES ('features', 'night-1', 0, 4, 'dead:1')")
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run_claimed(url, TZ, False, 4, "night-1"), range(2)))
    ranges = sorted(r for res in results for r in res.ranges)
    assert ranges == [0, 1, 2, 3], "every range exactly once"
    assert sum(res.features.participants for res in results) == 3
    daily, duty = _snapshot(url)
    pd.testing.assert_frame_equal(daily, reference[0])
    pd.testing.assert_frame_equal(duty, reference[1])
    again = run_claimed(url, TZ, False, 4, "night-1")
    assert again.ranges == (), "a finished run label does nothing"
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM derived.job_ranges WHERE run_label = 'night-1' "
                            "AND done_at IS NOT NULL").fetchone() == (4,)
    lo, hi = id_range(1, 4)
    assert hi is not None and lo.int == 1 << 126 and hi.int == 1 << 127


def test_rows_without_pair_state_are_recomputed_and_future_marks_wait(
        world: tuple[str, list[Inbound]], reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """Upgrade path: daily rows written before migration 120 have no SRI pair state; a participant's next
    incremental run recomputes its whole programme. Marks of days after today stay for their day."""
    url, messages = world
    _reset(url)
    _deliver(url, messages)
    run_features(url, TZ, full=True)
    with psycopg.connect(url) as conn:
        pid = conn.execute("SELECT participant_id FROM core.participants ORDER BY 1 LIMIT 1").fetchone()[0]  # type: ignore[index]
        conn.execute("DELETE FROM derived.daily_state")
        conn.execute("UPDATE derived.daily_features SET sri_14d = NULL, sleep_consistency = NULL "
                     "WHERE participant_id = %s", (pid,))
        conn.execute("INSERT INTO ingest.dirty_days VALUES (%s, current_date), (%s, current_date + 3)", (pid, pid))
        conn.commit()
    summary = run_features(url, TZ)
    assert summary.participants == 1 and summary.days_written > 0
    daily = _snapshot(url)[0]
    pd.testing.assert_frame_equal(daily, reference[0])
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM derived.daily_state WHERE participant_id = %s",
                            (pid,)).fetchone() == (DAYS + 3,)
        assert conn.execute("SELECT sleep_date - current_date FROM ingest.dirty_days").fetchall() == [(3,)]
    assert run_features(url, TZ).participants == 0, "a mark for a later day triggers nothing today"


def test_heart_rate_before_any_sleep_then_the_rest(world: tuple[str, list[Inbound]],
                                                   reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """First delivery holds only heart-rate messages, so the windows have no episode at all: the run writes
    every day without inventing sleep or HRV; once the rest arrives the rows equal the full recompute."""
    url, messages = world
    _reset(url)
    first = [i for i, m in enumerate(messages) if m.topic.endswith("/hr")][:50]
    _deliver(url, [messages[i] for i in first])
    run_features(url, TZ)
    daily = _snapshot(url)[0]
    assert len(daily) == 3 * (DAYS + 3)
    assert (daily.n_episodes == 0).all() and not daily.valid_hrv_night.any()
    assert daily.wear_h.notna().any(), "the heart rate that did arrive counts as wear"
    rest = sorted(set(range(len(messages))) - set(first))
    _deliver(url, [messages[i] for i in rest])
    run_features(url, TZ)
    pd.testing.assert_frame_equal(_snapshot(url)[0], reference[0])
