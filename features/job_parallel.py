"""Parallel feature runs on one machine: the cohort split into contiguous participant ranges, one process each.

Each worker runs :func:`features.job.run_features` on its slice of the cohort (ordered by participant id) with
its own connection and memory budget. Participants are independent in every kernel, so the rows equal those
of one process. If dirty marks change between the workers' cohort reads, a participant may be processed by two
workers (harmless: upserts are idempotent) or by none (its marks stay and the next run takes it).
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from features.job import FeatureRunSummary, run_features
from features.params import DEFAULT_FEATURE_PARAMS, FeatureParams

__all__ = ["run_parallel"]


def _slice(database_url: str, tz: str, full: bool, memory_mb: float, k: int, workers: int,
           params: FeatureParams = DEFAULT_FEATURE_PARAMS) -> FeatureRunSummary:
    import psycopg

    from features.job_io import read_cohort
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT (now() AT TIME ZONE %s)::date", (tz,)).fetchone()
        assert row is not None
        n = len(read_cohort(conn, full, row[0], params.n_days).ids)
    lo, hi = n * k // workers, n * (k + 1) // workers
    return run_features(database_url, tz, full=full, memory_mb=memory_mb, participants=slice(lo, hi), params=params)


def run_parallel(database_url: str, tz: str, full: bool, workers: int, memory_mb: float = 2000.0,
                 params: FeatureParams = DEFAULT_FEATURE_PARAMS) -> FeatureRunSummary:
    """Run the feature job in ``workers`` processes (each within ``memory_mb / workers``); summed summary."""
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        parts = list(pool.map(_slice, *zip(*[(database_url, tz, full, memory_mb / workers, k, workers, params)
                                             for k in range(workers)], strict=True)))
    return FeatureRunSummary(sum(p.participants for p in parts), sum(p.days_written for p in parts),
                             sum(p.duties_written for p in parts), max(p.seconds for p in parts))
