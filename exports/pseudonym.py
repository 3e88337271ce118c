"""Keyed pseudonyms for research exports (reliability_security.md 1.4 and 1.9).

- ``K_project = HMAC-SHA-256(master_key, "fatigue-export:project:" + project + ":v" + key_version)``:
  one key per research project and key version, derived from the master pseudonym key (which never leaves
  the service); destroying or rotating the master key (or bumping the version) breaks every linkage.
- ``pid = base32(HMAC-SHA-256(K_project, participant_uuid.bytes)[:16])`` without padding: 128 bits written as
  26 characters ``A-Z2-7``. Stable for one project and key version, unlinkable across projects without the key.
  Never a plain hash and never derived from the staff reference.
- Forces (only released when every force has >= k participants) get a keyed code
  ``"force_" + base32(HMAC(K_project, "force:" + force_id))[:6].lower()``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

__all__ = ["PID_RE", "force_code", "project_key", "pseudonym", "pseudonymise"]

PID_RE = re.compile(r"^[A-Z2-7]{26}$")
_MIN_MASTER_BYTES = 16


def project_key(master_key: bytes, project: str, key_version: int) -> bytes:
    """Derive the per-project pseudonym key.

    Parameters
    ----------
    master_key : bytes
        The master pseudonym key (``FATIGUE_PSEUDONYM_KEY``), at least 16 bytes.
    project : str
        Research project name (non-empty).
    key_version : int
        Key version recorded in the ledger (>= 1).

    Returns
    -------
    bytes
        32-byte HMAC-SHA-256 of ``"fatigue-export:project:<project>:v<key_version>"`` under ``master_key``.
    """
    if len(master_key) < _MIN_MASTER_BYTES:
        raise ValueError("the master pseudonym key must be at least 16 bytes")
    if not project or key_version < 1:
        raise ValueError("project must be non-empty and key_version >= 1")
    label = f"fatigue-export:project:{project}:v{key_version}".encode()
    return hmac.new(master_key, label, hashlib.sha256).digest()


def pseudonym(key: bytes, participant_id: uuid.UUID | str) -> str:
    """Pseudonym of one participant: base32 of the first 128 bits of ``HMAC-SHA-256(key, uuid.bytes)``."""
    raw = uuid.UUID(str(participant_id)).bytes
    digest = hmac.new(key, raw, hashlib.sha256).digest()[:16]
    return base64.b32encode(digest).decode("ascii").rstrip("=")


def pseudonymise(key: bytes, participant_ids: Iterable[uuid.UUID | str]) -> npt.NDArray[np.object_]:
    """Pseudonyms of many participants (one HMAC each; about 1 s per million on one core)."""
    return np.array([pseudonym(key, p) for p in participant_ids], dtype=object)


def force_code(key: bytes, force_id: str) -> str:
    """Keyed per-project force code, e.g. ``force_k3jq2a``."""
    digest = hmac.new(key, f"force:{force_id}".encode(), hashlib.sha256).digest()
    return "force_" + base64.b32encode(digest).decode("ascii")[:6].lower()
