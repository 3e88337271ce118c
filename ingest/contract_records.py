"""Decoded records of the v1 wire contract: frozen dataclasses holding NumPy columns.

Helper of :mod:`ingest.contract`; import the public names from there. Equality (``==``) compares NumPy
columns with :func:`numpy.array_equal` (dtype included, NaN equal to NaN), so ``decode(encode(r)) == r`` is
a meaningful test; records are therefore unhashable.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from typing import ClassVar, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = [
    "DeviceStatus",
    "HeartRate",
    "RRIntervals",
    "Records",
    "SleepEpisodes",
    "Survey",
    "artifact_mask",
    "records_equal",
    "stream_of",
    "suspect_mask",
]

I8: TypeAlias = npt.NDArray[np.int8]
I16: TypeAlias = npt.NDArray[np.int16]
I64: TypeAlias = npt.NDArray[np.int64]
F64: TypeAlias = npt.NDArray[np.float64]
B: TypeAlias = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class _Record:
    """Envelope shared by all records: message id, device id and gateway send time (epoch ms UTC)."""

    stream: ClassVar[str] = ""
    msg_id: uuid.UUID
    device_id: str
    sent_at_ms: int

    def __eq__(self, other: object) -> bool:
        return records_equal(self, other)

    @property
    def n_samples(self) -> int:
        """Number of samples (heart beats, intervals, episodes, answers; 1 for a status)."""
        return 1


@dataclass(frozen=True, eq=False)
class HeartRate(_Record):
    """Heart-rate samples (``hr/1``): times (epoch ms), bpm (1..300) and the suspect flag (row 14)."""

    stream: ClassVar[str] = "hr"
    t_ms: I64
    bpm: I16
    suspect: B

    @property
    def n_samples(self) -> int:
        """Number of heart-rate samples."""
        return int(self.t_ms.size)


@dataclass(frozen=True, eq=False)
class RRIntervals(_Record):
    """A run of RR intervals (``rr/1``): beat ``i`` ends at ``start_ms + cumsum(rr_ms)[i]``."""

    stream: ClassVar[str] = "rr"
    start_ms: int
    rr_ms: I16
    artifact: B

    @property
    def n_samples(self) -> int:
        """Number of RR intervals."""
        return int(self.rr_ms.size)


@dataclass(frozen=True, eq=False)
class SleepEpisodes(_Record):
    """Device sleep episodes (``sleep/1``); ``stages[i]`` is an int8 array (0 wake, 1 light, 2 deep, 3 REM)
    of ``(end - start) / epoch_s`` epochs or ``None``; ``tst_min`` is NaN when the device gave none."""

    stream: ClassVar[str] = "sleep"
    start_ms: I64
    end_ms: I64
    in_bed: B
    epoch_s: I16
    stages: tuple[I8 | None, ...]
    tst_min: F64

    @property
    def n_samples(self) -> int:
        """Number of episodes."""
        return int(self.start_ms.size)


@dataclass(frozen=True, eq=False)
class DeviceStatus(_Record):
    """Device status (``status/1``), also the MQTT last will with ``online=False``."""

    stream: ClassVar[str] = "status"
    t_ms: int
    online: bool
    battery_pct: int | None
    worn: bool | None
    firmware: str | None


@dataclass(frozen=True, eq=False)
class Survey(_Record):
    """Survey answers (``survey/1``): KSS 1..9, Samn-Perelli 1..7 (0 = not answered) and context
    (``shift_start``, ``shift_end``, ``adhoc`` or ``""`` when not given), one entry per answer."""

    stream: ClassVar[str] = "survey"
    t_ms: I64
    kss: I8
    samn_perelli: I8
    context: tuple[str, ...]

    @property
    def n_samples(self) -> int:
        """Number of answers."""
        return int(self.t_ms.size)


Records: TypeAlias = HeartRate | RRIntervals | SleepEpisodes | DeviceStatus | Survey


def stream_of(records: Records) -> str:
    """Topic stream (``hr``, ``rr``, ``sleep``, ``status``, ``survey``) a record is published on."""
    return records.stream


def suspect_mask(bpm: npt.ArrayLike) -> B:
    """Heart rates that are rare but possible: 25-30 or 220-240 bpm inclusive (catalogue row 14)."""
    a = np.asarray(bpm)
    return ((a >= 25) & (a <= 30)) | ((a >= 220) & (a <= 240))


def artifact_mask(rr_ms: npt.ArrayLike) -> B:
    """RR intervals outside 200-3000 ms, kept but excluded from HRV (catalogue row 15)."""
    a = np.asarray(rr_ms)
    return (a < 200) | (a > 3000)


def _value_equal(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_value_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def records_equal(a: object, b: object) -> bool:
    """Field-by-field equality of two records; NumPy columns must match in dtype, shape and values.

    Parameters
    ----------
    a, b : object
        Records (any other objects compare unequal unless identical).

    Returns
    -------
    bool
        ``True`` if both are records of the same type with equal fields.
    """
    if a is b:
        return True
    if type(a) is not type(b) or not isinstance(a, _Record):
        return False
    return all(_value_equal(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
