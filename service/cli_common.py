"""Small helpers shared by the CLI modules (import-light: click, the settings and the standard library only)."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from service.settings import Settings

if TYPE_CHECKING:
    import psycopg

    from risk.programme import Programme

__all__ = ["connect", "lateness_warning", "programme_for", "settings_of", "show_progress"]


def show_progress(quiet: bool) -> bool:
    """Progress bars only when asked for and stderr is a terminal: a piped log gets no carriage-return noise."""
    return not quiet and sys.stderr.isatty()


def lateness_warning(start: date, today: date, max_lateness_days: int) -> str | None:
    """A warning when samples from ``start`` on would be dead-lettered ``too_late`` if published ``today``."""
    old = (today - start).days - max_lateness_days
    if old <= 0:
        return None
    return (f"warning: the first {old} simulated day(s) are older than FATIGUE_INGEST_MAX_LATENESS_DAYS="
            f"{max_lateness_days} and the ingester will dead-letter them as too_late; run the ingester with "
            f"FATIGUE_INGEST_MAX_LATENESS_DAYS={(today - start).days + 7} (as `fatigue demo` does), or simulate "
            f"fewer --days or a later --start")


def settings_of(ctx: click.Context) -> Settings:
    """The settings loaded by the top-level group."""
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


def connect(settings: Settings) -> psycopg.Connection[tuple[Any, ...]]:
    """Open an autocommit connection or fail with a message that says what to check."""
    import psycopg

    try:
        return psycopg.connect(settings.database_url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise click.ClickException(
            f"cannot connect to the database ({exc.__class__.__name__}); is PostgreSQL running, "
            "and is FATIGUE_DATABASE_URL right?") from exc


def programme_for(option: str | Path | None, settings: Settings) -> Programme:
    """The programme a command works with: ``--programme`` when given, else ``FATIGUE_PROGRAMME``, else the
    packaged default; a bad file stops the command with one line naming where it came from."""
    from risk.programme import ProgrammeError, load_programme

    source, what = (option, "programme file") if option else (getattr(settings, "programme", None), "FATIGUE_PROGRAMME")
    try:
        return load_programme(source)
    except ProgrammeError as exc:
        raise click.ClickException(f"{what}: {exc}") from exc
