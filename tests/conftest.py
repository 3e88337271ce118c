"""Test harness: real PostgreSQL and real Mosquitto, never mocks.

- ``pg_admin_url``: the shared server (``FATIGUE_TEST_PG_URL`` or 127.0.0.1:5432) if reachable, otherwise a
  private cluster started for the session, so the suite also runs on a machine without services.
- ``db_url``: a fresh database per test module with every migration applied, dropped afterwards.
- ``db``: an autocommit connection to it.
- ``mqtt_broker``: a private Mosquitto on a free port for the session.
- ``private_pg``: a private cluster a test may stop, restart or kill.
- ``FATIGUE_REQUIRE_TIMESCALEDB=1``: a test marked ``timescaledb`` that skips fails instead, so a run against a
  TimescaleDB server cannot pass by skipping (see :func:`pytest_runtest_makereport`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from service.local_servers import PrivateMosquitto, PrivatePostgres
from store.migrate import migrate

SHARED_PG = os.environ.get("FATIGUE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_TIMESCALEDB = os.environ.get("FATIGUE_REQUIRE_TIMESCALEDB", "") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under ``FATIGUE_REQUIRE_TIMESCALEDB=1`` a skipped ``timescaledb`` test is reported as failed."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if REQUIRE_TIMESCALEDB and report.skipped and item.get_closest_marker("timescaledb") is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"FATIGUE_REQUIRE_TIMESCALEDB=1 but this TimescaleDB test skipped: {reason}"


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a server on which tests may create and drop databases."""
    if _reachable(SHARED_PG):
        yield SHARED_PG
        return
    root = _postgres_reachable_dir("fatigue-pg-session-")
    server = PrivatePostgres(root / "cluster")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def create_database(admin_url: str, prefix: str = "fatigue_test") -> str:
    """Create an empty database with a unique name and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_db(admin_url, name)


def drop_database(admin_url: str, url: str) -> None:
    """Drop the database at ``url`` (terminating its connections)."""
    name = url.rpartition("/")[2]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def db_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database with every migration applied, for one test module."""
    url = create_database(pg_admin_url)
    migrate(url)
    try:
        yield url
    finally:
        drop_database(pg_admin_url, url)


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection to the module's database."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMosquitto]:
    """A private Mosquitto for the session (persistence on, large queues)."""
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    broker = PrivateMosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _postgres_reachable_dir(prefix: str) -> Path:
    """A fresh folder outside pytest's private (mode 0700) tree, so the postgres user can reach it."""
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL cluster that the test may stop, restart or kill."""
    root = _postgres_reachable_dir("fatigue-pg-")
    server = PrivatePostgres(root / "cluster")
    server.start()
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fresh_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMosquitto]:
    """A private Mosquitto that the test may stop or restart."""
    broker = PrivateMosquitto(tmp_path_factory.mktemp("mosquitto-private"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
