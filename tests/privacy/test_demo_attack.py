"""The attacker's checker on the demo cohort: ``fatigue demo`` (simulated officers, real ingest, features,
models, flags and reports), then the manager's API on the same database as ``fatigue_web``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.auth import create_token
from service.demo import DemoOptions, DemoSummary, run_demo
from service.local_servers import PrivateMosquitto
from tests.access.access_support import as_role
from tests.conftest import create_database, drop_database
from tests.privacy.attacker import attack
from tests.privacy.test_attacker import collect


@pytest.fixture(scope="module")
def demo(pg_admin_url: str, mqtt_broker: PrivateMosquitto,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoSummary, str]]:
    url = create_database(pg_admin_url, "fatigue_demo_privacy")
    tag = uuid.uuid4().hex[:8]
    opts = DemoOptions(participants=16, forces=1, days=28, folder=tmp_path_factory.mktemp("demo"),
                       ingest_group=f"demo{tag}", client_id=f"fatigue-demo-privacy-{tag}", progress=False,
                       export_k=2)
    try:
        yield run_demo(opts, database_url=url, mqtt_url=mqtt_broker.url, mqtt_host=mqtt_broker.host,
                       mqtt_port=mqtt_broker.port, echo=lambda _line: None), url
    finally:
        drop_database(pg_admin_url, url)


@pytest.mark.slow
def test_attacker_finds_nothing_in_the_demo(demo: tuple[DemoSummary, str], tmp_path: Path) -> None:
    summary, url = demo
    assert summary.reports
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET fatigue.all_forces = 'on'")
        force = str(conn.execute("SELECT force_id FROM core.forces").fetchone()[0])  # type: ignore[index]
        token = create_token(conn, "manager", timedelta(hours=1), force_id=force)[1]
        unnamed = conn.execute("SELECT count(*) FROM core.participants WHERE NOT consent_manager").fetchone()
    assert unnamed is not None and unnamed[0] > 0, "the demo cohort has officers who are not named"
    app = create_app(as_role(url, "fatigue_web"), tmp_path, pool_size=2)
    with TestClient(app) as client:
        for html in summary.reports:
            iso = html.parent.parent.name  # outbox/<force>/<iso week>/<report id>/report.html
            week_end = date.fromisocalendar(int(iso[:4]), int(iso[6:]), 7)
            out = collect(client, token, force, html, sorted(html.parent.glob("*.csv")), week_end)
            assert attack(out) == [], (iso, [str(f) for f in attack(out)])
