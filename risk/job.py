"""The weekly flag job: find closed programme weeks, evaluate them, write flags with revisions.

Calendar (science 6.1): day 1 = ``core.participants.programme_start``; week ``w`` covers days
``7(w-1)+1 .. 7w`` (local dates), weeks ``1 .. programme.weeks``.

Closing rule (reliability_security.md 3.9, generalised to per-participant weeks): week ``w`` holds data up to
its last day ``E`` 23:59:59 local; adding the 36 h lateness allowance it closes at ``E + 2 days, 12:00`` local
wall-clock time (for a week ending Saturday that is Monday 12:00). A run ``as_of`` date D is deemed to happen
at 12:00 local on D, so the weeks it may evaluate are those with ``E <= D - 2``.

Revisions: every run re-evaluates the closed weeks whose end lies within ``revision_window_days`` of ``as_of``
(late data older than 30 days is dead-lettered, reliability 3.9) plus any closed week never issued. A week
whose stored content (levels, values rounded to 0.01, reasons, versions, dates) is unchanged is left alone, so
a second run writes nothing; a changed week gets a new row ``revision + 1`` that ``supersedes`` the earlier
one, which stays in the table with ``is_current = false`` for audit.

Withdrawal: a withdrawn participant is flagged only for weeks that had closed before ``withdrawn_at``.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from risk.evaluate import ALGORITHM_VERSION, WeeklyFlags, weekly_flags
from risk.programme import CRITERIA, Programme
from risk.reasons import criteria_frame

__all__ = ["FlagRunSummary", "run_flags"]

Conn = psycopg.Connection[Any]
_LOCK_KEY = 0x7269736B  # "risk"

DAILY_COLUMNS = ("valid_sleep_day", "tst_min", "se_pct", "debt_net_7d_h", "sri_14d",
                 "valid_hrv_night", "ln_rmssd", "resting_hr_bpm", "hrv_baseline_mean", "hrv_baseline_sd",
                 "rhr_baseline_mean")
# start_ts: exposure rows are matched to their duty (F1 ignores duties with unknown time awake, issue 14)
DUTY_COLUMNS = ("start_ts", "quick_return", "long_shift", "consecutive_nights", "time_awake_end_h")
EXPOSURE_COLUMNS = ("start_ts", "minutes_kss_ge7", "minutes_kss_ge8", "estimated")


@dataclass(frozen=True)
class FlagRunSummary:
    """What one run did (no personal data)."""

    as_of: date
    evaluated: int
    issued: int
    revised: int
    unchanged: int
    by_level: dict[str, int]
    missing_inputs: tuple[str, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)


_DUE_SQL = """
CREATE TEMP TABLE _due ON COMMIT DROP AS
SELECT (row_number() OVER (ORDER BY p.participant_id, w) - 1)::int AS row, p.participant_id, p.force_id,
       w AS programme_week, p.programme_start + 7 * (w - 1) AS week_start, p.programme_start + 7 * w - 1 AS week_end
FROM core.participants p
CROSS JOIN generate_series(1, %(weeks)s) AS w
WHERE p.programme_start + 7 * w - 1 <= %(as_of)s::date - 2
  AND (p.withdrawn_at IS NULL
       OR ((p.programme_start + 7 * w + 1)::timestamp + interval '12 hours') AT TIME ZONE %(tz)s <= p.withdrawn_at)
  AND (p.programme_start + 7 * w - 1 >= %(as_of)s::date - %(window)s
       OR NOT EXISTS (SELECT 1 FROM risk.weekly_flags f WHERE f.participant_id = p.participant_id
                      AND f.programme_week = w AND f.is_current))
"""

_WEEK_TS = ("{t}.start_ts >= (d.week_start::timestamp AT TIME ZONE %(tz)s) "
            "AND {t}.start_ts < ((d.week_end + 1)::timestamp AT TIME ZONE %(tz)s)")


def _copy_frame(conn: Conn, sql: str, params: dict[str, Any]) -> pd.DataFrame:
    """Run ``COPY (sql) TO STDOUT`` as CSV and parse it with pandas (much faster than fetching tuples)."""
    buf = io.BytesIO()
    bound = psycopg.ClientCursor(conn).mogrify(sql, params)
    with conn.cursor().copy(f"COPY ({bound}) TO STDOUT (FORMAT csv, HEADER)") as copy:
        for chunk in copy:
            buf.write(chunk)
    buf.seek(0)
    return pd.read_csv(buf, true_values=["t"], false_values=["f"], low_memory=False)


def _exists(conn: Conn, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def _read_inputs(conn: Conn, tz: str, missing: list[str]) -> tuple[pd.DataFrame, ...]:
    params = {"tz": tz}
    cohort = _copy_frame(conn, """
        SELECT d.row, d.participant_id, d.programme_week,
               EXISTS (SELECT 1 FROM core.duties c WHERE c.participant_id = d.participant_id
                       AND c.start_ts < ((d.week_end + 1)::timestamp AT TIME ZONE %(tz)s)
                       AND c.start_ts >= (d.week_start::timestamp AT TIME ZONE %(tz)s) - interval '28 days')
               AND EXISTS (SELECT 1 FROM core.duties c WHERE c.participant_id = d.participant_id
                       AND c.start_ts >= (d.week_start::timestamp AT TIME ZONE %(tz)s))
               AS roster_present,
               (SELECT count(*) FROM core.duties c WHERE c.participant_id = d.participant_id
                AND """ + _WEEK_TS.format(t="c") + """) AS n_roster_duties,
               (SELECT (f.criteria -> 'H1' ->> 'below_band')::boolean FROM risk.weekly_flags f
                WHERE f.participant_id = d.participant_id AND f.programme_week = d.programme_week - 1
                AND f.is_current) AS prev_h1_below
        FROM _due d ORDER BY d.row""", params)
    frames = []
    for table, cols, join in (
            ("derived.daily_features", DAILY_COLUMNS,
             "f.sleep_date BETWEEN d.week_start AND d.week_end"),
            ("derived.duty_features", DUTY_COLUMNS, _WEEK_TS.format(t="f")),
            ("derived.duty_exposure", EXPOSURE_COLUMNS, _WEEK_TS.format(t="f"))):
        if not _exists(conn, table):
            missing.append(table)
            frames.append(pd.DataFrame({c: pd.Series(dtype=float) for c in ("row", *cols)}))
            continue
        day = ", (f.sleep_date - d.week_start) + 7 * (d.programme_week - 1) + 1 AS programme_day" \
            if table.endswith("daily_features") else ""
        select = ", ".join(f"f.{c}" for c in cols)
        frames.append(_copy_frame(conn, f"SELECT d.row, {select}{day} FROM _due d JOIN {table} f "
                                        f"ON f.participant_id = d.participant_id AND {join}", params))
    return cohort, frames[0], frames[1], frames[2]


def _criteria_sql(programme: Programme) -> tuple[str, sql.Composed]:
    """Column list of the ``_stage`` table and the jsonb expression that builds ``criteria`` from it."""
    cols, parts = [], []
    for code in CRITERIA:
        c = code.lower()
        cols.append(f"{c}_v numeric, {c}_l smallint, {c}_r text")
        extra = ", 'below_band', h1_below" if code == "H1" else ""
        parts.append(sql.SQL(
            f"'{code}', jsonb_build_object('value', {c}_v, 'unit', {{}}::text, "
            f"'level', (ARRAY['not_evaluated', 'green', 'amber', 'red'])[{c}_l + 2], 'reason', {c}_r{extra})"
        ).format(sql.Literal(programme.thresholds[code].unit)))
    return ", ".join(cols), sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(parts))


def _stage(conn: Conn, due: pd.DataFrame, flags: WeeklyFlags, programme: Programme) -> None:
    """COPY the evaluated rows as CSV into ``_new`` (criteria as typed columns, jsonb built by the server)."""
    columns, criteria_expr = _criteria_sql(programme)
    conn.execute(f"""CREATE TEMP TABLE _stage (participant_id uuid, force_id text, programme_week smallint,
                     week_start date, week_end date, overall_level text, {columns}, h1_below boolean)
                     ON COMMIT DROP""")
    frame = pd.concat([due.reset_index(drop=True), pd.Series(flags.overall_names(), name="overall_level"),
                       criteria_frame(flags, programme)], axis=1)
    buf = io.StringIO()
    frame.to_csv(buf, index=False, header=False)
    with conn.cursor().copy("COPY _stage FROM STDIN (FORMAT csv)") as copy:
        copy.write(buf.getvalue())
    conn.execute(sql.SQL("CREATE TEMP TABLE _new ON COMMIT DROP AS SELECT participant_id, force_id, "
                         "programme_week, week_start, week_end, overall_level, {} AS criteria FROM _stage"
                         ).format(criteria_expr))


def _write(conn: Conn, due: pd.DataFrame, flags: WeeklyFlags, programme: Programme) -> tuple[int, int]:
    _stage(conn, due, flags, programme)
    conn.execute("""
        CREATE TEMP TABLE _chg ON COMMIT DROP AS
        SELECT n.*, c.flag_id AS old_id, c.revision AS old_rev FROM _new n
        LEFT JOIN risk.weekly_flags c ON c.participant_id = n.participant_id
             AND c.programme_week = n.programme_week AND c.is_current
        WHERE c.flag_id IS NULL OR c.overall_level <> n.overall_level OR c.criteria <> n.criteria
           OR c.week_start <> n.week_start OR c.programme_version <> %(pv)s OR c.algorithm_version <> %(av)s
        """, {"pv": programme.version, "av": ALGORITHM_VERSION})
    conn.execute("UPDATE risk.weekly_flags f SET is_current = false FROM _chg c WHERE f.flag_id = c.old_id")
    conn.execute("""
        INSERT INTO risk.weekly_flags (participant_id, force_id, programme_week, week_start, week_end,
            overall_level, criteria, programme_version, algorithm_version, revision, supersedes, is_current)
        SELECT participant_id, force_id, programme_week, week_start, week_end, overall_level, criteria,
               %(pv)s, %(av)s, coalesce(old_rev, 0) + 1, old_id, true FROM _chg
        """, {"pv": programme.version, "av": ALGORITHM_VERSION})
    row = conn.execute("SELECT count(*) FILTER (WHERE old_id IS NULL), count(*) FILTER (WHERE old_id IS NOT NULL)"
                       " FROM _chg").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def run_flags(conn: Conn, as_of: date, programme: Programme, tz: str = "Europe/London",
              revision_window_days: int = 35) -> FlagRunSummary:
    """Evaluate every closed, due programme week and write its flag (idempotent; see the module docstring).

    Parameters
    ----------
    conn : psycopg.Connection
        Connection to the service database (autocommit or not; the run is one transaction).
    as_of : date
        Run date; the run is deemed to happen at 12:00 local time on it.
    programme : Programme
        Thresholds and calendar (``risk.programme.load_programme``).
    tz : str
        IANA zone of the programme's local dates and duty assignment.
    revision_window_days : int
        Closed weeks ending this many days before ``as_of`` or later are re-evaluated for late data.

    Returns
    -------
    FlagRunSummary
        Counts of evaluated, newly issued, revised and unchanged weeks, and timings.
    """
    started = datetime.now().astimezone()
    timings: dict[str, float] = {}
    missing: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute("SELECT set_config('fatigue.all_forces', 'on', true)")
        t0 = time.perf_counter()
        conn.execute(_DUE_SQL, {"weeks": programme.weeks, "as_of": as_of, "tz": tz,
                                "window": revision_window_days})
        due = pd.DataFrame(conn.execute("SELECT participant_id, force_id, programme_week, week_start, week_end "
                                        "FROM _due ORDER BY row").fetchall(),
                           columns=["participant_id", "force_id", "programme_week", "week_start", "week_end"])
        cohort, daily, duties, exposure = _read_inputs(conn, tz, missing)
        timings["read_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        cohort["participant_id"] = due["participant_id"]
        flags = weekly_flags(cohort, daily, duties, exposure, programme)
        timings["evaluate_s"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        issued, revised = _write(conn, due, flags, programme) if len(due) else (0, 0)
        levels = pd.Series(flags.overall_names()).value_counts()
        conn.execute("""INSERT INTO risk.flag_runs (as_of, programme_version, algorithm_version, evaluated,
                        issued, revised, unchanged, started_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
                     (as_of, programme.version, ALGORITHM_VERSION, len(due), issued, revised,
                      len(due) - issued - revised, started))
        timings["write_s"] = time.perf_counter() - t2
    return FlagRunSummary(as_of, len(due), issued, revised, len(due) - issued - revised,
                          {str(k): int(v) for k, v in levels.items()}, tuple(missing), timings)
