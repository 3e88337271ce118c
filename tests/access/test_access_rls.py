"""S3 and S4: force isolation enforced by PostgreSQL itself (roles, grants, row-level security)."""

from __future__ import annotations

import psycopg
import pytest

from service.api_common import ApiState, Database, scoped
from service.auth import verify_token
from store.migrate import migrate
from tests.access.access_support import FORCES, World

APP_ROLES = ("fatigue_manager", "fatigue_researcher", "fatigue_admin", "fatigue_ingest", "fatigue_jobs",
             "fatigue_api")
PROTECTED = ("core.participants", "core.identities", "risk.weekly_flags", "risk.reports")


def _as_manager(conn: psycopg.Connection[tuple[object, ...]], force: str) -> None:
    conn.execute("SET ROLE fatigue_manager")
    conn.execute("SELECT set_config('fatigue.force_id', %s, false)", (force,))


@pytest.mark.parametrize("table", PROTECTED)
def test_manager_sees_only_own_force(world: World, table: str) -> None:
    with psycopg.connect(world.url, autocommit=True) as conn:
        for own in FORCES:
            _as_manager(conn, own)
            rows = conn.execute(f"SELECT force_id, count(*) FROM {table} GROUP BY 1").fetchall()
            assert {r[0] for r in rows} <= {own}
            for other in set(FORCES) - {own}:
                count = conn.execute(f"SELECT count(*) FROM {table} WHERE force_id = %s", (other,)).fetchone()
                assert count == (0,)
            # fatigue.all_forces (honoured for the jobs by 030) cannot widen a manager's view
            conn.execute("SET fatigue.all_forces = 'on'")
            assert conn.execute(f"SELECT count(*) FROM {table} WHERE force_id <> %s", (own,)).fetchone() == (0,)
            conn.execute("RESET ALL")
            conn.execute("RESET ROLE")


def test_manager_sees_identities_only_with_consent(world: World) -> None:
    with psycopg.connect(world.url, autocommit=True) as conn:
        _as_manager(conn, "WMP")
        refs = {r[0] for r in conn.execute("SELECT staff_ref FROM core.identities").fetchall()}
    assert refs == set(world.staff_refs["WMP"][:2])  # the third participant did not consent


def test_manager_without_force_setting_sees_nothing(world: World) -> None:
    with psycopg.connect(world.url, autocommit=True) as conn:
        conn.execute("SET ROLE fatigue_manager")
        for table in PROTECTED:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)


@pytest.mark.parametrize("statement", [
    "INSERT INTO risk.weekly_flags (participant_id, force_id, programme_week, week_start, week_end, overall_level, "
    "criteria, programme_version, algorithm_version) SELECT participant_id, force_id, 2, '2024-03-11', "
    "'2024-03-17', 'red', '{}', 'v', 'a' FROM core.participants LIMIT 1",
    "UPDATE risk.weekly_flags SET overall_level = 'red'",
    "DELETE FROM risk.weekly_flags",
    "UPDATE core.participants SET consent_manager = true",
    "DELETE FROM core.identities",
    "INSERT INTO risk.reports (force_id, iso_week, week_start, week_end, html_path, n_officers) "
    "VALUES ('WMP', '2024-W11', '2024-03-11', '2024-03-17', 'x', 0)",
    "SELECT count(*) FROM raw.hr_runs",
    "SELECT count(*) FROM raw.hr_runs_default",
    "SELECT count(*) FROM access.tokens",
    "UPDATE access.audit_log SET row_count = 0",
])
def test_manager_writes_and_other_tables_denied(world: World, statement: str) -> None:
    with psycopg.connect(world.url, autocommit=True) as conn:
        _as_manager(conn, "WMP")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


def test_api_login_role_has_no_data_privileges(world: World) -> None:
    """RESET ROLE leaves fatigue_api with token look-up and audit inserts only (NOINHERIT)."""
    with psycopg.connect(world.api_url, autocommit=True) as conn:
        for table in (*PROTECTED, "raw.hr_runs", "derived.daily_features", "access.export_requests"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT 1 FROM {table} LIMIT 1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT label FROM access.tokens")


def test_scoped_transaction_limits_even_unfiltered_queries(world: World) -> None:
    """Defence in depth: a route that forgot its WHERE clause still sees only the token's force."""
    db = Database(world.api_url, max_size=1)
    try:
        with db.connection() as conn:
            principal = verify_token(conn, world.managers["GMP"])
        assert principal is not None
        with scoped(ApiState(db, world.outbox, world.outbox), principal) as conn:
            forces = {r[0] for r in conn.execute("SELECT DISTINCT force_id FROM risk.weekly_flags").fetchall()}
        assert forces == {"GMP"}
    finally:
        db.close()


def test_catalogue_no_superuser_bypass_or_ownership(db: psycopg.Connection[tuple[object, ...]]) -> None:
    rows = db.execute("SELECT rolname, rolsuper, rolbypassrls, rolcanlogin, rolinherit FROM pg_roles "
                      "WHERE rolname = ANY(%s)", (list(APP_ROLES),)).fetchall()
    assert {r[0] for r in rows} == set(APP_ROLES)
    assert all(not r[1] and not r[2] for r in rows)
    login = {r[0]: r[3] for r in rows}
    assert login == {"fatigue_manager": False, "fatigue_researcher": False, "fatigue_admin": False,
                     "fatigue_ingest": True, "fatigue_jobs": True, "fatigue_api": True}
    assert {r[0]: r[4] for r in rows}["fatigue_api"] is False
    owned = db.execute("SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
                       "WHERE r.rolname = ANY(%s)", (list(APP_ROLES),)).fetchone()
    assert owned == (0,)
    schemas = db.execute("SELECT count(*) FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner "
                         "WHERE r.rolname = ANY(%s)", (list(APP_ROLES),)).fetchone()
    assert schemas == (0,)


def test_catalogue_rls_forced_on_protected_and_absent_on_raw(db: psycopg.Connection[tuple[object, ...]]) -> None:
    for table in PROTECTED:
        row = db.execute("SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = %s::regclass",
                         (table,)).fetchone()
        assert row == (True, True), table
    raw_rls = db.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                         "WHERE n.nspname = 'raw' AND c.relrowsecurity").fetchone()
    assert raw_rls == (0,)


def test_catalogue_views_over_protected_tables_are_security_invoker(db: psycopg.Connection[tuple[object, ...]]) -> None:
    rows = db.execute("""
        SELECT DISTINCT v.oid::regclass::text, coalesce(v.reloptions::text, '') FROM pg_depend d
        JOIN pg_rewrite w ON w.oid = d.objid JOIN pg_class v ON v.oid = w.ev_class AND v.relkind = 'v'
        WHERE d.refobjid = ANY(ARRAY[%s::regclass, %s::regclass, %s::regclass, %s::regclass]::oid[])""",
                      PROTECTED).fetchall()
    assert all("security_invoker=true" in str(r[1]) for r in rows), rows


def test_no_manager_or_researcher_privilege_on_raw(db: psycopg.Connection[tuple[object, ...]]) -> None:
    rows = db.execute("""
        SELECT r.rolname, c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        CROSS JOIN (VALUES ('fatigue_manager'), ('fatigue_researcher'), ('fatigue_api')) r(rolname)
        WHERE n.nspname = 'raw' AND c.relkind IN ('r', 'p')
          AND has_table_privilege(r.rolname, c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER')
    """).fetchall()
    assert rows == []
    usage = db.execute("SELECT has_schema_privilege('fatigue_manager', 'raw', 'USAGE'), "
                       "has_schema_privilege('fatigue_researcher', 'raw', 'USAGE')").fetchone()
    assert usage == (False, False)


def test_migration_is_idempotent_about_roles(pg_admin_url: str) -> None:
    """A second database migrates cleanly although the cluster-wide roles already exist."""
    from tests.conftest import create_database, drop_database
    url = create_database(pg_admin_url, "fatigue_test_access")
    try:
        assert "050_access.sql" in migrate(url)
        assert migrate(url) == []
    finally:
        drop_database(pg_admin_url, url)


@pytest.mark.timescaledb
def test_s4_no_privilege_on_hypertables_or_chunks(db: psycopg.Connection[tuple[object, ...]]) -> None:
    """Managers and researchers hold no privilege on the raw hypertables, their chunks, compressed chunks or
    compressed hypertables. Only real chunk tables are checked (from TimescaleDB's chunk and hypertable
    catalogue), not TimescaleDB's own catalogue tables in ``_timescaledb_internal``, which it grants to all."""
    mode = db.execute("SELECT mode FROM store.storage_mode").fetchone()
    if mode != ("timescaledb",):
        pytest.skip("TimescaleDB extension is not available here; S4 runs where it is installed")
    for days in (1, 30):  # one chunk left as is, one compressed: both kinds of chunk exist
        db.execute("INSERT INTO raw.hr_runs (device_id, start_ts, end_ts, participant_id, offsets_ms, bpm, suspect, "
                   "msg_id) VALUES ('s4-dev', now() - make_interval(days => %s), now() - make_interval(days => %s)"
                   " + interval '1 s', gen_random_uuid(), '{0}', '{60}', '{f}', gen_random_uuid()) "
                   "ON CONFLICT DO NOTHING", (days, days))
    db.execute("SELECT count(compress_chunk(c, if_not_compressed => true)) "
               "FROM show_chunks('raw.hr_runs', older_than => interval '7 days') c")
    targets = db.execute("""
        SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'raw' AND c.relkind IN ('r', 'p')
        UNION SELECT to_regclass(format('%I.%I', h.schema_name, h.table_name))::text
              FROM _timescaledb_catalog.hypertable h
        UNION SELECT to_regclass(format('%I.%I', k.schema_name, k.table_name))::text
              FROM _timescaledb_catalog.chunk k""").fetchall()
    names = {str(r[0]) for r in targets if r[0] is not None}
    assert any("_compressed_hypertable_" in n for n in names), "the compressed hypertables are checked"
    assert sum("_hyper_" in n for n in names) >= 1 and sum("compress_hyper_" in n for n in names) >= 1, \
        "chunks and compressed chunks are checked"
    rows = db.execute("""
        SELECT r.rolname, t.name FROM unnest(%s::text[]) t(name)
        CROSS JOIN (VALUES ('fatigue_manager'), ('fatigue_researcher')) r(rolname)
        WHERE has_table_privilege(r.rolname, t.name::regclass, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE')""",
        (sorted(names),)).fetchall()
    assert rows == []
