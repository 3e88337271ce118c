"""Vectorised local-time helpers (Europe/London by default) for epoch-second arrays.

Instants are UTC ``int64`` epoch seconds. The UTC offset of a zone is piecewise constant between transitions,
so the transitions covering the span of the data are computed once per (zone, year) with :mod:`zoneinfo`
(a day-by-day probe followed by bisection to the second, cached), and every element is then mapped with a
single :func:`numpy.searchsorted`. No per-element ``zoneinfo`` call is made.

"Local naive seconds" are wall-clock seconds since 1970-01-01T00:00 *local*, i.e. ``t + offset(t)``;
``floor(local / 86400)`` is the local date as days since the epoch and ``(local mod 86400)/3600`` the local
clock hour.

References
----------
science.md conventions table (store UTC, compute local quantities in Europe/London); IANA tz database via
Python :mod:`zoneinfo` (PEP 615).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

LONDON = "Europe/London"
DAY_S = 86_400
HOUR_S = 3_600

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def _offset_at(zone: ZoneInfo, t: int) -> int:
    delta = datetime.fromtimestamp(t, tz=UTC).astimezone(zone).utcoffset()
    return 0 if delta is None else int(delta.total_seconds())


@lru_cache(maxsize=256)
def _year_transitions(tz: str, year: int) -> tuple[tuple[int, int], ...]:
    """Transitions ``(utc_instant, offset_after)`` inside one calendar year (UTC), to the second."""
    zone = ZoneInfo(tz)
    t0 = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
    t1 = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())
    out: list[tuple[int, int]] = []
    prev_t, prev_off = t0, _offset_at(zone, t0)
    for t in range(t0 + DAY_S, t1 + DAY_S, DAY_S):  # ~366 probes per (zone, year), cached
        off = _offset_at(zone, t)
        if off != prev_off:
            lo, hi = prev_t, t  # offset(lo) == prev_off, offset(hi) == off
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset_at(zone, mid) == prev_off:
                    lo = mid
                else:
                    hi = mid
            out.append((hi, off))
        prev_t, prev_off = t, off
    return tuple(out)


@lru_cache(maxsize=64)
def transition_table(tz: str, year0: int, year1: int) -> tuple[I64, I64]:
    """UTC offsets of ``tz`` as a step function over the years ``year0..year1`` (inclusive).

    Returns
    -------
    trans : int64 array, shape (k,)
        UTC instants (s) at which the offset changes, ascending.
    offsets : int64 array, shape (k + 1,)
        ``offsets[j]`` applies on ``[trans[j-1], trans[j])`` (s east of UTC).
    """
    zone = ZoneInfo(tz)
    first = int(datetime(year0, 1, 1, tzinfo=UTC).timestamp())
    trans: list[int] = []
    offs: list[int] = [_offset_at(zone, first)]
    for year in range(year0, year1 + 1):
        for t, off in _year_transitions(tz, year):
            trans.append(t)
            offs.append(off)
    t_arr = np.asarray(trans, dtype=np.int64)
    o_arr = np.asarray(offs, dtype=np.int64)
    t_arr.setflags(write=False)
    o_arr.setflags(write=False)
    return t_arr, o_arr


def _table_for(t: npt.ArrayLike, tz: str) -> tuple[I64, I64]:
    arr = np.asarray(t, dtype=np.int64)
    if arr.size == 0:
        return transition_table(tz, 1970, 1970)
    lo = datetime.fromtimestamp(int(arr.min()) - 2 * DAY_S, tz=UTC).year
    hi = datetime.fromtimestamp(int(arr.max()) + 2 * DAY_S, tz=UTC).year
    return transition_table(tz, lo, hi)


def utc_offset(t: npt.ArrayLike, tz: str = LONDON) -> I64:
    """UTC offset (s) of zone ``tz`` at each UTC instant ``t`` (epoch s), vectorised.

    ``offset(t) = offsets[searchsorted(trans, t, side="right")]``.
    """
    arr = np.asarray(t, dtype=np.int64)
    trans, offs = _table_for(arr, tz)
    return offs[np.searchsorted(trans, arr, side="right")]


def local_seconds(t: npt.ArrayLike, tz: str = LONDON) -> I64:
    """Local wall-clock ("naive") seconds since 1970-01-01 00:00 local: ``t + offset(t)``."""
    arr = np.asarray(t, dtype=np.int64)
    return arr + utc_offset(arr, tz)


def local_day(t: npt.ArrayLike, tz: str = LONDON) -> I64:
    """Local calendar date of UTC instants as days since 1970-01-01 (``floor(local_s / 86400)``)."""
    return np.floor_divide(local_seconds(t, tz), DAY_S)


def local_hour(t: npt.ArrayLike, tz: str = LONDON) -> F64:
    """Local clock time of UTC instants in hours, in ``[0, 24)``."""
    return np.mod(local_seconds(t, tz), DAY_S).astype(np.float64) / HOUR_S


def local_to_utc(local_s: npt.ArrayLike, tz: str = LONDON) -> I64:
    """Inverse of :func:`local_seconds`: UTC epoch s of local wall-clock naive seconds.

    Ambiguous wall times (autumn fold) resolve to the first occurrence and non-existent ones (spring gap) are
    read with the offset before the gap, which is what :mod:`zoneinfo` does with ``fold=0``.
    """
    loc = np.asarray(local_s, dtype=np.int64)
    trans, offs = _table_for(loc, tz)
    cand = sorted(set(offs.tolist()))  # the zone's distinct offsets
    best = np.full(loc.shape, np.iinfo(np.int64).max, dtype=np.int64)
    for off in cand:  # fixed small loop over the zone's distinct offsets (2 for London)
        t = loc - off
        ok = offs[np.searchsorted(trans, t, side="right")] == off
        best = np.where(ok & (t < best), t, best)
    gap = best == np.iinfo(np.int64).max
    if np.any(gap):
        t_before = loc - int(cand[-1])
        fallback = loc - offs[np.searchsorted(trans, t_before, side="right")]
        best = np.where(gap, fallback, best)
    return best


def day_to_date(days: npt.ArrayLike) -> npt.NDArray[np.datetime64]:
    """Days since 1970-01-01 -> ``datetime64[D]``."""
    return np.asarray(days, dtype=np.int64).astype("datetime64[D]")


def date_to_day(dates: npt.ArrayLike) -> I64:
    """``datetime64``/ISO date strings -> days since 1970-01-01 (int64)."""
    return np.asarray(dates, dtype="datetime64[D]").astype(np.int64)


def local_noon_utc(days: npt.ArrayLike, tz: str = LONDON) -> I64:
    """UTC instant (epoch s) of local 12:00 on each local date given as days since the epoch."""
    return local_to_utc(np.asarray(days, dtype=np.int64) * DAY_S + 12 * HOUR_S, tz)
