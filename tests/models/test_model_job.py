"""The model job against real PostgreSQL: duty exposure rows, idempotence, warm-up, and the sleepiness
train / evaluate / score path on a small synthetic cohort (KSS driven by sleep loss)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import numpy as np
import psycopg
import pytest
from click.testing import CliRunner
from threadpoolctl import threadpool_limits

from models import job_io
from models.exposure import MODEL_VERSION
from models.job import run_models
from models.job_sleepiness import InsufficientTrainingDataError, evaluate_sleepiness, score_sleepiness, train_sleepiness
from models.persistence import ModelMismatchError
from service.cli_models import register
from service.settings import Settings
from store.enrolment import import_participants
from store.migrate import migrate
from tests.conftest import create_database, drop_database

TZ = "Europe/London"  # January/February: local time = UTC, so the instants below are also wall-clock times
H = timedelta(hours=1)
Conn = psycopg.Connection[tuple[object, ...]]
START = date(2024, 1, 8)  # programme start of the exposure cohort -> simulation starts 2024-01-07 00:00
HEADER = ("force_id,staff_ref,role_group,age_band,sex,programme_start,consent_manager,consent_research,"
          "device_ids,gateway_id\n")


def enrol(conn: Conn, tmp: Path, staff: list[str], start: date, force: str) -> dict[str, uuid.UUID]:
    """Enrol participants through the admin CSV path; returns staff_ref -> participant_id."""
    path = tmp / f"{force}.csv"
    path.write_text(HEADER + "".join(f"{force},{s},response,30-34,female,{start},true,true,dev-{force}-{s},\n"
                                     for s in staff))
    import_participants(conn, path, ZoneInfo(TZ))
    rows = conn.execute("SELECT staff_ref, participant_id FROM core.identities WHERE force_id = %s", (force,))
    return {str(r[0]): r[1] for r in rows.fetchall()}  # type: ignore[misc]


def at(day: date, hours: float) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + hours * H


def add_sleep(conn: Conn, pid: uuid.UUID, device: str, episodes: list[tuple[datetime, datetime]]) -> None:
    with conn.cursor().copy("COPY raw.sleep_episodes (device_id, start_ts, end_ts, participant_id, in_bed, msg_id) "
                            "FROM STDIN") as copy:
        for a, b in episodes:
            copy.write_row((device, a, b, pid, True, uuid.uuid4()))


def add_duties(conn: Conn, pid: uuid.UUID, duties: list[tuple[datetime, datetime]]) -> None:
    with conn.cursor().copy("COPY core.duties (participant_id, start_ts, end_ts, shift_type) FROM STDIN") as copy:
        for a, b in duties:
            copy.write_row((pid, a, b, "long_day"))


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def exposure_cohort(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, uuid.UUID]:
    """full: 8-h nights; short: the night before duty 6 is 05:00-07:00; nodata: no sleep; gone: withdrawn.

    Ten long-day duties 11:00-23:00 from the programme start; nights 23:00-07:00 from the day before.
    """
    with psycopg.connect(db_url, autocommit=True) as conn:
        ids = enrol(conn, tmp_path_factory.mktemp("enrol"), ["full", "short", "nodata", "gone"], START, "expo")
        days = [START + timedelta(days=k) for k in range(10)]
        nights = [(at(d, -1), at(d, 7)) for d in [START - timedelta(days=1), *days]]
        add_sleep(conn, ids["full"], "dev-a", nights)
        add_sleep(conn, ids["full"], "dev-a2", nights)  # the same episodes again from a second device/message
        add_sleep(conn, ids["short"], "dev-b", [(at(d, 5) if d == days[6] else a, b)
                                                for (a, b), d in zip(nights, [START, *days], strict=True)])
        add_sleep(conn, ids["gone"], "dev-g", nights)
        for p in ids.values():
            add_duties(conn, p, [(at(d, 11), at(d, 23)) for d in days])
        conn.execute("UPDATE core.participants SET withdrawn_at = now() WHERE participant_id = %s", (ids["gone"],))
    return ids


def exposure_rows(conn: Conn) -> dict[tuple[uuid.UUID, datetime], tuple[object, ...]]:
    rows = conn.execute("SELECT participant_id, start_ts, minutes_kss_ge7, minutes_kss_ge8, peak_kss, "
                        "minutes_to_kss7, estimated, model_version, computed_at FROM derived.duty_exposure")
    return {(r[0], r[1]): r[2:] for r in rows.fetchall()}  # type: ignore[misc]


def test_run_models_writes_one_row_per_duty(db: Conn, db_url: str, exposure_cohort: dict[str, uuid.UUID]) -> None:
    ids = exposure_cohort
    sleep = job_io.read_sleep(db, [ids["full"]])
    assert sleep.start.size == 11  # duplicates from the second device count once
    summary = run_models(db_url, TZ)
    assert (summary.participants, summary.duties, summary.rows_changed) == (3, 30, 30)
    rows = exposure_rows(db)
    assert len(rows) == 30 and all(k[0] != ids["gone"] for k in rows)
    assert {r[5] for r in rows.values()} == {MODEL_VERSION}
    day = [at(START + timedelta(days=k), 11) for k in range(10)]
    # warm-up: duties starting < 4 days after the simulation start (2024-01-07 00:00) have NULL exposure
    assert summary.warmup == 9
    for k in range(10):
        full = rows[(ids["full"], day[k])]
        assert (full[0] is None) == (k < 3)
        assert full[4] is False
    # all duties of the participant without sleep data are estimated from roster-predicted sleep
    assert all(rows[(ids["nodata"], d)][4] is True for d in day)
    assert rows[(ids["nodata"], day[5])][0] is not None
    full6, short6 = rows[(ids["full"], day[6])], rows[(ids["short"], day[6])]
    assert short6[0] > full6[0]  # type: ignore[operator]
    assert short6[2] > full6[2]  # type: ignore[operator]  # peak KSS
    assert rows[(ids["short"], day[4])][:4] == rows[(ids["full"], day[4])][:4]  # same sleep before that duty


def test_run_models_twice_changes_nothing_and_drops_stale_rows(db: Conn, db_url: str,
                                                              exposure_cohort: dict[str, uuid.UUID]) -> None:
    run_models(db_url, TZ)
    before = exposure_rows(db)
    again = run_models(db_url, TZ, progress=False)
    assert (again.rows_changed, again.rows_deleted) == (0, 0)
    assert exposure_rows(db) == before  # computed_at included
    pid = exposure_cohort["nodata"]
    db.execute("DELETE FROM core.duties WHERE participant_id = %s AND start_ts = %s", (pid, at(START, 11)))
    third = run_models(db_url, TZ)
    assert (third.duties, third.rows_deleted, third.rows_changed) == (29, 1, 0)
    assert len(exposure_rows(db)) == 29


def cli_root(db_url: str) -> click.Group:
    """A stand-in for the ``fatigue`` root group (settings in ``ctx.obj``) with the models group registered."""
    @click.group()
    @click.pass_context
    def root(ctx: click.Context) -> None:
        ctx.obj = Settings(database_url=db_url, timezone=TZ)

    register(root)
    return root


def test_cli_models_run(db_url: str, exposure_cohort: dict[str, uuid.UUID]) -> None:
    result = CliRunner().invoke(cli_root(db_url), ["models", "run", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("next:")


# --- sleepiness model ---------------------------------------------------------------------------------------

S_START = date(2024, 2, 5)
S_DAYS = 24


def synthetic_sleepiness(conn: Conn, tmp: Path, n: int = 8, seed: int = 3) -> int:
    """Nightly sleep 23:00 + U(3, 9) h; answers at 10:00 and 16:00 with KSS = 2.5 + (8 - TST) + 0.1·debt + noise.

    Writes sleep episodes, day duties (+ their duty features) on weekdays, daily features and answers; returns the
    number of answers.
    """
    rng = np.random.default_rng(seed)
    ids = enrol(conn, tmp, [f"s{i}" for i in range(n)], S_START, "sleepy")
    days = [S_START + timedelta(days=k) for k in range(S_DAYS)]
    n_answers = 0
    for staff, pid in ids.items():
        tst = rng.uniform(3.0, 9.0, S_DAYS)
        debt = np.convolve(8.0 - tst, np.ones(7))[:S_DAYS]
        add_sleep(conn, pid, f"dev-sleepy-{staff}", [(at(d, -1), at(d, -1 + h)) for d, h in
                                                     zip(days, tst, strict=True)])
        duty_days = [d for d in days if d.weekday() < 5]
        add_duties(conn, pid, [(at(d, 9), at(d, 17)) for d in duty_days])
        with conn.cursor().copy("COPY derived.duty_features (participant_id, start_ts, end_ts, shift_type, overtime, "
                                "length_h, long_shift, rest_gap_h, quick_return, night_duty, consecutive_nights, "
                                "consecutive_duty_days, early_start, algorithm_version) FROM STDIN") as copy:
            for d in duty_days:
                copy.write_row((pid, at(d, 9), at(d, 17), "day", False, 8.0, False, 16.0, False, False, 0, 1, False,
                                "test"))
        with conn.cursor().copy("COPY derived.daily_features (participant_id, sleep_date, programme_day, "
                                "valid_sleep_day, n_episodes, tst_min, se_pct, debt_net_7d_h, algorithm_version) "
                                "FROM STDIN") as copy:
            for k, d in enumerate(days):
                copy.write_row((pid, d, k + 1, True, 1, tst[k] * 60.0, 90.0, debt[k], "test"))
        with conn.cursor().copy("COPY raw.survey_answers (device_id, ts, participant_id, kss, msg_id) FROM STDIN"
                                ) as copy:
            for k, d in enumerate(days[5:], start=5):
                for hour in (10, 16):
                    kss = int(np.clip(round(2.5 + (8.0 - tst[k]) + 0.1 * debt[k] + rng.normal(0, 0.8)), 1, 9))
                    copy.write_row((f"dev-sleepy-{staff}", at(d, hour), pid, kss, uuid.uuid4()))
                    n_answers += 1
    return n_answers


def test_sleepiness_train_evaluate_score(db: Conn, db_url: str, tmp_path: Path) -> None:
    n_answers = synthetic_sleepiness(db, tmp_path)
    model = tmp_path / "sleepiness.joblib"
    trained = train_sleepiness(db_url, model, TZ)
    assert trained.rows == n_answers and trained.participants == 8
    assert 0 < trained.positives < n_answers and trained.sidecar_path.exists()
    assert trained.model_version.startswith("sleepiness-1+")
    ev = evaluate_sleepiness(db_url, TZ, n_splits=4)
    assert ev.n_rows == n_answers and ev.n_groups == 8
    assert ev.roc_auc > 0.75 and ev.tpm_roc_auc > 0.5

    scored = score_sleepiness(db_url, model, TZ)
    assert scored.model_version == trained.model_version
    rows = db.execute("SELECT f.tst_min, s.p_high_sleepiness, s.tpm_kss_mean, s.model_version "
                      "FROM derived.sleepiness_scores s JOIN derived.daily_features f USING (participant_id, "
                      "sleep_date) JOIN core.identities i USING (participant_id) WHERE i.force_id = 'sleepy'"
                      ).fetchall()
    assert len(rows) == 8 * S_DAYS and {r[3] for r in rows} == {trained.model_version}
    tst, prob = np.array([r[0] for r in rows], float), np.array([r[1] for r in rows], float)
    assert np.all((prob >= 0) & (prob <= 1)) and np.corrcoef(tst, prob)[0, 1] < -0.3
    assert sum(r[2] is None for r in rows) == 8 * 3  # warm-up days: no TPM mean
    assert score_sleepiness(db_url, model, TZ).rows_changed == 0

    model.write_bytes(model.read_bytes() + b"\0")  # tampered after saving: the sidecar hash no longer matches
    with pytest.raises(ModelMismatchError, match="SHA-256"):
        score_sleepiness(db_url, model, TZ)
    result = CliRunner().invoke(cli_root(db_url), ["models", "score", "--model", str(model)])
    assert result.exit_code != 0 and "refusing the model" in result.output


def test_too_few_labelled_answers_is_a_clear_error(pg_admin_url: str, tmp_path: Path) -> None:
    url = create_database(pg_admin_url, "fatigue_models_few")
    try:
        migrate(url)
        with pytest.raises(InsufficientTrainingDataError, match="no KSS self-reports"):
            train_sleepiness(url, tmp_path / "m.joblib", TZ)
        with psycopg.connect(url, autocommit=True) as conn:
            ids = enrol(conn, tmp_path, ["a", "b"], S_START, "few")
            for i, pid in enumerate(ids.values()):
                with conn.cursor().copy("COPY raw.survey_answers (device_id, ts, participant_id, kss, msg_id) "
                                        "FROM STDIN") as copy:
                    for k in range(40):
                        copy.write_row((f"dev-few-{i}", at(S_START, 10 + k), pid, 3, uuid.uuid4()))
        with pytest.raises(InsufficientTrainingDataError, match=r"80 answer\(s\) \(0 with KSS >= 7"):
            evaluate_sleepiness(url, TZ)
        assert not (tmp_path / "m.joblib").exists()
    finally:
        drop_database(pg_admin_url, url)
