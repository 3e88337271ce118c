"""Numbered SQL migrations: discover, check, apply.

Migrations are the files ``store/migrations/NNN_name.sql``; they are applied in number order, each in its own
transaction, and recorded in ``store.schema_migrations`` with the SHA-256 of the file. A second run applies
nothing. If an applied file has changed since it was applied, :func:`migrate` refuses to run: a schema change
is always a new numbered file. A PostgreSQL advisory lock makes concurrent runs (two containers starting at
once) wait for each other instead of racing.

TimescaleDB must be preloaded before it can be used: with the extension installed but missing from
``shared_preload_libraries``, ``CREATE EXTENSION timescaledb`` (migration 002) ends the session with
``FATAL: extension "timescaledb" must be preloaded``. :func:`migrate` checks this first and stops with a
:class:`MigrationError` that says what to change, before anything is applied. It does not fall back to plain
partitions: the storage mode is decided once, by the first migration, and a server whose TimescaleDB was only
half set up would otherwise lose compression and the retention policies for good. To run without TimescaleDB
on such a server, remove the TimescaleDB package so that the extension is not offered.

If a migration fails, that error is what the caller sees: releasing the advisory lock afterwards is skipped
when the connection is gone (the server released the lock with the session) and can never mask it.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import psycopg

__all__ = ["Migration", "MigrationError", "MigrationStatus", "discover", "migrate", "preload_problem",
           "preloaded_libraries", "status"]

_NAME_RE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x66617469  # "fati": one advisory-lock key for the migration runner.

_LEDGER_DDL = """
CREATE SCHEMA IF NOT EXISTS store;
CREATE TABLE IF NOT EXISTS store.schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    sha256      text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
"""


class MigrationError(RuntimeError):
    """The migration history and the files disagree, or a migration failed."""


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the file's text."""
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class MigrationStatus:
    """What is applied, what is pending, and how raw streams are stored."""

    applied: tuple[tuple[int, str], ...]
    pending: tuple[tuple[int, str], ...]
    storage_mode: str | None
    storage_detail: str | None


def discover() -> list[Migration]:
    """Return the packaged migrations in version order; duplicate numbers are an error."""
    found: dict[int, Migration] = {}
    for entry in resources.files("store.migrations").iterdir():
        match = _NAME_RE.match(entry.name)
        if not match:
            continue
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations numbered {version:03d}: {found[version].name}, {entry.name}")
        found[version] = Migration(version, entry.name, entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def _applied(conn: psycopg.Connection[tuple[object, ...]]) -> dict[int, tuple[str, str]]:
    rows = conn.execute("SELECT version, name, sha256 FROM store.schema_migrations").fetchall()
    return {int(str(v)): (str(n), str(h)) for v, n, h in rows}


def _check_unchanged(files: list[Migration], applied: dict[int, tuple[str, str]]) -> None:
    by_version = {m.version: m for m in files}
    for version, (name, digest) in sorted(applied.items()):
        current = by_version.get(version)
        if current is None:
            raise MigrationError(f"migration {name} is applied but its file is missing; restore it")
        if current.sha256 != digest:
            raise MigrationError(
                f"migration {name} changed after it was applied (checksum mismatch); "
                "revert the edit and put the change in a new numbered migration"
            )


def preloaded_libraries(setting: str) -> frozenset[str]:
    """Library names in a ``shared_preload_libraries`` value: ``"'$libdir/timescaledb', pg_stat_statements"``
    -> {"timescaledb", "pg_stat_statements"} (quotes, directories and a ``.so`` suffix removed)."""
    names = (part.strip().strip("'\"").rsplit("/", 1)[-1] for part in setting.split(","))
    return frozenset(n.removesuffix(".so") for n in names if n)


def preload_problem(available: bool, created: bool, preload_setting: str | None) -> str | None:
    """Why migrating would fail for lack of preloading TimescaleDB, or None when it would not.

    Parameters
    ----------
    available : bool
        ``timescaledb`` is listed in ``pg_available_extensions`` and the storage mode is not decided yet
        (migration 002 will create the extension).
    created : bool
        The extension already exists in this database.
    preload_setting : str or None
        ``shared_preload_libraries``; None when this role may not read it (then the check cannot tell).
    """
    if not (available or created) or preload_setting is None:
        return None
    if "timescaledb" in preloaded_libraries(preload_setting):
        return None
    state = "is created in this database" if created else "is installed on this server"
    return (f"TimescaleDB {state} but not preloaded (shared_preload_libraries = {preload_setting!r}), so using "
            "it would end the session. Add it to postgresql.conf: shared_preload_libraries = 'timescaledb' "
            "(keep any libraries already listed), restart PostgreSQL, then run `fatigue db migrate` again. "
            "To use plain PostgreSQL partitions instead, uninstall the TimescaleDB package before the first "
            "migration (the storage mode is decided once).")


def _check_preload(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    row = conn.execute("""
        SELECT to_regclass('store.storage_mode') IS NULL
                 AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),
               EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'),
               (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries')""").fetchone()
    assert row is not None
    problem = preload_problem(bool(row[0]), bool(row[1]), None if row[2] is None else str(row[2]))
    if problem:
        raise MigrationError(problem)


def migrate(url: str, migrations: Sequence[Migration] | None = None) -> list[str]:
    """Apply every pending migration to the database at ``url``.

    Parameters
    ----------
    url : str
        libpq URL of the database.
    migrations : sequence of Migration, optional
        The migrations to apply (default: :func:`discover`); tests pass their own.

    Returns
    -------
    list of str
        Names of the migrations applied by this call (empty when up to date).

    Raises
    ------
    MigrationError
        An applied file changed or disappeared, TimescaleDB is installed but not preloaded, or a migration's
        SQL failed (nothing of it is kept). The original error is raised even if the session died with it.
    """
    files = list(migrations) if migrations is not None else discover()
    done: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
            try:
                _apply_pending(conn, files, done)
            finally:
                _unlock(conn)
        except psycopg.Error as exc:  # the session failed outside a migration (lock, ledger, checks)
            raise MigrationError(f"the migration session failed: {exc.__class__.__name__}: {exc}; check the "
                                 "PostgreSQL log, then run `fatigue db migrate` again") from exc
    return done


def _apply_pending(conn: psycopg.Connection[tuple[object, ...]], files: list[Migration], done: list[str]) -> None:
    conn.execute(_LEDGER_DDL)
    applied = _applied(conn)
    _check_unchanged(files, applied)
    _check_preload(conn)
    for mig in (m for m in files if m.version not in applied):
        _apply_one(conn, mig)
        done.append(mig.name)


def _unlock(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Release the runner's advisory lock unless the session is gone (the server released it then)."""
    if conn.closed or conn.broken:
        return
    with contextlib.suppress(psycopg.OperationalError):  # died just now: the lock went with the session
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def _apply_one(conn: psycopg.Connection[tuple[object, ...]], mig: Migration) -> None:
    try:
        with conn.transaction():
            conn.execute(mig.sql.encode("utf-8"))
            conn.execute(
                "INSERT INTO store.schema_migrations (version, name, sha256) VALUES (%s, %s, %s)",
                (mig.version, mig.name, mig.sha256),
            )
    except psycopg.Error as exc:
        raise MigrationError(f"migration {mig.name} failed: {exc.__class__.__name__}: {exc}") from exc


def status(url: str) -> MigrationStatus:
    """Report applied and pending migrations and the storage mode recorded by migration 002."""
    files = discover()
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('store.schema_migrations') IS NOT NULL").fetchone()
        applied = _applied(conn) if exists and exists[0] else {}
        mode: tuple[str, str] | None = None
        if conn.execute("SELECT to_regclass('store.storage_mode')").fetchone() != (None,):
            row = conn.execute("SELECT mode, detail FROM store.storage_mode").fetchone()
            mode = (str(row[0]), str(row[1])) if row else None
    return MigrationStatus(
        applied=tuple((v, applied[v][0]) for v in sorted(applied)),
        pending=tuple((m.version, m.name) for m in files if m.version not in applied),
        storage_mode=mode[0] if mode else None,
        storage_detail=mode[1] if mode else None,
    )
