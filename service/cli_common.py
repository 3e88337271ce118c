"""Small helpers shared by the CLI modules (import-light: click and the standard library only)."""

from __future__ import annotations

import sys
from datetime import date

__all__ = ["lateness_warning", "show_progress"]


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
