"""Europe/London wall-clock <-> UTC conversion on whole arrays, and seeded message ids.

The simulation window is short (months), so the UTC offset is tabulated once per hour with :mod:`zoneinfo`
and looked up with integer indexing: no per-sample Python calls. Times are epoch seconds (``int64``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

__all__ = ["LONDON", "Clock", "uuids_from_bytes"]

LONDON = ZoneInfo("Europe/London")
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Clock:
    """Hourly table of the London UTC offset around a simulation window.

    Attributes
    ----------
    start_date : datetime.date
        First local day of the programme (day index 0).
    t0_s : int
        UTC epoch seconds of local midnight at ``start_date``.
    base_s : int
        Epoch seconds where both tables start (two days before ``t0_s``, on an hour).
    offset_by_utc_hour : ndarray of int64
        UTC offset (s) in force during each UTC hour from ``base_s``.
    offset_by_local_hour : ndarray of int64
        UTC offset (s) of each local wall-clock hour (fold 0: the earlier offset when ambiguous).
    """

    start_date: date
    t0_s: int
    base_s: int
    offset_by_utc_hour: I64
    offset_by_local_hour: I64

    @staticmethod
    def for_window(start_date: date, n_days: int) -> Clock:
        """Tabulate offsets from two days before ``start_date`` to ``n_days + 4`` days after."""
        local0 = datetime(start_date.year, start_date.month, start_date.day)
        t0_s = int(local0.replace(tzinfo=LONDON).timestamp())
        base = datetime(start_date.year, start_date.month, start_date.day, tzinfo=UTC) - timedelta(days=2)
        n_hours = (n_days + 6) * 24
        by_utc = [LONDON.utcoffset(base + timedelta(hours=h)) for h in range(n_hours)]
        naive0 = base.replace(tzinfo=None)
        by_local = [(naive0 + timedelta(hours=h)).replace(tzinfo=LONDON).utcoffset() for h in range(n_hours)]
        to_s = np.array([o.total_seconds() if o else 0 for o in by_utc], dtype=np.int64)
        lo_s = np.array([o.total_seconds() if o else 0 for o in by_local], dtype=np.int64)
        return Clock(start_date, t0_s, int(base.timestamp()), to_s, lo_s)

    def _hour(self, s: npt.ArrayLike) -> npt.NDArray[np.intp]:
        h = (np.asarray(s, dtype=np.int64) - self.base_s) // 3600
        return np.clip(h, 0, self.offset_by_utc_hour.size - 1).astype(np.intp)

    def local_naive_of_day(self, day: npt.ArrayLike, hour: npt.ArrayLike) -> I64:
        """Local wall-clock seconds ("as if UTC") of ``hour`` (float hours) on programme day ``day``."""
        naive0 = self.t0_s + int(self.offset_by_utc_hour[self._hour(self.t0_s)])
        d = np.asarray(day, dtype=np.int64)
        return naive0 + d * 86400 + np.round(np.asarray(hour, dtype=np.float64) * 3600).astype(np.int64)

    def to_utc(self, local_naive_s: npt.ArrayLike) -> I64:
        """UTC epoch seconds of local wall-clock seconds ``local - offset(local)``."""
        s = np.asarray(local_naive_s, dtype=np.int64)
        return s - self.offset_by_local_hour[self._hour(s)]

    def utc_offset(self, utc_s: npt.ArrayLike) -> I64:
        """UTC offset (s) in force at UTC instants."""
        return self.offset_by_utc_hour[self._hour(utc_s)]

    def to_local(self, utc_s: npt.ArrayLike) -> I64:
        """Local wall-clock seconds ("as if UTC") of UTC instants."""
        s = np.asarray(utc_s, dtype=np.int64)
        return s + self.utc_offset(s)

    def local_day(self, utc_s: npt.ArrayLike) -> I64:
        """Programme day index of the local date of UTC instants (day 0 = ``start_date``)."""
        naive0 = self.t0_s + int(self.offset_by_utc_hour[self._hour(self.t0_s)])
        return (self.to_local(utc_s) - naive0) // 86400

    def local_hour(self, utc_s: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Local clock time in hours [0, 24) of UTC instants."""
        return (self.to_local(utc_s) % 86400).astype(np.float64) / 3600.0

    def rfc3339(self, utc_s: int) -> str:
        """RFC 3339 text with the London offset, e.g. ``2025-03-03T07:00:00+00:00``."""
        return datetime.fromtimestamp(utc_s, tz=LONDON).isoformat()


def uuids_from_bytes(raw: bytes) -> list[uuid.UUID]:
    """Version-4 UUIDs from seeded random bytes (16 bytes each), so message ids follow the seed."""
    return [uuid.UUID(bytes=raw[i:i + 16], version=4) for i in range(0, len(raw) - 15, 16)]
