"""Administrators' routes: participants, devices, compliance, withdrawal and erasure, API tokens.

Queries run as ``fatigue_admin``. Staff references appear only on request (``include_identity=true``) and that
read is audited; token creation returns the token once and stores only its hash.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from compliance.db import read_view
from service.api_common import ID_PATTERN, Authenticated, State, require_role, scoped
from service.audit import AuditEvent, record
from service.auth import TokenError, create_token, list_tokens, parse_lifetime, revoke_token
from store import enrolment

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["administrators"])
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]


class ParticipantOut(BaseModel):
    """A participant; ``staff_ref`` is filled only when asked for with ``include_identity=true``."""

    participant_id: uuid.UUID
    force_id: str
    role_group: str
    age_band: str
    sex: str
    programme_start: date
    consent_manager: bool
    consent_research: bool
    withdrawn_at: datetime | None
    staff_ref: str | None = None


class DeviceOut(BaseModel):
    """A device and its current (or latest) assignment."""

    device_id: str
    participant_id: uuid.UUID | None
    valid_from: datetime | None
    valid_to: datetime | None


class WithdrawIn(BaseModel):
    """``erase=true`` also deletes every raw and derived row (irreversible; an audit row remains)."""

    erase: bool = False


class WithdrawOut(BaseModel):
    """What was done; ``rows_erased`` per table when erased."""

    participant_id: uuid.UUID
    withdrawn: bool
    erased: bool
    rows_erased: dict[str, int] = Field(default_factory=dict)


class TokenIn(BaseModel):
    """A token to mint: manager tokens name a force, researcher tokens a project, admin tokens neither."""

    role: Literal["manager", "researcher", "admin"]
    force_id: str | None = Field(default=None, pattern=ID_PATTERN)
    project: str | None = Field(default=None, pattern=ID_PATTERN)
    lifetime: str = Field(default="30d", pattern=r"^[1-9][0-9]{0,4}[hdw]$")
    label: str = Field(default="", max_length=200, pattern=r"^[^\x00-\x1f]*$")


class TokenOut(BaseModel):
    """A token's metadata; ``token`` is present only in the response that created it."""

    token_id: uuid.UUID
    role: str
    force_id: str | None
    project: str | None
    label: str
    created_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    token: str | None = None


_PARTICIPANTS = "/v1/admin/participants"
_WITHDRAW = "/v1/admin/participants/{participant_id}/withdraw"
_TOKENS = "/v1/admin/tokens"
_COMPLIANCE = "/v1/admin/compliance"

_PARTICIPANTS_SQL = """
SELECT p.participant_id, p.force_id, p.role_group, p.age_band, p.sex, p.programme_start, p.consent_manager,
       p.consent_research, p.withdrawn_at, CASE WHEN %(ident)s THEN i.staff_ref END
FROM core.participants p LEFT JOIN core.identities i ON i.participant_id = p.participant_id
WHERE %(force)s::text IS NULL OR p.force_id = %(force)s
ORDER BY p.force_id, p.participant_id LIMIT %(limit)s OFFSET %(offset)s
"""


@router.get("/participants", response_model=list[ParticipantOut], summary="List participants")
def list_participants(principal: Authenticated, st: State,
                      force_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
                      include_identity: bool = False, limit: Limit = 100, offset: Offset = 0) -> list[ParticipantOut]:
    """Participants, optionally of one force; staff references only with ``include_identity``."""
    require_role(principal, "admin", st, _PARTICIPANTS)
    with scoped(st, principal) as conn:
        rows = conn.execute(_PARTICIPANTS_SQL, {"ident": include_identity, "force": force_id, "limit": limit,
                                                "offset": offset}).fetchall()
        action = "read_identities" if include_identity else "read_participants"
        record(conn, AuditEvent(principal.token_id, principal.role, action, _PARTICIPANTS, force_id,
                                row_count=len(rows)))
    keys = list(ParticipantOut.model_fields)
    return [ParticipantOut(**dict(zip(keys, r, strict=True))) for r in rows]


@router.get("/devices", response_model=list[DeviceOut], summary="List devices and current assignments")
def list_devices(principal: Authenticated, st: State, limit: Limit = 100, offset: Offset = 0) -> list[DeviceOut]:
    """Devices with their latest assignment (participant and validity interval)."""
    require_role(principal, "admin", st, "/v1/admin/devices")
    with scoped(st, principal) as conn:
        rows = conn.execute(
            "SELECT d.device_id, a.participant_id, a.valid_from, a.valid_to FROM core.devices d "
            "LEFT JOIN LATERAL (SELECT * FROM core.device_assignments x WHERE x.device_id = d.device_id "
            "ORDER BY x.valid_from DESC LIMIT 1) a ON true ORDER BY d.device_id LIMIT %s OFFSET %s",
            (limit, offset)).fetchall()
        record(conn, AuditEvent(principal.token_id, principal.role, "read_devices", "/v1/admin/devices",
                                row_count=len(rows)))
    return [DeviceOut(device_id=r[0], participant_id=r[1], valid_from=r[2], valid_to=r[3]) for r in rows]


class ComplianceOut(BaseModel):
    """One participant's latest compliance evaluation (``fatigue compliance``); see compliance/rules.py."""

    force_id: str
    participant_id: uuid.UUID
    staff_ref: str | None = None
    device_id: str | None
    level: Literal["ok", "watch", "lapsed"]
    reasons: list[str]
    last_seen_ts: datetime | None
    silent_h: float | None
    last_worn_ts: datetime | None
    battery_pct: int | None
    worn: bool | None
    online: bool | None
    wear_h_today: float | None
    wear_h_7d: float | None
    nights_sleep_7d: int
    valid_nights_7d: int
    expected_nights_7d: int
    days_since_valid_night: int | None
    last_hr_ts: datetime | None
    last_rr_ts: datetime | None
    last_sleep_ts: datetime | None
    last_status_ts: datetime | None
    last_survey_ts: datetime | None
    gateway_id: str | None
    evaluated_at: datetime


@router.get("/compliance", response_model=list[ComplianceOut], summary="Programme compliance, worst first")
def get_compliance(principal: Authenticated, st: State,
                   force_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
                   level: Annotated[list[Literal["ok", "watch", "lapsed"]] | None, Query()] = None,
                   include_identity: bool = False, limit: Limit = 100, offset: Offset = 0) -> list[ComplianceOut]:
    """Last message per stream, battery, wear, valid nights and level; staff references with ``include_identity``."""
    require_role(principal, "admin", st, _COMPLIANCE)
    with scoped(st, principal) as conn:
        rows = read_view(conn, force_id=force_id, names=include_identity, levels=level or ("ok", "watch", "lapsed"),
                         limit=limit, offset=offset)
        action = "read_compliance_identities" if include_identity else "read_compliance"
        record(conn, AuditEvent(principal.token_id, principal.role, action, _COMPLIANCE, force_id,
                                row_count=len(rows)))
    return [ComplianceOut(**r) for r in rows]


@router.post("/participants/{participant_id}/withdraw", response_model=WithdrawOut,
             summary="Withdraw a participant (optionally erase their data)")
def withdraw(participant_id: uuid.UUID, principal: Authenticated, st: State,
             body: WithdrawIn | None = None) -> WithdrawOut:
    """Withdraw now; with ``erase`` delete all their rows (store.enrolment)."""
    require_role(principal, "admin", st, _WITHDRAW)
    erase = bool(body and body.erase)
    with scoped(st, principal) as conn:
        row = conn.execute("SELECT force_id FROM core.participants WHERE participant_id = %s",
                           (participant_id,)).fetchone()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such participant")
        counts: dict[str, int] = {}
        if erase:
            counts = enrolment.erase_participant(conn, participant_id, requested_by="api-admin")
        else:
            enrolment.withdraw_participant(conn, participant_id)
        record(conn, AuditEvent(principal.token_id, principal.role, "erase" if erase else "withdraw", _WITHDRAW,
                                str(row[0]), row_count=sum(counts.values()) if erase else 1))
    return WithdrawOut(participant_id=participant_id, withdrawn=True, erased=erase, rows_erased=counts)


def _token_out(info: Any) -> TokenOut:
    return TokenOut(token_id=info.token_id, role=info.role, force_id=info.force_id, project=info.project,
                    label=info.label, created_at=info.created_at, expires_at=info.expires_at,
                    revoked_at=info.revoked_at)


@router.get("/tokens", response_model=list[TokenOut], summary="List API tokens (no secrets)")
def get_tokens(principal: Authenticated, st: State) -> list[TokenOut]:
    """Every token's id, role, scope, label and times."""
    require_role(principal, "admin", st, _TOKENS)
    with scoped(st, principal) as conn:
        infos = list_tokens(conn)
        record(conn, AuditEvent(principal.token_id, principal.role, "list_tokens", _TOKENS, row_count=len(infos)))
    return [_token_out(i) for i in infos]


@router.post("/tokens", response_model=TokenOut, status_code=status.HTTP_201_CREATED, summary="Mint a token")
def post_token(body: TokenIn, principal: Authenticated, st: State) -> TokenOut:
    """Create a token; the response carries it once (only its SHA-256 is stored)."""
    require_role(principal, "admin", st, _TOKENS)
    try:
        lifetime = parse_lifetime(body.lifetime)
        with scoped(st, principal) as conn:
            token_id, token = create_token(conn, body.role, lifetime, force_id=body.force_id,
                                           project=body.project, label=body.label)
            record(conn, AuditEvent(principal.token_id, principal.role, "create_token", _TOKENS, body.force_id,
                                    body.project, row_count=1))
    except TokenError as exc:
        raise HTTPException(422, str(exc)) from exc
    return TokenOut(token_id=token_id, role=body.role, force_id=body.force_id, project=body.project,
                    label=body.label, token=token)


@router.post("/tokens/{token_id}/revoke", response_model=TokenOut, summary="Revoke a token")
def post_revoke(token_id: uuid.UUID, principal: Authenticated, st: State) -> TokenOut:
    """Revoke now; 404 when there is no such unrevoked token."""
    require_role(principal, "admin", st, _TOKENS)
    with scoped(st, principal) as conn:
        done = revoke_token(conn, token_id)
        record(conn, AuditEvent(principal.token_id, principal.role, "revoke_token", _TOKENS, row_count=int(done)))
        info = next((i for i in list_tokens(conn) if i.token_id == token_id), None) if done else None
    if info is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such active token")
    return _token_out(info)
