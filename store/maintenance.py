"""Storage maintenance: upcoming monthly partitions of the raw streams (plain PostgreSQL mode only)."""

from __future__ import annotations

import psycopg

__all__ = ["ensure_future_partitions"]


def ensure_future_partitions(conn: psycopg.Connection[tuple[object, ...]], months_ahead: int = 3) -> int | None:
    """Create the monthly partitions of every raw stream from last month to ``months_ahead`` months ahead.

    Returns the number of partitions created, or None when raw streams are TimescaleDB hypertables (chunks are
    created on demand there). Rows that had landed in a DEFAULT partition move into their new month.
    """
    mode = conn.execute("SELECT mode FROM store.storage_mode").fetchone()
    if mode is None or mode[0] != "partitioned":
        return None
    row = conn.execute(
        "SELECT coalesce(sum(store.ensure_partitions(table_name, (now() - interval '1 month')::date, "
        "(now() + make_interval(months => %s))::date)), 0) FROM store.timeseries_tables", (months_ahead,)).fetchone()
    return int(str(row[0])) if row else 0
