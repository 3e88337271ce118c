"""Administrative imports: participants and devices, duty rosters, withdrawal and erasure.

Imports are all-or-nothing: every row is validated first; if any row is bad, a :class:`CsvImportError` lists
each problem with its line, column and reason, and nothing is written. A good file is written in one
transaction and re-importing it changes nothing (participants are matched on force and staff reference,
duties on participant and start): unchanged rows are counted as unchanged, are not written, and mark no day
for recomputation. Files must be UTF-8 (``store.csv_text`` explains other encodings and how to convert them);
a roster's exact duplicates and overlapping duties of one officer are row errors (``store.duty_checks``).

CSV formats are documented in ``docs/developing.md`` (section "Admin CSV formats").
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from store.csv_text import CsvEncodingError, read_csv_text
from store.duty_checks import Duty, duty_conflicts

__all__ = [
    "CsvImportError", "ImportSummary", "RowProblem", "erase_participant", "import_participants",
    "import_roster", "resolve_participant", "withdraw_participant",
]

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STAFF_RE = re.compile(r"^[A-Za-z0-9_/.-]{1,64}$")
ROLE_GROUPS = frozenset({"response", "firearms", "investigation", "contact_management", "other"})
AGE_BANDS = frozenset({"18-24", "25-29", "30-34", "35-39", "40-44", "45-49", "50-54", "55+"})
SEXES = frozenset({"female", "male", "other", "not_stated"})
SHIFT_TYPES = frozenset({"early", "late", "night", "day", "long_day", "office", "training", "other"})
PARTICIPANT_COLUMNS = ("force_id", "staff_ref", "role_group", "age_band", "sex", "programme_start",
                       "consent_manager", "consent_research", "device_ids", "gateway_id")
ROSTER_COLUMNS = ("force_id", "staff_ref", "start", "end", "shift_type", "overtime")
Conn = psycopg.Connection[tuple[object, ...]]


@dataclass(frozen=True)
class RowProblem:
    """One bad cell: 1-based file line, column name and a reason a person can act on."""

    line: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.reason}"


class CsvImportError(ValueError):
    """The file had bad rows; nothing was written."""

    def __init__(self, path: str, problems: list[RowProblem]) -> None:
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{path}: {len(problems)} problem(s), nothing imported:\n{shown}{more}")


@dataclass(frozen=True)
class ImportSummary:
    """What an import wrote: of ``rows``, ``inserted`` new, ``updated`` changed, ``unchanged`` left alone."""

    rows: int
    inserted: int
    updated: int
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        """True when the import wrote anything."""
        return bool(self.inserted or self.updated)


def _read_rows(path: Path, columns: tuple[str, ...]) -> tuple[list[tuple[int, dict[str, str]]],
                                                             list[RowProblem]]:
    try:
        text = read_csv_text(path)
    except CsvEncodingError as exc:
        return [], [RowProblem(exc.line, "(file)", exc.reason)]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = tuple(reader.fieldnames or ())
    missing = [c for c in columns if c not in header]
    if missing:
        return [], [RowProblem(1, c, "column missing from the header") for c in missing]
    rows = [(reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}) for row in reader]
    return rows, []


def _check(problems: list[RowProblem], line: int, column: str, ok: bool, reason: str) -> bool:
    if not ok:
        problems.append(RowProblem(line, column, reason))
    return ok


def _parse_bool(problems: list[RowProblem], line: int, column: str, text: str) -> bool:
    value = text.lower()
    _check(problems, line, column, value in ("true", "false"), f"expected true or false, got {text!r}")
    return value == "true"


def _parse_date(problems: list[RowProblem], line: int, column: str, text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems.append(RowProblem(line, column, f"expected a date YYYY-MM-DD, got {text!r}"))
        return None


def _parse_instant(problems: list[RowProblem], line: int, column: str, text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        problems.append(RowProblem(line, column, f"expected an RFC 3339 time, got {text!r}"))
        return None
    if value.tzinfo is None:
        problems.append(RowProblem(line, column, "time has no UTC offset (write e.g. 2026-03-01T07:00:00+00:00)"))
        return None
    return value


def _choice(problems: list[RowProblem], line: int, column: str, text: str, allowed: Iterable[str]) -> None:
    allowed = sorted(allowed)
    _check(problems, line, column, text in allowed, f"{text!r} is not one of {', '.join(allowed)}")


@dataclass(frozen=True)
class _Participant:
    line: int
    force_id: str
    staff_ref: str
    role_group: str
    age_band: str
    sex: str
    programme_start: date
    consent_manager: bool
    consent_research: bool
    device_ids: tuple[str, ...]
    gateway_id: str


def _validate_participant(line: int, row: dict[str, str], problems: list[RowProblem]) -> _Participant | None:
    before = len(problems)
    _check(problems, line, "force_id", bool(ID_RE.match(row["force_id"])), "force id must match [A-Za-z0-9_-]{1,64}")
    _check(problems, line, "staff_ref", bool(STAFF_RE.match(row["staff_ref"])),
           "staff reference must be 1-64 letters, digits or _/.-")
    _choice(problems, line, "role_group", row["role_group"], ROLE_GROUPS)
    _choice(problems, line, "age_band", row["age_band"], AGE_BANDS)
    _choice(problems, line, "sex", row["sex"], SEXES)
    start = _parse_date(problems, line, "programme_start", row["programme_start"])
    manager = _parse_bool(problems, line, "consent_manager", row["consent_manager"])
    research = _parse_bool(problems, line, "consent_research", row["consent_research"])
    devices = tuple(d.strip() for d in row["device_ids"].split(";") if d.strip())
    _check(problems, line, "device_ids", all(ID_RE.match(d) for d in devices),
           "device ids must match [A-Za-z0-9_-]{1,64}, separated by ';'")
    gateway = row["gateway_id"]
    _check(problems, line, "gateway_id", not gateway or bool(ID_RE.match(gateway)),
           "gateway id must match [A-Za-z0-9_-]{1,64}")
    if len(problems) > before or start is None:
        return None
    return _Participant(line, row["force_id"], row["staff_ref"], row["role_group"], row["age_band"], row["sex"],
                        start, manager, research, devices, gateway)


def _cross_row_checks(people: list[_Participant], problems: list[RowProblem]) -> None:
    seen_staff: dict[tuple[str, str], int] = {}
    seen_device: dict[str, int] = {}
    for p in people:
        key = (p.force_id, p.staff_ref)
        _check(problems, p.line, "staff_ref", key not in seen_staff,
               f"duplicate of line {seen_staff.get(key)} for this force")
        seen_staff.setdefault(key, p.line)
        for dev in p.device_ids:
            _check(problems, p.line, "device_ids", dev not in seen_device,
                   f"device {dev} is also listed on line {seen_device.get(dev)}")
            seen_device.setdefault(dev, p.line)


def import_participants(conn: Conn, path: Path, tz: ZoneInfo) -> ImportSummary:
    """Validate and import a participants CSV in one transaction (see module docstring).

    Devices are assigned from local midnight one day before the programme start (the ingester accepts data
    from enrolment minus one day), open-ended. A device already assigned to somebody else is a row error.
    """
    rows, problems = _read_rows(path, PARTICIPANT_COLUMNS)
    people = [p for line, row in rows if (p := _validate_participant(line, row, problems))]
    _cross_row_checks(people, problems)
    if problems:
        raise CsvImportError(str(path), problems)
    outcomes = {"new": 0, "updated": 0, "unchanged": 0}
    with conn.transaction():
        for p in people:
            outcomes[_upsert_participant(conn, p, tz, problems)] += 1
        if problems:
            raise CsvImportError(str(path), problems)  # rolls the transaction back
    return ImportSummary(len(people), outcomes["new"], outcomes["updated"], outcomes["unchanged"])


def _upsert_participant(conn: Conn, p: _Participant, tz: ZoneInfo, problems: list[RowProblem]) -> str:
    """Insert or update one participant and their devices: ``"new"``, ``"updated"`` or ``"unchanged"``."""
    conn.execute("INSERT INTO core.forces (force_id) VALUES (%s) ON CONFLICT DO NOTHING", (p.force_id,))
    if p.gateway_id:
        conn.execute("INSERT INTO core.gateways (gateway_id, force_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                     (p.gateway_id, p.force_id))
    row = conn.execute("SELECT participant_id FROM core.identities WHERE force_id = %s AND staff_ref = %s",
                       (p.force_id, p.staff_ref)).fetchone()
    attrs = (p.role_group, p.age_band, p.sex, p.programme_start, p.consent_manager, p.consent_research)
    changed = 0
    if row is None:
        pid = uuid.uuid4()
        conn.execute("INSERT INTO core.participants (participant_id, force_id, role_group, age_band, sex, "
                     "programme_start, consent_manager, consent_research) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                     (pid, p.force_id, *attrs))
        conn.execute("INSERT INTO core.identities VALUES (%s, %s, %s)", (pid, p.force_id, p.staff_ref))
    else:
        pid = row[0]  # type: ignore[assignment]
        changed = conn.execute(
            "UPDATE core.participants SET role_group = %s, age_band = %s, sex = %s, programme_start = %s,"
            " consent_manager = %s, consent_research = %s WHERE participant_id = %s AND (role_group, age_band, sex,"
            " programme_start, consent_manager, consent_research) IS DISTINCT FROM (%s, %s, %s, %s, %s, %s)",
            (*attrs, pid, *attrs)).rowcount
    valid_from = datetime.combine(p.programme_start - timedelta(days=1), time(0), tz)
    for dev in p.device_ids:
        conn.execute("INSERT INTO core.devices (device_id) VALUES (%s) ON CONFLICT DO NOTHING", (dev,))
        owner = conn.execute("SELECT participant_id FROM core.device_assignments WHERE device_id = %s "
                             "AND valid_to IS NULL", (dev,)).fetchone()
        if owner is None:
            conn.execute("INSERT INTO core.device_assignments VALUES (%s, %s, %s, NULL)", (dev, pid, valid_from))
            changed = 1
        elif owner[0] != pid:
            problems.append(RowProblem(p.line, "device_ids", f"device {dev} is assigned to another participant"))
    if row is None:
        return "new"
    return "updated" if changed else "unchanged"


def import_roster(conn: Conn, path: Path) -> ImportSummary:
    """Validate and import a roster CSV (duties) in one transaction; duties are keyed on participant + start.

    Each new or changed duty marks the local sleep days it touches dirty, so the feature job recomputes them;
    an unchanged duty writes nothing. Exact duplicates and overlapping duties of one officer (within the file,
    or against duties already stored) are row errors.
    """
    rows, problems = _read_rows(path, ROSTER_COLUMNS)
    staff = {(str(f), str(s)): pid for f, s, pid in
             conn.execute("SELECT force_id, staff_ref, participant_id FROM core.identities").fetchall()}
    duties: list[Duty] = []
    for line, row in rows:
        before = len(problems)
        pid = staff.get((row["force_id"], row["staff_ref"]))
        _check(problems, line, "staff_ref", pid is not None,
               f"no participant {row['staff_ref']!r} in force {row['force_id']!r}; import participants first")
        start = _parse_instant(problems, line, "start", row["start"])
        end = _parse_instant(problems, line, "end", row["end"])
        if start and end:
            _check(problems, line, "end", timedelta(0) < end - start <= timedelta(hours=24),
                   "end must be after start and at most 24 h later")
        _choice(problems, line, "shift_type", row["shift_type"], SHIFT_TYPES)
        overtime = _parse_bool(problems, line, "overtime", row["overtime"])
        if len(problems) == before and start and end:
            duties.append(Duty(line, pid, start, end, row["shift_type"], overtime))
    stored = [Duty(0, pid, s, e) for pid, s, e in conn.execute(  # type: ignore[arg-type]
        "SELECT participant_id, start_ts, end_ts FROM core.duties WHERE participant_id = ANY(%s)",
        (list({d.participant for d in duties}),)).fetchall()]
    problems += [RowProblem(*p) for p in duty_conflicts(duties, stored)]
    if problems:
        raise CsvImportError(str(path), sorted(problems, key=lambda p: p.line))
    return _write_duties(conn, duties)


def _write_duties(conn: Conn, duties: list[Duty]) -> ImportSummary:
    """Insert new duties, update changed ones (marking their days dirty) and leave unchanged ones alone."""
    inserted = updated = 0
    with conn.transaction(), conn.cursor() as cur:
        for d in duties:
            cur.execute("INSERT INTO core.duties VALUES (%s, %s, %s, %s, %s) ON CONFLICT (participant_id, start_ts)"
                        " DO UPDATE SET end_ts = EXCLUDED.end_ts, shift_type = EXCLUDED.shift_type, overtime ="
                        " EXCLUDED.overtime WHERE (core.duties.end_ts, core.duties.shift_type, core.duties.overtime)"
                        " IS DISTINCT FROM (EXCLUDED.end_ts, EXCLUDED.shift_type, EXCLUDED.overtime)"
                        " RETURNING (xmax = 0)", (d.participant, d.start, d.end, d.shift_type, d.overtime))
            result = cur.fetchone()
            if result is None:
                continue  # unchanged: nothing written, nothing to recompute
            inserted += bool(result[0])
            updated += not result[0]
            cur.execute("INSERT INTO ingest.dirty_days (participant_id, sleep_date) "
                        "SELECT %s, d::date FROM generate_series(%s::date, %s::date, interval '1 day') d "
                        "ON CONFLICT (participant_id, sleep_date) DO UPDATE SET marked_at = EXCLUDED.marked_at",
                        (d.participant, d.start, d.end))
    return ImportSummary(len(duties), inserted, updated, len(duties) - inserted - updated)


def resolve_participant(conn: Conn, ref: str) -> tuple[uuid.UUID, str]:
    """Find a participant by internal UUID or by ``FORCE/STAFF_REF``; return (id, force)."""
    try:
        row = conn.execute("SELECT participant_id, force_id FROM core.participants WHERE participant_id = %s",
                           (uuid.UUID(ref),)).fetchone()
    except ValueError:
        force, _, staff_ref = ref.partition("/")
        row = conn.execute("SELECT participant_id, force_id FROM core.identities WHERE force_id = %s AND "
                           "staff_ref = %s", (force, staff_ref)).fetchone()
    if row is None:
        raise LookupError(f"no participant {ref!r}; give the internal id or FORCE/STAFF_REF")
    return row[0], str(row[1])  # type: ignore[return-value]


def withdraw_participant(conn: Conn, participant_id: uuid.UUID) -> None:
    """Mark withdrawal now: no new data is accepted, no flags are issued, no export includes them."""
    with conn.transaction():
        conn.execute("UPDATE core.participants SET withdrawn_at = coalesce(withdrawn_at, now()) "
                     "WHERE participant_id = %s", (participant_id,))
        conn.execute("UPDATE core.device_assignments SET valid_to = now() WHERE participant_id = %s "
                     "AND (valid_to IS NULL OR valid_to > now())", (participant_id,))


def _participant_tables(conn: Conn) -> list[tuple[str, str]]:
    """Every parent table outside ``core`` with a ``participant_id uuid`` column, found in the catalogue so
    that tables added by later migrations are erased too.

    Only tables a user created are listed: plain tables, partitioned parents and TimescaleDB hypertables.
    Children (native partitions and TimescaleDB chunks, which are inheritance children of their hypertable)
    and TimescaleDB's own schemas are left out: deleting through the parent reaches every child, works on
    compressed chunks (whose ``participant_id`` column is of type ``compressed_data``), and names only
    parents in the counts and in the erasure log.
    """
    rows = conn.execute("""
        SELECT n.nspname, k.relname FROM pg_class k
        JOIN pg_namespace n ON n.oid = k.relnamespace
        JOIN pg_attribute a ON a.attrelid = k.oid AND a.attname = 'participant_id' AND NOT a.attisdropped
        WHERE k.relkind IN ('r', 'p') AND a.atttypid = 'uuid'::regtype
          AND n.nspname NOT IN ('core', 'pg_catalog', 'information_schema', 'pg_toast')
          AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE '\\_timescaledb%'
          AND n.nspname NOT LIKE 'timescaledb\\_%'
          AND NOT k.relispartition
          AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = k.oid)
        ORDER BY 1, 2""").fetchall()
    return [(str(s), str(t)) for s, t in rows]


def _allow_compressed_deletes(conn: Conn) -> None:
    """Lift TimescaleDB's per-transaction cap on rows decompressed by DML (2.11+) for this transaction only.

    A DELETE by ``participant_id`` (not a segment-by column) decompresses every batch that may hold the
    participant's rows; the default cap (100,000 tuples) would make a large erasure fail and roll back.
    Nothing happens where the setting does not exist (plain PostgreSQL, older TimescaleDB).
    """
    conn.execute("SELECT set_config(name, '0', true) FROM pg_settings "
                 "WHERE name = 'timescaledb.max_tuples_decompressed_per_dml_transaction'")


def _erase_device_traces(conn: Conn, participant_id: uuid.UUID, counts: dict[str, int]) -> None:
    """Ledger rows, dead letters and quarantined payloads of the participant's devices."""
    devices = [r[0] for r in conn.execute("SELECT device_id FROM core.device_assignments WHERE participant_id = %s",
                                          (participant_id,)).fetchall()]
    counts["ingest.message_ledger"] = conn.execute(
        "DELETE FROM ingest.message_ledger WHERE device_id = ANY(%s)", (devices,)).rowcount
    for table in ("dead_letters", "quarantine"):
        counts[f"ingest.{table}"] = conn.execute(sql.SQL(
            "DELETE FROM ingest.{} WHERE split_part(topic, '/', 4) = ANY(%s)").format(sql.Identifier(table)),
            (devices,)).rowcount


def erase_participant(conn: Conn, participant_id: uuid.UUID, requested_by: str = "admin",
                      on_table: Callable[[str], None] | None = None) -> dict[str, int]:
    """Delete every raw and derived row of a participant and the participant itself, in one transaction.

    Leaves one ``core.erasure_log`` row holding the force, the time, the requesting role and the row counts:
    no identity and no internal id. Returns the counts per table.
    """
    counts: dict[str, int] = {}
    with conn.transaction():
        row = conn.execute("SELECT force_id FROM core.participants WHERE participant_id = %s FOR UPDATE",
                           (participant_id,)).fetchone()
        if row is None:
            raise LookupError(f"no participant {participant_id}")
        _allow_compressed_deletes(conn)
        for schema, table in _participant_tables(conn):
            if on_table:
                on_table(f"{schema}.{table}")
            cur = conn.execute(sql.SQL("DELETE FROM {}.{} WHERE participant_id = %s").format(
                sql.Identifier(schema), sql.Identifier(table)), (participant_id,))
            counts[f"{schema}.{table}"] = cur.rowcount
        _erase_device_traces(conn, participant_id, counts)
        for table in ("duties", "device_assignments", "identities", "participants"):
            cur = conn.execute(sql.SQL("DELETE FROM core.{} WHERE participant_id = %s").format(
                sql.Identifier(table)), (participant_id,))
            counts[f"core.{table}"] = cur.rowcount
        conn.execute("INSERT INTO core.erasure_log (force_id, requested_by, rows_deleted) VALUES (%s, %s, %s)",
                     (row[0], requested_by, Jsonb(counts)))
    return counts
