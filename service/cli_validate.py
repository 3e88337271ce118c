"""``fatigue validate``: seeded cohorts end to end, flags scored against the simulator's ground truth.

Wire with ``service.cli_validate.register(main)`` (``"service.cli_validate"`` in ``AREA_MODULES``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # heavy imports only inside the command: `fatigue --help` stays fast
    from risk.validation.metrics import Summary

__all__ = ["register", "validate"]

#: Seeds the thresholds and simulator parameters were tuned on; check on others (docs/validation.md).
TUNING_SEEDS = (1, 2, 3)


def validate(admin_url: str, seeds: tuple[int, ...], participants: int, days: int | None, faults: str,
             programme: Any, tz: str, workdir: Path, echo: Any = print) -> Summary:
    """Run every seed with ``faults`` and without faults, score them and pool the figures."""
    from risk.validation.metrics import score_cohort, summarise
    from risk.validation.pipeline import run_cohort
    from risk.validation.truth import true_levels
    from simulators.params import SimParams

    scores = []
    n_days = days or programme.days
    for seed in seeds:
        params = SimParams(n_participants=participants, n_days=n_days, seed=seed)
        echo(f"seed {seed}: {participants} officers x {n_days} days, faults {faults} ...")
        run = run_cohort(admin_url, params, programme, workdir, faults=faults, tz=tz)
        echo(f"seed {seed}: same cohort without faults ...")
        clean = run_cohort(admin_url, params, programme, workdir, faults="none", tz=tz)
        truth = true_levels(run.truth, programme, run.start, tz)
        scores.append(score_cohort(seed, run.flags, clean.flags, truth))
    return summarise(scores)


@click.command("validate")
@click.option("--seeds", default="1,2,3", show_default=True, help="Comma-separated simulation seeds.")
@click.option("--participants", type=click.IntRange(5, 2000), default=60, show_default=True)
@click.option("--days", type=click.IntRange(21, 400), default=None, help="Days (default: the programme's).")
@click.option("--faults", type=click.Choice(["none", "default", "heavy"]), default="default", show_default=True)
@click.option("--programme", "programme_path", default=None,
              help="Programme TOML file or packaged version (default programme-v2).")
@click.option("--out", "out_md", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("docs/validation.md"), show_default=True, help="Markdown report (figure and JSON beside).")
def validate_command(seeds: str, participants: int, days: int | None, faults: str, programme_path: str | None,
                     out_md: Path) -> None:
    """Validate the weekly flags against ground truth on seeded simulated cohorts (needs PostgreSQL).

    Creates and drops a scratch database per run next to FATIGUE_DATABASE_URL; prints the figures, writes
    the report, an SVG figure and a JSON file, and exits 1 when an acceptance band does not hold.
    """
    import psycopg

    from risk.programme import ProgrammeError, load_programme
    from risk.validation.metrics import BANDS, render_markdown, render_svg

    settings = click.get_current_context().find_root().obj
    try:
        programme = load_programme(programme_path)
    except ProgrammeError as exc:
        raise click.ClickException(f"programme file: {exc}") from exc
    try:
        seed_list = tuple(int(s) for s in seeds.split(",") if s.strip())
    except ValueError as exc:
        raise click.BadParameter("expected integers, e.g. 1,2,3", param_hint="--seeds") from exc
    admin_url = f"{settings.database_url.rpartition('/')[0]}/postgres"
    try:
        with tempfile.TemporaryDirectory(prefix="fatigue-validate-") as tmp:
            summary = validate(admin_url, seed_list, participants, days, faults, programme, settings.timezone,
                               Path(tmp), echo=click.echo)
    except psycopg.OperationalError as exc:
        raise click.ClickException(f"cannot reach PostgreSQL to create a scratch database ({exc.__class__.__name__}); "
                                   "is it running, and may FATIGUE_DATABASE_URL's user create databases?") from exc
    out_md.parent.mkdir(parents=True, exist_ok=True)
    figure = out_md.with_suffix(".svg")
    figure.write_text(render_svg(summary), encoding="utf-8")
    out_md.with_suffix(".json").write_text(summary.to_json(), encoding="utf-8")
    tuned = "tuned on" if set(seed_list) <= set(TUNING_SEEDS) else "not tuned on (tuning seeds: 1, 2, 3)"
    meta = {"programme": programme.version, "seeds": ", ".join(map(str, seed_list)) + f" ({tuned})",
            "officers": participants, "days": days or programme.days, "faults": faults}
    out_md.write_text(render_markdown(summary, meta, figure.name), encoding="utf-8")
    for key, (lo, hi) in BANDS.items():
        mark = "ok  " if summary.passed[key] else "FAIL"
        click.echo(f"{mark} {key:26s} {summary.figures[key]:8.3f}   band {lo:g} .. {hi:g}")
    click.echo(f"wrote {out_md}, {figure.name} and {out_md.with_suffix('.json').name}")
    if not summary.ok:
        raise SystemExit(1)


def register(group: click.Group) -> None:
    """Add ``validate`` to the ``fatigue`` command group."""
    group.add_command(validate_command)
