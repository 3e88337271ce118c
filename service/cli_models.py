"""``fatigue models ...``: three-process duty exposure and the sleepiness model.

Wire with ``service.cli_models.register(main)`` (add ``"service.cli_models"`` to ``AREA_MODULES``).

\b
  fatigue models run                   duty exposure (minutes at predicted KSS >= 7 / >= 8) for every duty
  fatigue models train --out FILE      fit the sleepiness model on the KSS self-reports and save it
  fatigue models evaluate              grouped cross-validation: model vs the three-process model alone
  fatigue models score --model FILE    write per-day P(KSS >= 7) into derived.sleepiness_scores
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from service.cli_common import programme_for, show_progress
from service.settings import Settings

if TYPE_CHECKING:
    import psycopg

__all__ = ["register"]


def _settings() -> Settings:
    """The settings loaded by the top-level ``fatigue`` group."""
    obj = click.get_current_context().find_root().obj
    if not isinstance(obj, Settings):
        raise click.ClickException("internal error: settings were not loaded by the fatigue command")
    return obj


def _db_error(exc: psycopg.OperationalError) -> click.ClickException:
    return click.ClickException(f"cannot reach the database ({exc.__class__.__name__}); is PostgreSQL running, "
                                "and is FATIGUE_DATABASE_URL right?")


@click.group("models")
def models_group() -> None:
    """Fatigue models: three-process duty exposure and the sleepiness model."""


@models_group.command("run")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def models_run(quiet: bool) -> None:
    """Recompute the three-process exposure of every rostered duty (all non-withdrawn participants).

    Warm-up duties (first 4 days of each participant's simulation) are written with empty exposure; safe to
    run twice.
    """
    import psycopg

    from models.job import run_models  # the three-process model only: no scikit-learn

    settings = _settings()
    try:
        summary = run_models(settings.database_url, settings.timezone, progress=show_progress(quiet),
                             warmup_days=programme_for(None, settings).warmup_days)
    except psycopg.OperationalError as exc:
        raise _db_error(exc) from exc
    click.echo(f"{summary.participants} participant(s), {summary.duties} duties: {summary.rows_changed} row(s) "
               f"written or changed, {summary.rows_deleted} stale row(s) removed; {summary.warmup} in warm-up, "
               f"{summary.estimated} estimated from roster-predicted sleep ({summary.seconds:.1f} s)")
    click.echo("next: `fatigue flags` to issue the weekly flags")


@models_group.command("train")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Model file to write (a JSON sidecar FILE.json is written next to it).")
def models_train(out: Path) -> None:
    """Fit the sleepiness model (KSS >= 7) on all self-reports and save it with its training-data hash."""
    import psycopg

    from models.job_sleepiness import InsufficientTrainingDataError, train_sleepiness

    settings = _settings()
    try:
        summary = train_sleepiness(settings.database_url, out, settings.timezone)
    except InsufficientTrainingDataError as exc:
        raise click.ClickException(f"{exc}; collect more KSS answers and train again") from exc
    except psycopg.OperationalError as exc:
        raise _db_error(exc) from exc
    click.echo(f"trained on {summary.rows} answer(s) ({summary.positives} with KSS >= 7) from "
               f"{summary.participants} participant(s); saved {summary.model_path} and {summary.sidecar_path}")
    click.echo(f"model version {summary.model_version}, training data SHA-256 {summary.training_sha256}")
    click.echo(f"next: `fatigue models evaluate`, then `fatigue models score --model {summary.model_path}`")


@models_group.command("evaluate")
@click.option("--splits", type=click.IntRange(2, 20), default=5, show_default=True,
              help="Grouped cross-validation folds (participants never span folds).")
def models_evaluate(splits: int) -> None:
    """Cross-validate the sleepiness model by participant and compare it with the three-process model alone."""
    import psycopg

    from models.job_sleepiness import InsufficientTrainingDataError, evaluate_sleepiness

    settings = _settings()
    try:
        ev = evaluate_sleepiness(settings.database_url, settings.timezone, n_splits=splits)
    except InsufficientTrainingDataError as exc:
        raise click.ClickException(f"{exc}; collect more KSS answers and evaluate again") from exc
    except psycopg.OperationalError as exc:
        raise _db_error(exc) from exc
    click.echo(f"{ev.n_rows} answer(s), {ev.n_groups} participant(s), {ev.n_splits} grouped folds")
    click.echo(f"sleepiness model: ROC AUC {ev.roc_auc:.3f}, Brier {ev.brier:.4f}")
    click.echo(f"three-process model alone: ROC AUC {ev.tpm_roc_auc:.3f}, Brier {ev.tpm_brier:.4f}")
    click.echo("next: `fatigue models train --out FILE` if the model beats the TPM, then `fatigue models score`")


@models_group.command("score")
@click.option("--model", "model", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Model file written by `fatigue models train`.")
def models_score(model: Path) -> None:
    """Write P(KSS >= 7) for every participant-day into derived.sleepiness_scores (refuses mismatched models)."""
    import psycopg

    from models.job_sleepiness import score_sleepiness
    from models.persistence import ModelMismatchError

    settings = _settings()
    try:
        summary = score_sleepiness(settings.database_url, model, settings.timezone)
    except ModelMismatchError as exc:
        raise click.ClickException(f"refusing the model: {exc}; retrain with `fatigue models train`") from exc
    except (FileNotFoundError, KeyError) as exc:
        raise click.ClickException(f"model metadata missing or incomplete for {model}: {exc}") from exc
    except psycopg.OperationalError as exc:
        raise _db_error(exc) from exc
    click.echo(f"{summary.days} participant-day(s) scored, {summary.rows_changed} row(s) written or changed, "
               f"model version {summary.model_version} ({summary.seconds:.1f} s)")
    click.echo("next: `fatigue flags`, or `fatigue export run` for research use")


def register(group: click.Group) -> None:
    """Add the ``models`` command group to the main CLI."""
    group.add_command(models_group)
