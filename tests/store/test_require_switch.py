"""FATIGUE_REQUIRE_TIMESCALEDB=1 turns a skipped TimescaleDB test into a failure (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
TEST = "tests/store/test_migrations.py::test_timescaledb_hypertables_with_policies"


def _run(require: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FATIGUE_REQUIRE_TIMESCALEDB": require}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_require_switch(pg_admin_url: str) -> None:
    with psycopg.connect(pg_admin_url) as conn:
        present = conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
                               ).fetchone() == (1,)
    relaxed, strict = _run("0"), _run("1")
    if present:
        assert relaxed.returncode == 0 and strict.returncode == 0, relaxed.stdout + strict.stdout
        return
    assert relaxed.returncode == 0 and "1 skipped" in relaxed.stdout, relaxed.stdout
    assert strict.returncode == 1, strict.stdout
    assert "FATIGUE_REQUIRE_TIMESCALEDB=1 but this TimescaleDB test skipped" in strict.stdout
    assert "1 failed" in strict.stdout
