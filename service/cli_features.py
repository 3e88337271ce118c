"""``fatigue features``: the daily feature job."""

from __future__ import annotations

import click

from service.cli_common import programme_for, show_progress
from service.settings import Settings


@click.command("features")
@click.option("--full", is_flag=True, help="Recompute every participant, not only those with new data.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes, each taking a contiguous range of participants.")
@click.option("--ranges", type=click.IntRange(1, 100_000), default=None,
              help="Run on several machines: claim participant ranges (of this many) through the database.")
@click.option("--run-label", default=None, help="With --ranges: the label every machine of this run shares.")
def features_command(full: bool, quiet: bool, workers: int, ranges: int | None, run_label: str | None) -> None:
    """Compute daily sleep, debt, regularity, HRV, resting-HR, recovery and roster features.

    By default only participants with new data since the last run (and every rolling window after it) are
    recomputed; the job is safe to run twice.
    """
    from features.job import run_features

    settings = click.get_current_context().find_root().obj
    assert isinstance(settings, Settings)
    from features.params import FeatureParams

    params = FeatureParams.of(programme_for(None, settings))
    if ranges is not None:
        if not run_label:
            raise click.UsageError("--ranges needs --run-label, the same on every machine of the run "
                                   "(e.g. --run-label nightly-2026-12-02)")
        from features.job_claims import run_claimed
        claimed = run_claimed(settings.database_url, settings.timezone, full, ranges, run_label, params=params)
        click.echo(f"ranges {list(claimed.ranges)} of {ranges} done by this worker")
        summary = claimed.features
    elif workers > 1:
        from features.job_parallel import run_parallel
        summary = run_parallel(settings.database_url, settings.timezone, full, workers, params=params)
    else:
        summary = run_features(settings.database_url, settings.timezone, full=full, progress=show_progress(quiet),
                               params=params)
    click.echo(f"{summary.participants} participant(s): {summary.days_written} day rows and "
               f"{summary.duties_written} duty rows written in {summary.seconds:.1f} s")
    click.echo("next: `fatigue models run`, then `fatigue flags`")


def register(group: click.Group) -> None:
    """Add `fatigue features` to the main CLI."""
    group.add_command(features_command)
