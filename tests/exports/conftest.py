"""Export tests share one migrated database and one set of exports per session (building the cohort and
running four exports is the expensive part). The database is created on ``pg_admin_url`` with every migration
applied, exactly as ``db_url`` does, and dropped at the end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from store.migrate import migrate
from tests.exports.export_cohort import World, build_cohort, export


@pytest.fixture(scope="session")
def export_db_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database with every migration applied, shared by the export tests."""
    name = f"fatigue_test_exports_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{pg_admin_url.rpartition('/')[0]}/{name}"
    try:
        migrate(url)
        yield url
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def world(export_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    """Cohort plus four exports: project A (parquet), project B (csv), A again after 3 withdrawals (csv), and A
    for weeks 2-4 only."""
    url = export_db_url
    root = tmp_path_factory.mktemp("exports")
    with psycopg.connect(url, autocommit=True) as conn:
        cohort = build_cohort(conn)
    a1 = export(url, root / "a1", "sleep-study-a")
    b = export(url, root / "b", "other-project-b", fmt="csv")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE core.participants SET withdrawn_at = now() WHERE participant_id = ANY(%s::uuid[])",
                     (cohort.withdrawn,))
    a2 = export(url, root / "a2", "sleep-study-a", fmt="csv")
    a_after = export(url, root / "a3", "sleep-study-a", from_week=2, to_week=4)
    return World(url, cohort, a1, a2, b, a_after)
