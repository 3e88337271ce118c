"""`fatigue simulate` defaults fit the ingest lateness rule (or warn), and progress bars stay out of piped logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from service.cli_common import lateness_warning


def _simulate(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", "simulate", "--participants", "2", "--days", "14",
                           "--out", str(tmp_path / "sim"), *extra], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, check=True)


def test_default_start_is_recent_enough_to_ingest_and_logs_stay_clean(tmp_path: Path) -> None:
    proc = _simulate(tmp_path)
    start = date.fromisoformat(json.loads((tmp_path / "sim" / "manifest.json").read_text())["params"]["start_date"])
    today = date.today()
    assert start.weekday() == 0
    assert timedelta(days=15) <= today - start <= timedelta(days=22)  # ends 1-7 days ago
    assert "too_late" not in proc.stderr
    assert "\r" not in proc.stderr and "msg/s" not in proc.stderr, "a progress bar was written into a pipe"


def test_an_old_start_warns_before_replay_dead_letters_it(tmp_path: Path) -> None:
    proc = _simulate(tmp_path, "--start", "2025-03-03", env={"FATIGUE_INGEST_MAX_LATENESS_DAYS": "30"})
    assert "dead-letter them as too_late" in proc.stderr
    assert "FATIGUE_INGEST_MAX_LATENESS_DAYS=" in proc.stderr


def test_lateness_warning_edges() -> None:
    today = date(2026, 12, 2)
    assert lateness_warning(today - timedelta(days=30), today, 30) is None
    warning = lateness_warning(today - timedelta(days=31), today, 30)
    assert warning and "first 1 simulated day(s)" in warning and "=38" in warning
