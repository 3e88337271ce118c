"""Encode the message table into (topic, payload) pairs with :mod:`ingest.contract`, in publish order.

Device clocks drift: every device time is ``t + offset + drift_ppm * 1e-6 * ((t - t0) mod 1 day)`` (ms), a
fixed offset plus drift since the daily resynchronisation with the gateway; episode and RR durations are kept
exact so stage counts still match. ``sent_at`` is the gateway's (true) clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ingest.contract import (
    DeviceStatus,
    HeartRate,
    Records,
    RRIntervals,
    SleepEpisodes,
    Survey,
    artifact_mask,
    encode,
    suspect_mask,
    topic_for,
)
from simulators.malformed import malform
from simulators.model import Simulation
from simulators.params import MALFORMED_REASONS
from simulators.schedule import KINDS

__all__ = ["Message", "device_for", "iter_messages", "record_for"]

_STREAM = {"hr": "hr", "rr": "rr", "sleep": "sleep", "status": "status", "survey": "survey", "offline": "status"}
_FIRMWARE = ("1.4.2", "1.5.0")
#: Devices resynchronise their clock with the gateway once a day (local midnight of the start date + k days).
_SYNC_MS = 86_400_000


@dataclass(frozen=True)
class Message:
    """One published message: position in the stream, MQTT topic, payload and what it is."""

    index: int
    publish_ms: int
    gateway_id: str
    topic: str
    payload: bytes
    reason: str


def device_for(sim: Simulation, p: int, data_s: int) -> tuple[str, int]:
    """Device id (and slot 0/1) worn by participant ``p`` at ``data_s`` (a swap starts at local midnight)."""
    c = sim.cohort
    swap_s = sim.clock.t0_s + int(c.swap_day[p]) * 86400
    if c.device_b[p] and data_s >= swap_s:
        return c.device_b[p], 1
    return c.device_a[p], 0


def _dev_ms(sim: Simulation, p: int, slot: int, t_s: np.ndarray) -> np.ndarray:
    f = sim.faults
    t_ms = np.asarray(t_s, dtype=np.int64) * 1000
    since_sync = (t_ms - sim.clock.t0_s * 1000) % _SYNC_MS
    drift = f.offset_ms[p, slot] + f.drift_ppm[p, slot] * 1e-6 * since_sync
    out: np.ndarray = t_ms + np.round(drift).astype(np.int64)
    return out


def _hr(sim: Simulation, mid: uuid.UUID, dev: str, sent: int, p: int, slot: int, ref: int) -> HeartRate:
    b = sim.params.hr_batch_min
    bpm = sim.hr.bpm[p, ref:ref + b]
    m = np.flatnonzero(bpm > 0)
    t = _dev_ms(sim, p, slot, sim.clock.t0_s + (ref + m) * 60)
    v = bpm[m]
    return HeartRate(mid, dev, sent, t, v, suspect_mask(v))


def _rr(sim: Simulation, mid: uuid.UUID, dev: str, sent: int, p: int, slot: int, ref: int) -> RRIntervals:
    w = sim.rr
    rr = w.rr_ms[w.offsets[ref]:w.offsets[ref + 1]]
    start = int(_dev_ms(sim, p, slot, w.start_s[ref:ref + 1])[0])
    return RRIntervals(mid, dev, sent, start, rr, artifact_mask(rr))


def _sleep(sim: Simulation, mid: uuid.UUID, dev: str, sent: int, p: int, slot: int, ref: int) -> SleepEpisodes:
    ep = sim.episodes
    start = _dev_ms(sim, p, slot, ep.onset_s[ref:ref + 1])
    end = start + (ep.end_s[ref] - ep.onset_s[ref]) * 1000
    stages = ep.stages[ep.offsets[ref]:ep.offsets[ref + 1]]
    return SleepEpisodes(mid, dev, sent, start, end, np.ones(1, bool), np.full(1, 30, np.int16), (stages,),
                         ep.tst_min[ref:ref + 1])


def _status(sim: Simulation, mid: uuid.UUID, dev: str, sent: int, p: int, slot: int, ref: int) -> DeviceStatus:
    st = sim.status
    t = int(_dev_ms(sim, p, slot, st.t_s[ref:ref + 1])[0])
    fw = _FIRMWARE[int(st.t_s[ref] >= sim.clock.t0_s + sim.params.n_days * 43200)]
    return DeviceStatus(mid, dev, sent, t, True, int(st.battery_pct[ref]), bool(st.worn[ref]), fw)


def _offline(sim: Simulation, mid: uuid.UUID, dev: str, sent: int, p: int, slot: int, ref: int) -> DeviceStatus:
    return DeviceStatus(mid, dev, sent, int(sim.faults.outage_start_s[ref]) * 1000, False, None, None, None)


def _survey(sim: Simulation, mid: uuid.UUID, dev: str, sent: int, p: int, slot: int, ref: int) -> Survey:
    a = sim.answers
    t = _dev_ms(sim, p, slot, a.t_s[ref:ref + 1])
    return Survey(mid, dev, sent, t, a.kss[ref:ref + 1], a.samn_perelli[ref:ref + 1], (str(a.context[ref]),))


_Builder = Callable[[Simulation, uuid.UUID, str, int, int, int, int], Records]
_BUILDERS: dict[str, _Builder] = {
    "hr": _hr, "rr": _rr, "sleep": _sleep, "status": _status, "survey": _survey, "offline": _offline,
}


def record_for(sim: Simulation, i: int) -> tuple[str, Records]:
    """Topic and record of row ``i`` of the message table (malformed rows give their source record)."""
    t = sim.table
    p, kind = int(t.participant[i]), KINDS[int(t.kind[i])]
    dev, slot = device_for(sim, p, int(t.data_s[i]))
    mid = uuid.UUID(bytes=t.msg_id[i].tobytes(), version=4)
    rec: Records = _BUILDERS[kind](sim, mid, dev, int(t.sent_at_ms[i]), p, slot, int(t.ref[i]))
    return topic_for(sim.cohort.gateway_id[p], dev, _STREAM[kind]), rec


def iter_messages(sim: Simulation, start: int = 0, stop: int | None = None) -> Iterator[Message]:
    """Encode messages ``start:stop`` of the publish order.

    Yields
    ------
    Message
        Well-formed payloads come from :func:`ingest.contract.encode`; malformed ones carry their reason.
    """
    t = sim.table
    for i in range(start, t.n if stop is None else min(stop, t.n)):
        topic, rec = record_for(sim, i)
        payload = encode(rec)
        reason = ""
        if t.reason[i] >= 0:
            reason = MALFORMED_REASONS[int(t.reason[i])]
            payload = malform(payload, str(rec.msg_id), reason)
        gw = sim.cohort.gateway_id[int(t.participant[i])]
        yield Message(i, int(t.publish_ms[i]), gw, topic, payload, reason)
