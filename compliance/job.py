"""One incremental compliance run: fold new raw rows into the state, evaluate everyone, open/close alerts, deliver.

Order of work (safe to run twice, and at any interval):

1. in one transaction: last message per stream and latest status per device, wear minutes and sleep episodes of
   every participant-day touched by rows ingested since the watermark, the new watermark;
2. evaluate every participant in their programme (not withdrawn) with :func:`compliance.kernel.evaluate` and
   replace ``compliance.participant_state``; open and close alert episodes (same transaction);
3. deliver pending alert events on MQTT and to the administrator's outbox; failures are retried next run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import structlog

from compliance import db
from compliance.kernel import LEVELS, REASONS, Evaluation, evaluate, unworn_intervals, wear_minutes
from compliance.metrics import ComplianceMetrics, process_metrics
from compliance.publisher import ALERT_KINDS, connect_mqtt, deliver_mqtt, deliver_outbox, sync_episodes
from compliance.rules import ComplianceRules
from risk.programme import Programme, load_programme
from risk.publisher import MqttTarget

__all__ = ["MAX_BACKFILL_DAYS", "WINDOW_DAYS", "ComplianceSummary", "MqttTarget", "run_compliance", "run_scheduled"]

Conn = psycopg.Connection[Any]
log = structlog.get_logger("compliance.job")
#: Days of daily rows read for the evaluation (today and 28 days back): "days since the last valid night" is
#: reported up to 28 and as unknown (NULL) beyond.
WINDOW_DAYS = 29
#: Oldest day (before today) a run recomputes. Older rows (a first run over a long-running study) are not
#: folded into compliance.daily: the evaluation reads 29 days and the ingester holds data older than 30 days
#: for review anyway, so 35 days covers every day that can still change a level or a weekly report section.
MAX_BACKFILL_DAYS = 35
_LOCK_KEY = 0x636F6D70  # "comp": one advisory-lock key for compliance runs


@dataclass(frozen=True)
class ComplianceSummary:
    """What a run did."""

    participant_days: int
    participants: int
    levels: dict[str, int]
    opened: int
    closed: int
    published: int
    publish_failed: int
    notified: int
    seconds: float
    skipped: bool = False  # another run held the lock: nothing was done


def _midnight_s(day: date, tz: ZoneInfo) -> float:
    return datetime.combine(day, datetime.min.time(), tz).timestamp()


def refresh_days(conn: Conn, ranges: Sequence[tuple[uuid.UUID, date, date]], tz: ZoneInfo) -> int:
    """Recompute wear minutes and sleep episodes of each ``(participant, first day, last day)``; rows written."""
    if not ranges:
        return 0
    ids = [r[0] for r in ranges]
    lo_d = np.array([r[1].toordinal() for r in ranges], np.int64)
    hi_d = np.array([r[2].toordinal() for r in ranges], np.int64)
    first = int(lo_d.min())
    days = [date.fromordinal(first + k) for k in range(int(hi_d.max()) - first + 2)]
    edges = np.array([_midnight_s(d, tz) for d in days])
    lo_ts = [datetime.fromtimestamp(edges[k], tz) for k in lo_d - first]
    hi_ts = [datetime.fromtimestamp(edges[k + 1], tz) for k in hi_d - first]
    a = db.day_range_samples(conn, ids, lo_ts, hi_ts)
    unworn = unworn_intervals(a["st_row"], a["st_dev"], a["st_t"], a["st_worn"])
    wear = np.minimum(wear_minutes(a["hr_row"], a["hr_run"], a["hr_t"], len(ids), edges, unworn), 1440.0)
    n_days = edges.size - 1
    sday = np.searchsorted(edges, a["sl_t"], side="right") - 1
    ok = (sday >= 0) & (sday < n_days)
    sleep = np.bincount(a["sl_row"][ok] * n_days + sday[ok], minlength=len(ids) * n_days).reshape(len(ids), n_days)
    col = np.arange(n_days)[None, :] + first
    inside = (col >= lo_d[:, None]) & (col <= hi_d[:, None])
    r, c = np.nonzero(inside)
    return db.upsert_daily(conn, [ids[i] for i in r], [days[j] for j in c], wear[r, c], sleep[r, c])


def _evaluate(rows: list[tuple[Any, ...]], wear: np.ndarray, sleep: np.ndarray, now: datetime, today: date,
              tz: ZoneInfo, rules: ComplianceRules) -> Evaluation:
    first = today - timedelta(days=WINDOW_DAYS - 1)
    nan = float("nan")
    start_s = np.array([_midnight_s(r[2], tz) for r in rows])
    assigned_s = np.array([r[4].timestamp() if r[4] is not None else nan for r in rows])
    return evaluate(
        now.timestamp(),
        last_seen_s=np.array([float(r[5]) if r[5] is not None else nan for r in rows]),
        last_worn_s=np.array([float(r[6]) if r[6] is not None else nan for r in rows]),
        silent_from_s=np.fmax(start_s, assigned_s),
        battery_pct=np.array([float(r[7]) if r[7] is not None else nan for r in rows]),
        battery_alert_open=np.array([bool(r[11]) for r in rows], dtype=bool),
        wear_min=wear, sleep_n=sleep,
        first_col=np.array([(r[2] - first).days for r in rows], np.int64), rules=rules)


def _state_records(rows: list[tuple[Any, ...]], ev: Evaluation, now: datetime) -> list[tuple[Any, ...]]:
    def opt(v: float) -> float | None:
        return None if not np.isfinite(v) else round(float(v), 2)

    out = []
    for i, r in enumerate(rows):
        last_seen = datetime.fromtimestamp(float(r[5]), now.tzinfo) if r[5] is not None else None
        last_worn = datetime.fromtimestamp(float(r[6]), now.tzinfo) if r[6] is not None else None
        since = ev.days_since_valid_night[i]
        out.append((r[0], r[1], r[3], LEVELS[int(ev.level[i])], [REASONS[k] for k in np.flatnonzero(ev.reasons[i])],
                    last_seen, last_worn, opt(ev.silent_h[i]), r[7], r[8], r[9], opt(ev.wear_h_today[i]),
                    opt(ev.wear_h_7d[i]), int(ev.nights_sleep_7d[i]), int(ev.valid_nights_7d[i]),
                    int(ev.expected_nights_7d[i]), None if np.isnan(since) else int(since), now))
    return out


def _active_alerts(rows: list[tuple[Any, ...]], ev: Evaluation) -> list[tuple[uuid.UUID, str | None, str | None,
                                                                              str, float]]:
    values = {"silent": ev.silent_h, "battery": np.array([float(r[7]) if r[7] is not None else np.nan for r in rows]),
              "nights": ev.valid_nights_7d.astype(np.float64)}
    flags = {"silent": ev.alert_silent, "battery": ev.alert_battery, "nights": ev.alert_nights}
    out = []
    for kind in ALERT_KINDS:
        for i in np.flatnonzero(flags[kind]):
            out.append((rows[i][0], rows[i][3], rows[i][10], kind, float(values[kind][i])))
    return out


def run_compliance(conn: Conn, rules: ComplianceRules, tz: str, *, programme_days: int = 120,
                   now: datetime | None = None, mqtt: MqttTarget | None = None, outbox: Path | None = None,
                   metrics: ComplianceMetrics | None = None, reread: timedelta = db.REREAD) -> ComplianceSummary:
    """One incremental run (see the module docstring).

    Parameters
    ----------
    conn : psycopg.Connection
        Autocommit connection (the job opens its own transactions).
    rules : ComplianceRules
        Thresholds (``Programme.compliance``).
    tz : str
        IANA zone of local days.
    programme_days : int
        Programme length; participants past it are no longer evaluated (their open alerts close).
    now : datetime, optional
        Evaluation time (default: the clock); tests replay simulated time.
    mqtt, outbox : optional
        Delivery channels; None skips the channel (its events stay pending).
    metrics : ComplianceMetrics, optional
        Where to count.
    reread : timedelta
        How far before the watermark to read again (:data:`compliance.db.REREAD`; tests that commit every
        row before the run use 0).

    Two runs never overlap (two schedulers, or the CLI during a tick): a session advisory lock is taken
    first, and a run that cannot take it returns at once with ``skipped`` set.
    """
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,)).fetchone()
    if not (row and row[0]):
        return ComplianceSummary(0, 0, {}, 0, 0, 0, 0, 0, 0.0, skipped=True)
    try:
        return _run(conn, rules, tz, programme_days, now, mqtt, outbox, metrics, reread)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def _run(conn: Conn, rules: ComplianceRules, tz: str, programme_days: int, now: datetime | None,
         mqtt: MqttTarget | None, outbox: Path | None, metrics: ComplianceMetrics | None,
         reread: timedelta) -> ComplianceSummary:
    started = time.perf_counter()
    zone = ZoneInfo(tz)
    now = (now or datetime.now(zone)).astimezone(zone)
    today = now.date()
    with conn.transaction():
        since, until = db.read_watermark(conn)
        since_eff = (since - reread) if since is not None else datetime.fromtimestamp(0, zone)
        db.update_device_state(conn, since_eff, until)
        floor = today - timedelta(days=MAX_BACKFILL_DAYS)
        ranges = [(p, max(lo, floor), hi) for p, lo, hi in db.touched_ranges(conn, since_eff, until, tz) if hi >= floor]
        written = refresh_days(conn, ranges, zone)
        db.write_watermark(conn, until)
        rows, wear, sleep = db.read_state_inputs(conn, now, today, programme_days, WINDOW_DAYS)
        ev = _evaluate(rows, wear, sleep, now, today, zone, rules)
        db.write_participant_state(conn, _state_records(rows, ev, now))
        opened, closed = sync_episodes(conn, now, _active_alerts(rows, ev))
    published, failed = 0, 0
    if mqtt is not None:
        published, failed = deliver_mqtt(
            conn, lambda: connect_mqtt(mqtt.host, mqtt.port, mqtt.username, mqtt.password, mqtt.tls), now)
    notified = deliver_outbox(conn, outbox, now)
    levels = {lv: int((ev.level == k).sum()) for k, lv in enumerate(LEVELS)}
    if metrics is not None:
        _count(conn, metrics, levels, opened, closed, published, failed, notified)
    return ComplianceSummary(written, len(rows), levels, len(opened), len(closed), published, failed, notified,
                             time.perf_counter() - started)


def _count(conn: Conn, m: ComplianceMetrics, levels: dict[str, int], opened: list[str], closed: list[str],
           published: int, failed: int, notified: int) -> None:
    for kind in opened:
        m.opened.labels(kind).inc()
    for kind in closed:
        m.closed.labels(kind).inc()
    open_now = dict(conn.execute("SELECT kind, count(*) FROM compliance.alert_episodes WHERE closed_at IS NULL "
                                 "GROUP BY kind").fetchall())
    for kind in ALERT_KINDS:
        m.open.labels(kind).set(int(open_now.get(kind, 0)))
    for lv, n in levels.items():
        m.participants.labels(lv).set(n)
    m.delivered.labels("mqtt").inc(published)
    m.failed.labels("mqtt").inc(failed)
    m.delivered.labels("outbox").inc(notified)
    m.last_run.set_to_current_time()


def run_scheduled(database_url: str, tz: str, now: datetime, mqtt: MqttTarget | None, outbox: Path,
                  programme: Programme | None = None) -> None:
    """One run for ``fatigue serve``'s scheduler (every tick): the force's programme (default the packaged one),
    process-wide metrics."""
    programme = programme or load_programme(None)
    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        s = run_compliance(conn, programme.compliance, tz, programme_days=programme.days, now=now, mqtt=mqtt,
                           outbox=outbox, metrics=process_metrics())
    log.info("scheduler.compliance", skipped=s.skipped, participants=s.participants, days=s.participant_days,
             levels=s.levels, opened=s.opened, closed=s.closed, published=s.published,
             not_published=s.publish_failed, outbox=s.notified, seconds=round(s.seconds, 2))
