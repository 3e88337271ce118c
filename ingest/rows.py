"""Row shapes of the raw tables for the batch writer (:mod:`ingest.writer`): staging COPY types, the rows of
sleep, status and survey messages, counts of samples per written row, and the sleep-revision statement.

Heart-rate and RR rows are built at sample level by :mod:`ingest.runs`.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime

import numpy as np

from ingest.contract import DeviceStatus, HeartRate, Records, RRIntervals, SleepEpisodes, Survey

__all__ = ["REVISE_SLEEP", "SAMPLES_IN_ROW", "TABLES", "message_rows", "rounds", "run_span", "ts"]

# staging table -> (raw table, columns, binary COPY types)
TABLES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "hr": ("raw.hr_runs", ("device_id", "start_ts", "end_ts", "participant_id", "offsets_ms", "bpm", "suspect",
                           "msg_id"),
           ("text", "timestamptz", "timestamptz", "uuid", "int4[]", "int2[]", "bool[]", "uuid")),
    "rr": ("raw.rr_runs", ("device_id", "start_ts", "end_ts", "participant_id", "rr_ms", "artifact", "msg_id"),
           ("text", "timestamptz", "timestamptz", "uuid", "int2[]", "bool[]", "uuid")),
    "sleep": ("raw.sleep_episodes", ("device_id", "start_ts", "end_ts", "participant_id", "in_bed", "epoch_s",
                                     "stages", "device_tst_min", "msg_id"),
              ("text", "timestamptz", "timestamptz", "uuid", "bool", "int2", "int2[]", "float4", "uuid")),
    "status": ("raw.device_status", ("device_id", "ts", "participant_id", "battery_pct", "worn", "online",
                                     "firmware", "msg_id"),
               ("text", "timestamptz", "uuid", "int2", "bool", "bool", "text", "uuid")),
    "survey": ("raw.survey_answers", ("device_id", "ts", "participant_id", "kss", "samn_perelli", "context",
                                      "msg_id"),
               ("text", "timestamptz", "uuid", "int2", "int2", "text", "uuid")),
}

# samples a written row holds, as counted by INSERT ... RETURNING
SAMPLES_IN_ROW = {"hr": "cardinality(bpm)", "rr": "cardinality(rr_ms)", "sleep": "1", "status": "1",
                   "survey": "1"}
_SLEEP_COLS = "device_id, start_ts, end_ts, participant_id, in_bed, epoch_s, stages, device_tst_min"
# Changed episodes (same device and start, other content): keep the old version, then update in place.
REVISE_SLEEP = (
    "WITH changed AS (SELECT r.*, s.msg_id AS new_msg FROM stage_sleep s "
    "JOIN raw.sleep_episodes r USING (device_id, start_ts) "
    "WHERE (r.end_ts, r.in_bed, r.epoch_s, r.stages, r.device_tst_min) IS DISTINCT FROM "
    "(s.end_ts, s.in_bed, s.epoch_s, s.stages, s.device_tst_min)), "
    f"kept AS (INSERT INTO raw.sleep_episode_revisions ({_SLEEP_COLS}, msg_id, ingested_at, superseded_by) "
    f"SELECT {_SLEEP_COLS}, msg_id, ingested_at, new_msg FROM changed) "
    "UPDATE raw.sleep_episodes r SET end_ts = s.end_ts, participant_id = s.participant_id, in_bed = s.in_bed, "
    "epoch_s = s.epoch_s, stages = s.stages, device_tst_min = s.device_tst_min, msg_id = s.msg_id, "
    "ingested_at = now() FROM stage_sleep s JOIN changed c USING (device_id, start_ts) "
    "WHERE r.device_id = s.device_id AND r.start_ts = s.start_ts RETURNING s.msg_id, c.participant_id, c.end_ts")


def ts(ms: int) -> datetime:
    """Epoch milliseconds UTC as an aware datetime."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def message_rows(rec: Records, pid: uuid.UUID | None) -> list[tuple[object, ...]]:
    """Rows of one sleep, status or survey message for its raw table (runs: see :meth:`Writer._run_rows`)."""
    mid, dev = rec.msg_id, rec.device_id
    if isinstance(rec, SleepEpisodes):
        return [(dev, ts(int(s)), ts(int(e)), pid, bool(b), int(ep), None if st is None else st.tolist(),
                 None if np.isnan(tst) else float(tst), mid)
                for s, e, b, ep, st, tst in zip(rec.start_ms, rec.end_ms, rec.in_bed, rec.epoch_s, rec.stages,
                                                rec.tst_min, strict=True)]
    if isinstance(rec, Survey):
        return [(dev, ts(int(t)), pid, int(k), int(sp) or None, ctx, mid)
                for t, k, sp, ctx in zip(rec.t_ms, rec.kss, rec.samn_perelli, rec.context, strict=True)]
    assert isinstance(rec, DeviceStatus)
    return [(dev, ts(rec.t_ms), pid, rec.battery_pct, rec.worn, rec.online, rec.firmware, mid)]


def run_span(rec: HeartRate | RRIntervals) -> tuple[int, int]:
    """``[first, end)`` of a run message in epoch ms: what stored runs it may overlap."""
    if isinstance(rec, HeartRate):
        return int(rec.t_ms.min()), int(rec.t_ms.max()) + 1
    return rec.start_ms, rec.start_ms + int(rec.rr_ms.sum(dtype=np.int64))


def rounds(rows: list[tuple[object, ...]]) -> list[list[tuple[object, ...]]]:
    """Split sleep rows so that no round repeats a key ``(device_id, start_ts)``; later rows in later rounds."""
    seen: Counter[tuple[object, object]] = Counter()
    rounds: list[list[tuple[object, ...]]] = []
    for row in rows:
        k = seen[(row[0], row[1])]
        seen[(row[0], row[1])] += 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(row)
    return rounds
