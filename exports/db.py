"""Database access of the export: eligible participants, daily features, weekly flags, identifiers, ledger.

Eligibility is decided here, in SQL, for every table: ``consent_research AND withdrawn_at IS NULL`` at the
moment of the export (one REPEATABLE READ snapshot), so a participant who has withdrawn is in no later export
and one without research consent is in none.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg.types.json import Jsonb

from exports.ledger import GENESIS, LedgerEntry, entry_hash

__all__ = ["append_ledger", "eligible_participants", "forbidden_identifiers", "read_flags", "read_ledger",
           "stream_daily", "table_exists"]

Conn = psycopg.Connection[Any]

ELIGIBLE = "p.consent_research AND p.withdrawn_at IS NULL"
_DAILY_TYPES: dict[str, pa.DataType] = {
    "participant_id": pa.string(), "sleep_date": pa.date32(), "programme_day": pa.int64(),
    "valid_sleep_day": pa.bool_(), "valid_hrv_night": pa.bool_(), "n_episodes": pa.int64(),
    "hrv_source": pa.string(), "rhr_source": pa.string(), "algorithm_version": pa.string(),
}
DAILY_SOURCE: tuple[str, ...] = (
    "participant_id", "sleep_date", "programme_day", "valid_sleep_day", "wear_h", "n_episodes", "tib_min",
    "tst_min", "main_tst_min", "nap_min", "se_pct", "sol_min", "waso_min", "awakenings", "midpoint_local_h",
    "sleep_need_h", "debt_net_7d_h", "debt_gross_7d_h", "debt_carry_h", "sleep_performance_pct", "sri_14d",
    "sleep_consistency", "valid_hrv_night", "rmssd_ms", "ln_rmssd", "sdnn_ms", "pnn50_pct", "hrv_source",
    "resting_hr_bpm", "rhr_source", "hrv_baseline_mean", "hrv_baseline_sd", "rhr_baseline_mean",
    "recovery_score", "algorithm_version",
)


def table_exists(conn: Conn, name: str) -> bool:
    """Whether a relation ``schema.table`` exists."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def eligible_participants(conn: Conn) -> pd.DataFrame:
    """Participants with research consent who have not withdrawn: id (str) and the raw quasi-identifiers."""
    rows = conn.execute(f"""SELECT p.participant_id::text, p.force_id, p.role_group, p.age_band, p.sex
                            FROM core.participants p WHERE {ELIGIBLE} ORDER BY p.participant_id""").fetchall()
    return pd.DataFrame(rows, columns=["participant_id", "force_id", "role_group", "age_band", "sex"])


def forbidden_identifiers(conn: Conn) -> set[str]:
    """Every staff reference, device id, gateway id and force id: none of them may appear in a released file."""
    rows = conn.execute("""SELECT staff_ref FROM core.identities UNION SELECT device_id FROM core.devices
                           UNION SELECT gateway_id FROM core.gateways UNION SELECT force_id FROM core.forces
                           """).fetchall()
    return {str(r[0]) for r in rows}


class _CopyStream(io.RawIOBase):
    """A readable file over the chunks of a ``COPY ... TO STDOUT``."""

    def __init__(self, chunks: Iterator[Any]) -> None:
        self._chunks = chunks
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        view = memoryview(target).cast("B")
        filled = 0
        while filled < len(view):
            if not self._buf:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._buf = memoryview(chunk).cast("B")
            n = min(len(view) - filled, len(self._buf))
            view[filled:filled + n] = self._buf[:n]
            self._buf = self._buf[n:]
            filled += n
        return filled


def stream_daily(conn: Conn, first_day: int, last_day: int, block_bytes: int = 32 << 20) -> Iterator[pa.RecordBatch]:
    """Stream eligible participants' ``derived.daily_features`` rows in a programme-day range as Arrow batches.

    Rows come through ``COPY (...) TO STDOUT (FORMAT csv)`` parsed by pyarrow's streaming CSV reader (several
    times faster than fetching tuples). ``computed_at`` is never read.
    """
    cols = ", ".join(f"f.{c}" for c in DAILY_SOURCE)
    query = (f"SELECT {cols} FROM derived.daily_features f JOIN core.participants p USING (participant_id) "
             f"WHERE {ELIGIBLE} AND f.programme_day BETWEEN {int(first_day)} AND {int(last_day)}")
    convert = pacsv.ConvertOptions(column_types=_DAILY_TYPES, true_values=["t"], false_values=["f"],
                                   strings_can_be_null=True)
    read = pacsv.ReadOptions(column_names=list(DAILY_SOURCE), block_size=block_bytes)
    with conn.cursor().copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
        stream = io.BufferedReader(_CopyStream(iter(copy)), buffer_size=8 << 20)
        try:
            reader = pacsv.open_csv(stream, read_options=read, convert_options=convert)
        except pa.ArrowInvalid:  # no rows at all: pyarrow cannot open an empty stream
            return
        yield from reader


def read_flags(conn: Conn, first_week: int, last_week: int) -> pd.DataFrame | None:
    """Current weekly flags of eligible participants in a week range; ``None`` if ``risk.weekly_flags`` is absent.

    Sets ``fatigue.all_forces`` for the current transaction so the table's row-level security lets the export
    read every force (the caller's transaction must be open).
    """
    if not table_exists(conn, "risk.weekly_flags"):
        return None
    conn.execute("SELECT set_config('fatigue.all_forces', 'on', true)")
    rows = conn.execute(f"""SELECT f.participant_id::text, f.programme_week, f.overall_level, f.criteria
                            FROM risk.weekly_flags f JOIN core.participants p USING (participant_id)
                            WHERE f.is_current AND {ELIGIBLE} AND f.programme_week BETWEEN %s AND %s""",
                        (first_week, last_week)).fetchall()
    return pd.DataFrame(rows, columns=["participant_id", "programme_week", "overall_level", "criteria"])


_LEDGER_COLS = ("seq, requested_at, requester, approver, project, policy_version, key_version, row_counts, "
                "k_achieved, suppression, file_hashes, prev_hash, entry_hash")


def append_ledger(conn: Conn, entry: LedgerEntry) -> LedgerEntry:
    """Append ``entry`` at the head of the chain (its ``seq``/``prev_hash``/``entry_hash`` are filled in here).

    Must run inside a transaction: the table is locked in SHARE ROW EXCLUSIVE mode so that two exports cannot
    both extend the same head.
    """
    conn.execute("LOCK TABLE exports.export_ledger IN SHARE ROW EXCLUSIVE MODE")
    head = conn.execute("SELECT seq, entry_hash FROM exports.export_ledger ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (int(head[0]) + 1, str(head[1])) if head else (1, GENESIS)
    linked = LedgerEntry(**{**entry.__dict__, "seq": seq, "prev_hash": prev, "entry_hash": ""})
    final = LedgerEntry(**{**linked.__dict__, "entry_hash": entry_hash(linked)})
    conn.execute(f"INSERT INTO exports.export_ledger ({_LEDGER_COLS}) VALUES "
                 "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                 (final.seq, final.requested_at, final.requester, final.approver, final.project,
                  final.policy_version, final.key_version, Jsonb(final.row_counts), final.k_achieved,
                  Jsonb(final.suppression), Jsonb(final.file_hashes), final.prev_hash, final.entry_hash))
    return final


def read_ledger(conn: Conn) -> list[LedgerEntry]:
    """Every ledger row in ``seq`` order."""
    rows = conn.execute(f"SELECT {_LEDGER_COLS} FROM exports.export_ledger ORDER BY seq").fetchall()
    out = []
    for r in rows:
        data = [json.loads(v) if isinstance(v, str) and i in (7, 9, 10) else v for i, v in enumerate(r)]
        out.append(LedgerEntry(int(data[0]), data[1], data[2], data[3], data[4], data[5], int(data[6]),
                               data[7], int(data[8]), data[9], data[10], data[11], data[12]))
    return out
