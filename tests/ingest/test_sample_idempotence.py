"""Sample-level idempotence through the broker (issue 17, points 3 and 4).

Each test compares what is stored with a clean run of the same messages (every distinct sample once) and
checks that the ledger and the counters report exactly the samples written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from ingest.contract import SleepEpisodes, encode, topic_for
from service.local_servers import PrivateMosquitto
from tests.ingest.support import (
    Conn,
    Publisher,
    count,
    enrol,
    expected_hr,
    hr_message,
    ledger_written,
    publish_records,
    recent_ms,
    reset,
    running_ingester,
    stored_hr,
    wait_until,
)

DAY_MS = 86_400_000


@pytest.fixture
def clean(db: Conn, tmp_path: Path) -> Conn:
    reset(db)
    start = datetime.fromtimestamp(recent_ms(40 * 24) / 1000, UTC).date().isoformat()
    enrol(db, tmp_path, ["dev-a", "dev-b"], start=start)
    return db


@pytest.fixture
def pub(deploy_broker: PrivateMosquitto) -> Iterator[Publisher]:
    p = Publisher(deploy_broker, client_id=f"gw-{uuid.uuid4().hex[:6]}")
    yield p
    p.close()


def _group() -> str:
    return f"g{uuid.uuid4().hex[:6]}"


def test_rebatched_run_stores_every_new_sample_once(clean: Conn, db_url: str, deploy_broker: PrivateMosquitto,
                                                    pub: Publisher) -> None:
    t0 = recent_ms(6)
    full = hr_message("dev-a", t0, 120, seed=1)
    first = replace(full, msg_id=uuid.uuid4(), t_ms=full.t_ms[:60], bpm=full.bpm[:60], suspect=full.suspect[:60])
    shifted = replace(full, msg_id=uuid.uuid4(), t_ms=full.t_ms[30:] - 90_000, bpm=full.bpm[30:],
                      suspect=full.suspect[30:])  # overlaps the start of the run from the left
    group = _group()
    with running_ingester(db_url, deploy_broker, client_id=f"ing-{group}", group=group, batch_size=1) as ing:
        publish_records(pub, "gw-1", [first])
        wait_until(lambda: ing.totals.stored == 1, what="first batch")
        publish_records(pub, "gw-1", [full])  # 60 from T, then 120 from T under a new msg_id
        wait_until(lambda: ing.totals.stored == 2, what="re-batched run")
        publish_records(pub, "gw-1", [shifted])
        wait_until(lambda: ing.totals.stored == 3, what="shifted run")
    want = expected_hr([first, full, shifted])
    assert len(want) == 120 + 60
    assert stored_hr(clean) == want  # 0 lost, 0 doubled
    assert ledger_written(clean) == len(want) == ing.totals.samples
    assert ing.totals.samples_absorbed == 60 + 30
    written = dict(clean.execute("SELECT msg_id, samples_written FROM ingest.message_ledger").fetchall())
    assert written == {first.msg_id: 60, full.msg_id: 60, shifted.msg_id: 60}
    assert ing.metrics.samples.labels("hr")._value.get() == len(want)


def test_overlapping_chunks_in_one_batch(clean: Conn, db_url: str, deploy_broker: PrivateMosquitto,
                                         pub: Publisher) -> None:
    t0 = recent_ms(7)
    whole = hr_message("dev-b", t0, 600, seed=2)
    rng = np.random.default_rng(3)
    chunks = []
    for _ in range(40):  # random windows of the same samples, each under its own msg_id
        a = int(rng.integers(0, 590))
        z = int(rng.integers(a + 1, 601))
        chunks.append(replace(whole, msg_id=uuid.uuid4(), t_ms=whole.t_ms[a:z], bpm=whole.bpm[a:z],
                              suspect=whole.suspect[a:z]))
    group = _group()
    with running_ingester(db_url, deploy_broker, client_id=f"ing-{group}", group=group, batch_size=200,
                          batch_age_s=1.0) as ing:
        publish_records(pub, "gw-1", chunks)
        wait_until(lambda: ing.totals.stored == len(chunks), what="all chunks")
    want = expected_hr(chunks)
    assert stored_hr(clean) == want
    assert ledger_written(clean) == len(want) == ing.totals.samples
    assert ing.totals.samples_absorbed == sum(c.n_samples for c in chunks) - len(want)


def _episode(device: str, start: int, end: int, stages: bool = True) -> SleepEpisodes:
    n = (end - start) // 30_000
    st = (np.arange(n) % 4).astype(np.int8) if stages else None
    return SleepEpisodes(msg_id=uuid.uuid4(), device_id=device, sent_at_ms=end + 60_000,
                         start_ms=np.array([start], np.int64), end_ms=np.array([end], np.int64),
                         in_bed=np.array([True]), epoch_s=np.array([30], np.int16), stages=(st,),
                         tst_min=np.array([np.nan]))


def test_revised_sleep_episode_is_kept_with_its_earlier_version(clean: Conn, db_url: str,
                                                                deploy_broker: PrivateMosquitto,
                                                                pub: Publisher) -> None:
    start = recent_ms(30)
    v1 = _episode("dev-a", start, start + 6 * 3600_000)
    v2 = _episode("dev-a", start, start + 8 * 3600_000)  # same start, later end, new msg_id
    same_as_v2 = replace(v2, msg_id=uuid.uuid4())
    group = _group()
    with running_ingester(db_url, deploy_broker, client_id=f"ing-{group}", group=group, batch_size=1) as ing:
        publish_records(pub, "gw-1", [v1])
        wait_until(lambda: ing.totals.stored == 1, what="first version")
        clean.execute("DELETE FROM ingest.dirty_days")
        publish_records(pub, "gw-1", [v2])
        wait_until(lambda: ing.totals.stored == 2, what="revision")
        publish_records(pub, "gw-1", [same_as_v2])
        wait_until(lambda: ing.totals.stored == 3, what="identical replay")
    row = clean.execute("SELECT end_ts, msg_id, cardinality(stages) FROM raw.sleep_episodes").fetchall()
    assert row == [(datetime.fromtimestamp((start + 8 * 3600_000) / 1000, UTC), v2.msg_id, 960)]
    audit = clean.execute("SELECT end_ts, msg_id, superseded_by FROM raw.sleep_episode_revisions").fetchall()
    assert audit == [(datetime.fromtimestamp((start + 6 * 3600_000) / 1000, UTC), v1.msg_id, v2.msg_id)]
    assert ing.totals.revised == 1
    assert count(clean, "SELECT count(*) FROM ingest.dirty_days") >= 1  # the revision marked its days again
    written = dict(clean.execute("SELECT msg_id, samples_written FROM ingest.message_ledger").fetchall())
    assert written == {v1.msg_id: 1, v2.msg_id: 1, same_as_v2.msg_id: 0}
    assert count(clean, "SELECT count(*) FROM ingest.dead_letters") == 0


def test_heart_rate_run_of_24_9_days_is_stored_exactly(clean: Conn, db_url: str,
                                                       deploy_broker: PrivateMosquitto, pub: Publisher) -> None:
    t0 = recent_ms(26 * 24)
    span = int(24.9 * DAY_MS)  # 2,151,360,000 ms: beyond the int4 offset (24.86 days)
    base = hr_message("dev-b", t0, 500, seed=5)
    t = t0 + np.linspace(0, span, 500).astype(np.int64)
    long_run = replace(base, t_ms=t, sent_at_ms=int(t[-1]) + 1000)
    group = _group()
    with running_ingester(db_url, deploy_broker, client_id=f"ing-{group}", group=group) as ing:
        publish_records(pub, "gw-1", [long_run])
        wait_until(lambda: ing.totals.stored == 1, what="long run")
    stored = stored_hr(clean)
    assert stored == expected_hr([long_run])  # no sample lands before the first: nothing wrapped
    assert stored[0][1] == t0 and stored[-1][1] == t0 + span
    assert count(clean, "SELECT count(*) FROM raw.hr_runs") == 2
    assert ledger_written(clean) == 500 == ing.totals.samples
    assert count(clean, "SELECT count(*) FROM ingest.dead_letters") == 0


def test_replay_under_a_new_msg_id_counts_only_samples_written(clean: Conn, db_url: str,
                                                           deploy_broker: PrivateMosquitto, pub: Publisher) -> None:
    t0 = recent_ms(3)
    msg = hr_message("dev-a", t0, 10, seed=9)
    group = _group()
    with running_ingester(db_url, deploy_broker, client_id=f"ing-{group}", group=group, batch_size=1) as ing:
        publish_records(pub, "gw-1", [msg])
        wait_until(lambda: ing.totals.stored == 1, what="first")
        pub.publish(topic_for("gw-1", "dev-a", "hr"), encode(replace(msg, msg_id=uuid.uuid4())))
        wait_until(lambda: ing.totals.stored == 2, what="replay under a new msg_id")
    assert ing.totals.samples == 10 and ing.totals.samples_absorbed == 10
    assert ledger_written(clean) == 10


def test_new_data_refreshes_an_existing_dirty_mark(clean: Conn, db_url: str, deploy_broker: PrivateMosquitto,
                                                   pub: Publisher) -> None:
    """A mark older than a running feature job's snapshot must move forward when new data arrives for its day,
    or the job (which deletes marks up to its snapshot) would clear the mark of data it never read."""
    start = recent_ms(30)
    group = _group()
    with running_ingester(db_url, deploy_broker, client_id=f"ing-{group}", group=group, batch_size=1) as ing:
        publish_records(pub, "gw-1", [_episode("dev-a", start, start + 6 * 3600_000)])
        wait_until(lambda: ing.totals.stored == 1, what="first episode")
        clean.execute("UPDATE ingest.dirty_days SET marked_at = now() - interval '1 hour'")
        publish_records(pub, "gw-1", [_episode("dev-a", start, start + 7 * 3600_000)])  # a revision, same days
        wait_until(lambda: ing.totals.stored == 2, what="second episode")
    stale = count(clean, "SELECT count(*) FROM ingest.dirty_days WHERE marked_at < now() - interval '30 minutes'")
    assert count(clean, "SELECT count(*) FROM ingest.dirty_days") >= 1
    assert stale == 0, "new data left a mark with its old time: a running job would clear it unseen"
