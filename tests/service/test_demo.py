"""A small ``fatigue demo`` inside the suite, against the fixtures' real PostgreSQL and Mosquitto."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from service.demo import DemoOptions, DemoSummary, demo_start_date, format_summary, run_demo
from service.local_servers import PrivateMosquitto
from tests.conftest import create_database, drop_database

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def demo_run(pg_admin_url: str, mqtt_broker: PrivateMosquitto,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoSummary, str, list[str]]]:
    url = create_database(pg_admin_url, "fatigue_demo")
    tag = uuid.uuid4().hex[:8]
    opts = DemoOptions(participants=12, forces=1, days=28, folder=tmp_path_factory.mktemp("demo"),
                       ingest_group=f"demo{tag}", client_id=f"fatigue-demo-test-{tag}", progress=False,
                       export_k=2)
    lines: list[str] = []
    try:
        summary = run_demo(opts, database_url=url, mqtt_url=mqtt_broker.url, mqtt_host=mqtt_broker.host,
                           mqtt_port=mqtt_broker.port, echo=lines.append)
        yield summary, url, lines
    finally:
        drop_database(pg_admin_url, url)


def test_start_date_is_a_monday_and_the_programme_ends_before_today() -> None:
    for today in (date(2026, 11, 23), date(2026, 11, 29), date(2027, 1, 1)):
        start = demo_start_date(today, 120)
        assert start.weekday() == 0
        assert 2 <= (today - (start + timedelta(days=119))).days <= 8


def test_demo_runs_every_stage(demo_run: tuple[DemoSummary, str, list[str]]) -> None:
    summary, url, lines = demo_run
    assert summary.participants == 12
    assert summary.samples_stored > 0
    assert summary.features_rows > 0
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM derived.daily_features WHERE valid_sleep_day").fetchone()
        assert row is not None and row[0] > 0
        with conn.transaction():
            conn.execute("SELECT set_config('fatigue.all_forces', 'on', true)")
            weeks = {r[0] for r in conn.execute("SELECT DISTINCT programme_week FROM risk.weekly_flags "
                                                "WHERE is_current").fetchall()}
    assert summary.start_date is not None
    closed = {w for w in range(1, 5) if summary.start_date + timedelta(days=7 * w - 1) <= date.today() - timedelta(2)}
    assert closed and weeks == closed, "every closed week of the 28-day programme is flagged"
    assert set(summary.flags_by_week) == weeks
    assert summary.reports and all(p.suffix == ".html" and p.stat().st_size > 0 for p in summary.reports)
    assert summary.export_dir is not None and (summary.export_dir / "datapackage.json").exists()
    text = "\n".join(lines + format_summary(summary, keep=False))
    assert "[11/11] summary" in text and "samples stored" in text and str(summary.export_dir) in text


def test_report_renders_in_headless_chromium(demo_run: tuple[DemoSummary, str, list[str]]) -> None:
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        pytest.skip("no /usr/bin/chromium: cannot render the report HTML to a screenshot")
    summary, _, _ = demo_run
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "demo_report.png"
    shot.unlink(missing_ok=True)
    done = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--screenshot={shot}", "--window-size=1280,1600",
                           summary.reports[-1].resolve().as_uri()],
                          capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-500:]
    assert shot.exists() and shot.stat().st_size > 1000
