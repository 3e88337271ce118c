"""Sleepiness-model jobs: build the training frame from the database, train, evaluate, score.

Training frame (one row per self-report in ``raw.survey_answers`` of a non-withdrawn participant; replays of the
same answer (participant, ts) count once; label ``y = KSS >= 7``, Åkerstedt et al. 2014), columns
`models.sleepiness.DEFAULT_FEATURES`:

* ``kss_pred``: three-process KSS at the answer's 5-min epoch (`models.three_process.simulate` on measured sleep
  with >24 h gaps filled by roster-predicted sleep, exactly as `models.exposure`); NaN during the first
  `models.job.WARMUP_DAYS` of the simulation (S0 bias) — imputed by the model;
* ``tst_min, se_pct, debt_net_7d_h, sri_14d, ln_rmssd, resting_hr_bpm``: ``derived.daily_features`` of the
  sleep day equal to the answer's local date (the day whose main sleep ended that morning, science.md §1.2);
* ``length_h, rest_gap_h, night_duty, quick_return, time_awake_end_h``: ``derived.duty_features`` of the duty
  containing the answer, else the nearest duty within `DUTY_REACH_H` h; if none, a rest day
  (``length_h = night_duty = quick_return = 0``, the others NaN).

Scores (``derived.sleepiness_scores``, one row per ``derived.daily_features`` day): the day's reference period
is its first duty starting on that local date, else 08:00-22:00 local (rest day); ``kss_pred`` =
``tpm_kss_mean`` = mean TPM KSS over the awake epochs of that period (NULL in warm-up) and the duty features are
those of that duty (rest-day defaults otherwise).  ``model_version`` is ``<model version>+<first 12 hex of the
training-data SHA-256>``, so scores of differently trained models never overwrite each other.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg

from models import job_io
from models.exposure import fill_sleep_gaps, local_to_utc
from models.persistence import load, read_metadata, save, training_data_sha256
from models.sleepiness import DEFAULT_FEATURES, MODEL_VERSION, TPM_COLUMN, Evaluation, evaluate, fit
from models.three_process import EPOCH_S, TPMResult, simulate, utc_offsets

__all__ = ["DUTY_REACH_H", "MIN_LABELLED", "InsufficientTrainingDataError", "ScoreSummary", "TrainSummary",
           "evaluate_sleepiness", "score_sleepiness", "train_sleepiness"]

DAY = 86400
MIN_LABELLED = 50
DUTY_REACH_H = 12.0
WARMUP_S = 4 * DAY  # = models.job.WARMUP_DAYS (science.md §4.1)
_QSTAGE = "stage_sleepiness_query"
_SSTAGE = "stage_sleepiness_scores"
_DAILY = ("tst_min", "se_pct", "debt_net_7d_h", "sri_14d", "ln_rmssd", "resting_hr_bpm")
_FEATURE_SQL = (
    "SELECT s.row, " + ", ".join(f"f.{c}" for c in _DAILY) + ", coalesce(d.length_h, 0), d.rest_gap_h, "
    "coalesce(d.night_duty::int, 0), coalesce(d.quick_return::int, 0), d.time_awake_end_h "
    + job_io.participant_join(_QSTAGE) +
    " LEFT JOIN derived.daily_features f ON f.participant_id = p.participant_id "
    "AND f.sleep_date = date '1970-01-01' + s.sleep_day "
    "LEFT JOIN LATERAL (SELECT * FROM derived.duty_features d WHERE d.participant_id = p.participant_id "
    "AND d.start_ts <= to_timestamp(s.ts + s.reach_s) AND d.end_ts > to_timestamp(s.ts - s.reach_s) "
    "ORDER BY greatest(extract(epoch FROM d.start_ts) - s.ts, s.ts - extract(epoch FROM d.end_ts), 0), "
    "d.start_ts LIMIT 1) d ON true ORDER BY s.row")


class InsufficientTrainingDataError(ValueError):
    """Too few labelled self-reports (or a single class, or one participant) to train or evaluate."""


@dataclass(frozen=True)
class TrainSummary:
    """A trained and saved model: files, training-data size and hash, the version written with its scores."""

    model_path: Path
    sidecar_path: Path
    rows: int
    positives: int
    participants: int
    training_sha256: str
    model_version: str
    seconds: float


@dataclass(frozen=True)
class ScoreSummary:
    """Days scored, rows inserted or changed (0 on a re-run), and the ``model_version`` written."""

    participants: int
    days: int
    rows_changed: int
    model_version: str
    seconds: float


@dataclass(frozen=True)
class _Frame:
    frame: pd.DataFrame
    y: np.ndarray
    groups: np.ndarray


def _local_day(t: np.ndarray, tz: str) -> np.ndarray:
    return np.asarray((t + utc_offsets(t, tz)) // DAY, dtype=np.int64)


def _span_epochs(conn: job_io.Conn, sql: str) -> int:
    """5-min epochs of a data span (seconds from ``sql``) plus the warm-up days: bounds a batch's grid size."""
    row = conn.execute(sql).fetchone()
    seconds = float(row[0]) if row and row[0] is not None else 0.0  # type: ignore[arg-type]
    return int(seconds + WARMUP_S + 2 * DAY) // EPOCH_S


def _tpm(conn: job_io.Conn, ids: list[uuid.UUID], start: int, end: int, tz: str) -> TPMResult:
    """TPM of a batch on ``[start, end)``: measured sleep plus roster-predicted sleep in >24 h gaps."""
    sleep, duties = job_io.read_sleep(conn, ids), job_io.read_duties(conn, ids)
    filled = fill_sleep_gaps(sleep.participant, sleep.start, sleep.end, duties.participant, duties.start,
                             duties.end, n_participants=len(ids), start=start, end=end, tz=tz)
    return simulate(filled.participant, filled.start, filled.end, n_participants=len(ids), start=start, end=end,
                    tz=tz)


def _features(conn: job_io.Conn, ids: list[uuid.UUID], pidx: np.ndarray, ts: np.ndarray, sleep_day: np.ndarray,
              reach_s: np.ndarray, kss_pred: np.ndarray) -> pd.DataFrame:
    """Daily and duty features for query points (participant, instant, sleep day, duty reach), in order."""
    job_io.stage(conn, _QSTAGE, [("row", "int8", np.arange(pidx.size)), ("pidx", "int8", pidx),
                                 ("ts", "int8", ts), ("sleep_day", "int4", sleep_day), ("reach_s", "int8", reach_s)])
    rows = conn.execute(_FEATURE_SQL, (ids,)).fetchall()
    values = np.array(rows, dtype=np.float64).reshape(-1, 12)[:, 1:]
    frame = pd.DataFrame(values, columns=[c for c in DEFAULT_FEATURES if c != TPM_COLUMN])
    frame.insert(0, TPM_COLUMN, kss_pred)
    return frame.loc[:, list(DEFAULT_FEATURES)]


def _training_frame(database_url: str, tz: str) -> _Frame:
    """One row per self-report with label and participant (see module docstring)."""
    frames, ys, groups = [], [], []
    with psycopg.connect(database_url) as conn:
        cohort = job_io.read_cohort(conn, tz)
        epochs = _span_epochs(conn, "SELECT extract(epoch FROM max(ts) - min(ts)) FROM raw.survey_answers")
        for part in job_io.batches(cohort, 200, epochs):
            ids = cohort.ids[part]
            rows = conn.execute(
                "SELECT DISTINCT ON (p.idx, a.ts) p.idx - 1, extract(epoch FROM a.ts)::int8, a.kss "
                f"FROM raw.survey_answers a {job_io.PARTICIPANT_INDEX_JOIN} ORDER BY p.idx, a.ts, a.ingested_at",
                (ids,)).fetchall()
            if not rows:
                continue
            ans = np.array(rows, dtype=np.int64).reshape(-1, 3)
            pidx, ts = ans[:, 0], ans[:, 1]
            start = int(cohort.sim_start[part.start])
            res = _tpm(conn, ids, start, max(int(ts.max()) + EPOCH_S, start + EPOCH_S), tz)
            k = (ts - start) // EPOCH_S
            ok = (ts >= start + WARMUP_S) & (k < res.time.size)
            kss_pred = np.where(ok, res.kss[pidx, np.clip(k, 0, res.time.size - 1)], np.nan)
            frames.append(_features(conn, ids, pidx, ts, _local_day(ts, tz),
                                    np.full(ts.size, int(DUTY_REACH_H * 3600)), kss_pred))
            ys.append((ans[:, 2] >= 7).astype(np.int64))
            groups.append(np.array([str(i) for i in ids])[pidx])
            conn.commit()
    if not frames:
        raise InsufficientTrainingDataError("no KSS self-reports (raw.survey_answers) from non-withdrawn "
                                            "participants: nothing to train on")
    return _Frame(pd.concat(frames, ignore_index=True), np.concatenate(ys), np.concatenate(groups))


def _check_enough(data: _Frame) -> None:
    n, pos, people = data.y.size, int(data.y.sum()), np.unique(data.groups).size
    if n < MIN_LABELLED or pos == 0 or pos == n or people < 2:
        raise InsufficientTrainingDataError(
            f"too few labelled KSS answers to train the sleepiness model: {n} answer(s) ({pos} with KSS >= 7, "
            f"{n - pos} below) from {people} participant(s); need >= {MIN_LABELLED} answers with both classes "
            "from >= 2 participants")


def train_sleepiness(database_url: str, out_path: str | Path, tz: str = "Europe/London") -> TrainSummary:
    """Fit the calibrated sleepiness model on all self-reports and save it with its training-data SHA-256.

    Raises
    ------
    InsufficientTrainingDataError
        Fewer than `MIN_LABELLED` answers, a single class, or a single participant.
    """
    started = time.perf_counter()
    data = _training_frame(database_url, tz)
    _check_enough(data)
    model = fit(data.frame, data.y, data.groups)
    sha = training_data_sha256(data.frame, data.y, data.groups)
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    side = save(model, path, training_sha256=sha)
    return TrainSummary(path, side, int(data.y.size), int(data.y.sum()), int(np.unique(data.groups).size), sha,
                        score_version(model.model_version, sha), time.perf_counter() - started)


def evaluate_sleepiness(database_url: str, tz: str = "Europe/London", n_splits: int = 5) -> Evaluation:
    """Grouped (by participant) cross-validated ROC AUC and Brier score of the model vs the TPM alone."""
    data = _training_frame(database_url, tz)
    _check_enough(data)
    return evaluate(data.frame, data.y, data.groups, n_splits=n_splits)


def score_version(model_version: str, training_sha256: str) -> str:
    """``model_version`` written with scores: model version + first 12 hex digits of the training-data hash."""
    return f"{model_version}+{training_sha256[:12]}"


def _day_windows(conn: job_io.Conn, ids: list[uuid.UUID], pidx: np.ndarray, day: np.ndarray, tz: str
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference period of each (participant, local day): its first duty starting that day, else 08-22 local.

    Returns window start, end (UTC epoch s) and the duty reach (0: only a duty containing the window midpoint).
    """
    duties = job_io.read_duties(conn, ids)
    stride = np.int64(1 << 32)
    dkey = duties.participant * stride + _local_day(duties.start, tz)  # non-decreasing: sorted by (p, start)
    qkey = pidx * stride + day
    j = np.searchsorted(dkey, qkey, side="left")
    jc = np.clip(j, 0, max(dkey.size - 1, 0))
    has = (j < dkey.size) & (dkey[jc] == qkey) if dkey.size else np.zeros(qkey.size, dtype=bool)
    rest_a, rest_b = local_to_utc(day * DAY + 8 * 3600, tz), local_to_utc(day * DAY + 22 * 3600, tz)
    a = np.where(has, duties.start[jc] if dkey.size else 0, rest_a)
    b = np.where(has, duties.end[jc] if dkey.size else 0, rest_b)
    return a, b, np.zeros(a.size, dtype=np.int64)


def _window_mean(res: TPMResult, start: int, row: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean KSS over awake epochs with start in ``[a, b)``; NaN if none or in warm-up (cumulative sums)."""
    n = res.time.size
    awake = res.awake.ravel()
    s = np.concatenate([[0.0], np.cumsum(np.where(awake, res.kss.ravel(), 0.0))])
    c = np.concatenate([[0], np.cumsum(awake, dtype=np.int64)])
    i0 = row * n + np.clip(-(-(a - start) // EPOCH_S), 0, n)
    i1 = row * n + np.clip(-(-(b - start) // EPOCH_S), 0, n)
    i1 = np.maximum(i0, i1)
    count = c[i1] - c[i0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (s[i1] - s[i0]) / count
    return np.asarray(np.where((count > 0) & (a >= start + WARMUP_S), mean, np.nan), dtype=np.float64)


def score_sleepiness(database_url: str, model_path: str | Path, tz: str = "Europe/London",
                     batch_size: int = 200) -> ScoreSummary:
    """Score every ``derived.daily_features`` day of non-withdrawn participants into ``sleepiness_scores``.

    The model is loaded with `models.persistence.load`, which refuses (``ModelMismatchError``) a file whose
    SHA-256, library versions, feature list or model version differ from what this code expects.
    """
    started = time.perf_counter()
    model = load(model_path, features=DEFAULT_FEATURES, model_version=MODEL_VERSION)
    version = score_version(model.model_version, str(read_metadata(model_path)["training_data_sha256"]))
    days = changed = 0
    with psycopg.connect(database_url) as conn:
        cohort = job_io.read_cohort(conn, tz)
        epochs = _span_epochs(conn, "SELECT (max(sleep_date) - min(sleep_date)) * 86400 FROM derived.daily_features")
        for part in job_io.batches(cohort, batch_size, epochs):
            ids = cohort.ids[part]
            rows = conn.execute(
                "SELECT p.idx - 1, f.sleep_date - date '1970-01-01' FROM derived.daily_features f "
                f"{job_io.PARTICIPANT_INDEX_JOIN} ORDER BY 1, 2", (ids,)).fetchall()
            if not rows:
                continue
            arr = np.array(rows, dtype=np.int64).reshape(-1, 2)
            pidx, day = arr[:, 0], arr[:, 1]
            a, b, reach = _day_windows(conn, ids, pidx, day, tz)
            start = int(cohort.sim_start[part.start])
            res = _tpm(conn, ids, start, max(int(b.max()), start + EPOCH_S), tz)
            tpm_mean = _window_mean(res, start, pidx, a, b)
            frame = _features(conn, ids, pidx, (a + b) // 2, day, reach, tpm_mean)
            prob = np.clip(model.predict_proba(frame), 0.0, 1.0)
            job_io.stage(conn, _SSTAGE, [("pidx", "int8", pidx), ("day", "int4", day), ("p", "float4", prob),
                                         ("tpm", "float4", tpm_mean)])
            changed += job_io.upsert_from_stage(
                conn, "derived.sleepiness_scores", ("participant_id", "sleep_date", "model_version"),
                "SELECT p.participant_id, date '1970-01-01' + s.day, s.p, NULLIF(s.tpm, 'NaN'), %s::text "
                + job_io.participant_join(_SSTAGE),
                ("participant_id", "sleep_date", "p_high_sleepiness", "tpm_kss_mean", "model_version"),
                [version, ids])
            days += int(pidx.size)
            conn.commit()
    return ScoreSummary(len(cohort.ids), days, changed, version, time.perf_counter() - started)
