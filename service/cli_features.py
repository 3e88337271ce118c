"""``fatigue features``: the daily feature job."""

from __future__ import annotations

import click

from service.cli_common import show_progress
from service.settings import Settings


@click.command("features")
@click.option("--full", is_flag=True, help="Recompute every participant, not only those with new data.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def features_command(full: bool, quiet: bool) -> None:
    """Compute daily sleep, debt, regularity, HRV, resting-HR, recovery and roster features.

    By default only participants with new data since the last run (and every rolling window after it) are
    recomputed; the job is safe to run twice.
    """
    from features.job import run_features

    settings = click.get_current_context().find_root().obj
    assert isinstance(settings, Settings)
    from features.params import FeatureParams
    from risk.programme import ProgrammeError, load_programme

    try:
        params = FeatureParams.of(load_programme(getattr(settings, "programme", None)))
    except ProgrammeError as exc:
        raise click.ClickException(f"FATIGUE_PROGRAMME: {exc}") from exc
    summary = run_features(settings.database_url, settings.timezone, full=full, progress=show_progress(quiet),
                           params=params)
    click.echo(f"{summary.participants} participant(s): {summary.days_written} day rows and "
               f"{summary.duties_written} duty rows written in {summary.seconds:.1f} s")
    click.echo("next: `fatigue models run`, then `fatigue flags`")


def register(group: click.Group) -> None:
    """Add `fatigue features` to the main CLI."""
    group.add_command(features_command)
