"""The model job: raw sleep + roster -> three-process duty exposure -> ``derived.duty_exposure``; the sleepiness
model's train / evaluate / score jobs are in `models.job_sleepiness` (not imported here, so that the
three-process job, the scheduler and the CLI never load scikit-learn).

`run_models` recomputes **every** non-withdrawn participant on each run (a full recompute: the feature job
clears ``ingest.dirty_days`` when it runs, so dirty marks cannot be relied on here, and the TPM state carries
across the whole programme anyway).  Participants are simulated in batches that share a simulation start
(local midnight of ``programme_start - 1 day``, see `models.job_io`), with `models.exposure.duty_exposure`.

Rows (one per duty in ``core.duties``; key ``participant_id, start_ts``):

* warm-up duties (starting less than ``warmup_days`` = 4 days after the simulation start, science.md §4.1) are
  **written with NULL** ``minutes_kss_ge7``, ``minutes_kss_ge8``, ``peak_kss`` and ``minutes_to_kss7`` (so that
  the weekly flags see that the duty exists but its exposure is not computable), ``estimated`` as computed;
* duties before the simulation start are warm-up duties too;
* ``minutes_to_kss7`` is NULL when the duty never reaches KSS >= 7;
* rows of the participant's duties that no longer exist in ``core.duties`` are deleted.

Writes are binary COPY + ``INSERT ... ON CONFLICT DO UPDATE ... WHERE <changed>``: running twice with the same
inputs changes nothing (``computed_at`` included).  Withdrawn participants are not recomputed; their existing
rows are left for the erasure path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from tqdm import tqdm

from models import job_io
from models.exposure import MODEL_VERSION, DutyExposure, duty_exposure
from models.three_process import EPOCH_S

__all__ = ["WARMUP_DAYS", "ModelRunSummary", "run_models"]

WARMUP_DAYS = 4.0
EXPOSURE_COLUMNS = ("participant_id", "start_ts", "end_ts", "minutes_kss_ge7", "minutes_kss_ge8", "peak_kss",
                    "minutes_to_kss7", "estimated", "model_version")
_STAGE = "stage_duty_exposure"
_SELECT = (
    "SELECT p.participant_id, to_timestamp(s.start_s), to_timestamp(s.end_s), NULLIF(s.ge7, 'NaN'), "
    "NULLIF(s.ge8, 'NaN'), NULLIF(s.peak, 'NaN'), NULLIF(s.to7, 'NaN'), s.estimated, %s::text "
    + job_io.participant_join(_STAGE))


@dataclass(frozen=True)
class ModelRunSummary:
    """What `run_models` did.

    Attributes
    ----------
    participants, duties : int
        Participants simulated and duties evaluated.
    warmup, estimated : int
        Duties written with NULL exposure (warm-up) and duties flagged ``estimated``.
    rows_changed, rows_deleted : int
        Rows inserted or changed, and stale rows (duties no longer rostered) deleted; both 0 on a re-run.
    model_version : str
        Value written to ``model_version``.
    seconds : float
        Wall-clock time of the run.
    """

    participants: int
    duties: int
    warmup: int
    estimated: int
    rows_changed: int
    rows_deleted: int
    model_version: str
    seconds: float


def _write(conn: job_io.Conn, ids: list[object], out: DutyExposure, model_version: str) -> int:
    """Stage the batch's exposure by one binary COPY and upsert it."""
    job_io.stage(conn, _STAGE, [
        ("pidx", "int8", out.participant_id), ("start_s", "int8", out.start_ts), ("end_s", "int8", out.end_ts),
        ("ge7", "float4", out.minutes_kss_ge7), ("ge8", "float4", out.minutes_kss_ge8),
        ("peak", "float4", out.peak_kss), ("to7", "float4", out.minutes_to_kss7),
        ("estimated", "bool", out.estimated),
    ])
    return job_io.upsert_from_stage(conn, "derived.duty_exposure", ("participant_id", "start_ts"), _SELECT,
                                    EXPOSURE_COLUMNS, [model_version, ids])


def _delete_stale(conn: job_io.Conn, ids: list[object]) -> int:
    cur = conn.execute(
        "DELETE FROM derived.duty_exposure x WHERE x.participant_id = ANY(%s) AND NOT EXISTS "
        "(SELECT 1 FROM core.duties d WHERE d.participant_id = x.participant_id AND d.start_ts = x.start_ts)",
        (ids,))
    return max(cur.rowcount, 0)


def run_models(database_url: str, tz: str = "Europe/London", progress: bool = False,
               model_version: str = MODEL_VERSION, batch_size: int = 200,
               warmup_days: float = WARMUP_DAYS) -> ModelRunSummary:
    """Recompute and upsert the three-process duty exposure of every non-withdrawn participant.

    Parameters
    ----------
    database_url : str
        PostgreSQL URL.
    tz : str
        IANA zone of the local clock (circadian phase, predicted sleep, simulation start).
    progress : bool
        Show a tqdm progress bar over participants.
    model_version : str
        Written to ``derived.duty_exposure.model_version`` (default `models.exposure.MODEL_VERSION`).
    batch_size : int
        Participants per batch (further limited so that one batch's grid stays under ``MAX_GRID_CELLS``).
    warmup_days : float
        Model warm-up of the programme file (``Programme.warmup_days``; default 4, science 4.1).

    Returns
    -------
    ModelRunSummary
    """
    started = time.perf_counter()
    n_duties = n_warmup = n_est = changed = deleted = 0
    with psycopg.connect(database_url) as conn:
        cohort = job_io.read_cohort(conn, tz)
        span = conn.execute("SELECT extract(epoch FROM max(end_ts) - min(start_ts))::int8 FROM core.duties"
                            ).fetchone()
        n_epochs = int(span[0] or 0) // EPOCH_S + 1 if span else 1
        bar = tqdm(total=len(cohort.ids), unit="participant", desc="models", disable=not progress)
        for part in job_io.batches(cohort, batch_size, n_epochs):
            ids: list[object] = list(cohort.ids[part])
            duties = job_io.read_duties(conn, cohort.ids[part])
            if duties.start.size:
                sleep = job_io.read_sleep(conn, cohort.ids[part])
                start = int(cohort.sim_start[part.start])
                end = max(int(duties.end.max()), start + EPOCH_S)
                out = duty_exposure(duties.participant, duties.start, duties.end, sleep.participant, sleep.start,
                                    sleep.end, n_participants=len(ids), start=start, end=end,
                                    warmup_days=warmup_days, tz=tz, batch_size=len(ids))
                changed += _write(conn, ids, out, model_version)
                n_duties += out.start_ts.size
                n_warmup += int(out.warmup.sum())
                n_est += int(out.estimated.sum())
            deleted += _delete_stale(conn, ids)
            conn.commit()
            bar.update(len(ids))
        bar.close()
    return ModelRunSummary(len(cohort.ids), n_duties, n_warmup, n_est, changed, deleted, model_version,
                           time.perf_counter() - started)

