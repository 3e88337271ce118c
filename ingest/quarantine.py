"""Replay of quarantined messages once their device is enrolled."""

from __future__ import annotations

import time
from zoneinfo import ZoneInfo

import psycopg

from ingest.prepare import Inbound, prepare
from ingest.writer import BatchResult, Writer

__all__ = ["replay_quarantine"]


def replay_quarantine(conn: psycopg.Connection[tuple[object, ...]], tz: ZoneInfo,
                      chunk: int = 500, max_lateness_days: int = 30) -> tuple[BatchResult, int]:
    """Push quarantined messages of now-assigned devices through the normal write path.

    A message whose device is still not assigned at its sample time stays in quarantine. Returns the write
    totals and the number of messages still waiting. ``conn`` must have ``autocommit=False``.
    """
    writer = Writer(conn, tz)
    total = BatchResult()
    last_id = 0
    while True:
        rows = conn.execute(
            "SELECT quarantine_id, topic, payload FROM ingest.quarantine q WHERE replayed_at IS NULL "
            "AND quarantine_id > %s AND EXISTS (SELECT 1 FROM core.device_assignments a "
            "WHERE a.device_id = q.device_id) ORDER BY quarantine_id LIMIT %s", (last_id, chunk)).fetchall()
        if not rows:
            break
        now_ms = int(time.time() * 1000)
        late_ms = max_lateness_days * 86_400_000
        result = writer.write([prepare(Inbound(str(t), bytes(p)), now_ms, late_ms)  # type: ignore[call-overload]
                               for _, t, p in rows])
        ids = [int(str(r[0])) for r in rows]
        conn.execute(
            "UPDATE ingest.quarantine q SET replayed_at = now() WHERE quarantine_id = ANY(%s) AND ("
            "EXISTS (SELECT 1 FROM ingest.message_ledger l WHERE l.msg_id = q.msg_id) OR "
            "EXISTS (SELECT 1 FROM ingest.dead_letters d WHERE d.msg_id = q.msg_id))", (ids,))
        conn.commit()
        last_id = ids[-1]
        total.add(result)
    waiting = conn.execute("SELECT count(*) FROM ingest.quarantine WHERE replayed_at IS NULL").fetchone()
    conn.commit()
    return total, int(str(waiting[0])) if waiting else 0
