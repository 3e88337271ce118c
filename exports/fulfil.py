"""Fulfilment of researchers' approved export requests (run by the ``fatigue serve`` scheduler).

A request (``access.export_requests``) made over the API waits in ``requested`` until an administrator approves
it (``fatigue export-requests approve``). The scheduler then, for each approved request that is due:

1. takes a session advisory lock on the request (a second scheduler skips it) and marks it ``running``;
2. delivers the export into its own folder ``<exports dir>/<project>/<request id>/`` -- never the managers'
   outbox. If that folder is already there and verifies against the ledger (an earlier attempt recorded it and
   stopped before step 3), the existing export is attached instead of running a second one; a folder that
   does not verify (an attempt that died before its ledger entry committed) is removed and the export runs;
3. moves the request to ``done`` with the ledger sequence number (``export_seq``) and the files' paths
   relative to the exports folder, which the API serves to the project's researchers.

A policy refusal (:class:`exports.policy.ExportRefusedError`) or a malformed request is final (``failed``, the
reason in ``detail``); any other error is retried with exponential back-off, the request back in
``requested`` with the error class in ``detail``. Without a pseudonym key nothing can be exported: approved
requests wait, and say so in ``detail``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import structlog
from prometheus_client import Counter
from psycopg.types.json import Jsonb

from exports.job import ExportRequest, run_export, verify_delivery
from exports.policy import ExportRefusedError
from exports.publisher import file_sha256

__all__ = ["FulfilConfig", "FulfilTally", "approve_request", "fulfil_due", "reject_request"]

log = structlog.get_logger("exports.fulfil")
Conn = psycopg.Connection[Any]
FULFILLED = Counter("fatigue_export_requests_fulfilled", "Approved export requests fulfilled", ("how",))
FULFIL_FAILURES = Counter("fatigue_export_request_failures", "Export request attempts that failed", ("error",))


@dataclass(frozen=True)
class FulfilConfig:
    """Where exports go and with which key (from the settings)."""

    database_url: str
    exports_dir: Path
    master_key: bytes | None = field(default=None, repr=False)
    key_version: int = 1
    fmt: str = "parquet"
    retry_base_s: float = 60.0
    retry_max_s: float = 3600.0


@dataclass
class FulfilTally:
    """What one :func:`fulfil_due` call did (request ids only; no personal data)."""

    done: list[str] = field(default_factory=list)
    attached: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    waiting: int = 0


_DUE = """
SELECT request_id::text, project, requested_by::text, approved_by, attempts FROM access.export_requests
WHERE approved_at IS NOT NULL AND status IN ('requested', 'running')
  AND coalesce(next_attempt_at, '-infinity') <= now()
ORDER BY approved_at, request_id
"""


def _set(conn: Conn, request_id: str, sql_set: str, params: tuple[Any, ...] = ()) -> None:
    conn.execute(f"UPDATE access.export_requests SET {sql_set}, updated_at = now() WHERE request_id = %s::uuid",
                 (*params, request_id))


def _attachable(cfg: FulfilConfig, conn: Conn, out: Path, project: str) -> int | None:
    """The ledger seq of a complete earlier delivery of this request in ``out``, else None (``out`` removed).

    Exports are deterministic, so identical files may match several entries; the latest one of the project is
    the one this request's earlier attempt appended.
    """
    if not out.exists():
        return None
    check = verify_delivery(cfg.database_url, out)
    if check.ok:
        hashes = {p.name: file_sha256(p) for p in sorted(out.iterdir()) if p.is_file()}
        row = conn.execute("SELECT max(seq) FROM exports.export_ledger WHERE project = %s AND file_hashes = %s",
                           (project, Jsonb(hashes))).fetchone()
        if row is not None and row[0] is not None:
            return int(row[0])
    log.warning("fulfil.partial_folder_removed", problems=len(check.problems))
    shutil.rmtree(out)
    return None


def _fulfil_one(conn: Conn, cfg: FulfilConfig, row: tuple[Any, ...], tally: FulfilTally) -> None:
    request_id, project, requested_by, approver, attempts = row
    assert cfg.master_key is not None
    _set(conn, request_id, "status = 'running', detail = 'export running'")
    out = cfg.exports_dir / project / request_id
    try:
        seq = _attachable(cfg, conn, out, project)
        how = "attached" if seq is not None else "ran"
        if seq is None:
            result = run_export(cfg.database_url, ExportRequest(
                project, out, cfg.master_key, cfg.key_version, f"researcher-token:{requested_by}",
                fmt=cfg.fmt, approver=approver))
            seq = result.ledger_seq
    except (ExportRefusedError, ValueError) as exc:
        _set(conn, request_id, "status = 'failed', detail = %s", (str(exc)[:500],))
        FULFIL_FAILURES.labels(exc.__class__.__name__).inc()
        tally.failed.append(request_id)
        log.warning("fulfil.refused", request=request_id, error=exc.__class__.__name__)
        return
    except Exception as exc:  # retried with back-off; other requests carry on
        wait = min(cfg.retry_max_s, cfg.retry_base_s * 2.0 ** min(int(attempts), 30))
        _set(conn, request_id, "status = 'requested', attempts = attempts + 1, "
                               "next_attempt_at = now() + make_interval(secs => %s), detail = %s",
             (wait, f"approved; retrying after {exc.__class__.__name__}"))
        FULFIL_FAILURES.labels(exc.__class__.__name__).inc()
        tally.retrying.append(request_id)
        log.warning("fulfil.failed", request=request_id, error=exc.__class__.__name__, retry_in_s=wait)
        return
    files = sorted(str(p.relative_to(cfg.exports_dir)) for p in out.iterdir() if p.is_file())
    _set(conn, request_id, "status = 'done', export_seq = %s, files = %s, detail = %s",
         (seq, files, f"{len(files)} files; ledger entry {seq}"))
    FULFILLED.labels(how).inc()
    (tally.attached if how == "attached" else tally.done).append(request_id)
    log.info("fulfil.done", request=request_id, ledger_seq=seq, files=len(files), how=how)


def fulfil_due(cfg: FulfilConfig) -> FulfilTally:
    """Fulfil every approved, due export request not being fulfilled by another scheduler."""
    tally = FulfilTally()
    with psycopg.connect(cfg.database_url, autocommit=True, connect_timeout=10) as conn:
        due = conn.execute(_DUE).fetchall()
        if due and cfg.master_key is None:
            conn.execute("UPDATE access.export_requests SET detail = %s, updated_at = now() "
                         "WHERE approved_at IS NOT NULL AND status = 'requested' AND detail IS DISTINCT FROM %s",
                         (_NO_KEY, _NO_KEY))
            log.warning("fulfil.no_pseudonym_key", waiting=len(due),
                        todo="set FATIGUE_PSEUDONYM_KEY or FATIGUE_PSEUDONYM_KEY_FILE and restart fatigue serve")
            tally.waiting = len(due)
            return tally
        for row in due:
            got = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 70))", (row[0],)).fetchone()
            if not (got and got[0]):
                continue
            try:
                fresh = conn.execute(_DUE.replace("ORDER BY", "AND request_id = %s::uuid ORDER BY"),
                                     (row[0],)).fetchone()
                if fresh is not None:
                    _fulfil_one(conn, cfg, fresh, tally)
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 70))", (row[0],))
    return tally


_NO_KEY = "approved; waiting: the service has no pseudonym key (FATIGUE_PSEUDONYM_KEY)"


def approve_request(conn: Conn, request_id: str, approver: str) -> bool:
    """Approve a ``requested`` export request; False when there is no such request awaiting approval."""
    cur = conn.execute("UPDATE access.export_requests SET approved_by = %s, approved_at = now(), "
                       "next_attempt_at = now(), detail = 'approved; waiting for the scheduler', "
                       "updated_at = now() WHERE request_id = %s::uuid AND status = 'requested' "
                       "AND approved_at IS NULL",
                       (approver, request_id))
    return cur.rowcount == 1


def reject_request(conn: Conn, request_id: str, reason: str) -> bool:
    """Reject a request that has not started; False when there is no such request."""
    cur = conn.execute("UPDATE access.export_requests SET status = 'rejected', detail = %s, updated_at = now() "
                       "WHERE request_id = %s::uuid AND status = 'requested'", (reason[:500], request_id))
    return cur.rowcount == 1
