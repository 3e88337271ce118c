"""Device and gateway faults: non-wear, flat batteries, gateway outages with backlog flush, clock drift.

Everything is drawn per participant as interval lists and turned into minute masks with a +1/-1 difference
array and a cumulative sum, so no loop touches minutes. Transport faults that act on finished messages
(duplicates, out-of-order delivery, malformed payloads) live in :mod:`simulators.schedule` and
:mod:`simulators.malformed`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulators.params import SimParams

__all__ = ["FLUSH_COMPRESSION", "Faults", "flush_time", "intervals_mask", "make_faults", "worn_while_asleep"]

IntArr = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]
#: A backlog is flushed at this compression: one day of messages in 86.4 s after the gateway returns.
FLUSH_COMPRESSION = 1000


@dataclass(frozen=True)
class Faults:
    """Fault state of the cohort on the minute grid (minute 0 = local midnight of the start date).

    Attributes
    ----------
    worn : ndarray of bool, shape (n, n_min)
        Device on the wrist (and powered).
    powered : ndarray of bool, shape (n, n_min)
        Battery not flat (status messages only when powered).
    outage_p, outage_start_s, outage_end_s : ndarray of int64
        Gateway outages (participant, UTC seconds), sorted by participant then start.
    drift_ppm, offset_ms : ndarray of float, shape (n, 2)
        Clock drift and initial offset of device A and B of each participant.
    intervals : dict
        Raw fault intervals for the ground truth: kind -> (participant, start_min, end_min).
    """

    worn: B
    powered: B
    outage_p: IntArr
    outage_start_s: IntArr
    outage_end_s: IntArr
    drift_ppm: npt.NDArray[np.float64]
    offset_ms: npt.NDArray[np.float64]
    intervals: dict[str, tuple[IntArr, IntArr, IntArr]]


def intervals_mask(n: int, n_min: int, p: IntArr, start: IntArr, end: IntArr) -> B:
    """Mask of shape ``(n, n_min)`` that is True inside any half-open ``[start, end)`` minute interval."""
    start = np.clip(start, 0, n_min)
    end = np.clip(end, 0, n_min)
    diff = np.zeros((n, n_min + 1), dtype=np.int16)
    np.add.at(diff, (p, start), 1)
    np.add.at(diff, (p, end), -1)
    return np.asarray(np.cumsum(diff[:, :-1], axis=1, dtype=np.int16) > 0)


def _draw(rng: np.random.Generator, n: int, rate_per_day: float, n_days: int,
          lo_min: float, hi_min: float, daytime: bool) -> tuple[IntArr, IntArr, IntArr]:
    counts = rng.poisson(rate_per_day * n_days, n)
    p = np.repeat(np.arange(n), counts).astype(np.int64)
    day = rng.integers(0, n_days, p.size)
    hour = rng.uniform(8.0, 20.0, p.size) if daytime else rng.uniform(0.0, 24.0, p.size)
    start = (day * 1440 + hour * 60).astype(np.int64)
    return p, start, start + rng.uniform(lo_min, hi_min, p.size).astype(np.int64)


def make_faults(params: SimParams, t0_s: int, rng: np.random.Generator) -> Faults:
    """Draw the device and gateway faults of the cohort.

    Parameters
    ----------
    params : SimParams
        Cohort size, programme length and :class:`~simulators.params.FaultRates`.
    t0_s : int
        UTC epoch seconds of minute 0.
    rng : numpy.random.Generator
        Seeded generator.

    Returns
    -------
    Faults
    """
    n, days, fr = params.n_participants, params.n_days, params.faults
    n_min = (days + 1) * 1440
    short = _draw(rng, n, fr.nonwear_per_day, days, 30, 180, True)
    long_ = _draw(rng, n, fr.long_nonwear_per_day, days, 1440, 3 * 1440, True)
    flat = _draw(rng, n, fr.flat_battery_per_day, days, 6 * 60, 36 * 60, False)
    off = _draw(rng, n, fr.gateway_offline_per_day, days, 1440, 4 * 1440, False)
    cat = [np.concatenate(x) for x in zip(short, long_, strict=True)]
    powered = ~intervals_mask(n, n_min, *flat)
    worn = ~intervals_mask(n, n_min, *cat) & powered
    order = np.lexsort((off[1], off[0]))
    o_p, o_s, o_e = off[0][order], off[1][order] * 60 + t0_s, off[2][order] * 60 + t0_s
    same = np.r_[False, o_p[1:] == o_p[:-1]]
    o_s = np.where(same, np.maximum(o_s, np.r_[0, o_e[:-1]]), o_s)
    keep = o_e > o_s
    return Faults(
        worn=worn, powered=powered, outage_p=o_p[keep], outage_start_s=o_s[keep], outage_end_s=o_e[keep],
        drift_ppm=rng.normal(0.0, fr.drift_ppm_sd, (n, 2)),
        offset_ms=rng.normal(0.0, 1500.0, (n, 2)) * (fr.drift_ppm_sd > 0),
        intervals={"nonwear": (short[0], short[1], short[2]), "long_nonwear": (long_[0], long_[1], long_[2]),
                   "flat_battery": (flat[0], flat[1], flat[2]), "gateway_offline": (off[0], off[1], off[2])},
    )


def flush_time(faults: Faults, p: IntArr, t_s: IntArr) -> tuple[IntArr, B]:
    """When a message produced at ``t_s`` by participant ``p``'s gateway is actually sent.

    Inside an outage it waits for the outage end and is flushed in production order, one day of backlog per
    ``86400 / FLUSH_COMPRESSION`` seconds; otherwise it is sent at ``t_s``.

    Returns
    -------
    (send_s, delayed) : tuple of ndarray
        Send time (UTC s) and whether the message was held in a backlog.
    """
    if faults.outage_p.size == 0:
        return t_s.copy(), np.zeros(t_s.size, dtype=bool)
    big = np.int64(1) << 40
    keys = faults.outage_p * big + faults.outage_start_s
    i = np.searchsorted(keys, p * big + t_s, side="right") - 1
    ok = i >= 0
    i = np.maximum(i, 0)
    inside = ok & (faults.outage_p[i] == p) & (t_s < faults.outage_end_s[i]) & (t_s >= faults.outage_start_s[i])
    send = faults.outage_end_s[i] + (t_s - faults.outage_start_s[i]) // FLUSH_COMPRESSION
    return np.where(inside, send, t_s), inside


def worn_while_asleep(faults: Faults, asleep: B) -> Faults:
    """Short daytime non-wear only while awake: nobody takes the watch off to charge it while asleep.

    Minutes of the short (30-180 min) non-wear gaps that fall inside a sleep episode are worn again (when
    powered and not inside a long non-wear gap), so day sleeps after night shifts are no longer dropped by a
    charging break drawn on top of them. Long non-wear (watch left at home) and flat batteries still hide sleep:
    that is the missing data the flags must survive.

    Parameters
    ----------
    faults : Faults
        As drawn by :func:`make_faults`.
    asleep : ndarray of bool, shape like ``faults.worn``
        True inside any sleep episode (minute grid).
    """
    n, n_min = faults.worn.shape
    long_ = intervals_mask(n, n_min, *faults.intervals["long_nonwear"])
    worn = faults.worn | (asleep & faults.powered & ~long_)
    return Faults(worn, faults.powered, faults.outage_p, faults.outage_start_s, faults.outage_end_s,
                  faults.drift_ppm, faults.offset_ms, faults.intervals)
