"""Storage maintenance: plain-mode retention by whole monthly partitions, TimescaleDB policy jobs run with
run_job when overdue, job health as a Prometheus metric, and `fatigue db maintain`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest

from service.cli import main
from store.job_metrics import JobHealthCollector, MaintenanceMetrics, maintain
from store.maintenance import drop_expired_partitions, job_health, maintenance_summary
from store.policy_jobs import OVERDUE_FACTOR, PolicyJob, is_overdue, policy_jobs, run_overdue_jobs
from tests.store.tsdb import storage_mode

Conn = psycopg.Connection[tuple[object, ...]]
# 485 days before this instant is 2025-08-04 12:00 UTC: months up to July 2025 are wholly past retention.
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _plain(db: Conn) -> None:
    if storage_mode(db) != "partitioned":
        pytest.skip("TimescaleDB mode: retention is the hypertables' policy (tested with run_job below)")


def _hr(db: Conn, ts: datetime) -> None:
    db.execute("INSERT INTO raw.hr_runs (device_id, start_ts, end_ts, participant_id, offsets_ms, bpm, suspect, "
               "msg_id) VALUES ('dev-r', %s, %s, %s, '{0}', '{60}', '{f}', %s)",
               (ts, ts + timedelta(seconds=1), uuid.uuid4(), uuid.uuid4()))


def _children(db: Conn, table: str) -> set[str]:
    return {str(r[0]) for r in db.execute("SELECT inhrelid::regclass::text FROM pg_inherits "
                                          "WHERE inhparent = %s::regclass", (table,)).fetchall()}


@pytest.fixture
def old_partitions(db: Conn) -> Conn:
    _plain(db)
    db.execute("TRUNCATE raw.hr_runs, store.maintenance_runs")
    db.execute("SET TIME ZONE 'UTC'")
    db.execute("SELECT store.ensure_partitions('raw.hr_runs', '2025-05-01', '2025-10-01')")
    for ts in ("2025-05-20", "2025-06-15", "2025-07-31 23:59", "2025-08-01", "2025-08-10", "2025-09-30",
               "1999-01-04", "2031-01-01"):
        _hr(db, datetime.fromisoformat(ts).replace(tzinfo=UTC))
    return db


def test_retention_is_one_number_in_the_database(db: Conn) -> None:
    row = db.execute("SELECT keep_for = interval '485 days' FROM store.raw_retention").fetchone()
    assert row == (True,)
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE store.raw_retention SET keep_for = interval '30 days'")  # shorter than the programme


def test_plain_retention_drops_whole_months_past_retention(old_partitions: Conn) -> None:
    db = old_partitions
    dropped = drop_expired_partitions(db, NOW)
    assert dropped is not None
    gone = {d.partition for d in dropped if d.partition}
    assert gone == {"raw.hr_runs_p202505", "raw.hr_runs_p202506", "raw.hr_runs_p202507"}
    assert [(d.parent, d.rows_deleted) for d in dropped if d.partition is None] == [("raw.hr_runs", 1)]
    left = {str(r[0])[:10] for r in db.execute("SELECT start_ts FROM raw.hr_runs ORDER BY 1").fetchall()}
    assert left == {"2025-08-01", "2025-08-10", "2025-09-30", "2031-01-01"}, "months not wholly past are kept"
    assert {"raw.hr_runs_p202508", "raw.hr_runs_p202509", "raw.hr_runs_default"} <= _children(db, "raw.hr_runs")
    assert drop_expired_partitions(db, NOW) == (), "a second run finds nothing to drop"
    runs = db.execute("SELECT job, succeeded, detail FROM store.maintenance_runs ORDER BY run_id").fetchall()
    assert runs[0] == ("drop_expired_partitions", True, "3 partition(s) dropped, 1 DEFAULT row(s) deleted")
    assert len(runs) == 2


def test_plain_retention_on_an_empty_database_drops_nothing(db: Conn) -> None:
    _plain(db)
    db.execute("TRUNCATE raw.hr_runs")
    before = _children(db, "raw.hr_runs")
    assert drop_expired_partitions(db) == ()  # real now: migration made partitions from 13 months back only
    assert _children(db, "raw.hr_runs") == before


def test_run_maintenance_reports_and_sets_metrics(old_partitions: Conn, db_url: str) -> None:
    db = old_partitions
    metrics = MaintenanceMetrics()
    live = CollectorRegistry()
    live.register(JobHealthCollector(db_url))
    before = job_health(db, NOW)
    assert [(h.job, h.healthy, h.last_success) for h in before] == [("drop_expired_partitions", False, None)], \
        "never run is unhealthy, not silently fine"
    assert 'fatigue_db_maintenance_job_healthy{job="drop_expired_partitions",target="raw.*"} 0.0' in \
        generate_latest(live).decode()
    report = maintain(db, now=NOW, metrics=metrics)
    assert report.mode == "partitioned" and report.ok
    assert len([d for d in report.dropped if d.partition]) == 3
    text = maintenance_summary(report)
    assert "dropped 3 partition(s) past retention: raw.hr_runs_p202505" in text
    assert "health: drop_expired_partitions raw.*: ok" in text
    counted = generate_latest(metrics.registry).decode()
    assert "fatigue_db_partitions_dropped_total 3.0" in counted
    assert "fatigue_db_maintenance_last_run_timestamp_seconds" in counted
    exposed = generate_latest(live).decode()
    assert 'fatigue_db_maintenance_job_healthy{job="drop_expired_partitions",target="raw.*"} 1.0' in exposed
    assert "fatigue_db_maintenance_health_up 1.0" in exposed
    later = job_health(db, NOW + timedelta(days=9))
    assert not later[0].healthy, "retention not run for more than eight days turns unhealthy"


def test_health_metric_when_the_database_cannot_be_read(db_url: str) -> None:
    live = CollectorRegistry()
    live.register(JobHealthCollector(db_url.rpartition("/")[0] + "/no_such_database_18", timeout_s=2))
    exposed = generate_latest(live).decode()
    assert "fatigue_db_maintenance_health_up 0.0" in exposed
    assert "fatigue_db_maintenance_job_healthy{" not in exposed, "no health is invented when it cannot be read"


def test_cli_db_maintain(old_partitions: Conn, db_url: str) -> None:
    old_partitions.execute("SELECT store.ensure_partitions('raw.rr_runs', '2020-01-01', '2020-03-01')")
    result = CliRunner().invoke(main, ["db", "maintain"], env={"FATIGUE_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    assert "storage mode: partitioned" in result.output
    assert "raw.rr_runs_p202001, raw.rr_runs_p202002" in result.output  # past retention whenever this runs
    assert "health: drop_expired_partitions raw.*: ok" in result.output
    assert not {"raw.rr_runs_p202001", "raw.rr_runs_p202002"} & _children(old_partitions, "raw.rr_runs")


def _job(**kw: object) -> PolicyJob:
    base: dict[str, object] = dict(job_id=1000, job="policy_compression", target="raw.hr_runs",
                                   schedule_interval=timedelta(hours=12), scheduled=True,
                                   last_success=NOW - timedelta(hours=1), last_status="Success", running=False,
                                   last_failure=None)
    base.update(kw)
    return PolicyJob(**base)  # type: ignore[arg-type]


def test_overdue_rule() -> None:
    assert not is_overdue(_job(), NOW)
    assert is_overdue(_job(last_success=None), NOW), "never succeeded"
    late = NOW - timedelta(hours=12) * OVERDUE_FACTOR - timedelta(hours=1)
    assert is_overdue(_job(last_success=late), NOW)
    assert not is_overdue(_job(last_success=late, scheduled=False), NOW), "paused: reported, not run"
    assert not is_overdue(_job(last_success=None, running=True), NOW), "running now"
    failed_after = _job(last_status="Failed", last_failure=NOW - timedelta(minutes=5))
    assert is_overdue(failed_after, NOW), "the background worker failed after the last success"


def test_run_overdue_jobs_needs_autocommit(db_url: str) -> None:
    with psycopg.connect(db_url) as conn, pytest.raises(ValueError, match="autocommit"):
        run_overdue_jobs(conn)


def test_plain_mode_has_no_policy_jobs(db: Conn) -> None:
    _plain(db)
    assert policy_jobs(db) == [] and run_overdue_jobs(db) == []


# --- TimescaleDB: every policy run with run_job ----------------------------------------------------------------

def _tsdb(db: Conn) -> None:
    if storage_mode(db) != "timescaledb":
        pytest.skip("timescaledb extension is not installed on this server (plain-mode retention tested above)")


@pytest.mark.timescaledb
def test_retention_policy_uses_the_same_number(db: Conn) -> None:
    _tsdb(db)
    rows = db.execute("SELECT hypertable_schema || '.' || hypertable_name, (config->>'drop_after')::interval "
                      "FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'").fetchall()
    tables = {str(r[0]) for r in db.execute("SELECT table_name FROM store.timeseries_tables").fetchall()}
    assert {str(r[0]) for r in rows} == tables, "exactly one retention policy per raw stream"
    assert {r[1] for r in rows} == {timedelta(days=485)}


@pytest.mark.timescaledb
def test_every_policy_runs_with_run_job_and_then_is_healthy(db: Conn, db_url: str) -> None:
    _tsdb(db)
    db.execute("TRUNCATE raw.hr_runs, store.maintenance_runs")
    now = datetime.now(UTC)
    _hr(db, now - timedelta(days=30))     # compressed by the compression policy (older than 7 days)
    _hr(db, now - timedelta(days=600))    # dropped by the retention policy (older than 485 days)
    _hr(db, now - timedelta(hours=1))     # stays
    jobs = policy_jobs(db)
    assert {j.job for j in jobs} >= {"policy_compression", "policy_retention"}
    metrics = MaintenanceMetrics()
    report = maintain(db, metrics=metrics)
    ran = {(r.job, r.target) for r in report.jobs_run}
    never = {(j.job, j.target) for j in jobs if j.last_success is None and j.scheduled}
    assert never <= ran, "every policy that never succeeded is run"
    assert all(r.succeeded for r in report.jobs_run), [r.error for r in report.jobs_run if not r.succeeded]
    assert report.ok and all(h.healthy for h in report.health)
    assert db.execute("SELECT count(*) FROM raw.hr_runs").fetchone() == (2,), "retention dropped the old chunk"
    compressed = db.execute("SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_schema = 'raw' "
                            "AND hypertable_name = 'hr_runs' AND is_compressed").fetchone()
    assert compressed == (1,), "the 30-day-old chunk was compressed"
    assert run_overdue_jobs(db) == [], "a job that just succeeded is not overdue"
    assert 'fatigue_db_maintenance_job_runs_total{job="policy_retention",outcome="success"}' in \
        generate_latest(metrics.registry).decode()
    live = CollectorRegistry()
    live.register(JobHealthCollector(db_url))
    exposed = generate_latest(live).decode()
    assert 'fatigue_db_maintenance_job_healthy{job="policy_retention",target="raw.hr_runs"} 1.0' in exposed


@pytest.mark.timescaledb
def test_paused_job_is_unhealthy_and_left_alone(db: Conn) -> None:
    _tsdb(db)
    job = next(j for j in policy_jobs(db) if j.job == "policy_compression")
    db.execute("SELECT alter_job(%s, scheduled => false)", (job.job_id,))
    try:
        db.execute("DELETE FROM store.maintenance_runs WHERE job_id = %s", (job.job_id,))
        assert job.job_id not in {r.job_id for r in run_overdue_jobs(db)}
        health = {(h.job, h.target): h.healthy for h in job_health(db)}
        assert health[(job.job, job.target)] is False
    finally:
        db.execute("SELECT alter_job(%s, scheduled => true)", (job.job_id,))


def test_scheduler_weekly_step_applies_retention(old_partitions: Conn, db_url: str, tmp_path: Path) -> None:
    """The service's weekly maintenance is the same call as `fatigue db maintain` (plain mode here)."""
    from service.serve import Scheduler, ServeConfig  # the scheduler module is restructured by issue 16

    old_partitions.execute("SELECT store.ensure_partitions('raw.sleep_episodes', '2020-01-01', '2020-02-01')")
    Scheduler(ServeConfig(database_url=db_url, timezone="Europe/London", outbox_dir=tmp_path)).run_weekly(
        datetime.now(UTC).date())
    assert "raw.sleep_episodes_p202001" not in _children(old_partitions, "raw.sleep_episodes")
    runs = old_partitions.execute("SELECT count(*) FROM store.maintenance_runs WHERE job = "
                                  "'drop_expired_partitions' AND succeeded").fetchone()
    assert runs == (1,)


def test_cli_db_maintain_before_migrating_says_what_to_do(pg_admin_url: str) -> None:
    from tests.conftest import create_database, drop_database

    url = create_database(pg_admin_url, "fatigue_unmigrated")
    try:
        result = CliRunner().invoke(main, ["db", "maintain"], env={"FATIGUE_DATABASE_URL": url})
    finally:
        drop_database(pg_admin_url, url)
    assert result.exit_code == 1
    assert "run `fatigue db migrate` first" in result.output


def test_a_failing_job_is_reported_and_recorded_not_raised(db: Conn) -> None:
    """A run_job that fails (here: no TimescaleDB, so no run_job at all) is a failed JobRun with its error,
    recorded in store.maintenance_runs, and the connection stays usable."""
    from store.policy_jobs import _call_run_job, _run_one

    assert _call_run_job(1001).as_string(db) == "CALL run_job(1001)"
    if storage_mode(db) == "timescaledb":
        pytest.skip("run_job exists here; its success path is tested above")
    db.execute("DELETE FROM store.maintenance_runs WHERE job_id = 424242")
    run = _run_one(db, _job(job_id=424242, last_success=None))
    assert not run.succeeded and "run_job" in run.error and run.seconds >= 0
    row = db.execute("SELECT succeeded, detail FROM store.maintenance_runs WHERE job_id = 424242").fetchone()
    assert row is not None and row[0] is False and "run_job" in str(row[1])
