"""TimescaleDB helpers shared by the store tests (plain functions, no fixtures)."""

from __future__ import annotations

import psycopg

Conn = psycopg.Connection[tuple[object, ...]]


def storage_mode(conn: Conn) -> str:
    """``'timescaledb'`` or ``'partitioned'``, as decided by migration 002."""
    row = conn.execute("SELECT mode FROM store.storage_mode").fetchone()
    assert row is not None, "migration 002 records the storage mode"
    return str(row[0])


def compress_every_chunk(conn: Conn) -> int:
    """Compress every chunk of every raw hypertable; return how many chunks are compressed afterwards.

    Asserts that no chunk of a raw hypertable is left uncompressed, so a test that calls this really runs on
    compressed data.
    """
    tables = [str(r[0]) for r in conn.execute("SELECT table_name FROM store.timeseries_tables").fetchall()]
    for table in tables:
        conn.execute("SELECT count(compress_chunk(c, if_not_compressed => true)) FROM show_chunks(%s::regclass) c",
                     (table,))
    row = conn.execute("SELECT count(*) FILTER (WHERE is_compressed), count(*) FILTER (WHERE NOT is_compressed) "
                       "FROM timescaledb_information.chunks WHERE hypertable_schema = 'raw'").fetchone()
    assert row is not None and row[1] == 0, f"uncompressed raw chunks left: {row}"
    return int(str(row[0]))
