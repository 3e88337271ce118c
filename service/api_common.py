"""Shared pieces of the HTTP API: the connection pool, bearer authentication, role checks and scoped
transactions.

Every data query runs inside :func:`scoped`, a transaction that first binds itself to the token with
``access.open_scope(<token sha256>)`` (once per transaction, migration 060) and then does ``SET LOCAL ROLE``
into the token's database role. The scope always comes from the verified token, never from the URL or from a
setting the session could change, so neither a routing bug nor injected SQL can make row-level security
return another force's rows. Managers and researchers are served through the ``fatigue_web`` login role (not a
member of ``fatigue_admin``); administrators through a separate pool (``admin_db``, login ``fatigue_web_admin``).
Tokens are read from the ``Authorization: Bearer`` header only.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import psycopg
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg import sql
from psycopg_pool import ConnectionPool

from service.audit import AuditEvent, record
from service.auth import Principal, verify_token

__all__ = [
    "DB_ROLES", "ID_PATTERN", "ApiState", "Authenticated", "Database", "State", "as_uuid", "audit", "authenticate",
    "confined_file", "require_role", "require_scope", "scoped", "state_of", "table_exists",
]

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
DB_ROLES = {"manager": "fatigue_web_manager", "researcher": "fatigue_web_researcher", "admin": "fatigue_admin"}
_bearer = HTTPBearer(auto_error=False, description="API token (fat_...) in the Authorization header")
Conn = psycopg.Connection[Any]


def _reset(conn: Conn) -> None:
    """Pool reset: drop any session-level role or setting a request might have left behind."""
    conn.execute("RESET ROLE")
    conn.execute("RESET ALL")
    conn.commit()


class Database:
    """A lazily opened connection pool (opened on first use, closed by the app's lifespan)."""

    def __init__(self, url: str, max_size: int = 8) -> None:
        self._pool = ConnectionPool(url, min_size=1, max_size=max_size, open=False, reset=_reset, timeout=10.0,
                                    kwargs={"connect_timeout": 10})
        self._lock = threading.Lock()
        self._opened = False

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        """Borrow a connection (not autocommit); any open transaction is rolled back on return."""
        with self._lock:
            if not self._opened:
                self._pool.open()
                self._opened = True
        with self._pool.connection() as conn:
            yield conn

    def close(self) -> None:
        """Close the pool if it was opened."""
        with self._lock:
            if self._opened:
                self._pool.close()
                self._opened = False


@dataclass(frozen=True)
class ApiState:
    """What the routes need: the databases and the folders that report and export paths are relative to.

    ``admin_db`` serves administrator tokens (login role ``fatigue_web_admin``); None means ``db`` serves them
    too, which works only when ``db`` logs in as a role that may become ``fatigue_admin`` (development).
    """

    db: Database
    outbox_dir: Path
    exports_dir: Path
    admin_db: Database | None = None


def state_of(request: Request) -> ApiState:
    """The :class:`ApiState` stored on the application."""
    st = request.app.state.api
    assert isinstance(st, ApiState)
    return st


State = Annotated[ApiState, Depends(state_of)]


def authenticate(request: Request,
                 creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    """Verify the bearer token; 401 (with ``WWW-Authenticate``) when missing, malformed, expired or revoked."""
    if creds is None or creds.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    with state_of(request).db.connection() as conn:
        principal = verify_token(conn, creds.credentials)
        conn.rollback()
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid, expired or revoked token",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return principal


def audit(st: ApiState, event: AuditEvent) -> None:
    """Record an audit event in its own transaction (used for denials, which run no scoped transaction)."""
    with st.db.connection() as conn, conn.transaction():
        record(conn, event)


def require_role(principal: Principal, role: str, st: ApiState, resource: str) -> None:
    """403 unless the token has ``role``; the denial is audited."""
    if principal.role != role:
        audit(st, AuditEvent(principal.token_id, principal.role, "wrong_role", resource,
                             principal.force_id, principal.project, allowed=False))
        article = "an" if role[:1] in "aeiou" else "a"
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this resource needs {article} {role} token")


def require_scope(principal: Principal, role: str, st: ApiState, resource: str, *, force_id: str | None = None,
                  project: str | None = None) -> None:
    """403 unless the token has ``role`` and its scope equals the force or project named in the URL."""
    require_role(principal, role, st, resource)
    if (force_id is not None and force_id != principal.force_id) or (
            project is not None and project != principal.project):
        audit(st, AuditEvent(principal.token_id, principal.role, "out_of_scope", resource,
                             principal.force_id, principal.project, allowed=False))
        raise HTTPException(status.HTTP_403_FORBIDDEN, "outside this token's scope")


@contextmanager
def scoped(st: ApiState, principal: Principal) -> Iterator[Conn]:
    """A transaction running as the token's database role with its scope set locally.

    ``SET LOCAL`` and the scope row written by ``access.open_scope`` are valid for this transaction only, so a
    pooled connection never carries one request's role or scope into the next.
    """
    pool = st.admin_db if principal.role == "admin" and st.admin_db is not None else st.db
    with pool.connection() as conn, conn.transaction():
        conn.execute("SELECT access.open_scope(%s)", (principal.token_sha256,))
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(DB_ROLES[principal.role])))
        yield conn


def table_exists(conn: Conn, schema: str, table: str) -> bool:
    """True when ``schema.table`` exists (read from the catalogue, so no privilege on it is needed)."""
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                       "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s)",
                       (schema, table)).fetchone()
    return bool(row and row[0])


def confined_file(root: Path, relative: str) -> Path | None:
    """``root / relative`` if it is an existing file inside ``root`` (no ``..`` or absolute escapes)."""
    base = root.resolve()
    candidate = (base / relative).resolve()
    if not candidate.is_relative_to(base) or not candidate.is_file():
        return None
    return candidate


Authenticated = Annotated[Principal, Depends(authenticate)]


def as_uuid(value: Any) -> uuid.UUID:
    """Coerce a database value to :class:`uuid.UUID`."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
