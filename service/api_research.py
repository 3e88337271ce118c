"""Researchers' routes: request an anonymised export of the token's project, follow it, download its files.

A request is a row in ``access.export_requests`` with status ``requested``. Once an administrator approves it
(``fatigue export-requests approve``), the ``fatigue serve`` scheduler fulfils it (:mod:`exports.fulfil`): the
export is written to its own folder under the exports folder (``FATIGUE_EXPORTS_DIR``, never the managers'
outbox), recorded in the ledger, and the request moves to ``done`` with the files' paths relative to the exports
folder; each downloaded file's SHA-256 equals the ledger's. Queries run as
``fatigue_researcher`` with ``fatigue.project`` from the token, so row-level security limits them to the
token's project. Every read and download writes an audit row.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from service.api_common import ID_PATTERN, Authenticated, State, confined_file, require_scope, scoped
from service.audit import AuditEvent, record

__all__ = ["ExportIn", "ExportOut", "router"]

router = APIRouter(prefix="/v1/projects/{project}/exports", tags=["researchers"])
Project = Annotated[str, Path(pattern=ID_PATTERN, description="research project (must be the token's)")]

_COLUMNS = "request_id, project, status, description, cardinality(files), detail, requested_at, updated_at"
_LIST = "/v1/projects/{project}/exports"
_ONE = "/v1/projects/{project}/exports/{request_id}"
_FILE = "/v1/projects/{project}/exports/{request_id}/files/{index}"


class ExportIn(BaseModel):
    """An export request; the description says what the export is for (no personal data)."""

    description: str = Field(default="", max_length=500, pattern=r"^[^\x00-\x1f]*$")


class ExportOut(BaseModel):
    """An export request and its state; ``n_files`` files can be downloaded once ``status`` is ``done``."""

    request_id: uuid.UUID
    project: str
    status: str
    description: str
    n_files: int
    detail: str | None
    requested_at: datetime
    updated_at: datetime


def _out(row: tuple[Any, ...]) -> ExportOut:
    return ExportOut(request_id=row[0], project=row[1], status=row[2], description=row[3], n_files=row[4],
                     detail=row[5], requested_at=row[6], updated_at=row[7])


@router.post("", response_model=ExportOut, status_code=status.HTTP_201_CREATED, summary="Request an export")
def request_export(project: Project, principal: Authenticated, st: State, body: ExportIn | None = None) -> ExportOut:
    """Record an export request for the token's project (fulfilled later by the export job)."""
    require_scope(principal, "researcher", st, _LIST, project=project)
    with scoped(st, principal) as conn:
        row = conn.execute(
            f"INSERT INTO access.export_requests (project, requested_by, description) VALUES (%s, %s, %s) "
            f"RETURNING {_COLUMNS}", (principal.project, principal.token_id, body.description if body else "")
        ).fetchone()
        assert row is not None
        record(conn, AuditEvent(principal.token_id, principal.role, "request_export", _LIST,
                                project=principal.project, row_count=1))
    return _out(row)


@router.get("", response_model=list[ExportOut], summary="Export requests of the token's project")
def list_exports(project: Project, principal: Authenticated, st: State) -> list[ExportOut]:
    """All export requests of the project, newest first."""
    require_scope(principal, "researcher", st, _LIST, project=project)
    with scoped(st, principal) as conn:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM access.export_requests WHERE project = %s "
                            "ORDER BY requested_at DESC", (principal.project,)).fetchall()
        record(conn, AuditEvent(principal.token_id, principal.role, "list_exports", _LIST,
                                project=principal.project, row_count=len(rows)))
    return [_out(r) for r in rows]


@router.get("/{request_id}", response_model=ExportOut, summary="State of one export request")
def get_export(project: Project, request_id: uuid.UUID, principal: Authenticated, st: State) -> ExportOut:
    """One export request of the project (404 when it is not the project's)."""
    require_scope(principal, "researcher", st, _ONE, project=project)
    with scoped(st, principal) as conn:
        row = conn.execute(f"SELECT {_COLUMNS} FROM access.export_requests WHERE request_id = %s AND project = %s",
                           (request_id, principal.project)).fetchone()
        record(conn, AuditEvent(principal.token_id, principal.role, "read_export", _ONE,
                                project=principal.project, row_count=int(row is not None)))
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such export request")
    return _out(row)


@router.get("/{request_id}/files/{index}", response_class=FileResponse, summary="Download one export file",
            responses={200: {"content": {"application/octet-stream": {}}}, 404: {"description": "no such file"},
                       409: {"description": "the export is not done yet"}})
def download_export(project: Project, request_id: uuid.UUID, index: Annotated[int, Path(ge=0, le=10_000)],
                    principal: Authenticated, st: State) -> FileResponse:
    """File number ``index`` (from 0) of a finished export of the project."""
    require_scope(principal, "researcher", st, _FILE, project=project)
    with scoped(st, principal) as conn:
        row = conn.execute("SELECT status, files FROM access.export_requests WHERE request_id = %s "
                           "AND project = %s", (request_id, principal.project)).fetchone()
        done = row is not None and row[0] == "done"
        files: list[str] = list(row[1]) if done and row is not None else []
        path = confined_file(st.exports_dir, files[index]) if index < len(files) else None
        record(conn, AuditEvent(principal.token_id, principal.role, "download_export", _FILE,
                                project=principal.project, row_count=int(path is not None)))
    if row is not None and not done:
        raise HTTPException(status.HTTP_409_CONFLICT, f"export is {row[0]}, not done")
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such export file")
    return FileResponse(path, media_type="application/octet-stream", filename=path.name)
