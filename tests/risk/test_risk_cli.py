"""`flags` and `report` commands registered on a click group, with a settings object in ctx.obj."""

from __future__ import annotations

import types
from datetime import date
from pathlib import Path
from typing import Any

import click
import psycopg
from click.testing import CliRunner

from service.cli_risk import register

Conn = psycopg.Connection[Any]


def _group(settings: Any) -> click.Group:
    @click.group()
    @click.pass_context
    def main(ctx: click.Context) -> None:
        ctx.obj = settings

    register(main)
    return main


def test_flags_then_report(db: Conn, db_url: str, seed: Any, tmp_path: Path) -> None:
    start = date(2026, 3, 2)
    for k in range(6):
        seed.nights(seed.participant("cli_f", start, f"CLI-{k}", consent_manager=True), start, 1, 14, tst_min=330)
    settings = types.SimpleNamespace(database_url=db_url, mqtt_url=None, timezone="Europe/London",
                                     outbox_dir=tmp_path / "outbox", smtp_url=None)
    main = _group(settings)
    runner = CliRunner()
    out = runner.invoke(main, ["flags", "--as-of", "2026-03-20"])
    assert out.exit_code == 0, out.output
    assert "12 issued" in out.output and "red 12" in out.output  # S2: 7 x 2.5 h debt
    again = runner.invoke(main, ["flags", "--as-of", "2026-03-20"])
    assert "0 issued, 0 revised" in again.output
    rep = runner.invoke(main, ["report", "--week", "2026-W11", "--force", "cli_f"])
    assert rep.exit_code == 0, rep.output
    assert list((tmp_path / "outbox" / "cli_f" / "2026-W11").glob("*/report.html"))
    bad = runner.invoke(main, ["report", "--week", "2026-11", "--force", "cli_f"])
    assert bad.exit_code != 0 and "ISO week" in bad.output


def test_bad_programme_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text('version = "x"\n')
    settings = types.SimpleNamespace(database_url="postgresql://nobody@127.0.0.1:1/none", mqtt_url=None,
                                     timezone="Europe/London", outbox_dir=tmp_path, smtp_url=None)
    out = CliRunner().invoke(_group(settings), ["flags", "--programme", str(bad)])
    assert out.exit_code != 0 and "programme file: thresholds: expected a table" in out.output
