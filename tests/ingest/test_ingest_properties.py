"""V4 (c): ingesting any permutation of a message set with duplicates, in any batching, gives the same tables."""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.contract import SleepEpisodes, Survey, encode, topic_for
from ingest.prepare import Inbound, prepare
from ingest.writer import Writer
from tests.ingest.support import Conn, enrol, hr_message, recent_ms, reset

TZ = ZoneInfo("Europe/London")
TABLES = {
    "raw.hr_runs": "device_id, start_ts, end_ts, participant_id, offsets_ms, bpm, suspect, msg_id",
    "raw.sleep_episodes": "device_id, start_ts, end_ts, participant_id, in_bed, stages, msg_id",
    "raw.survey_answers": "device_id, ts, participant_id, kss, context, msg_id",
    "ingest.message_ledger": "msg_id, payload_sha256, n_samples",
    "ingest.dead_letters": "topic, reason_code, msg_id",
    "ingest.dirty_days": "participant_id, sleep_date",
}


def _messages() -> list[tuple[str, bytes]]:
    base = recent_ms(30)
    out = [(topic_for("gw-1", "dev-a", "hr"), encode(hr_message("dev-a", base + i * 90_000, 60, seed=i)))
           for i in range(8)]
    start = np.array([base - 2 * 86_400_000, base - 86_400_000], dtype=np.int64)
    end = start + 8 * 3600 * 1000
    stages = tuple(np.tile(np.array([0, 1, 2, 3, 1], np.int8), 192)[:960] for _ in range(2))
    sleep = SleepEpisodes(msg_id=uuid.UUID(int=7), device_id="dev-a", sent_at_ms=base, start_ms=start, end_ms=end,
                          in_bed=np.array([True, False]), epoch_s=np.array([30, 30], np.int16), stages=stages,
                          tst_min=np.array([np.nan, 400.0]))
    survey = Survey(msg_id=uuid.UUID(int=8), device_id="dev-a", sent_at_ms=base, t_ms=start[:1] + 1000,
                    kss=np.array([7], np.int8), samn_perelli=np.array([0], np.int8), context=("shift_start",))
    out += [(topic_for("gw-1", "dev-a", "sleep"), encode(sleep)),
            (topic_for("gw-1", "dev-a", "survey"), encode(survey))]
    conflicting = replace(hr_message("dev-a", base, 60, seed=0), bpm=np.full(60, 99, np.int16))
    out += [(topic_for("gw-1", "dev-a", "hr"), encode(conflicting)), (topic_for("gw-1", "dev-a", "hr"), b"{")]
    return out


MESSAGES = _messages()


def _ingest(conn: Conn, order: list[int], cuts: list[int]) -> dict[str, list[tuple[object, ...]]]:
    reset_rows(conn)
    now = int(time.time() * 1000)
    writer = Writer(conn, TZ)
    items = [prepare(Inbound(*MESSAGES[i]), now) for i in order]
    bounds = sorted({0, len(items), *[c % (len(items) + 1) for c in cuts]})
    for lo, hi in itertools.pairwise(bounds):
        writer.write(items[lo:hi])
        conn.commit()
    return {t: conn.execute(f"SELECT {cols} FROM {t} ORDER BY {cols}").fetchall() for t, cols in TABLES.items()}


def reset_rows(conn: Conn) -> None:
    conn.execute("TRUNCATE raw.hr_runs, raw.sleep_episodes, raw.survey_answers, ingest.message_ledger, "
                 "ingest.dead_letters, ingest.dirty_days")
    conn.commit()


def test_permutations_with_duplicates_give_the_same_tables(db: Conn, db_url: str, tmp_path: Path) -> None:
    reset(db)
    enrol(db, tmp_path, ["dev-a"], start="2026-10-01")
    base_order = list(range(len(MESSAGES)))
    with psycopg.connect(db_url) as conn:
        expected = _ingest(conn, base_order, [])
        # the conflicting copy of message 0 comes after the original in the reference run
        assert len(expected["ingest.dead_letters"]) == 2

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(order=st.permutations(base_order[:10]),
               dups=st.lists(st.integers(0, 9), max_size=6),
               cuts=st.lists(st.integers(0, 40), max_size=4))
        def run(order: list[int], dups: list[int], cuts: list[int]) -> None:
            # originals before their conflicting copy and the malformed one at the end keep the
            # dead letters comparable; everything else is shuffled, duplicated and batched at random
            got = _ingest(conn, [*order, *dups, 10, 11], cuts)
            assert got == expected

        run()
