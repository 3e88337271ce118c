"""Constants, reason codes and the error type of the v1 wire contract.

Helper of :mod:`ingest.contract`; import the public names from there. Kept separate so that
:mod:`ingest.openmhealth` and the other ``contract_*`` helpers can share them without import cycles.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "BROKER_MAX_PACKET_BYTES",
    "CONTRACT_VERSION",
    "ID_PATTERN",
    "MAX_DEPTH",
    "MAX_EPISODES",
    "MAX_PAYLOAD_BYTES",
    "MAX_SAMPLES",
    "PUBLISH_OVERHEAD_BYTES",
    "REASON_CODES",
    "ContractError",
    "check_id",
]

CONTRACT_VERSION: Final = 1
#: Largest payload a gateway may publish (bytes). The one source of the size limits: the broker's packet limit
#: (:data:`BROKER_MAX_PACKET_BYTES`) is derived from it, and tests check deploy/mosquitto/mosquitto.conf, the
#: private test broker and docs/contract.md against these two numbers.
MAX_PAYLOAD_BYTES: Final = 256 * 1024
#: Room for the rest of an MQTT PUBLISH packet around the largest payload: fixed header (<= 5 bytes), topic
#: (2 + at most 147 bytes), packet id (2), and v5 properties (the contract allows at most 3 KiB of them).
PUBLISH_OVERHEAD_BYTES: Final = 4 * 1024
#: Mosquitto ``max_packet_size``: a payload at the contract limit on the longest topic always fits.
BROKER_MAX_PACKET_BYTES: Final = MAX_PAYLOAD_BYTES + PUBLISH_OVERHEAD_BYTES
MAX_SAMPLES: Final = 3600
MAX_EPISODES: Final = 32
#: Deepest JSON nesting any valid message needs is 5 (an Open mHealth array of sleep episodes); allow a margin.
MAX_DEPTH: Final = 8
ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")

REASON_CODES: Final = frozenset(
    {
        "malformed_json",
        "bad_encoding",
        "schema_violation",
        "non_finite_number",
        "number_out_of_range",
        "too_deep",
        "too_many_samples",
        "oversized",
        "duplicate_key",
        "ts_invalid",
        "ts_unit",
        "hr_impossible",
        "topic_mismatch",
        "invalid_id",
        "bad_text",
        "empty_payload",
        "unknown_stream",
        "not_storable",  # valid under its standard's schema, but the service cannot store it (docs/contract.md)
    }
)


class ContractError(Exception):
    """A message that breaks the wire contract.

    Parameters
    ----------
    reason : str
        One of :data:`REASON_CODES` (reliability_security.md section 5).
    detail : str
        Human-readable explanation naming fields and indexes only, never payload values, so it is safe to
        log and to store in the dead-letter table.
    """

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REASON_CODES:
            raise ValueError(f"unknown reason code {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def check_id(value: str, what: str) -> str:
    """Return ``value`` if it matches ``^[A-Za-z0-9_-]{1,64}$``, else raise ``invalid_id``.

    Parameters
    ----------
    value : str
        Candidate gateway or device id.
    what : str
        Name used in the error detail (the value itself is never echoed).
    """
    if ID_PATTERN.fullmatch(value) is None:
        raise ContractError("invalid_id", f"{what} must match ^[A-Za-z0-9_-]{{1,64}}$")
    return value
