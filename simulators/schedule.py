"""The message table: which message is sent when, on which device, and which transport faults hit it.

One row per published message, built with whole-array operations, then sorted into publish order.
Payloads are encoded lazily from the row (:mod:`simulators.messages`), so a 100 x 120 cohort never holds
hundreds of MB of JSON in memory. Gateway outages hold messages and flush the backlog on recovery
(:func:`simulators.faults.flush_time`); duplicates re-send identical bytes up to 10 min later; out-of-order
messages are delayed by 5 min to 6 h; malformed messages are extra rows with a reason code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulators.faults import Faults, flush_time
from simulators.params import MALFORMED_REASONS, SimParams

__all__ = ["KINDS", "MessageTable", "StatusTable", "make_status", "make_table"]

#: Row kinds; ``offline`` is the gateway's last will (status online=false) at an outage start.
KINDS: tuple[str, ...] = ("hr", "rr", "sleep", "status", "survey", "offline")
IntArr = npt.NDArray[np.int64]


@dataclass(frozen=True)
class StatusTable:
    """Periodic device status every 6 h while the battery is not flat."""

    participant: IntArr
    t_s: IntArr
    battery_pct: IntArr
    worn: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class MessageTable:
    """Messages in publish order.

    Attributes
    ----------
    kind : ndarray of int
        Index into :data:`KINDS`.
    participant, ref : ndarray of int
        Owner and index into the source table of the kind (HR batch start minute for ``hr``).
    data_s : ndarray of int
        UTC time (s) of the data, which picks the device (before or after a swap).
    sent_at_ms, publish_ms : ndarray of int
        Gateway send time written in the payload, and the position in the publish stream.
    msg_id : ndarray of uint8, shape (n, 16)
        Seeded UUID bytes (duplicates share their original's).
    duplicate, delayed, backlog : ndarray of bool
        Transport facts for the ground truth.
    reason : ndarray of int
        Index into MALFORMED_REASONS, -1 for a well-formed message.
    """

    kind: IntArr
    participant: IntArr
    ref: IntArr
    data_s: IntArr
    sent_at_ms: IntArr
    publish_ms: IntArr
    msg_id: npt.NDArray[np.uint8]
    duplicate: npt.NDArray[np.bool_]
    delayed: npt.NDArray[np.bool_]
    backlog: npt.NDArray[np.bool_]
    reason: IntArr

    @property
    def n(self) -> int:
        """Number of messages."""
        return int(self.kind.size)

    def take(self, idx: IntArr) -> MessageTable:
        """Rows ``idx`` of every column."""
        return MessageTable(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def make_status(params: SimParams, faults: Faults, t0_s: int, rng: np.random.Generator) -> StatusTable:
    """Status every 6 h (at hh:17) when powered; battery is a 4-day sawtooth, low before a flat battery."""
    n, n_min = faults.powered.shape
    k = np.arange(params.n_days * 4)
    minute = k * 360 + 17
    p, j = np.nonzero(faults.powered[:, minute])
    m = minute[j]
    phase = np.asarray(rng.uniform(0.0, 96.0, n), dtype=np.float64)
    battery = 100.0 - 85.0 * (((m / 60.0) + phase[p]) % 96.0) / 96.0
    soon_flat = ~faults.powered[p, np.minimum(m + 360, n_min - 1)]
    battery = np.where(soon_flat, np.minimum(battery, 4.0), battery)
    return StatusTable(p.astype(np.int64), t0_s + m.astype(np.int64) * 60,
                       np.round(battery).astype(np.int64), faults.worn[p, m])


def _rows(kind: int, p: IntArr, ref: IntArr, data_s: IntArr, ready_s: IntArr) -> tuple[IntArr, ...]:
    return (np.full(p.size, kind, dtype=np.int64), p.astype(np.int64), ref.astype(np.int64),
            data_s.astype(np.int64), ready_s.astype(np.int64))


def make_table(sources: dict[str, tuple[IntArr, IntArr, IntArr, IntArr]], faults: Faults, params: SimParams,
               rng: np.random.Generator) -> MessageTable:
    """Assemble, fault and order all messages.

    Parameters
    ----------
    sources : dict
        Stream name in :data:`KINDS` -> ``(participant, ref, data_s, ready_s)``: when the device has the
        message ready for its gateway.
    faults : Faults
        Gateway outages.
    params : SimParams
        Fault rates.
    rng : numpy.random.Generator
        Seeded generator.

    Returns
    -------
    MessageTable
        In publish order.
    """
    off_ref = np.arange(faults.outage_p.size)
    sources = {**sources, "offline": (faults.outage_p, off_ref, faults.outage_start_s, faults.outage_start_s)}
    cols = [_rows(KINDS.index(k), *sources[k]) for k in KINDS]
    kind, p, ref, data_s, ready_s = (np.concatenate(c) for c in zip(*cols, strict=True))
    n = kind.size
    latency = rng.integers(2_000, 90_000, n)
    send_s, backlog = flush_time(faults, p, ready_s)
    is_will = kind == KINDS.index("offline")
    sent_at = np.where(is_will, ready_s * 1000, send_s * 1000 + latency)
    backlog &= ~is_will
    fr = params.faults
    delayed = rng.random(n) < fr.out_of_order
    publish = sent_at + delayed * rng.integers(300_000, 21_600_000, n)
    ids = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    dup = np.flatnonzero((rng.random(n) < fr.duplicate) & ~is_will)
    hr_rows = np.flatnonzero(kind == 0)
    n_bad = 0 if fr.malformed <= 0 or hr_rows.size == 0 else max(len(MALFORMED_REASONS),
                                                                  round(fr.malformed * n))
    bad_src = hr_rows[rng.integers(0, max(hr_rows.size, 1), n_bad)]
    reason_bad = np.r_[np.arange(min(n_bad, len(MALFORMED_REASONS))),
                       rng.integers(0, len(MALFORMED_REASONS), max(n_bad - len(MALFORMED_REASONS), 0))]
    src = np.r_[np.arange(n), dup, bad_src].astype(np.int64)
    table = MessageTable(
        kind=kind[src], participant=p[src], ref=ref[src], data_s=data_s[src], sent_at_ms=sent_at[src],
        publish_ms=np.r_[publish, publish[dup] + rng.integers(1_000, 600_000, dup.size), publish[bad_src] + 1],
        msg_id=np.concatenate([ids, ids[dup], rng.integers(0, 256, (n_bad, 16), dtype=np.uint8)]),
        duplicate=np.r_[np.zeros(n, bool), np.ones(dup.size, bool), np.zeros(n_bad, bool)],
        delayed=delayed[src], backlog=backlog[src],
        reason=np.r_[np.full(n + dup.size, -1), reason_bad].astype(np.int64),
    )
    return table.take(np.argsort(table.publish_ms, kind="stable"))
