"""Broker permissions: Mosquitto password file, ACL file and the operator's credentials file, from the database.

Users and what they may do (reliability_security.md 2.1):

==========================  =========================================================================
user                        rights
==========================  =========================================================================
each gateway (its id)       write ``fatigue/v1/{gateway_id}/#``; read ``fatigue/v1/alerts/{gateway_id}/#``
``fatigue-ingest``          read ``fatigue/v1/+/+/+``, ``$share/{group}/fatigue/v1/+/+/+``, ``$SYS/broker/#``
``fatigue-jobs``            write ``fatigue/v1/reports/+`` (weekly report notices) and ``fatigue/v1/alerts/#``
                            (compliance alerts, ``compliance.publisher``)
``notice-{force_id}``       read ``fatigue/v1/reports/{force_id}`` only
``healthcheck``             read ``$SYS/#``
==========================  =========================================================================

Every id must match ``[A-Za-z0-9_-]{1,64}``: ``+``, ``#``, ``/`` and anything else are refused, so no id can
widen a topic rule (CVE-2017-7650). The gateway ids ``reports`` and ``alerts`` are reserved (a gateway of that
name could write report notices or alerts), and usernames must be unique.

Passwords are generated (256-bit URL-safe) and written once to ``credentials.txt`` (mode 0600) for the operator
to hand out; on regeneration existing passwords are kept, and so are password-file lines that still verify.
Password hashes use Mosquitto 2.0's ``$7$`` format: PBKDF2-HMAC-SHA512, ``$7$<iterations>$<base64 salt>$<base64
digest>`` with a 12-byte salt and a 64-byte digest, as ``mosquitto_passwd`` writes it. They are computed here
rather than with ``mosquitto_passwd -b``, which would put every password on a process command line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

__all__ = [
    "AclError", "AclResult", "BrokerUser", "generate", "hash_password", "plan_users", "read_ids", "render_acl",
    "verify_password", "write_files",
]

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
RESERVED_GATEWAY_IDS = frozenset({"reports", "alerts"})
ITERATIONS = 101  # mosquitto_passwd 2.0's default; the broker computes this per CONNECT
CREDENTIALS_FILE = "credentials.txt"
PASSWORD_FILE = "passwd"
ACL_FILE = "acl"


class AclError(ValueError):
    """An id cannot be used in broker permissions; the message names it."""


@dataclass(frozen=True)
class BrokerUser:
    """A broker username and its ACL rules as ``(access, topic)`` pairs; ``access`` is read or write."""

    name: str
    rules: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class AclResult:
    """Files written and the users whose passwords were generated in this run."""

    password_file: Path
    acl_file: Path
    credentials_file: Path
    users: tuple[str, ...]
    new_users: tuple[str, ...]


def check_id(value: str, what: str) -> str:
    """Return ``value`` if it matches ``[A-Za-z0-9_-]{1,64}``; raise :class:`AclError` otherwise."""
    if not ID_RE.fullmatch(value):
        raise AclError(f"{what} {value!r} refused: ids must match [A-Za-z0-9_-]{{1,64}} (no +, #, / or spaces)")
    return value


def plan_users(gateways: Sequence[str], forces: Sequence[str], *, ingest_group: str = "ingest",
               ingester: str = "fatigue-ingest", publisher: str = "fatigue-jobs",
               healthcheck: str = "healthcheck") -> list[BrokerUser]:
    """The broker users and rules for these gateways and forces (see the module docstring).

    Raises
    ------
    AclError
        An id is malformed, a gateway id is reserved, or two users would share a name.
    """
    for name, what in [(ingest_group, "ingest group"), (ingester, "user"), (publisher, "user"),
                       (healthcheck, "user")]:
        check_id(name, what)
    users = [BrokerUser(check_id(g, "gateway id"), (("write", f"fatigue/v1/{g}/#"),
                                                    ("read", f"fatigue/v1/alerts/{g}/#"))) for g in gateways]
    reserved = sorted(RESERVED_GATEWAY_IDS.intersection(gateways))
    if reserved:
        raise AclError(f"gateway id {reserved[0]!r} refused: it is reserved for report notices and alerts")
    users.append(BrokerUser(ingester, (("read", "fatigue/v1/+/+/+"),
                                       ("read", f"$share/{ingest_group}/fatigue/v1/+/+/+"),
                                       ("read", "$SYS/broker/#"))))  # broker counters (docs/ingest.md)
    users.append(BrokerUser(publisher, (("write", "fatigue/v1/reports/+"), ("write", "fatigue/v1/alerts/#"))))
    users.extend(BrokerUser(f"notice-{check_id(f, 'force id')}", (("read", f"fatigue/v1/reports/{f}"),))
                 for f in forces)
    users.append(BrokerUser(healthcheck, (("read", "$SYS/#"),)))
    seen: set[str] = set()
    for user in users:
        if user.name in seen:
            raise AclError(f"username {user.name!r} would be used twice; rename the gateway")
        seen.add(user.name)
    return users


def render_acl(users: Iterable[BrokerUser]) -> str:
    """Mosquitto ``acl_file`` text: one ``user`` block per user, nothing for anyone else."""
    lines = ["# Generated by `fatigue mqtt acl`; do not edit (regenerate from the database).",
             "# Users not listed here may do nothing; anonymous clients are refused by allow_anonymous false."]
    for user in users:
        lines.append("")
        lines.append(f"user {user.name}")
        lines.extend(f"topic {access} {topic}" for access, topic in user.rules)
    return "\n".join(lines) + "\n"


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """Mosquitto 2.0 ``$7$`` hash (PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte digest)."""
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``encoded`` is a ``$7$`` hash of ``password`` (constant-time comparison)."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt, digest = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    computed = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(parts[2]), len(digest))
    return hmac.compare_digest(computed, digest)


def _read_pairs(path: Path) -> dict[str, str]:
    """``name:value`` lines of a file (missing file: empty)."""
    if not path.exists():
        return {}
    pairs: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            pairs[name] = value
    return pairs


def _write_private(path: Path, text: str, mode: int) -> None:
    """Write ``text`` atomically with ``mode`` (the file never exists with wider permissions)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_files(out_dir: Path, users: Sequence[BrokerUser]) -> AclResult:
    """Write ``passwd`` (0640), ``acl`` (0644) and ``credentials.txt`` (0600) into ``out_dir``.

    Passwords already in ``credentials.txt`` are kept, and so are ``passwd`` lines that still verify, so
    running this twice changes nothing; new users get new random passwords.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    creds_path, passwd_path, acl_path = out_dir / CREDENTIALS_FILE, out_dir / PASSWORD_FILE, out_dir / ACL_FILE
    old_creds, old_hashes = _read_pairs(creds_path), _read_pairs(passwd_path)
    creds: dict[str, str] = {}
    hashes: dict[str, str] = {}
    new_users: list[str] = []
    for user in users:
        password = old_creds.get(user.name)
        if not password:
            password = secrets.token_urlsafe(32)
            new_users.append(user.name)
        creds[user.name] = password
        old = old_hashes.get(user.name, "")
        hashes[user.name] = old if verify_password(password, old) else hash_password(password)
    header = "# Broker credentials for the operator to hand out (username:password). Keep secret.\n"
    _write_private(creds_path, header + "".join(f"{n}:{p}\n" for n, p in creds.items()), 0o600)
    _write_private(passwd_path, "".join(f"{n}:{h}\n" for n, h in hashes.items()), 0o640)
    _write_private(acl_path, render_acl(users), 0o644)
    return AclResult(passwd_path, acl_path, creds_path, tuple(creds), tuple(new_users))


def read_ids(conn: psycopg.Connection[Any]) -> tuple[list[str], list[str]]:
    """Gateway ids and force ids from ``core.gateways`` and ``core.forces``, sorted."""
    gateways = [str(r[0]) for r in conn.execute("SELECT gateway_id FROM core.gateways ORDER BY 1").fetchall()]
    forces = [str(r[0]) for r in conn.execute("SELECT force_id FROM core.forces ORDER BY 1").fetchall()]
    return gateways, forces


def generate(conn: psycopg.Connection[Any], out_dir: Path, *, ingest_group: str = "ingest") -> AclResult:
    """Read gateways and forces from the database and write the broker files (see :func:`write_files`)."""
    gateways, forces = read_ids(conn)
    return write_files(out_dir, plan_users(gateways, forces, ingest_group=ingest_group))
