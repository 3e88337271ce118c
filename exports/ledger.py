"""The export ledger's hash chain (pure functions; the SQL lives in :mod:`exports.db`).

``entry_hash = SHA-256(prev_hash + "\\n" + canonical_json(content))`` where ``content`` holds every other
column of the row (``seq`` and ``requested_at`` in UTC ISO 8601 with microseconds included) and
``canonical_json`` is ``json.dumps(sort_keys=True, separators=(",", ":"))``. The first entry's ``prev_hash``
is 64 zeros. Changing, removing or reordering any row breaks every later hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["GENESIS", "LedgerEntry", "chain_errors", "entry_hash"]

GENESIS = "0" * 64


@dataclass(frozen=True)
class LedgerEntry:
    """One row of ``exports.export_ledger``."""

    seq: int
    requested_at: datetime
    requester: str
    approver: str | None
    project: str
    policy_version: str
    key_version: int
    row_counts: dict[str, int]
    k_achieved: int
    suppression: dict[str, int]
    file_hashes: dict[str, str]
    prev_hash: str
    entry_hash: str = ""

    def content(self) -> dict[str, Any]:
        """Every hashed field (all but ``prev_hash`` and ``entry_hash``), JSON-ready."""
        data = asdict(self)
        data.pop("prev_hash")
        data.pop("entry_hash")
        data["requested_at"] = self.requested_at.astimezone(UTC).isoformat(timespec="microseconds")
        return data


def entry_hash(entry: LedgerEntry) -> str:
    """Hex SHA-256 of ``prev_hash``, a newline and the canonical JSON of the entry's content."""
    canonical = json.dumps(entry.content(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(f"{entry.prev_hash}\n{canonical}".encode()).hexdigest()


def chain_errors(entries: list[LedgerEntry]) -> list[str]:
    """Check a whole ledger in ``seq`` order; returns one message per broken link (empty = chain verifies)."""
    errors: list[str] = []
    prev = GENESIS
    for expected_seq, entry in enumerate(entries, start=1):
        if entry.seq != expected_seq:
            errors.append(f"entry {entry.seq}: expected seq {expected_seq} (a row is missing or reordered)")
        if entry.prev_hash != prev:
            errors.append(f"entry {entry.seq}: prev_hash does not match the previous entry_hash")
        if entry_hash(entry) != entry.entry_hash:
            errors.append(f"entry {entry.seq}: entry_hash does not match its content")
        prev = entry.entry_hash
    return errors
