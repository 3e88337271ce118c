"""Audit log: one ``access.audit_log`` row per read of identities, flags, reports and exports, and per
administrative action (reliability_security.md 2.4).

A row says who (token id and role; never the token), what (the route template, not the URL, and an action
word), which force or project, when, whether it was allowed, and how many rows were returned or changed. It
holds no personal data. Application roles may INSERT only; nobody but the owner may UPDATE or DELETE.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

__all__ = ["AuditEvent", "record"]


@dataclass(frozen=True)
class AuditEvent:
    """What to record; ``resource`` is a route template such as ``/v1/forces/{force_id}/flags``."""

    token_id: uuid.UUID | None
    role: str
    action: str
    resource: str
    force_id: str | None = None
    project: str | None = None
    row_count: int = 0
    allowed: bool = True


def record(conn: psycopg.Connection[Any], event: AuditEvent) -> None:
    """Insert one audit row in the caller's transaction (so a read and its audit row commit together)."""
    conn.execute(
        "INSERT INTO access.audit_log (token_id, role, action, resource, force_id, project, outcome, row_count) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (event.token_id, event.role, event.action, event.resource, event.force_id, event.project,
         "allowed" if event.allowed else "denied", event.row_count))
