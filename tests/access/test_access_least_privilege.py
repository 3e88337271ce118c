"""Least privilege of the API's login role (issue 15, migration 060): connected as ``fatigue_web`` (what the
API uses for managers and researchers), no SQL statement reaches another force's rows or another project's
requests, whatever role switching, setting or reset it tries; and the role is no member of ``fatigue_admin``."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from service.auth import hash_token
from tests.access.access_support import FORCES, World

Conn = psycopg.Connection[tuple[object, ...]]
TABLES = ("core.participants", "core.identities", "risk.weekly_flags", "risk.reports", "risk.manager_flags")


@pytest.fixture
def web(world: World) -> Iterator[Conn]:
    """A raw connection as the API's login role (as an attacker with SQL injection would have it)."""
    with psycopg.connect(world.api_url) as conn:
        yield conn


def _other_rows(conn: Conn, own: str) -> int:
    """Rows of forces other than ``own`` visible in any force-scoped table (0 when isolation holds)."""
    total = 0
    for table in TABLES:
        try:
            with conn.transaction():
                row = conn.execute(f"SELECT count(*) FROM {table} WHERE force_id <> %s", (own,)).fetchone()
            total += int(row[0]) if row else 0
        except psycopg.errors.InsufficientPrivilege:
            pass
    return total


ATTEMPTS = [
    "SET LOCAL ROLE fatigue_web_manager",
    "SET LOCAL ROLE fatigue_web_manager; SELECT set_config('fatigue.force_id', '{other}', true)",
    "SET LOCAL ROLE fatigue_web_manager; SET LOCAL fatigue.all_forces = 'on'",
    "SET LOCAL ROLE fatigue_web_manager; RESET fatigue.force_id; RESET ALL",
    "SET ROLE fatigue_web_manager; SELECT set_config('fatigue.force_id', '{other}', false)",
    "SET LOCAL ROLE fatigue_web_researcher",
    "RESET ROLE",
]


@pytest.mark.parametrize("attempt", ATTEMPTS)
@pytest.mark.parametrize("own", FORCES[:2])
def test_no_statement_reaches_another_force(web: Conn, world: World, attempt: str, own: str) -> None:
    other = next(f for f in FORCES if f != own)
    with web.transaction():
        web.execute("SELECT access.open_scope(%s)", (hash_token(world.managers[own]),))
        for statement in attempt.format(other=other).split("; "):
            web.execute(statement)
        assert _other_rows(web, own) == 0
        web.execute("RESET ROLE")


def test_scope_is_needed_and_set_once_per_transaction(web: Conn, world: World) -> None:
    with web.transaction():  # no open_scope: the manager role sees nothing even with the old setting
        web.execute("SET LOCAL ROLE fatigue_web_manager")
        web.execute("SELECT set_config('fatigue.force_id', 'GMP', true)")
        assert web.execute("SELECT count(*) FROM risk.weekly_flags").fetchone() == (0,)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), web.transaction():
        web.execute("SELECT access.open_scope(%s)", (hash_token(world.managers["WMP"]),))
        web.execute("SELECT access.open_scope(%s)", (hash_token(world.managers["GMP"]),))
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification), web.transaction():
        web.execute("SELECT access.open_scope(%s)", (b"\x00" * 32,))
    with web.transaction():  # the scope of a committed transaction does not carry into the next one
        web.execute("SELECT access.open_scope(%s)", (hash_token(world.managers["WMP"]),))
    with web.transaction():
        web.execute("SET LOCAL ROLE fatigue_web_manager")
        assert web.execute("SELECT count(*) FROM risk.weekly_flags").fetchone() == (0,)


def test_own_scope_still_works(web: Conn, world: World) -> None:
    with web.transaction():
        web.execute("SELECT access.open_scope(%s)", (hash_token(world.managers["WMP"]),))
        web.execute("SET LOCAL ROLE fatigue_web_manager")
        forces = {r[0] for r in web.execute("SELECT force_id FROM risk.weekly_flags").fetchall()}
        refs = {r[0] for r in web.execute("SELECT staff_ref FROM core.identities").fetchall()}
    assert forces == {"WMP"} and refs == set(world.staff_refs["WMP"][:2])


@pytest.mark.parametrize("statement", [
    "SET ROLE fatigue_admin", "SET ROLE fatigue_manager", "SET ROLE fatigue_jobs", "SET ROLE fatigue_api",
    "SELECT token_sha256 FROM access.tokens", "SELECT * FROM access.request_scope",
    "INSERT INTO access.request_scope VALUES (pg_backend_pid(), pg_current_xact_id(), gen_random_uuid(), "
    "'manager', 'GMP', NULL)",
    "SELECT access.scope_force()",
])
def test_login_role_cannot_switch_or_forge(web: Conn, statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege), web.transaction():
        web.execute(statement)


def test_researcher_scope_bound_to_token(web: Conn, world: World) -> None:
    with web.transaction():
        web.execute("SELECT access.open_scope(%s)", (hash_token(world.researchers["P1"]),))
        web.execute("SET LOCAL ROLE fatigue_web_researcher")
        web.execute("SELECT set_config('fatigue.project', 'P2', true)")
        assert web.execute("SELECT count(*) FROM access.export_requests WHERE project <> 'P1'").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            web.execute("INSERT INTO access.export_requests (project, requested_by) VALUES ('P2', gen_random_uuid())")


def test_catalogue_web_roles(db: Conn) -> None:
    rows = dict(db.execute(
        "SELECT r.rolname, ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "WHERE m.member = r.oid ORDER BY 1) FROM pg_roles r WHERE r.rolname IN ('fatigue_web', "
        "'fatigue_web_admin')").fetchall())
    assert rows == {"fatigue_web": ["fatigue_web_manager", "fatigue_web_researcher"],
                    "fatigue_web_admin": ["fatigue_admin"]}
    flags = db.execute("SELECT rolinherit, rolsuper, rolbypassrls FROM pg_roles WHERE rolname LIKE 'fatigue_web%%' "
                       "AND rolcanlogin").fetchall()
    assert flags and all(f == (False, False, False) for f in flags)
