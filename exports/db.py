"""Database access of the export: eligible participants, daily features, weekly flags, identifiers, ledger.

Eligibility is decided here, in SQL, for every table: ``consent_research AND withdrawn_at IS NULL`` at the
moment of the export (one REPEATABLE READ snapshot), so a participant who has withdrawn is in no later export
and one without research consent is in none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd
import psycopg
from psycopg.types.json import Jsonb

from exports.checker_package import Release
from exports.daily_read import DailyChunk, read_daily_chunks
from exports.ledger import GENESIS, LedgerEntry, entry_hash

__all__ = [
    "append_ledger",
    "eligible_participants",
    "forbidden_identifiers",
    "read_daily",
    "read_flags",
    "read_ledger",
    "read_releases",
    "record_releases",
    "table_exists",
]

Conn = psycopg.Connection[Any]

ELIGIBLE = "p.consent_research AND p.withdrawn_at IS NULL"


def table_exists(conn: Conn, name: str) -> bool:
    """Whether a relation ``schema.table`` exists."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def eligible_participants(conn: Conn) -> pd.DataFrame:
    """Participants with research consent who have not withdrawn: id (str), the raw quasi-identifiers and the
    whole programme weeks completed at the export (``weeks_done``, from the snapshot's date; never released)."""
    rows = conn.execute(f"""SELECT p.participant_id::text, p.force_id, p.role_group, p.age_band, p.sex,
                                   greatest(0, (current_date - p.programme_start) / 7) AS weeks_done
                            FROM core.participants p WHERE {ELIGIBLE} ORDER BY p.participant_id""").fetchall()
    return pd.DataFrame(rows, columns=["participant_id", "force_id", "role_group", "age_band", "sex", "weeks_done"])


def forbidden_identifiers(conn: Conn) -> set[str]:
    """Every staff reference, device id, gateway id and force id: none of them may appear in a released file."""
    rows = conn.execute("""SELECT staff_ref FROM core.identities UNION SELECT device_id FROM core.devices
                           UNION SELECT gateway_id FROM core.gateways UNION SELECT force_id FROM core.forces
                           """).fetchall()
    return {str(r[0]) for r in rows}


def read_daily(conn: Conn, participant_ids: Iterable[str], first_day: int, last_day: int) -> Iterator[DailyChunk]:
    """Eligible participants' ``derived.daily_features`` rows in a programme-day range, column-packed by chunk.

    ``participant_ids`` are the eligible participants (from :func:`eligible_participants` in the same
    transaction); eligibility is checked again in SQL for every row. Reads run on two extra connections sharing
    this transaction's snapshot (see :mod:`exports.daily_read`). ``computed_at`` is never read.
    """
    yield from read_daily_chunks(conn, [str(p) for p in participant_ids], first_day, last_day, ELIGIBLE)


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


def read_releases(conn: Conn, project: str) -> list[Release]:
    """What earlier exports of ``project`` released (``exports.released_participants``, migration 061)."""
    if not table_exists(conn, "exports.released_participants"):
        return []
    rows = conn.execute("SELECT seq, key_version, pid, qis FROM exports.released_participants WHERE project = %s "
                        "ORDER BY seq", (project,)).fetchall()
    out: dict[int, Release] = {}
    for seq, version, pid, qis in rows:
        values = json.loads(qis) if isinstance(qis, str) else qis
        out.setdefault(int(seq), Release(int(seq), int(version))).qis[str(pid)] = tuple(values)
    return list(out.values())


def record_releases(conn: Conn, seq: int, project: str, key_version: int, people: pd.DataFrame,
                    qis: Iterable[str]) -> None:
    """Record the released participants of ledger entry ``seq`` (pid and quasi-identifier values)."""
    cols = list(qis)
    values = people[cols].astype(object).to_numpy().tolist()
    with conn.cursor().copy("COPY exports.released_participants (seq, project, key_version, pid, qis) "
                            "FROM STDIN") as copy:
        for pid, row in zip(people["pid"], values, strict=True):
            copy.write_row((seq, project, key_version, pid, json.dumps([_plain(v) for v in row])))


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
