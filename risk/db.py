"""Database reads and writes of the weekly report (the report itself is built in :mod:`risk.report`)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pandas as pd
import psycopg

__all__ = ["read_manager_flags", "read_report_flags", "record_report", "report_recipients"]

Conn = psycopg.Connection[Any]

# risk.manager_flags (migration 060) is the one definition of what a manager may see; the API reads it too.
_FLAGS_SQL = """
SELECT participant_id, programme_week, week_end, overall_level, criteria, revision, named, staff_ref
FROM risk.manager_flags
WHERE force_id = %(force)s AND week_end BETWEEN %(first)s AND %(last)s
"""
COLUMNS = ("participant_id", "programme_week", "week_end", "overall_level", "criteria", "revision",
           "consent_manager", "staff_ref")


def read_manager_flags(conn: Conn, force_id: str, first: date, last: date) -> pd.DataFrame:
    """Rows of ``risk.manager_flags`` of one force whose week ended between ``first`` and ``last``.

    Used by the report job and by the managers' API (inside its scoped transaction); the caller sets the
    scope. Columns as :data:`COLUMNS` (``consent_manager`` is the view's ``named``).
    """
    rows = conn.execute(_FLAGS_SQL, {"force": force_id, "first": first, "last": last}).fetchall()
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["consent_manager"] = frame["consent_manager"].astype(bool)
    return frame


def read_report_flags(conn: Conn, force_id: str, week_end: date, trend_weeks: int = 8) -> pd.DataFrame:
    """Current flags of one force whose week ended in the ``trend_weeks`` weeks up to ``week_end``.

    Reads ``risk.manager_flags``: the staff reference only of officers who consented to be named (column
    ``consent_manager`` here), withdrawn officers left out. The read runs with ``fatigue.force_id`` set, so
    row-level security applies too.
    """
    first = week_end - timedelta(days=7 * trend_weeks - 1)
    with conn.transaction():
        conn.execute("SELECT set_config('fatigue.force_id', %s, true)", (force_id,))
        return read_manager_flags(conn, force_id, first, week_end)


def report_recipients(conn: Conn, force_id: str) -> list[str]:
    """E-mail addresses that receive the force's weekly report."""
    rows = conn.execute("SELECT email FROM risk.report_recipients WHERE force_id = %s ORDER BY email",
                        (force_id,)).fetchall()
    return [str(r[0]) for r in rows]


def record_report(conn: Conn, report_id: str, force_id: str, iso_week: str, week_start: date, week_end: date,
                  html_path: str, csv_paths: list[str], n_officers: int, notified: bool, emailed: int) -> None:
    """Insert the ``risk.reports`` row of a delivered report."""
    with conn.transaction():
        conn.execute("SELECT set_config('fatigue.force_id', %s, true)", (force_id,))
        conn.execute(
            "INSERT INTO risk.reports (report_id, force_id, iso_week, week_start, week_end, html_path, csv_paths,"
            " n_officers, notified_mqtt, emailed_to) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (report_id, force_id, iso_week, week_start, week_end, html_path, csv_paths, n_officers, notified,
             emailed))
