"""The batch writer: one transaction per batch, idempotent, with dead letters and quarantine.

For a batch of prepared messages (:mod:`ingest.prepare`) the writer, in one transaction:

1. maps each device to its participant through ``core.device_assignments`` at the message's first sample
   time; a device with no assignment then goes to ``ingest.quarantine`` (replayed once it is enrolled);
   samples before enrolment minus one day are ``ts_past``, after the programme's day 120 plus one day are
   ``after_window``;
2. writes the message ledger with ``ON CONFLICT``: a new ``msg_id`` is stored, the same ``msg_id`` with the
   same payload hash is an absorbed duplicate (``redeliveries + 1``), a different hash is dead-lettered as
   ``conflicting_duplicate`` and the first version kept;
3. binary-``COPY``s the new messages' rows into temporary staging tables and moves them into the raw tables
   with ``INSERT ... ON CONFLICT DO NOTHING`` on the natural keys, so a replay under a new ``msg_id`` changes
   nothing either;
4. writes dead letters (raw payload, reason code, detail) and marks the touched participant-days dirty.

The caller commits and only then acknowledges the messages.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import psycopg

from ingest.contract import DeviceStatus, HeartRate, Records, RRIntervals, SleepEpisodes, Survey
from ingest.prepare import Decoded, Rejected, sample_times_ms, sleep_days

__all__ = ["Assignment", "BatchResult", "Writer"]

Conn = psycopg.Connection[tuple[object, ...]]
PROGRAMME_DAYS = 120

# staging table -> (raw table, columns, binary COPY types)
_TABLES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
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


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True)
class Assignment:
    """A device's owner over ``[valid_from, valid_to)`` and that owner's programme window."""

    participant_id: uuid.UUID
    valid_from: datetime
    valid_to: datetime | None
    programme_start: date
    force_id: str


@dataclass
class BatchResult:
    """Counts for one committed batch (for metrics and chaos-test accounting)."""

    stored: int = 0
    samples: int = 0
    duplicates: int = 0
    quarantined: int = 0
    dropped_future: int = 0
    dead: Counter[str] = field(default_factory=Counter)
    by_stream: Counter[str] = field(default_factory=Counter)

    def add(self, other: BatchResult) -> None:
        """Accumulate another batch's counts into this one."""
        self.stored += other.stored
        self.samples += other.samples
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        self.dropped_future += other.dropped_future
        self.dead.update(other.dead)
        self.by_stream.update(other.by_stream)


def _rows(rec: Records, pid: uuid.UUID | None) -> list[tuple[object, ...]]:
    """Rows of one message for its raw table (one row per run / episode / answer / status)."""
    mid, dev = rec.msg_id, rec.device_id
    if isinstance(rec, HeartRate):
        order = np.argsort(rec.t_ms, kind="stable")
        t = rec.t_ms[order]
        keep = np.concatenate([[True], np.diff(t) != 0])  # one value per instant, first wins
        t = t[keep]
        start = int(t[0])
        return [(dev, _ts(start), _ts(int(t[-1]) + 1), pid, (t - start).tolist(), rec.bpm[order][keep].tolist(),
                 rec.suspect[order][keep].tolist(), mid)]
    if isinstance(rec, RRIntervals):
        end = rec.start_ms + int(rec.rr_ms.sum(dtype=np.int64))
        return [(dev, _ts(rec.start_ms), _ts(end), pid, rec.rr_ms.tolist(), rec.artifact.tolist(), mid)]
    if isinstance(rec, SleepEpisodes):
        return [(dev, _ts(int(s)), _ts(int(e)), pid, bool(b), int(ep), None if st is None else st.tolist(),
                 None if np.isnan(tst) else float(tst), mid)
                for s, e, b, ep, st, tst in zip(rec.start_ms, rec.end_ms, rec.in_bed, rec.epoch_s, rec.stages,
                                                rec.tst_min, strict=True)]
    if isinstance(rec, Survey):
        return [(dev, _ts(int(t)), pid, int(k), int(sp) or None, ctx, mid)
                for t, k, sp, ctx in zip(rec.t_ms, rec.kss, rec.samn_perelli, rec.context, strict=True)]
    assert isinstance(rec, DeviceStatus)
    return [(dev, _ts(rec.t_ms), pid, rec.battery_pct, rec.worn, rec.online, rec.firmware, mid)]


class Writer:
    """Writes prepared batches on one connection (autocommit off; the caller owns the transaction).

    Parameters
    ----------
    conn : psycopg.Connection
        A connection with ``autocommit=False``.
    tz : ZoneInfo
        Local zone for sleep days.
    crash : callable, optional
        Test hook called with a crash-point name (``"mid_copy"``); see :mod:`ingest.crashpoints`.
    """

    def __init__(self, conn: Conn, tz: ZoneInfo, crash: Callable[[str], None] | None = None,
                 programme_days: int = PROGRAMME_DAYS) -> None:
        self.conn = conn
        self.tz = tz
        self.programme_days = programme_days  # the programme file's ``days`` (issue 14: one source of truth)
        self.crash = crash or (lambda point: None)
        for stream, (table, _, _) in _TABLES.items():
            conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS stage_{stream} (LIKE {table} INCLUDING DEFAULTS) "
                         "ON COMMIT DELETE ROWS")
        conn.commit()

    def assignments(self, devices: Sequence[str]) -> dict[str, list[Assignment]]:
        """Every assignment of the given devices, with the owner's programme start and force."""
        rows = self.conn.execute(
            "SELECT a.device_id, a.participant_id, a.valid_from, a.valid_to, p.programme_start, p.force_id "
            "FROM core.device_assignments a JOIN core.participants p USING (participant_id) "
            "WHERE a.device_id = ANY(%s)", (list(devices),)).fetchall()
        found: dict[str, list[Assignment]] = {}
        for dev, pid, vf, vt, start, force in rows:
            found.setdefault(str(dev), []).append(Assignment(pid, vf, vt, start, str(force)))  # type: ignore[arg-type]
        return found

    def _place(self, d: Decoded, owners: dict[str, list[Assignment]]) -> Assignment | str | None:
        """The owner at the first sample, a window reason, or None for quarantine.

        A device never assigned, or not assigned at that time after having been (swapped, withdrawn), goes to
        quarantine; samples from before the device's first assignment are ``ts_past``.
        """
        times = sample_times_ms(d.records)
        first, last = _ts(int(times.min())), _ts(int(times.max()))
        for a in owners.get(d.topic.device_id, []):
            if a.valid_from <= first and (a.valid_to is None or first < a.valid_to):
                start = datetime.combine(a.programme_start, datetime.min.time(), self.tz)
                if first < start - timedelta(days=1):
                    return "ts_past"
                if last >= start + timedelta(days=self.programme_days + 1):
                    return "after_window"
                return a
        if owners.get(d.topic.device_id) and first < min(a.valid_from for a in owners[d.topic.device_id]):
            return "ts_past"  # before the device was ever enrolled (enrolment minus one day)
        return None

    def write(self, batch: Sequence[Decoded | Rejected]) -> BatchResult:
        """Write one batch inside the current transaction; the caller commits. Raises psycopg errors."""
        result = BatchResult()
        dead = [b for b in batch if isinstance(b, Rejected)]
        good = [b for b in batch if isinstance(b, Decoded)]
        owners = self.assignments(sorted({d.topic.device_id for d in good}))
        placed: list[tuple[Decoded, Assignment]] = []
        quarantine: list[Decoded] = []
        for d in good:
            where = self._place(d, owners)
            if isinstance(where, str):
                dead.append(Rejected(d.inbound, where, "sample times outside the participant's programme window",
                                     d.records.msg_id))
            elif where is None:
                quarantine.append(d)
            else:
                placed.append((d, where))
        fresh, conflicts, result.duplicates = self._ledger(placed)
        dead.extend(Rejected(d.inbound, "conflicting_duplicate", "msg_id seen before with a different payload",
                             d.records.msg_id) for d in conflicts)
        self._insert_rows(fresh, result)
        self._mark_dirty(fresh)
        self._quarantine(quarantine)
        self._dead_letters(dead)
        result.stored = len(fresh)
        result.quarantined = len(quarantine)
        result.dropped_future = sum(d.dropped_future for d, _ in fresh)
        result.dead.update(r.reason for r in dead)
        return result

    def _ledger(self, placed: list[tuple[Decoded, Assignment]]
                ) -> tuple[list[tuple[Decoded, Assignment]], list[Decoded], int]:
        """Insert ledger rows; split into new messages, conflicting duplicates and the count of duplicates."""
        unique: dict[uuid.UUID, tuple[Decoded, Assignment]] = {}
        repeats: Counter[uuid.UUID] = Counter()
        conflicts: list[Decoded] = []
        for d, a in placed:
            seen = unique.get(d.records.msg_id)
            if seen is None:
                unique[d.records.msg_id] = (d, a)
            elif seen[0].sha256 == d.sha256:
                repeats[d.records.msg_id] += 1
            else:
                conflicts.append(d)
        if not unique:
            return [], conflicts, 0
        items = list(unique.values())
        rows = self.conn.execute(
            "INSERT INTO ingest.message_ledger (msg_id, payload_sha256, gateway_id, device_id, stream, n_samples) "
            "SELECT * FROM unnest(%s::uuid[], %s::bytea[], %s::text[], %s::text[], %s::text[], %s::int[]) "
            "ON CONFLICT (msg_id) DO UPDATE SET redeliveries = ingest.message_ledger.redeliveries + 1 "
            "WHERE ingest.message_ledger.payload_sha256 = EXCLUDED.payload_sha256 "
            "RETURNING msg_id, (xmax = 0)",
            ([d.records.msg_id for d, _ in items], [d.sha256 for d, _ in items],
             [d.topic.gateway_id for d, _ in items], [d.topic.device_id for d, _ in items],
             [d.topic.stream for d, _ in items], [d.records.n_samples for d, _ in items])).fetchall()
        status = {mid: bool(new) for mid, new in rows}
        fresh = [(d, a) for d, a in items if status.get(d.records.msg_id) is True]
        conflicts += [d for d, _ in items if d.records.msg_id not in status]
        repeats = Counter({k: n for k, n in repeats.items() if k in status})  # same batch, same payload
        if repeats:
            self.conn.execute(
                "UPDATE ingest.message_ledger l SET redeliveries = l.redeliveries + r.n "
                "FROM unnest(%s::uuid[], %s::int[]) AS r(msg_id, n) WHERE l.msg_id = r.msg_id",
                (list(repeats), list(repeats.values())))
        duplicates = sum(repeats.values()) + sum(1 for new in status.values() if not new)
        return fresh, conflicts, duplicates

    def _insert_rows(self, fresh: list[tuple[Decoded, Assignment]], result: BatchResult) -> None:
        by_stream: dict[str, list[tuple[object, ...]]] = {}
        for d, a in fresh:
            stream = d.records.stream
            by_stream.setdefault(stream, []).extend(_rows(d.records, a.participant_id))
            result.by_stream[stream] += d.records.n_samples
        for stream, rows in by_stream.items():
            table, cols, types = _TABLES[stream]
            collist = ", ".join(cols)
            with self.conn.cursor() as cur:
                with cur.copy(f"COPY stage_{stream} ({collist}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(list(types))
                    for i, row in enumerate(rows):
                        copy.write_row(row)
                        if i == len(rows) // 2:
                            self.crash("mid_copy")
                cur.execute(f"INSERT INTO {table} ({collist}) SELECT {collist} FROM stage_{stream} "
                            "ON CONFLICT DO NOTHING")
                cur.execute(f"TRUNCATE stage_{stream}")
        result.samples = sum(result.by_stream.values())

    def _mark_dirty(self, fresh: list[tuple[Decoded, Assignment]]) -> None:
        pairs = {(a.participant_id, day) for d, a in fresh for day in sleep_days(d.records, self.tz)}
        if pairs:
            pids, days = zip(*sorted(pairs), strict=True)
            self.conn.execute("INSERT INTO ingest.dirty_days (participant_id, sleep_date) "
                              "SELECT * FROM unnest(%s::uuid[], %s::date[]) ON CONFLICT DO NOTHING",
                              (list(pids), list(days)))

    def _quarantine(self, items: list[Decoded]) -> None:
        if items:
            self.conn.cursor().executemany(
                "INSERT INTO ingest.quarantine (topic, gateway_id, device_id, msg_id, payload) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (msg_id) DO NOTHING",
                [(d.inbound.topic, d.topic.gateway_id, d.topic.device_id, d.records.msg_id, d.inbound.payload)
                 for d in items])

    def _dead_letters(self, items: list[Rejected]) -> None:
        if items:
            self.conn.cursor().executemany(
                "INSERT INTO ingest.dead_letters (topic, payload, reason_code, detail, msg_id, payload_sha256, "
                "redelivered) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(r.inbound.topic.replace("\x00", "?"), r.inbound.payload, r.reason, r.detail,
                  r.msg_id if isinstance(r.msg_id, uuid.UUID) else None,
                  hashlib.sha256(r.inbound.payload).digest(), r.inbound.dup) for r in items])
