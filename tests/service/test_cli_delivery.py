"""``fatigue deliveries`` and ``fatigue export-requests`` against a real database: what an operator sees and does."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from service.cli import main
from service.scheduler import Scheduler
from store.migrate import migrate
from tests.conftest import create_database, drop_database
from tests.service.delivery_support import NOW, WEEK, Smtp, programme_of_states, serve_config


@pytest.fixture
def fresh_url(pg_admin_url: str) -> Iterator[str]:
    url = create_database(pg_admin_url, "fatigue_cli_delivery")
    migrate(url)
    try:
        yield url
    finally:
        drop_database(pg_admin_url, url)


def test_operator_lists_retries_and_cancels_failing_deliveries(fresh_url: str, tmp_path: Path) -> None:
    pytest.importorskip("aiosmtpd.controller", reason="pip install aiosmtpd (dev dependency)")
    runner, env = CliRunner(), {"FATIGUE_DATABASE_URL": fresh_url}
    empty = runner.invoke(main, ["deliveries", "list"], env=env)
    assert empty.exit_code == 0 and "no deliveries" in empty.output and "fatigue serve" in empty.output
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        programme_of_states(conn)
    smtp = Smtp().start()
    smtp.refuse.set()
    try:
        Scheduler(serve_config(fresh_url, tmp_path / "outbox", smtp, None, retry_base_s=3600.0)).tick(NOW)
    finally:
        smtp.stop()
    pending = runner.invoke(main, ["deliveries", "list", "--state", "pending"], env=env)
    assert pending.exit_code == 0
    lines = [line for line in pending.output.splitlines() if line.startswith(WEEK)]
    assert len(lines) == 6 and all("email" in line and "SMTPDataError 451" in line for line in lines)
    assert "fatigue deliveries retry" in pending.output
    retry = runner.invoke(main, ["deliveries", "retry", "--force", "flagged", "--week", WEEK], env=env)
    assert retry.exit_code == 0 and "1 deliveries due now" in retry.output
    cancel = runner.invoke(main, ["deliveries", "cancel", "--force", "flagged", "--week", WEEK, "--channel", "email"],
                           env=env)
    assert cancel.exit_code == 0 and "cancelled 1" in cancel.output
    again = runner.invoke(main, ["deliveries", "cancel", "--force", "flagged", "--week", WEEK], env=env)
    assert again.exit_code != 0 and "nothing pending" in again.output
    bad = runner.invoke(main, ["deliveries", "list", "--week", "2026-11"], env=env)
    assert bad.exit_code != 0 and "ISO week like 2026-W11" in bad.output
    listing = runner.invoke(main, ["deliveries", "list", "--force", "flagged"], env=env).output
    assert "cancelled" in listing and "delivered" in listing


def test_operator_approves_and_rejects_export_requests(fresh_url: str) -> None:
    runner, env = CliRunner(), {"FATIGUE_DATABASE_URL": fresh_url}
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        rows = [conn.execute("INSERT INTO access.export_requests (project, requested_by) VALUES ('p1', %s) "
                             "RETURNING request_id", (uuid.uuid4(),)).fetchone() for _ in range(2)]
    ids = [str(r[0]) for r in rows if r is not None]
    listed = runner.invoke(main, ["export-requests", "list", "--status", "requested"], env=env)
    assert listed.output.count("awaiting approval") == 2
    ok = runner.invoke(main, ["export-requests", "approve", ids[0], "--approver", "dr-a"], env=env)
    assert ok.exit_code == 0 and "fatigue serve" in ok.output
    twice = runner.invoke(main, ["export-requests", "approve", ids[0]], env=env)
    assert twice.exit_code != 0 and "no such request awaiting approval" in twice.output
    no = runner.invoke(main, ["export-requests", "reject", ids[1], "--reason", "no agreement"], env=env)
    assert no.exit_code == 0
    after = runner.invoke(main, ["export-requests", "list"], env=env).output
    assert "approved by dr-a" in after and "rejected" in after and "no agreement" in after
    missing = runner.invoke(main, ["export-requests", "approve", str(uuid.uuid4())], env=env)
    assert missing.exit_code != 0


def test_cli_channel_choices_are_the_delivery_channels() -> None:
    import risk.delivery
    import service.cli_delivery

    assert service.cli_delivery.CHANNELS == risk.delivery.CHANNELS
