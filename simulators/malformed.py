"""Malformed messages with a known reason code (reliability_security.md section 5, bad-input catalogue).

Each one is derived from a well-formed ``hr`` payload, so it looks like real traffic apart from the one
defect. The reason code it must be dead-lettered with is the key of :data:`MUTATORS`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from simulators.params import MALFORMED_REASONS

__all__ = ["MUTATORS", "malform"]

_OTHER_DEVICE = "WR99999Z"


def _obj(payload: bytes, msg_id: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(payload)
    obj["msg_id"] = msg_id
    return obj


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _truncated(obj: dict[str, Any]) -> bytes:
    text = _dump(obj)
    return text[: len(text) // 2]


def _nan(obj: dict[str, Any]) -> bytes:
    obj["bpm"][0] = float("nan")
    return _dump(obj)


def _wrong_type(obj: dict[str, Any]) -> bytes:
    obj["bpm"][0] = str(obj["bpm"][0])
    return _dump(obj)


def _naive(obj: dict[str, Any]) -> bytes:
    when = datetime.fromtimestamp(obj["sent_at"] / 1000, tz=UTC).replace(tzinfo=None)
    obj["sent_at"] = when.isoformat(timespec="seconds")
    return _dump(obj)


def _seconds(obj: dict[str, Any]) -> bytes:
    obj["sent_at"] = obj["sent_at"] // 1000
    return _dump(obj)


def _too_many(obj: dict[str, Any]) -> bytes:
    t0, bpm0 = obj["t"][0], obj["bpm"][0]
    obj["t"] = [t0 + 1000 * i for i in range(3601)]
    obj["bpm"] = [bpm0] * 3601
    return _dump(obj)


def _mismatch(obj: dict[str, Any]) -> bytes:
    obj["device_id"] = _OTHER_DEVICE
    return _dump(obj)


def _duplicate_key(obj: dict[str, Any]) -> bytes:
    text = _dump(obj)
    return text.replace(b'{"schema":', b'{"schema":"hr/1","schema":', 1)


def _empty(obj: dict[str, Any]) -> bytes:
    return b""


MUTATORS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "malformed_json": _truncated,
    "non_finite_number": _nan,
    "schema_violation": _wrong_type,
    "ts_invalid": _naive,
    "ts_unit": _seconds,
    "too_many_samples": _too_many,
    "topic_mismatch": _mismatch,
    "duplicate_key": _duplicate_key,
    "empty_payload": _empty,
}
assert tuple(MUTATORS) == MALFORMED_REASONS


def malform(payload: bytes, msg_id: str, reason: str) -> bytes:
    """Break a well-formed ``hr/1`` payload so that decoding fails with ``reason``.

    Parameters
    ----------
    payload : bytes
        Canonical JSON from :func:`ingest.contract.encode` of a heart-rate record.
    msg_id : str
        The malformed message's own id (hyphenated UUID).
    reason : str
        One of :data:`simulators.params.MALFORMED_REASONS`.

    Returns
    -------
    bytes
        The malformed payload (same topic as the original).
    """
    return MUTATORS[reason](_obj(payload, msg_id))
