"""Pure preparation of inbound messages: decode, time rules, sample times and sleep days.

Nothing here touches the broker or the database, so every rule can be tested on plain values. The writer
(:mod:`ingest.writer`) adds what needs the database: device assignments, the ledger and the inserts.

Time rules (reliability_security.md section 3.9)
------------------------------------------------
- A sample more than 5 minutes ahead of the ingester's clock is *future*. Future heart-rate and survey samples
  are dropped and counted; if more than 10 % of a message's samples are future the whole message is
  dead-lettered as ``ts_future``. RR runs are truncated before their first future beat under the same 10 %
  rule; sleep episodes and status messages with any future time are dead-lettered.
- Data older than 30 days (``FATIGUE_INGEST_MAX_LATENESS_DAYS``) is dead-lettered as ``too_late`` for manual
  review, never dropped silently. Bulk back-fills and the demo raise the limit.
- Participant window checks (``ts_past`` before enrolment minus one day, ``after_window`` after the programme
  end or withdrawal plus one day) need the assignment and are applied by the writer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from ingest.contract import (
    ContractError,
    DeviceStatus,
    HeartRate,
    Records,
    RRIntervals,
    SleepEpisodes,
    Survey,
    Topic,
    decode,
    parse_topic,
)

__all__ = ["FUTURE_TOLERANCE_MS", "Decoded", "Inbound", "Rejected", "apply_time_rules", "prepare",
           "sample_times_ms", "sleep_days"]

FUTURE_TOLERANCE_MS = 5 * 60 * 1000
TOO_LATE_MS = 30 * 24 * 3600 * 1000
MAX_FUTURE_FRACTION = 0.10


@dataclass(frozen=True)
class Inbound:
    """One message as received: what the broker gave us and which connection it came on."""

    topic: str
    payload: bytes
    mid: int = 0
    generation: int = 0
    dup: bool = False


@dataclass(frozen=True)
class Decoded:
    """A message that passed the contract and the time rules."""

    inbound: Inbound
    topic: Topic
    records: Records
    sha256: bytes
    dropped_future: int = 0


@dataclass(frozen=True)
class Rejected:
    """A message to dead-letter, with its reason code and a detail free of payload values."""

    inbound: Inbound
    reason: str
    detail: str
    msg_id: object = None


def sample_times_ms(rec: Records) -> npt.NDArray[np.int64]:
    """Instants (epoch ms UTC) the message's samples refer to; RR beats at the end of each interval."""
    if isinstance(rec, HeartRate | Survey):
        return np.asarray(rec.t_ms, dtype=np.int64)
    if isinstance(rec, RRIntervals):
        return rec.start_ms + np.cumsum(rec.rr_ms, dtype=np.int64)
    if isinstance(rec, SleepEpisodes):
        return np.concatenate([rec.start_ms, rec.end_ms]).astype(np.int64)
    assert isinstance(rec, DeviceStatus)
    return np.array([rec.t_ms], dtype=np.int64)


def _drop_future(rec: Records, keep: npt.NDArray[np.bool_]) -> Records:
    if isinstance(rec, HeartRate):
        return replace(rec, t_ms=rec.t_ms[keep], bpm=rec.bpm[keep], suspect=rec.suspect[keep])
    if isinstance(rec, Survey):
        return replace(rec, t_ms=rec.t_ms[keep], kss=rec.kss[keep], samn_perelli=rec.samn_perelli[keep],
                       context=tuple(c for c, k in zip(rec.context, keep.tolist(), strict=True) if k))
    assert isinstance(rec, RRIntervals)
    n = int(np.argmin(keep)) if not keep.all() else keep.size  # beats are sequential: keep the prefix
    return replace(rec, rr_ms=rec.rr_ms[:n], artifact=rec.artifact[:n])


def apply_time_rules(
    rec: Records, now_ms: int, too_late_ms: int = TOO_LATE_MS
) -> tuple[Records, int] | tuple[str, str]:
    """Apply the future and too-late rules; return ``(records, n_dropped)`` or ``(reason, detail)``."""
    times = sample_times_ms(rec)
    future = times > now_ms + FUTURE_TOLERANCE_MS
    n_future = int(future.sum())
    if times.size and int(times.min()) < now_ms - too_late_ms:
        days = too_late_ms // 86_400_000
        return "too_late", f"samples more than {days} days old; kept for manual review"
    if n_future == 0:
        return rec, 0
    partial_ok = isinstance(rec, HeartRate | Survey | RRIntervals)
    if not partial_ok or n_future > MAX_FUTURE_FRACTION * times.size:
        return "ts_future", f"{n_future} of {times.size} sample times more than 5 min ahead of the ingester clock"
    return _drop_future(rec, ~future), n_future


def prepare(msg: Inbound, now_ms: int, too_late_ms: int = TOO_LATE_MS) -> Decoded | Rejected:
    """Decode one message against the contract and apply the time rules; never raises."""
    try:
        topic = parse_topic(msg.topic)
        records = decode(msg.topic, msg.payload)
    except ContractError as exc:
        return Rejected(msg, exc.reason, exc.detail)
    outcome = apply_time_rules(records, now_ms, too_late_ms)
    if isinstance(outcome[0], str):
        return Rejected(msg, outcome[0], str(outcome[1]), records.msg_id)
    kept, dropped = outcome
    assert not isinstance(kept, str) and isinstance(dropped, int)
    return Decoded(msg, topic, kept, hashlib.sha256(msg.payload).digest(), dropped)


def sleep_days(rec: Records, tz: ZoneInfo) -> list[date]:
    """Local sleep days a message touches: every local date from its first to its last sample.

    Sleep episodes count on the local date they end (science.md 1.2); other samples on their own date, and a
    day-sleep's samples touch the day it ends as well. Two zone conversions per message, none per sample.
    """
    times = sample_times_ms(rec) if not isinstance(rec, SleepEpisodes) else rec.end_ms
    if times.size == 0:
        return []
    first = datetime.fromtimestamp(int(times.min()) / 1000, tz).date()
    last = datetime.fromtimestamp(int(times.max()) / 1000, tz).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
