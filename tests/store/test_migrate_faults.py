"""Migration faults: a session that dies mid-migration surfaces its own error (never the unlock's), and a
TimescaleDB that is installed but not preloaded is caught before anything runs, with what to change."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner

from service.cli import main
from store.migrate import Migration, MigrationError, migrate, preload_problem, preloaded_libraries
from tests.conftest import create_database, drop_database


@pytest.fixture
def private_db(pg_admin_url: str) -> Iterator[str]:
    url = create_database(pg_admin_url, "fatigue_migfault")
    yield url
    drop_database(pg_admin_url, url)


def _backend_of(admin_url: str, dbname: str, marker: str, timeout: float = 60.0) -> int:
    """The pid of the session in ``dbname`` running a query containing ``marker`` (waits for it)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(admin_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND query LIKE %s "
                               "AND pid <> pg_backend_pid()", (dbname, f"%{marker}%")).fetchone()
            if row:
                return int(str(row[0]))
            time.sleep(0.05)
    raise AssertionError(f"no session running {marker!r} in {dbname} after {timeout} s")


def test_killed_session_surfaces_the_migration_error(private_db: str, pg_admin_url: str) -> None:
    slow = Migration(1, "001_slow.sql", "CREATE TABLE first_step (x int); SELECT pg_sleep(300) /* killme */;")
    failure: list[BaseException] = []

    def run() -> None:
        try:
            migrate(private_db, [slow])
        except BaseException as exc:  # handed to the test thread
            failure.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    pid = _backend_of(pg_admin_url, private_db.rpartition("/")[2], "killme")
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert len(failure) == 1
    err = failure[0]
    assert isinstance(err, MigrationError), f"the unlock's error masked the real one: {err!r}"
    assert "001_slow.sql failed" in str(err) and "terminat" in str(err).lower()
    with psycopg.connect(private_db, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('first_step')").fetchone() == (None,), "nothing of it is kept"
        # the dead session's advisory lock went with it: the next run is not blocked
        conn.execute("SET lock_timeout = '5s'")
        assert conn.execute("SELECT pg_try_advisory_lock(%s)", (0x66617469,)).fetchone() == (True,)
        conn.execute("SELECT pg_advisory_unlock_all()")
    assert migrate(private_db, [Migration(1, "001_slow.sql", "CREATE TABLE first_step (x int);")]) == \
        ["001_slow.sql"]


def test_failing_migration_reports_its_name_and_error(private_db: str) -> None:
    bad = Migration(1, "001_bad.sql", "CREATE TABLE t (x int); SELECT 1/0;")
    with pytest.raises(MigrationError, match=r"001_bad.sql failed: DivisionByZero"):
        migrate(private_db, [bad])


def test_cli_prints_the_migration_error_not_a_connection_error(private_db: str, pg_admin_url: str) -> None:
    """The CLI path of issue 18: the session dies during `fatigue db migrate`.

    Deterministic: the test holds an exclusive lock on the migration ledger, so the CLI's session blocks inside
    the runner (after the advisory lock is taken); the test then terminates exactly that waiting session.
    """
    name = private_db.rpartition("/")[2]
    with psycopg.connect(private_db, autocommit=True) as setup:
        setup.execute("CREATE SCHEMA store; CREATE TABLE store.schema_migrations (version integer PRIMARY KEY, "
                      "name text NOT NULL, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
    holder = psycopg.connect(private_db)
    holder.execute("LOCK TABLE store.schema_migrations IN ACCESS EXCLUSIVE MODE")
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(
        CliRunner().invoke(main, ["db", "migrate"], env={"FATIGUE_DATABASE_URL": private_db})))
    worker.start()
    try:
        deadline = time.monotonic() + 60
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            while True:
                row = admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = "
                                    "'Lock' AND pid <> %s", (name, holder.info.backend_pid)).fetchone()
                if row:
                    admin.execute("SELECT pg_terminate_backend(%s)", (row[0],))
                    break
                assert time.monotonic() < deadline, "the CLI's migration never blocked on the ledger lock"
                time.sleep(0.05)
        worker.join(timeout=60)
    finally:
        holder.rollback()
        holder.close()
    assert not worker.is_alive() and len(result) == 1
    outcome = result[0]
    output = str(getattr(outcome, "output", ""))
    assert getattr(outcome, "exit_code", None) == 1, output
    assert "cannot connect to the database" not in output, output
    assert "terminating connection" in output.lower(), "the server's own reason is shown: " + output


def test_preloaded_libraries_parsing() -> None:
    assert preloaded_libraries("") == frozenset()
    assert preloaded_libraries("timescaledb") == {"timescaledb"}
    assert preloaded_libraries("'$libdir/timescaledb.so', pg_stat_statements") == {"timescaledb",
                                                                                      "pg_stat_statements"}
    assert "timescaledb" not in preloaded_libraries("pg_stat_statements, auto_explain")


def test_preload_problem_says_what_to_change() -> None:
    assert preload_problem(False, False, "") is None, "no TimescaleDB: plain partitions, nothing to say"
    assert preload_problem(True, False, "timescaledb,pg_stat_statements") is None
    assert preload_problem(True, False, None) is None, "setting unreadable: cannot tell, the migration decides"
    msg = preload_problem(True, False, "pg_stat_statements")
    assert msg is not None
    assert "shared_preload_libraries = 'timescaledb'" in msg and "restart PostgreSQL" in msg
    assert "fatigue db migrate" in msg and "installed on this server" in msg
    created = preload_problem(False, True, "")
    assert created is not None and "created in this database" in created


def test_preload_check_runs_before_anything_is_applied(private_db: str) -> None:
    """On this server the check passes (no TimescaleDB, or preloaded) and the real migrations apply."""
    with psycopg.connect(private_db, autocommit=True) as conn:
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'), "
                           "current_setting('shared_preload_libraries')").fetchone()
    assert row is not None
    expected_problem = preload_problem(bool(row[0]), False, str(row[1]))
    if expected_problem:
        with pytest.raises(MigrationError, match="not preloaded"):
            migrate(private_db)
        with psycopg.connect(private_db, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM store.schema_migrations").fetchone() == (0,)
    else:
        assert "002_raw_ingest.sql" in migrate(private_db)
