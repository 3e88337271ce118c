"""Managers' routes: weekly flags and weekly reports of the token's own force.

A manager token of force A on a force-B URL gets 403 before any query runs; and every query runs as
``fatigue_manager`` with ``fatigue.force_id`` taken from the token, so row-level security would return zero
rows of force B even if the URL check were wrong. Each read writes an audit row in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.responses import FileResponse
from pydantic import BaseModel

from service.api_common import ID_PATTERN, Authenticated, State, confined_file, require_scope, scoped, table_exists
from service.audit import AuditEvent, record

__all__ = ["FlagOut", "ReportOut", "router"]

router = APIRouter(prefix="/v1/forces/{force_id}", tags=["managers"])
ForceId = Annotated[str, Path(pattern=ID_PATTERN, description="force id (must be the token's force)")]

_FLAGS_SQL = """
SELECT f.flag_id, f.participant_id, i.staff_ref, f.programme_week, f.week_start, f.week_end, f.overall_level,
       f.criteria, f.revision, f.issued_at
FROM risk.weekly_flags f
JOIN core.participants p ON p.participant_id = f.participant_id
LEFT JOIN core.identities i ON i.participant_id = f.participant_id AND p.consent_manager
WHERE f.is_current AND f.force_id = %(force)s
  AND CASE WHEN %(week)s::date IS NULL
           THEN f.week_end > (SELECT max(week_end) - 7 FROM risk.weekly_flags
                              WHERE is_current AND force_id = %(force)s)
           ELSE %(week)s::date BETWEEN f.week_start AND f.week_end END
ORDER BY f.week_start, f.overall_level, f.participant_id
"""


class FlagOut(BaseModel):
    """One current weekly flag; ``staff_ref`` only for officers who consented to be named to managers."""

    flag_id: uuid.UUID
    participant_id: uuid.UUID
    staff_ref: str | None
    programme_week: int
    week_start: date
    week_end: date
    overall_level: str
    criteria: dict[str, Any] | list[Any]
    revision: int
    issued_at: datetime


class ReportOut(BaseModel):
    """One weekly report of the force (download it at ``.../reports/{report_id}``)."""

    report_id: uuid.UUID
    iso_week: str
    week_start: date
    week_end: date
    n_officers: int
    created_at: datetime


_FLAGS = "/v1/forces/{force_id}/flags"
_REPORTS = "/v1/forces/{force_id}/reports"
_REPORT = "/v1/forces/{force_id}/reports/{report_id}"


@router.get("/flags", response_model=list[FlagOut], summary="Current weekly flags of the token's force")
def list_flags(force_id: ForceId, principal: Authenticated, st: State,
               week: Annotated[date | None, Query(description="a date inside the wanted programme week; "
                                                              "default: the latest week")] = None) -> list[FlagOut]:
    """Current-revision flags of the force whose week contains ``week`` (default: the latest week)."""
    require_scope(principal, "manager", st, _FLAGS, force_id=force_id)
    with scoped(st, principal) as conn:
        rows: list[tuple[Any, ...]] = []
        if table_exists(conn, "risk", "weekly_flags"):
            rows = conn.execute(_FLAGS_SQL, {"force": principal.force_id, "week": week}).fetchall()
        flags = [FlagOut(flag_id=r[0], participant_id=r[1], staff_ref=r[2], programme_week=r[3], week_start=r[4],
                         week_end=r[5], overall_level=r[6], criteria=r[7], revision=r[8], issued_at=r[9])
                 for r in rows]
        record(conn, AuditEvent(principal.token_id, principal.role, "read_flags", _FLAGS, principal.force_id,
                                row_count=len(flags)))
        named = sum(1 for f in flags if f.staff_ref is not None)
        if named:
            record(conn, AuditEvent(principal.token_id, principal.role, "read_identities", _FLAGS,
                                    principal.force_id, row_count=named))
    return flags


@router.get("/reports", response_model=list[ReportOut], summary="Weekly reports of the token's force")
def list_reports(force_id: ForceId, principal: Authenticated, st: State) -> list[ReportOut]:
    """The force's weekly reports, newest first."""
    require_scope(principal, "manager", st, _REPORTS, force_id=force_id)
    with scoped(st, principal) as conn:
        rows: list[tuple[Any, ...]] = []
        if table_exists(conn, "risk", "reports"):
            rows = conn.execute(
                "SELECT report_id, iso_week, week_start, week_end, n_officers, created_at FROM risk.reports "
                "WHERE force_id = %s ORDER BY iso_week DESC, created_at DESC", (principal.force_id,)).fetchall()
        record(conn, AuditEvent(principal.token_id, principal.role, "list_reports", _REPORTS, principal.force_id,
                                row_count=len(rows)))
    return [ReportOut(report_id=r[0], iso_week=r[1], week_start=r[2], week_end=r[3], n_officers=r[4],
                      created_at=r[5]) for r in rows]


@router.get("/reports/{report_id}", response_class=FileResponse, summary="Download a weekly report (HTML)",
            responses={200: {"content": {"text/html": {}}}, 404: {"description": "no such report"}})
def download_report(force_id: ForceId, report_id: uuid.UUID, principal: Authenticated, st: State) -> FileResponse:
    """The report's HTML file, when the report belongs to the token's force and the file exists."""
    require_scope(principal, "manager", st, _REPORT, force_id=force_id)
    with scoped(st, principal) as conn:
        row = None
        if table_exists(conn, "risk", "reports"):
            row = conn.execute("SELECT html_path FROM risk.reports WHERE report_id = %s AND force_id = %s",
                               (report_id, principal.force_id)).fetchone()
        path = confined_file(st.outbox_dir, str(row[0])) if row else None
        record(conn, AuditEvent(principal.token_id, principal.role, "download_report", _REPORT,
                                principal.force_id, row_count=int(path is not None)))
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such report")
    return FileResponse(path, media_type="text/html", filename=path.name)
