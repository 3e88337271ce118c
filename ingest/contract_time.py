"""Time rules of the v1 wire contract: epoch milliseconds or RFC 3339 with an explicit offset.

Helper of :mod:`ingest.contract` (reliability_security.md section 3.9 and catalogue row 12).

- An integer is epoch milliseconds UTC. Values below ``1e11`` (1973-03-03) are seconds-vs-milliseconds
  confusion and values from ``1e13`` (2286-11-20) on are microseconds or worse: both are ``ts_unit``.
- A string must be RFC 3339 ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)``. Naive times, offsets
  beyond 23:59, leap seconds (``23:59:60``), impossible dates and instants outside the integer range are
  ``ts_invalid``. Fractions finer than a millisecond are truncated towards the past.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ingest.contract_base import ContractError

__all__ = [
    "TS_MAX_MS", "TS_MIN_MS", "epoch_column", "future_mask", "min_max", "parse_time", "rfc3339_ms", "time_column",
]

TS_MIN_MS: Final = 10**11
TS_MAX_MS: Final = 10**13
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
_DAYS_IN_MONTH: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@lru_cache(maxsize=4096)
def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant, *chrono-compatible algorithms*)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _valid_date(y: int, m: int, d: int) -> bool:
    if not 1 <= m <= 12 or d < 1:
        return False
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    return d <= _DAYS_IN_MONTH[m - 1] + (1 if m == 2 and leap else 0)


def rfc3339_ms(text: str, field: str) -> int:
    """Parse an RFC 3339 timestamp with an explicit offset into epoch milliseconds UTC.

    Parameters
    ----------
    text : str
        Timestamp such as ``2024-03-31T01:30:00.250+01:00``.
    field : str
        Field name for the error detail.

    Raises
    ------
    ContractError
        ``ts_invalid`` for anything that is not a valid RFC 3339 instant with offset.
    """
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ContractError("ts_invalid", f"{field}: not RFC 3339 with an explicit UTC offset")
    y, mo, d, hh, mi, ss = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    if not _valid_date(y, mo, d) or hh > 23 or mi > 59 or ss > 59:
        raise ContractError("ts_invalid", f"{field}: impossible date or time of day (leap seconds rejected)")
    offset_min = 0
    if m.group(9) is not None:
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            raise ContractError("ts_invalid", f"{field}: UTC offset out of range")
        offset_min = (oh * 60 + om) * (1 if m.group(9) == "+" else -1)
    frac = m.group(7)
    ms = int((frac + "00")[:3]) if frac else 0
    secs = _days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss - offset_min * 60
    out = secs * 1000 + ms
    if not TS_MIN_MS <= out < TS_MAX_MS:
        raise ContractError("ts_invalid", f"{field}: instant outside 1973-03-03..2286-11-20")
    return out


def _epoch_ms(value: int, field: str) -> int:
    if not TS_MIN_MS <= value < TS_MAX_MS:
        raise ContractError("ts_unit", f"{field}: epoch time must be milliseconds in [1e11, 1e13)")
    return value


def parse_time(value: int | str, field: str) -> int:
    """Convert one wire time (epoch ms int or RFC 3339 string) to epoch milliseconds UTC.

    Raises
    ------
    ContractError
        ``ts_unit`` or ``ts_invalid``; ``schema_violation`` for a ``bool`` or any other type.
    """
    if type(value) is int:
        return _epoch_ms(value, field)
    if type(value) is str:
        return rfc3339_ms(value, field)
    raise ContractError("schema_violation", f"{field}: time must be an integer or a string")


def min_max(values: Sequence[int] | npt.NDArray[Any]) -> tuple[Any, Any]:
    """Smallest and largest value: Python builtins for lists (cheap when short), ufunc reductions for arrays."""
    if isinstance(values, np.ndarray):
        return np.minimum.reduce(values), np.maximum.reduce(values)
    return min(values), max(values)


def epoch_column(values: Sequence[int] | npt.NDArray[np.int64], field: str) -> npt.NDArray[np.int64]:
    """Convert a non-empty column the decoder guaranteed to hold only ints (epoch ms), range-checked."""
    lo, hi = min_max(values)
    if lo < TS_MIN_MS or hi >= TS_MAX_MS:
        first = next(i for i, v in enumerate(values) if not TS_MIN_MS <= v < TS_MAX_MS)
        raise ContractError("ts_unit", f"{field}[{first}]: epoch time must be milliseconds in [1e11, 1e13)")
    return np.asarray(values, dtype=np.int64)


def time_column(values: Sequence[int | str], field: str) -> npt.NDArray[np.int64]:
    """Convert a list of wire times to an ``int64`` array of epoch milliseconds.

    All-integer lists (the canonical encoding) convert in one NumPy call and are range-checked vectorised;
    lists holding strings are parsed one by one.
    """
    if values and type(values[0]) is int:
        arr = np.array(values)
        if arr.dtype == np.int64:
            return epoch_column(values, field)  # type: ignore[arg-type]
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        out[i] = parse_time(v, f"{field}[{i}]")
    return out


def future_mask(
    t_ms: npt.NDArray[np.int64], now_ms: int, tolerance_ms: int = 300_000
) -> npt.NDArray[np.bool_]:
    """Mark sample times more than ``tolerance_ms`` ahead of ``now_ms`` (catalogue row 10, ``ts_future``).

    Parameters
    ----------
    t_ms : ndarray of int64
        Sample instants, epoch milliseconds UTC.
    now_ms : int
        The ingester's clock, epoch milliseconds UTC.
    tolerance_ms : int, optional
        Allowed device clock lead, default 5 min (reliability_security.md section 3.9).

    Returns
    -------
    ndarray of bool
        ``t_ms > now_ms + tolerance_ms``.
    """
    return np.asarray(t_ms, dtype=np.int64) > now_ms + tolerance_ms
