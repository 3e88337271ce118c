"""The batch writer: one transaction per batch, idempotent, with dead letters and quarantine.

For a batch of prepared messages (:mod:`ingest.prepare`) the writer, in one transaction:

1. maps each device to its participant through ``core.device_assignments`` at the message's first sample
   time; a device with no assignment then goes to ``ingest.quarantine`` (replayed once it is enrolled);
   samples before enrolment minus one day are ``ts_past``, after the programme's day 120 plus one day are
   ``after_window``;
2. writes the message ledger with ``ON CONFLICT``: a new ``msg_id`` is stored, the same ``msg_id`` with the
   same payload hash is an absorbed duplicate (``redeliveries + 1``), a different hash is dead-lettered as
   ``conflicting_duplicate`` and the first version kept;
3. locks the batch's devices (transaction advisory locks), looks up the stored heart-rate and RR runs that
   overlap the new ones and keeps only samples not yet stored (:mod:`ingest.runs`), so a re-batched or
   replayed run under a new ``msg_id`` adds exactly its new samples;
4. binary-``COPY``s the rows into temporary staging tables; a changed sleep episode (same device and start)
   replaces the stored one, whose old version goes to ``raw.sleep_episode_revisions``; the rest moves into
   the raw tables with ``INSERT ... ON CONFLICT DO NOTHING RETURNING``, and the ledger's ``samples_written``
   and the counters take what the inserts returned;
5. writes dead letters (raw payload, reason code, detail) and marks the touched participant-days dirty
   (including the day a revised episode counted on before).

The caller commits and only then acknowledges the messages.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import psycopg

from ingest.contract import HeartRate, RRIntervals
from ingest.prepare import Decoded, Rejected, sample_times_ms, sleep_days
from ingest.rows import REVISE_SLEEP, SAMPLES_IN_ROW, TABLES, message_rows, rounds, run_span, ts
from ingest.runs import hr_runs, rr_beat_ends, rr_runs

__all__ = ["Assignment", "BatchResult", "Writer"]

Conn = psycopg.Connection[tuple[object, ...]]
PROGRAMME_DAYS = 120

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
    """Counts for one committed batch (for metrics and chaos-test accounting).

    ``stored`` counts messages new to the ledger; ``samples`` and ``by_stream`` count samples (runs), episodes
    (sleep, inserted or revised) and rows (status, survey) that the inserts actually wrote; ``samples_absorbed``
    the samples of new messages that were already stored (a re-batched or replayed run); ``revised`` the
    sleep episodes replaced by a changed version.
    """

    stored: int = 0
    samples: int = 0
    duplicates: int = 0
    quarantined: int = 0
    dropped_future: int = 0
    revised: int = 0
    samples_absorbed: int = 0
    dead: Counter[str] = field(default_factory=Counter)
    by_stream: Counter[str] = field(default_factory=Counter)

    def add(self, other: BatchResult) -> None:
        """Accumulate another batch's counts into this one."""
        self.stored += other.stored
        self.samples += other.samples
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        self.dropped_future += other.dropped_future
        self.revised += other.revised
        self.samples_absorbed += other.samples_absorbed
        self.dead.update(other.dead)
        self.by_stream.update(other.by_stream)


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
        for stream, (table, _, _) in TABLES.items():
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
        first, last = ts(int(times.min())), ts(int(times.max()))
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
        """Write the new messages' rows; count per message and stream only the samples actually written."""
        self._lock_devices(sorted({d.topic.device_id for d, _ in fresh}))
        by_stream: dict[str, list[tuple[object, ...]]] = {}
        runs = [(d, a) for d, a in fresh if isinstance(d.records, HeartRate | RRIntervals)]
        for stream in ("hr", "rr"):
            items = [(d, a) for d, a in runs if d.records.stream == stream]
            if items:
                by_stream[stream] = self._run_rows(stream, items)
        for d, a in fresh:
            if not isinstance(d.records, HeartRate | RRIntervals):
                by_stream.setdefault(d.records.stream, []).extend(message_rows(d.records, a.participant_id))
        written: Counter[uuid.UUID] = Counter({d.records.msg_id: 0 for d, _ in fresh})
        for stream, rows in by_stream.items():
            for part in rounds(rows) if stream == "sleep" else [rows]:
                for mid, n in self._copy_insert(stream, part, result):
                    written[mid] += n
                    result.by_stream[stream] += n
        result.samples = sum(result.by_stream.values())
        result.samples_absorbed = sum(d.records.n_samples for d, _ in fresh) - sum(written.values())
        if written:
            self.conn.execute(
                "UPDATE ingest.message_ledger l SET samples_written = w.n "
                "FROM unnest(%s::uuid[], %s::int[]) AS w(msg_id, n) WHERE l.msg_id = w.msg_id",
                (list(written), list(written.values())))

    def _lock_devices(self, devices: list[str]) -> None:
        """Serialise writers of the same device (two ingesters may hold overlapping runs of one device)."""
        if devices:
            self.conn.execute("SELECT count(pg_advisory_xact_lock(hashtextextended('ingest:' || d, 0))) "
                              "FROM unnest(%s::text[]) AS d", (devices,))

    def _copy_insert(self, stream: str, rows: list[tuple[object, ...]], result: BatchResult
                     ) -> list[tuple[uuid.UUID, int]]:
        """Stage ``rows`` by binary COPY and move them in; ``(msg_id, samples written)`` per row written."""
        table, cols, types = TABLES[stream]
        collist = ", ".join(cols)
        with self.conn.cursor() as cur:
            with cur.copy(f"COPY stage_{stream} ({collist}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(list(types))
                for i, row in enumerate(rows):
                    copy.write_row(row)
                    if i == len(rows) // 2:
                        self.crash("mid_copy")
            out: list[tuple[uuid.UUID, int]] = []
            if stream == "sleep":
                out = self._revise_sleep(cur, result)
            cur.execute(f"INSERT INTO {table} ({collist}) SELECT {collist} FROM stage_{stream} "
                        f"ON CONFLICT DO NOTHING RETURNING msg_id, {SAMPLES_IN_ROW[stream]}")
            out += [(uuid.UUID(str(mid)), int(str(n))) for mid, n in cur.fetchall()]
            cur.execute(f"TRUNCATE stage_{stream}")
        return out

    def _revise_sleep(self, cur: psycopg.Cursor[tuple[object, ...]], result: BatchResult
                      ) -> list[tuple[uuid.UUID, int]]:
        """Replace stored episodes that a staged episode with the same key changes; keep the old versions.

        The replaced version goes to ``raw.sleep_episode_revisions`` with the superseding ``msg_id``, and the
        sleep day it counted on is marked dirty (the new version's days are marked with the message's).
        """
        cur.execute(REVISE_SLEEP)
        revised = cur.fetchall()
        old = [(uuid.UUID(str(mid)), uuid.UUID(str(pid)), end) for mid, pid, end in revised]
        self._dirty({(pid, end.astimezone(self.tz).date()) for _, pid, end in old if isinstance(end, datetime)})
        result.revised += len(old)
        return [(mid, 1) for mid, _, _ in old]

    def _run_rows(self, stream: str, items: list[tuple[Decoded, Assignment]]) -> list[tuple[object, ...]]:
        """Rows holding only the samples of ``items`` not already stored (or earlier in this batch)."""
        stored = self._stored_times(stream, [(d.topic.device_id, *run_span(d.records)) for d, _ in items])  # type: ignore[arg-type]
        in_batch: dict[str, list[tuple[int, int, npt.NDArray[np.int64]]]] = {}
        rows: list[tuple[object, ...]] = []
        for (d, a), known in zip(items, stored, strict=True):
            rec, dev = d.records, d.topic.device_id
            lo, hi = run_span(rec)  # type: ignore[arg-type]
            earlier = [t for s, e, t in in_batch.get(dev, []) if s < hi and lo < e]
            taken = np.concatenate([known, *earlier])
            if isinstance(rec, HeartRate):
                for h in hr_runs(rec.t_ms, rec.bpm, rec.suspect, taken):
                    rows.append((dev, ts(h.start_ms), ts(h.end_ms), a.participant_id, h.offsets_ms.tolist(),
                                 h.bpm.tolist(), h.suspect.tolist(), rec.msg_id))
                    in_batch.setdefault(dev, []).append((h.start_ms, h.end_ms, h.start_ms + h.offsets_ms))
            else:
                assert isinstance(rec, RRIntervals)
                for r in rr_runs(rec.start_ms, rec.rr_ms, rec.artifact, taken):
                    rows.append((dev, ts(r.start_ms), ts(r.end_ms), a.participant_id, r.rr_ms.tolist(),
                                 r.artifact.tolist(), rec.msg_id))
                    in_batch.setdefault(dev, []).append((r.start_ms, r.end_ms,
                                                         rr_beat_ends(r.start_ms, r.rr_ms)))
        return rows

    def _stored_times(self, stream: str, spans: list[tuple[str, int, int]]) -> list[npt.NDArray[np.int64]]:
        """For each ``(device, first_ms, end_ms)``, the sample times of that device's stored runs overlapping it.

        One query per batch through the GiST index on ``(device_id, [start_ts, end_ts))`` (migration 080); in
        live ingest runs arrive in order and the answer is empty.
        """
        table, values = ("raw.hr_runs", "r.offsets_ms") if stream == "hr" else ("raw.rr_runs", "r.rr_ms")
        rows = self.conn.execute(
            "SELECT q.i, floor(extract(epoch FROM r.start_ts) * 1000)::bigint, " + values + " "
            "FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[]) WITH ORDINALITY AS q(dev, s, e, i) "
            f"JOIN {table} r ON r.device_id = q.dev AND r.start_ts < q.e "
            "AND tstzrange(r.start_ts, r.end_ts) && tstzrange(q.s, q.e)",
            ([dev for dev, _, _ in spans], [ts(lo) for _, lo, _ in spans], [ts(hi) for _, _, hi in spans])
        ).fetchall()
        found: list[list[npt.NDArray[np.int64]]] = [[] for _ in spans]
        for i, start, arr in rows:
            vals = np.asarray(arr, dtype=np.int64)
            times = start + (vals if stream == "hr" else np.cumsum(vals))  # type: ignore[operator]
            found[int(i) - 1].append(times)  # type: ignore[call-overload]
        return [np.concatenate(f) if f else np.empty(0, np.int64) for f in found]

    def _mark_dirty(self, fresh: list[tuple[Decoded, Assignment]]) -> None:
        self._dirty({(a.participant_id, day) for d, a in fresh for day in sleep_days(d.records, self.tz)})

    def _dirty(self, pairs: set[tuple[uuid.UUID, date]]) -> None:
        """Mark participant sleep days for the feature job."""
        if pairs:
            pids, days = zip(*sorted(pairs), strict=True)
            self.conn.execute("INSERT INTO ingest.dirty_days (participant_id, sleep_date) "
                              "SELECT * FROM unnest(%s::uuid[], %s::date[]) ON CONFLICT (participant_id, sleep_date) "
                              "DO UPDATE SET marked_at = EXCLUDED.marked_at",  # a running feature job must not
                              # clear the mark of data it did not see (it deletes marks up to its snapshot)
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
