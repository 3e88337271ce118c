"""Managers' routes: weekly flags, the week's summary and weekly reports of the token's own force.

What a manager may see is defined once, by the view ``risk.manager_flags`` (migration 060), which the weekly
report reads too: withdrawn officers are absent from their withdrawal on. ``/flags`` lists only officers named
to their manager (consent); everyone else appears only in ``/flags/summary``, whose numbers come from the same
disclosure-control step as the report (:mod:`risk.disclosure`) with the report's grouping by ISO week.

A manager token of force A on a force-B URL gets 403 before any query runs; and every query runs as
``fatigue_web_manager`` in a transaction bound to the token (``access.open_scope``), so row-level security
would return zero rows of force B even if the URL check were wrong. Each read writes an audit row in the same
transaction.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.responses import FileResponse
from pydantic import BaseModel

from risk.db import read_manager_flags
from risk.report import week_summary
from service.api_common import ID_PATTERN, Authenticated, State, confined_file, require_scope, scoped, table_exists
from service.audit import AuditEvent, record

__all__ = ["FlagOut", "ReportOut", "SummaryOut", "router"]

router = APIRouter(prefix="/v1/forces/{force_id}", tags=["managers"])
ForceId = Annotated[str, Path(pattern=ID_PATTERN, description="force id (must be the token's force)")]

_FLAGS_SQL = """
SELECT flag_id, participant_id, staff_ref, programme_week, week_start, week_end, overall_level, criteria,
       revision, issued_at
FROM risk.manager_flags
WHERE named AND force_id = %(force)s
  AND CASE WHEN %(week)s::date IS NULL
           THEN week_end > (SELECT max(week_end) - 7 FROM risk.manager_flags WHERE force_id = %(force)s)
           ELSE %(week)s::date BETWEEN week_start AND week_end END
ORDER BY week_start, overall_level, participant_id
"""
_LATEST_SQL = "SELECT max(week_end) FROM risk.manager_flags WHERE force_id = %s"
IsoWeek = Annotated[str | None, Query(pattern=r"^[0-9]{4}-W[0-9]{2}$",
                                      description="ISO week of the flags' week end, e.g. 2026-W11; default: latest")]


class FlagOut(BaseModel):
    """One current weekly flag of an officer who consented to be named to their manager."""

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


class SummaryOut(BaseModel):
    """One ISO week's numbers over all officers, as in the report; ``null`` = not shown (docs/security.md)."""

    iso_week: str
    officers: int
    levels: dict[str, int | None]
    flagged: int | None
    flagged_not_named: int | None
    revised: int | None
    mean_sleep_h: float | None


class ReportOut(BaseModel):
    """One weekly report of the force (download it at ``.../reports/{report_id}``)."""

    report_id: uuid.UUID
    iso_week: str
    week_start: date
    week_end: date
    n_officers: int
    created_at: datetime


_FLAGS = "/v1/forces/{force_id}/flags"
_SUMMARY = "/v1/forces/{force_id}/flags/summary"
_REPORTS = "/v1/forces/{force_id}/reports"
_REPORT = "/v1/forces/{force_id}/reports/{report_id}"


@router.get("/flags", response_model=list[FlagOut],
            summary="Current weekly flags of the named officers of the token's force")
def list_flags(force_id: ForceId, principal: Authenticated, st: State,
               week: Annotated[date | None, Query(description="a date inside the wanted programme week; "
                                                              "default: the latest week")] = None) -> list[FlagOut]:
    """Current flags of named officers whose week contains ``week`` (default: the latest week).

    Officers who did not consent to be named have no row here: they are counted in ``/flags/summary``.
    """
    require_scope(principal, "manager", st, _FLAGS, force_id=force_id)
    with scoped(st, principal) as conn:
        rows: list[tuple[Any, ...]] = []
        if table_exists(conn, "risk", "manager_flags"):
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


def _iso_bounds(iso_week: str) -> tuple[date, date]:
    year, week = int(iso_week[:4]), int(iso_week[6:])
    try:
        monday = date.fromisocalendar(year, week, 1)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"no ISO week {iso_week}") from exc
    return monday, date.fromordinal(monday.toordinal() + 6)


@router.get("/flags/summary", response_model=SummaryOut | None,
            summary="The week's counts over all officers, disclosure-controlled as in the report")
def flags_summary(force_id: ForceId, principal: Authenticated, st: State,
                  iso_week: IsoWeek = None) -> SummaryOut | None:
    """Counts per level, flagged, flagged but not named, revised and mean sleep of one ISO week (``null``
    when there are no flags yet); numbers that would reveal officers who are not named are ``null``."""
    require_scope(principal, "manager", st, _SUMMARY, force_id=force_id)
    with scoped(st, principal) as conn:
        out = None
        if iso_week is None and table_exists(conn, "risk", "manager_flags"):
            latest = conn.execute(_LATEST_SQL, (principal.force_id,)).fetchone()
            if latest and latest[0] is not None:
                y, w, _ = latest[0].isocalendar()
                iso_week = f"{y}-W{w:02d}"
        if iso_week is not None and table_exists(conn, "risk", "manager_flags"):
            first, last = _iso_bounds(iso_week)
            s = week_summary(read_manager_flags(conn, str(principal.force_id), first, last), iso_week)
            out = SummaryOut(iso_week=s.iso_week, officers=s.officers, levels=s.levels, flagged=s.flagged,
                             flagged_not_named=s.flagged_not_named, revised=s.revised, mean_sleep_h=s.mean_sleep_h)
        record(conn, AuditEvent(principal.token_id, principal.role, "read_summary", _SUMMARY, principal.force_id,
                                row_count=int(out is not None)))
    return out


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
