"""Value rules shared by the native decoder and :mod:`ingest.openmhealth`: counts, integer columns,
UUIDs, ids and the heart-rate sample rules (reliability_security.md section 5, rows 3, 5, 7, 13-15, 17).

Helper of :mod:`ingest.contract`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any, Final, TypeVar

import numpy as np
import numpy.typing as npt

from ingest.contract_base import MAX_SAMPLES, ContractError, check_id
from ingest.contract_records import HeartRate, suspect_mask
from ingest.contract_time import min_max

__all__ = ["build_heart_rate", "check_count", "check_device", "int_column", "parse_uuid", "readonly"]

A = TypeVar("A", bound=npt.NDArray[Any])
S = TypeVar("S", bound=np.integer[Any])
_UUID: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
HR_MIN_BPM: Final = 1
HR_MAX_BPM: Final = 300
MAX_IMPOSSIBLE_FRACTION: Final = 0.10


def readonly(arr: A) -> A:
    """Return a freshly built column as is.

    Columns are *not* flagged read-only: on the hot path the flag costs more than the rest of a small
    message's column work. Records are frozen by convention; consumers must copy before mutating.
    """
    return arr


def check_count(n: int, field: str, limit: int = MAX_SAMPLES) -> None:
    """Require ``1 <= n <= limit``: zero is ``schema_violation``, too many is ``too_many_samples``."""
    if n == 0:
        raise ContractError("schema_violation", f"{field} must not be empty")
    if n > limit:
        raise ContractError("too_many_samples", f"{field} has more than {limit} entries")


def parse_uuid(text: str, field: str) -> uuid.UUID:
    """Parse a canonical hyphenated UUID string (any case), else ``schema_violation``."""
    if _UUID.fullmatch(text) is None:
        raise ContractError("schema_violation", f"{field} must be a hyphenated UUID string")
    return uuid.UUID(text)


def check_device(payload_device: str, topic_device: str) -> None:
    """Payload ``device_id`` must be a valid id (``invalid_id``) equal to the topic's (``topic_mismatch``)."""
    if payload_device == topic_device:  # the topic's id is already validated
        return
    check_id(payload_device, "device_id")
    if payload_device != topic_device:
        raise ContractError("topic_mismatch", "payload device_id differs from the topic's device id")


def int_column(values: Sequence[int], field: str, lo: int, hi: int, dtype: type[S]) -> npt.NDArray[S]:
    """Convert a list of ints to ``dtype`` after checking ``lo <= v <= hi`` (``number_out_of_range``)."""
    try:
        arr = np.array(values, dtype=np.int64)
    except OverflowError:
        raise ContractError("number_out_of_range", f"{field} holds an integer beyond 64 bits") from None
    bad = (arr < lo) | (arr > hi)
    if bad.any():
        raise ContractError("number_out_of_range", f"{field}[{int(np.argmax(bad))}] outside {lo}..{hi}")
    return readonly(arr.astype(dtype))


def _bpm_values(values: Sequence[int | float], field: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Return bpm as float64 plus the integer-typed mask (slow path for lists holding floats or big ints)."""
    is_int = np.fromiter((type(v) is int for v in values), dtype=bool, count=len(values))
    try:
        arr = np.array(values, dtype=np.float64)
    except OverflowError:
        raise ContractError("number_out_of_range", f"{field} holds a number beyond float range") from None
    return arr, is_int


def _bpm_array(
    values: Sequence[int | float] | npt.NDArray[np.int64], field: str, all_int: bool
) -> tuple[npt.NDArray[np.int64] | npt.NDArray[np.float64], npt.NDArray[np.bool_] | None]:
    if isinstance(values, np.ndarray):
        return values, None
    if all_int:
        try:
            return np.asarray(values, dtype=np.int64), None
        except OverflowError:
            raise ContractError("number_out_of_range", f"{field} holds an integer beyond 64 bits") from None
    arr = np.array(values)
    if arr.dtype == np.int64:
        return arr, None
    return _bpm_values(values, field)


def build_heart_rate(
    msg_id: uuid.UUID, device_id: str, sent_at_ms: int, t_ms: npt.NDArray[np.int64],
    values: Sequence[int | float] | npt.NDArray[np.int64], field: str = "bpm", all_int: bool = False,
) -> HeartRate:
    """Apply the heart-rate rules and build a :class:`HeartRate`.

    Values outside int16 are ``number_out_of_range`` (whole message). Samples <= 0, > 300 bpm or not
    integer-typed (``72.5`` and also ``72.0``) are impossible and dropped; more than 10 % impossible is
    ``hr_impossible`` (whole message). 25-30 and 220-240 bpm are kept with ``suspect=True``. ``all_int``
    says the caller's decoder guaranteed Python ints (the fast path: one min/max instead of masks).
    """
    arr, is_int = _bpm_array(values, field, all_int)
    lo, hi = min_max(values if all_int and isinstance(values, list) else arr)
    if lo < -32768 or hi > 32767:
        out_of_range = (arr < -32768) | (arr > 32767)
        raise ContractError("number_out_of_range", f"{field}[{int(np.argmax(out_of_range))}] outside int16")
    t = t_ms
    if lo < HR_MIN_BPM or hi > HR_MAX_BPM or is_int is not None:
        impossible = (arr < HR_MIN_BPM) | (arr > HR_MAX_BPM)
        if is_int is not None:
            impossible |= ~is_int
        n_bad = int(impossible.sum())
        if n_bad > MAX_IMPOSSIBLE_FRACTION * arr.size:
            detail = f"{n_bad} of {arr.size} heart rates impossible (<=0, >300 or non-integer)"
            raise ContractError("hr_impossible", detail)
        if n_bad:
            arr, t = arr[~impossible], t_ms[~impossible]
            lo, hi = min_max(arr)
    bpm = arr.astype(np.int16)
    suspect = suspect_mask(bpm) if lo <= 30 or hi >= 220 else np.zeros(bpm.size, dtype=np.bool_)
    return HeartRate(msg_id, device_id, sent_at_ms, t, bpm, suspect)
