"""The ``fatigue`` command line: one entry point for operators, administrators and researchers.

Each command reads its settings once (``service.settings``), passes them down, and ends with what to do next.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

import click

from service.cli_common import connect, settings_of
from service.settings import SettingsError, load_settings

if TYPE_CHECKING:
    pass

HELP = """Police fatigue-study data service.

\b
Typical order of work:
  fatigue db migrate                      create or update the schema
  fatigue participants import people.csv  enrol officers and their devices
  fatigue roster import roster.csv        load duty rosters
  fatigue ingest                          consume sensor messages from MQTT
  fatigue features                        compute daily features for new data
  fatigue flags                           issue weekly fatigue flags
  fatigue compliance                      who is not wearing the device; alerts
  fatigue export run --project NAME --out DIR
                                          anonymised research export

Configuration comes from FATIGUE_* environment variables (see README, "Configuration").
Run `fatigue COMMAND --help` for details of each command.
"""

# Start-up cost: `fatigue --version` and `--help` must stay well under 0.3 s, so this module and every area
# module import only click and the settings at module level; database drivers, NumPy, pandas, SciPy,
# scikit-learn, FastAPI and the jobs are imported inside the commands that use them
# (tests/service/test_cli_startup.py checks it).

# Command groups contributed by other packages' CLI modules; each has register(group).
AREA_MODULES: tuple[str, ...] = (
    "service.cli_ingest", "service.cli_features", "service.cli_models", "service.cli_risk",
    "service.cli_exports", "service.cli_access", "service.cli_run", "service.cli_delivery",
    "service.cli_compliance", "service.cli_validate",
)


@click.group(help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fatigue-service")
@click.pass_context
def main(ctx: click.Context) -> None:
    try:
        ctx.obj = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    from service.logs import configure_logging

    configure_logging(ctx.obj.log_level)


@main.group()
def db() -> None:
    """Schema migrations and storage status."""


@db.command("migrate")
@click.pass_context
def db_migrate(ctx: click.Context) -> None:
    """Apply pending numbered migrations (safe to run twice)."""
    import psycopg

    from store.migrate import MigrationError, migrate

    settings = settings_of(ctx)
    try:
        applied = migrate(settings.database_url)
    except MigrationError as exc:
        raise click.ClickException(str(exc)) from exc
    except psycopg.OperationalError as exc:
        raise click.ClickException(f"cannot connect to the database: {exc.__class__.__name__}; "
                                   "check FATIGUE_DATABASE_URL") from exc
    if applied:
        click.echo(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        click.echo("schema is up to date; nothing to apply")
    click.echo("next: `fatigue db status`, then `fatigue participants import FILE.csv`")


@db.command("status")
@click.pass_context
def db_status(ctx: click.Context) -> None:
    """Show applied and pending migrations and how raw streams are stored."""
    import psycopg

    from store.migrate import status

    settings = settings_of(ctx)
    try:
        st = status(settings.database_url)
    except psycopg.OperationalError as exc:
        raise click.ClickException(f"cannot connect to the database: {exc.__class__.__name__}") from exc
    click.echo(f"applied migrations: {len(st.applied)}" + (f" (latest {st.applied[-1][1]})" if st.applied else ""))
    click.echo(f"pending migrations: {len(st.pending)}" +
               (" -> run `fatigue db migrate`" if st.pending else ""))
    for _, name in st.pending:
        click.echo(f"  pending: {name}")
    click.echo(f"storage mode: {st.storage_mode or 'not decided yet (run fatigue db migrate)'}")
    if st.storage_detail:
        click.echo(f"  {st.storage_detail}")


@db.command("maintain")
@click.option("--months-ahead", type=int, default=3, show_default=True)
@click.pass_context
def db_maintain(ctx: click.Context, months_ahead: int) -> None:
    """Storage maintenance, the same retention in both storage modes (the scheduler runs it weekly).

    Plain PostgreSQL: create the coming monthly partitions and drop those wholly past retention (485 days).
    TimescaleDB: run every overdue compression or retention policy job with CALL run_job. Exits 1 when a job
    failed or is unhealthy (overdue or paused), after reporting what it did.
    """
    import psycopg

    from store.maintenance import maintenance_summary, run_maintenance

    settings = settings_of(ctx)
    with connect(settings) as conn:
        try:
            report = run_maintenance(conn, months_ahead)
        except (LookupError, psycopg.errors.UndefinedTable) as exc:
            raise click.ClickException("the schema is not migrated yet; run `fatigue db migrate` first") from exc
    click.echo(maintenance_summary(report))
    if not report.ok:
        raise click.ClickException("maintenance found a problem (see above); check the database log, fix the "
                                   "cause and run `fatigue db maintain` again")


@main.group()
def participants() -> None:
    """Enrol participants and devices, withdraw, erase."""


@participants.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def participants_import(ctx: click.Context, csv_file: Path) -> None:
    """Import participants from CSV_FILE (all rows or none).

    Columns: force_id, staff_ref, role_group, age_band, sex, programme_start, consent_manager,
    consent_research, device_ids (';'-separated), gateway_id.
    """
    from store import enrolment

    settings = settings_of(ctx)
    with connect(settings) as conn:
        try:
            summary = enrolment.import_participants(conn, csv_file, settings.tz)
        except enrolment.CsvImportError as exc:
            raise click.ClickException(f"{exc}\nfix these rows and run the import again") from exc
    click.echo(f"{summary.rows} participant(s): {summary.inserted} new, {summary.updated} updated, "
               f"{summary.unchanged} unchanged" + ("" if summary.changed else " -- nothing changed"))
    click.echo("next: `fatigue roster import ROSTER.csv`")


@participants.command("withdraw")
@click.argument("participant")
@click.option("--erase", is_flag=True, help="Also delete all raw and derived data (irreversible).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation of --erase.")
@click.pass_context
def participants_withdraw(ctx: click.Context, participant: str, erase: bool, yes: bool) -> None:
    """Withdraw PARTICIPANT (internal id or FORCE/STAFF_REF); with --erase delete their data."""
    from store import enrolment

    settings = settings_of(ctx)
    with connect(settings) as conn:
        try:
            pid, force = enrolment.resolve_participant(conn, participant)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from exc
        if not erase:
            enrolment.withdraw_participant(conn, pid)
            click.echo("withdrawn: no new data is accepted and no later flag or export includes them")
            return
        if not yes:
            click.confirm("Erase every row of this participant? This cannot be undone", abort=True)
        counts = enrolment.erase_participant(conn, pid, requested_by="cli-admin")
    click.echo(f"erased {sum(counts.values())} row(s) from {len(counts)} table(s) in force {force}; "
               "an audit record without personal data was kept")


@main.group()
def roster() -> None:
    """Duty rosters."""


@roster.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def roster_import(ctx: click.Context, csv_file: Path) -> None:
    """Import duties from CSV_FILE (all rows or none).

    Columns: force_id, staff_ref, start, end (RFC 3339 with offset), shift_type, overtime.
    """
    from store import enrolment

    settings = settings_of(ctx)
    with connect(settings) as conn:
        try:
            summary = enrolment.import_roster(conn, csv_file)
        except enrolment.CsvImportError as exc:
            raise click.ClickException(f"{exc}\nfix these rows and run the import again") from exc
    click.echo(f"{summary.rows} duties: {summary.inserted} new, {summary.updated} updated, "
               f"{summary.unchanged} unchanged" + ("" if summary.changed else " -- nothing changed"))
    click.echo("next: `fatigue features` once sensor data has arrived")


for _module in AREA_MODULES:
    importlib.import_module(_module).register(main)


if __name__ == "__main__":  # pragma: no cover
    main()
