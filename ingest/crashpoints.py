"""Deterministic crash points for fault-injection tests.

``FATIGUE_CRASH_POINTS="after_commit:0.1,mid_copy:0.05"`` (read by ``service.settings`` and passed down) makes
the ingester call ``os._exit(137)`` at the named point with the given probability per batch, like a
``kill -9`` landing exactly in the window under test. Points: ``mid_copy`` (inside the binary COPY),
``before_commit`` (rows written, transaction open), ``after_commit`` (committed, not yet acknowledged).
"""

from __future__ import annotations

import os
import random

__all__ = ["POINTS", "CrashPoints"]

POINTS = frozenset({"mid_copy", "before_commit", "after_commit"})


class CrashPoints:
    """Callable that exits the process at configured points with configured probabilities."""

    def __init__(self, spec: str | None, seed: int | None = None) -> None:
        self.rates: dict[str, float] = {}
        for part in filter(None, (spec or "").split(",")):
            name, _, rate = part.partition(":")
            if name not in POINTS:
                raise ValueError(f"unknown crash point {name!r}; known: {', '.join(sorted(POINTS))}")
            self.rates[name] = float(rate or 1.0)
        self._rng = random.Random(seed)

    def __call__(self, point: str) -> None:
        rate = self.rates.get(point)
        if rate is not None and self._rng.random() < rate:
            os._exit(137)
