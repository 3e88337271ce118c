"""``fatigue export run`` and ``fatigue export verify``: anonymised research exports and their ledger check.

Wire with ``service.cli_exports.register(main)`` (add ``"service.cli_exports"`` to ``AREA_MODULES``).

\b
  fatigue export run --project NAME --out DIR [--from-week N --to-week M] [--format parquet|csv]
  fatigue export verify DIR
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import click

__all__ = ["register"]


def _settings() -> Any:
    """Root settings object (attributes database_url, pseudonym_key, pseudonym_key_version)."""
    return click.get_current_context().find_root().obj


@click.group("export")
def export_group() -> None:
    """Anonymised research exports (policy v1: keyed pseudonyms, k >= 10, small cells suppressed)."""


@export_group.command("run")
@click.option("--project", required=True, help="Research project; pseudonyms are stable within it only.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to deliver into (must not exist or be empty).")
@click.option("--from-week", type=click.IntRange(1, 52), default=1, show_default=True, help="First programme week.")
@click.option("--to-week", type=click.IntRange(1, 52), default=52, show_default=True, help="Last programme week.")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True)
@click.option("--requester", default=None, help="Who asked for the export (ledger). Default: the OS user.")
@click.option("--approver", default=None, help="Who approved it (ledger), if recorded.")
def export_run(project: str, out: Path, from_week: int, to_week: int, fmt: str, requester: str | None,
               approver: str | None) -> None:
    """Write a checked, ledger-recorded Frictionless data package of the consenting, non-withdrawn cohort."""
    from exports.job import ExportRequest, run_export
    from exports.policy import ExportRefusedError

    settings = _settings()
    key = getattr(settings, "pseudonym_key", None)
    if not key:
        raise click.ClickException("no pseudonym key: set FATIGUE_PSEUDONYM_KEY or FATIGUE_PSEUDONYM_KEY_FILE")
    req = ExportRequest(project=project, out=out, master_key=bytes(key),
                        key_version=int(getattr(settings, "pseudonym_key_version", 1)),
                        requester=requester or getpass.getuser(), from_week=from_week, to_week=to_week, fmt=fmt,
                        approver=approver)
    try:
        result = run_export(settings.database_url, req)
    except ExportRefusedError as exc:
        raise click.ClickException(f"{exc} -- nothing was delivered or recorded") from exc
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    rows = ", ".join(f"{k} {v}" for k, v in result.row_counts.items())
    click.echo(f"export delivered to {result.out} (ledger entry {result.ledger_seq}): {rows}; "
               f"k achieved {result.k_achieved}; participants suppressed {result.suppression['participants']}")
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo(f"next: send the folder; the recipient can be checked with `fatigue export verify {result.out}`")


@export_group.command("verify")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def export_verify(folder: Path) -> None:
    """Check a delivered folder against the export ledger (file hashes and the hash chain)."""
    from exports.job import verify_delivery

    result = verify_delivery(_settings().database_url, folder)
    if not result.ok:
        raise click.ClickException("verification failed: " + "; ".join(result.problems))
    click.echo(f"{folder}: matches ledger entry {result.ledger_seq}; ledger chain verifies")


def register(group: click.Group) -> None:
    """Add the ``export`` command group to the main CLI."""
    group.add_command(export_group)
