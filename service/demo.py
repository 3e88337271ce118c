"""``fatigue demo``: the whole pipeline on one machine, from a simulated cohort to reports and an export.

Steps: services (embedded or configured, :mod:`service.demo_servers`) -> migrate -> simulate a cohort whose
programme ends yesterday -> import participants and roster -> publish over MQTT while an in-process ingester
consumes until drained -> features -> fatigue models -> weekly flags for every closed week -> each force's
weekly reports -> anonymised export -> summary.

Re-running: the demo folder is **reset** each run (servers a previous ``--keep`` run left behind are stopped by
their recorded pid/data folder, then ``pg/``, ``mqtt/``, ``sim/``, ``outbox/`` and ``export/`` are deleted).
The demo pseudonym key (``pseudonym.key``) is kept so pseudonyms stay stable between runs. Against configured
services (``FATIGUE_DATABASE_URL``/``FATIGUE_MQTT_URL``) nothing is deleted in the database; every step is
idempotent there (imports upsert, the message ledger absorbs re-published messages, features upsert, unchanged
flags are not rewritten), and each run adds one report per force and week and one export ledger entry.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from exports.job import ExportRequest, run_export
from exports.policy import POLICY_V1, ExportRefusedError
from features.job import run_features
from ingest.consumer import IngestConfig, Ingester
from risk.job import run_flags
from risk.programme import load_programme
from risk.publisher import MqttTarget, make_weekly_report
from service.demo_servers import DemoServices, start_services, stop_previous
from simulators.adapter_files import write_admin_csvs
from simulators.messages import iter_messages
from simulators.model import Simulation, simulate
from simulators.params import FORCES, SimParams
from simulators.publisher import publish_messages
from store import enrolment
from store.migrate import migrate

__all__ = ["DemoOptions", "DemoSummary", "demo_start_date", "run_demo"]

RESET_SUBFOLDERS = ("pg", "mqtt", "sim", "outbox", "export")
KEY_FILE = "pseudonym.key"


@dataclass(frozen=True)
class DemoOptions:
    """What the demo simulates and where it works."""

    participants: int = 60
    forces: int = 3
    days: int = 120
    folder: Path = Path("var/demo")
    seed: int = 0
    keep: bool = False
    timezone: str = "Europe/London"
    ingest_group: str = "ingest"
    client_id: str = "fatigue-demo-ingest"
    progress: bool = True
    #: Broker to start when none is configured: "auto" (Mosquitto, else the embedded one), "mosquitto", "embedded".
    broker: str = "auto"
    today: date | None = None  # default: today in ``timezone``
    #: Export k-anonymity threshold; None keeps policy v1 (k = 10). Only for small simulated cohorts (tests):
    #: the policy is then renamed ``export-policy-v1-demo-k<k>`` and allows up to half the cohort suppressed.
    export_k: int | None = None


@dataclass
class DemoSummary:
    """What the demo produced (counts only; no personal data)."""

    database_url: str = ""
    mqtt_url: str = ""
    start_date: date | None = None
    participants: int = 0
    messages_published: int = 0
    samples_stored: int = 0
    features_rows: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    flags_by_week: dict[int, dict[str, int]] = field(default_factory=dict)
    reports: list[Path] = field(default_factory=list)
    export_dir: Path | None = None
    export_refused: str | None = None
    seconds: float = 0.0
    steps: list[tuple[str, float]] = field(default_factory=list)
    services: DemoServices | None = None


def demo_start_date(today: date, days: int) -> date:
    """The Monday on or before ``today - days - 1``: the programme ends two to eight days before today.

    Its last day is then at least two days old, so every programme week has closed (a week closes at 12:00 two
    days after its last day) when the demo runs at or after noon; starting on a Monday makes programme weeks
    coincide with ISO weeks, which the managers' reports use.
    """
    first = today - timedelta(days=days + 1)
    return first - timedelta(days=first.weekday())


class _Steps:
    """Numbered step lines with their duration."""

    def __init__(self, total: int, echo: Callable[[str], None], summary: DemoSummary) -> None:
        self.total, self.echo, self.summary, self.n = total, echo, summary, 0

    def __call__(self, title: str) -> _Step:
        self.n += 1
        return _Step(self, f"[{self.n}/{self.total}] {title}")


class _Step:
    def __init__(self, steps: _Steps, line: str) -> None:
        self.steps, self.line, self.note = steps, line, ""

    def __enter__(self) -> _Step:
        self.started = time.perf_counter()
        self.steps.echo(f"{self.line} ...")
        return self

    def __exit__(self, *exc: object) -> None:
        seconds = time.perf_counter() - self.started
        self.steps.summary.steps.append((self.line, seconds))
        if exc[0] is None:
            self.steps.echo(f"      done in {seconds:.1f} s{': ' + self.note if self.note else ''}")


def _reset_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stop_previous(folder)
    for name in RESET_SUBFOLDERS:
        shutil.rmtree(folder / name, ignore_errors=True)


def _demo_key(folder: Path, configured: bytes | None) -> bytes:
    """The configured pseudonym key, or a random demo key kept in ``folder/pseudonym.key`` (mode 0600)."""
    if configured:
        return configured
    path = folder / KEY_FILE
    if not path.exists():
        path.write_text(secrets.token_hex(32) + "\n", encoding="ascii")
        path.chmod(0o600)
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


def _assign_forces(sim_dir: Path, n_forces: int) -> None:
    """Put the cohort in ``n_forces`` forces (the simulator draws from five): rewrite both admin CSVs."""
    wanted = FORCES[:max(1, min(n_forces, len(FORCES)))]
    for name in ("participants.csv", "roster.csv"):
        path = sim_dir / name
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
            fields = list(rows[0].keys()) if rows else []
        for row in rows:
            row["force_id"] = wanted[FORCES.index(row["force_id"]) % len(wanted)]
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


def _processed(ingester: Ingester) -> int:
    t = ingester.totals
    return t.stored + t.duplicates + t.quarantined + t.dropped_future + sum(t.dead.values())


def _wait_drained(ingester: Ingester, quiet_s: float = 2.0, timeout_s: float = 900.0) -> None:
    """Wait until the ingester's queue is empty and nothing new was processed for ``quiet_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now_count = _processed(ingester)
        if now_count != last or not ingester.inbox.empty():
            last, since = now_count, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.2)
    raise TimeoutError(f"the ingester did not drain within {timeout_s:.0f} s")


def _ingest(services: DemoServices, opts: DemoOptions, sim: Simulation, summary: DemoSummary,
            step: _Step) -> None:
    """Publish the simulated messages while an in-process ingester consumes them, until drained."""
    lateness = max(200, opts.days + 60)  # a simulated programme is mostly older than the 30-day default
    # rumqttd keeps about 100 deliveries unacknowledged whatever Receive Maximum says (measured), so with the
    # embedded broker a batch is committed (and acked) after 20 ms instead of 200 ms: 5x the throughput.
    batch_age = 0.02 if services.embedded is not None else 0.2
    config = IngestConfig(database_url=services.database_url, mqtt_host=services.mqtt_host,
                          mqtt_port=services.mqtt_port, client_id=opts.client_id, group=opts.ingest_group,
                          timezone=opts.timezone, max_lateness_days=lateness, batch_size=500,
                          batch_age_s=batch_age)
    ingester = Ingester(config)
    worker = threading.Thread(target=ingester.run, name="demo-ingester", daemon=True)
    worker.start()
    try:
        if not ingester.connected.wait(30):
            raise RuntimeError(f"the ingester could not subscribe at {services.mqtt_url}")
        triples: Iterator[tuple[int, str, bytes]] = ((m.publish_ms, m.topic, m.payload) for m in iter_messages(sim))
        stats = publish_messages(triples, services.mqtt_host, services.gateway_port, progress=opts.progress,
                                 total=sim.table.n, client_prefix=f"{opts.client_id}-sim",
                                 mqtt5=services.embedded is None)  # rumqttd's gateway listener is 3.1.1
        if stats.failed or stats.acked != stats.published:
            raise RuntimeError(f"publishing failed: {stats.failed} failed, {stats.acked}/{stats.published} acked")
        _wait_drained(ingester)
    finally:
        ingester.stop()
        worker.join(60)
    t = ingester.totals
    summary.messages_published = stats.published
    summary.samples_stored = t.samples
    step.note = (f"{stats.published} messages published ({stats.rate:.0f}/s); {t.stored} stored, {t.samples} "
                 f"samples, {t.duplicates} duplicates absorbed, {sum(t.dead.values())} dead-lettered, "
                 f"{t.quarantined} quarantined")


def _closed_report_weeks(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(force, ISO week) of every force and week that has current flags."""
    with conn.transaction():
        conn.execute("SELECT set_config('fatigue.all_forces', 'on', true)")
        rows = conn.execute("SELECT DISTINCT force_id, week_end FROM risk.weekly_flags WHERE is_current "
                            "ORDER BY 1, 2").fetchall()
    out = []
    for force, week_end in rows:
        year, week, _ = week_end.isocalendar()
        out.append((str(force), f"{year}-W{week:02d}"))
    return sorted(set(out))


def _collect(conn: psycopg.Connection[Any], summary: DemoSummary) -> None:
    def one(sql: str) -> int:
        row = conn.execute(sql).fetchone()
        return int(row[0]) if row else 0

    summary.participants = one("SELECT count(*) FROM core.participants")
    summary.features_rows = one("SELECT count(*) FROM derived.daily_features")
    summary.dead_letters = {str(r): int(n) for r, n in conn.execute(
        "SELECT reason_code, count(*) FROM ingest.dead_letters GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()}
    with conn.transaction():
        conn.execute("SELECT set_config('fatigue.all_forces', 'on', true)")
        for week, level, n in conn.execute("SELECT programme_week, overall_level, count(*) FROM risk.weekly_flags "
                                           "WHERE is_current GROUP BY 1, 2 ORDER BY 1, 2").fetchall():
            summary.flags_by_week.setdefault(int(week), {})[str(level)] = int(n)


def run_demo(opts: DemoOptions, *, database_url: str | None = None, mqtt_url: str | None = None,
             mqtt_host: str = "127.0.0.1", mqtt_port: int = 1883, pseudonym_key: bytes | None = None,
             key_version: int = 1, echo: Callable[[str], None] = print) -> DemoSummary:
    """Run the whole demo and return its summary.

    Parameters
    ----------
    opts : DemoOptions
        Cohort size, forces, days, folder, ``keep``.
    database_url, mqtt_url : str, optional
        Configured services to use; None starts private ones under ``opts.folder``.
    mqtt_host, mqtt_port : str, int
        The configured broker's address (with ``mqtt_url``).
    pseudonym_key : bytes, optional
        Research pseudonym master key; None uses (or creates) ``opts.folder/pseudonym.key``.
    key_version : int
        Key version recorded in the export ledger.
    echo : callable
        Where step lines go.
    """
    started = time.perf_counter()
    summary = DemoSummary()
    steps = _Steps(11, echo, summary)
    folder = opts.folder.resolve()
    today = opts.today or datetime.now(ZoneInfo(opts.timezone)).date()
    start = demo_start_date(today, opts.days)
    params = SimParams(n_participants=opts.participants, n_days=opts.days, start_date=start, seed=opts.seed)
    summary.start_date = start
    with steps("prepare the demo folder and start services") as step:
        _reset_folder(folder)
        services = start_services(folder, database_url, mqtt_url, mqtt_host, mqtt_port, opts.broker)
        services.save_state(folder)
        summary.services, summary.database_url, summary.mqtt_url = services, services.database_url, services.mqtt_url
        step.note = f"PostgreSQL ({services.database_kind}), MQTT ({services.broker_kind}) in {folder}"
    try:
        _pipeline(opts, services, params, folder, today, steps, summary, pseudonym_key, key_version)
    finally:
        if not opts.keep:
            services.stop()
            (folder / "services.json").unlink(missing_ok=True)
    summary.seconds = time.perf_counter() - started
    return summary


def _pipeline(opts: DemoOptions, services: DemoServices, params: SimParams, folder: Path, today: date,
              steps: _Steps, summary: DemoSummary, pseudonym_key: bytes | None, key_version: int) -> None:
    url = services.database_url
    with steps("migrate the schema") as step:
        step.note = f"{len(migrate(url))} migration(s) applied"
    sim_dir = folder / "sim"
    with steps(f"simulate {opts.participants} officers in {opts.forces} force(s) over {opts.days} days "
               f"from {params.start_date}") as step:
        sim = simulate(params)
        sim_dir.mkdir(parents=True, exist_ok=True)
        write_admin_csvs(sim, sim_dir)
        _assign_forces(sim_dir, opts.forces)
        step.note = f"{sim.table.n} messages to publish, device and transport faults on"
    with steps("import participants and roster") as step, psycopg.connect(url, autocommit=True) as conn:
        people = enrolment.import_participants(conn, sim_dir / "participants.csv", ZoneInfo(opts.timezone))
        duties = enrolment.import_roster(conn, sim_dir / "roster.csv")
        step.note = f"{people.rows} participants, {duties.rows} duties"
    with steps("publish over MQTT while the ingester consumes") as step:
        _ingest(services, opts, sim, summary, step)
    with steps("daily features") as step:
        feats = run_features(url, opts.timezone, full=True, progress=opts.progress)
        step.note = f"{feats.days_written} day rows, {feats.duties_written} duty rows"
    with steps("fatigue models") as step:
        from models.job import run_models  # written in parallel; imported here so the CLI loads without it

        models = run_models(url, opts.timezone, opts.progress)
        step.note = f"{models.duties} duties evaluated, {models.rows_changed} exposure rows written"
    programme = load_programme(None)
    with steps("weekly flags for every closed week") as step, psycopg.connect(url, autocommit=True) as conn:
        flags = run_flags(conn, today, programme, tz=opts.timezone)
        step.note = f"{flags.evaluated} participant-weeks evaluated, {flags.issued} issued, {flags.revised} revised"
    outbox = folder / "outbox"
    with steps("managers' weekly reports") as step, psycopg.connect(url, autocommit=True) as conn:
        target = MqttTarget(services.mqtt_host, services.gateway_port)
        for force, week in _closed_report_weeks(conn):
            result = make_weekly_report(conn, force, week, outbox, programme, target, None)
            summary.reports.append(result.html_path)
        step.note = f"{len(summary.reports)} report(s) in {outbox}"
    with steps("anonymised research export") as step:
        out = folder / "export"
        policy = POLICY_V1 if opts.export_k is None else dataclasses.replace(
            POLICY_V1, version=f"{POLICY_V1.version}-demo-k{opts.export_k}", k=opts.export_k,
            max_suppressed_fraction=0.5)
        req = ExportRequest(project="demo", out=out, master_key=_demo_key(folder, pseudonym_key),
                            key_version=key_version, requester="fatigue-demo", policy=policy)
        try:
            result_export = run_export(url, req)
        except ExportRefusedError as exc:
            # the privacy checks doing their job: a cohort this small cannot be released; say so and go on
            summary.export_refused = f"{exc} (run the demo with more participants, e.g. the default 60)"
            step.note = f"refused by the privacy checks (rule {exc.rule}); nothing was released"
        else:
            summary.export_dir = result_export.out
            step.note = (f"k achieved {result_export.k_achieved}, rows "
                         + ", ".join(f"{k} {v}" for k, v in result_export.row_counts.items()))
    with steps("summary") as step, psycopg.connect(url, autocommit=True) as conn:
        _collect(conn, summary)


def format_summary(summary: DemoSummary, keep: bool) -> list[str]:
    """The closing lines: counts, dead letters, flags per week, paths, and how to connect with ``--keep``."""
    lines = [f"demo finished in {summary.seconds:.0f} s (programme from {summary.start_date})",
             f"  participants: {summary.participants}; messages published: {summary.messages_published}; "
             f"samples stored: {summary.samples_stored}; daily feature rows: {summary.features_rows}",
             "  dead letters: " + (", ".join(f"{r} {n}" for r, n in summary.dead_letters.items()) or "none")]
    lines.append("  current flags by programme week (green/amber/red/not evaluated):")
    for week, levels in sorted(summary.flags_by_week.items()):
        lines.append(f"    week {week:3d}: " + ", ".join(f"{lv} {n}" for lv, n in sorted(levels.items())))
    if summary.reports:
        under = os.path.commonpath([str(p.parent) for p in summary.reports])
        lines.append(f"  reports: {len(summary.reports)} HTML files under {under}")
        lines.append(f"           latest: {summary.reports[-1]}")
    lines.append(f"  export: {summary.export_dir}" if summary.export_dir else f"  export: {summary.export_refused}")
    services = summary.services
    if keep and services is not None:
        lines += ["services left running (run `fatigue demo` again to reset, which stops them):",
                  f"  psql {summary.database_url}",
                  f"  mosquitto_sub -h {services.mqtt_host} -p {services.gateway_port} -t 'fatigue/#' -v",
                  f"  FATIGUE_DATABASE_URL={summary.database_url} FATIGUE_MQTT_URL={summary.mqtt_url} "
                  "fatigue db status"]
    return lines
