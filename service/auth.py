"""API tokens: opaque random values, stored only as SHA-256 hashes, each with one role and one scope.

A token is ``fat_`` followed by ``secrets.token_urlsafe(32)`` (256 random bits). The database keeps its
SHA-256 digest (``access.tokens.token_sha256``), the role (``manager``, ``researcher`` or ``admin``), the scope
(one force for a manager, one research project for a researcher, none for an administrator), an expiry and an
optional revocation time. The token itself is shown once, when it is created, and never stored or logged.

Verification hashes the presented value and looks the digest up by its unique index through the SECURITY
DEFINER function ``access.token_principal`` (migration 060): the API's login roles cannot read token hashes
themselves. An attacker who does not know a token cannot steer the digest, so the look-up time reveals nothing
useful (reliability_security.md 2.3).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

__all__ = [
    "MAX_LIFETIME", "ROLES", "TOKEN_PREFIX", "Principal", "TokenError", "TokenInfo", "create_token",
    "hash_token", "list_tokens", "new_token", "parse_lifetime", "revoke_token", "verify_token",
]

TOKEN_PREFIX = "fat_"
ROLES = ("manager", "researcher", "admin")
MAX_LIFETIME = timedelta(days=90)
_TOKEN_RE = re.compile(r"^fat_[A-Za-z0-9_-]{43}$")
_SCOPE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LIFETIME_RE = re.compile(r"^([1-9][0-9]{0,4})([hdw])$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}

if TYPE_CHECKING:
    import psycopg

    Conn = psycopg.Connection[Any]


class TokenError(ValueError):
    """A token request is invalid (bad role, scope or lifetime); the message says which."""


@dataclass(frozen=True)
class Principal:
    """The verified holder of a token: its id (not the token), role and scope."""

    token_id: uuid.UUID
    role: str
    force_id: str | None
    project: str | None
    #: binds a request's database scope (``access.open_scope``); never logged
    token_sha256: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class TokenInfo:
    """One token as listed to administrators (never the token or its hash)."""

    token_id: uuid.UUID
    role: str
    force_id: str | None
    project: str | None
    label: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


def new_token() -> str:
    """Return a fresh opaque token: ``fat_`` and 43 URL-safe characters (256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    """SHA-256 digest (32 bytes) of the token's UTF-8 text; the only form the database stores."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def parse_lifetime(text: str) -> timedelta:
    """Parse a lifetime such as ``12h``, ``30d`` or ``4w``; at most :data:`MAX_LIFETIME` (90 days).

    Raises
    ------
    TokenError
        The text is malformed or the lifetime is longer than 90 days.
    """
    match = _LIFETIME_RE.fullmatch(text.strip())
    if not match:
        raise TokenError(f"lifetime {text!r}: expected a number and h, d or w (e.g. 30d)")
    lifetime = int(match.group(1)) * _UNITS[match.group(2)]
    if lifetime > MAX_LIFETIME:
        raise TokenError(f"lifetime {text!r} is longer than the maximum of {MAX_LIFETIME.days} days")
    return lifetime


def _check_scope(role: str, force_id: str | None, project: str | None) -> None:
    if role not in ROLES:
        raise TokenError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    if (role == "manager") != (force_id is not None):
        raise TokenError("a manager token needs --force, and only a manager token takes one")
    if (role == "researcher") != (project is not None):
        raise TokenError("a researcher token needs --project, and only a researcher token takes one")
    for value in (force_id, project):
        if value is not None and not _SCOPE_RE.fullmatch(value):
            raise TokenError(f"scope {value!r}: must match [A-Za-z0-9_-]{{1,64}}")


def create_token(conn: Conn, role: str, lifetime: timedelta, *, force_id: str | None = None,
                 project: str | None = None, label: str = "") -> tuple[uuid.UUID, str]:
    """Create a token and store its hash; return ``(token_id, token)``. The token is not kept anywhere.

    Raises
    ------
    TokenError
        Bad role, scope, lifetime or label, or the force does not exist.
    """
    _check_scope(role, force_id, project)
    if not timedelta(0) < lifetime <= MAX_LIFETIME:
        raise TokenError(f"lifetime must be positive and at most {MAX_LIFETIME.days} days")
    if len(label) > 200 or any(ord(ch) < 32 for ch in label):
        raise TokenError("label: at most 200 printable characters")
    from psycopg import errors  # late: the CLI imports ROLES at start-up without the driver

    token = new_token()
    try:
        row = conn.execute(
            "INSERT INTO access.tokens (token_sha256, role, force_id, project, label, expires_at) "
            "VALUES (%s, %s, %s, %s, %s, now() + %s) RETURNING token_id",
            (hash_token(token), role, force_id, project, label, lifetime)).fetchone()
    except errors.ForeignKeyViolation as exc:
        raise TokenError(f"no force {force_id!r}; enrol the force first") from exc
    assert row is not None
    return row[0], token


def verify_token(conn: Conn, token: str) -> Principal | None:
    """Return the token's :class:`Principal`, or None when it is malformed, unknown, expired or revoked."""
    if not _TOKEN_RE.fullmatch(token):
        return None
    digest = hash_token(token)
    row = conn.execute("SELECT token_id, role, force_id, project FROM access.token_principal(%s)",
                       (digest,)).fetchone()
    if row is None:
        return None
    return Principal(row[0], str(row[1]), row[2], row[3], digest)


def list_tokens(conn: Conn) -> list[TokenInfo]:
    """Every token, newest first (ids, roles, scopes and times; no secrets)."""
    rows = conn.execute(
        "SELECT token_id, role, force_id, project, label, created_at, expires_at, revoked_at "
        "FROM access.tokens ORDER BY created_at DESC, token_id").fetchall()
    return [TokenInfo(*row) for row in rows]


def revoke_token(conn: Conn, token_id: uuid.UUID) -> bool:
    """Revoke a token now; return False when no such (unrevoked) token exists."""
    cur = conn.execute("UPDATE access.tokens SET revoked_at = now() WHERE token_id = %s AND revoked_at IS NULL",
                       (token_id,))
    return cur.rowcount == 1
