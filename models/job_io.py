"""Database reads and writes of the model job (`models.job`, `models.job_sleepiness`).

Reads return columnar NumPy arrays keyed by a participant *index* (position in the batch's id list), so the
kernels never see UUIDs; times are int64 UTC epoch seconds.  Writes use a binary ``COPY`` of fixed-width
big-endian columns built in one NumPy structured array (no per-row Python), into a temporary stage table,
followed by ``INSERT ... ON CONFLICT DO UPDATE ... WHERE <something changed>`` so that re-running a job with
the same inputs changes no row (not even ``computed_at``).

Simulation span [ENG]: every participant is simulated from local midnight of ``programme_start - 1 day`` (the
first instant the ingester accepts device data, see `store.enrolment`), so a participant's results depend only
on their own data and programme start, never on which other participants share the batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import psycopg

from models.three_process import EPOCH_S
from store.copyio import copy_columns

Conn = psycopg.Connection[tuple[object, ...]]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

MIN_EPISODE_S = 15 * 60  # science.md §4.1 "Service usage": main sleep + naps >= 15 min [ENG]
MAX_GRID_CELLS = 4_000_000  # participants x 5-min epochs simulated at once (~60 B each -> ~240 MB)

PARTICIPANT_INDEX_JOIN = "JOIN unnest(%s::uuid[]) WITH ORDINALITY AS p(participant_id, idx) USING (participant_id)"
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_BINARY_TRAILER = (-1).to_bytes(2, "big", signed=True)
_WIRE: dict[str, tuple[str, str]] = {  # pg type -> (big-endian numpy dtype, SQL type of the stage column)
    "int8": (">i8", "bigint"), "int4": (">i4", "integer"), "float4": (">f4", "real"),
    "float8": (">f8", "double precision"), "bool": ("u1", "boolean"),
}


@dataclass(frozen=True)
class Cohort:
    """Non-withdrawn participants, ordered by simulation start then id; ``sim_start`` in UTC epoch s."""

    ids: list[uuid.UUID]
    sim_start: I64


@dataclass(frozen=True)
class Intervals:
    """Half-open ``[start, end)`` intervals with a participant index, sorted by participant then start."""

    participant: I64
    start: I64
    end: I64


def read_cohort(conn: Conn, tz: str) -> Cohort:
    """All participants not withdrawn, with their simulation start (local midnight of programme start - 1 day)."""
    rows = conn.execute(
        "SELECT participant_id, extract(epoch FROM ((programme_start - 1)::timestamp AT TIME ZONE %s))::int8 AS s "
        "FROM core.participants WHERE withdrawn_at IS NULL ORDER BY s, participant_id", (tz,)).fetchall()
    ids = [r[0] for r in rows]
    start = np.array([r[1] for r in rows], dtype=np.int64).reshape(-1)
    return Cohort(ids, start // EPOCH_S * EPOCH_S)  # type: ignore[arg-type]


def batches(cohort: Cohort, batch_size: int, n_epochs: int) -> Iterator[slice]:
    """Slices of the cohort sharing one simulation start, at most ``batch_size`` and ``MAX_GRID_CELLS`` big."""
    size = max(1, min(batch_size, MAX_GRID_CELLS // max(n_epochs, 1)))
    bounds = np.flatnonzero(np.diff(cohort.sim_start)) + 1
    for lo, hi in zip(np.r_[0, bounds].tolist(), np.r_[bounds, len(cohort.ids)].tolist(), strict=True):
        for a in range(lo, hi, size):
            yield slice(a, min(hi, a + size))


_INTERVAL_FIELDS = [("p", "int4"), ("s", "int8"), ("e", "int8")]


def _intervals(conn: Conn, query: str, params: Sequence[object]) -> Intervals:
    """(participant index, start, end) rows by binary COPY straight into arrays (:mod:`store.copyio`)."""
    cols = copy_columns(conn, query, _INTERVAL_FIELDS, params)
    return Intervals(cols["p"].astype(np.int64), cols["s"], cols["e"])


def read_sleep(conn: Conn, ids: Sequence[uuid.UUID]) -> Intervals:
    """Measured sleep episodes >= 15 min; identical episodes replayed under other message ids count once."""
    return _intervals(conn, (
        "SELECT DISTINCT (p.idx - 1)::int4, extract(epoch FROM e.start_ts)::int8, extract(epoch FROM e.end_ts)::int8 "
        f"FROM raw.sleep_episodes e {PARTICIPANT_INDEX_JOIN} WHERE e.end_ts - e.start_ts >= make_interval(secs => %s) "
        "ORDER BY 1, 2, 3"), (list(ids), MIN_EPISODE_S))


def read_duties(conn: Conn, ids: Sequence[uuid.UUID]) -> Intervals:
    """Rostered duties (``core.duties``) of the participants."""
    return _intervals(conn, (
        "SELECT (p.idx - 1)::int4, extract(epoch FROM d.start_ts)::int8, extract(epoch FROM d.end_ts)::int8 "
        f"FROM core.duties d {PARTICIPANT_INDEX_JOIN} ORDER BY 1, 2"), (list(ids),))


def binary_copy_buffer(columns: Sequence[tuple[str, str, npt.ArrayLike]]) -> bytes:
    """A complete binary ``COPY`` stream for fixed-width, non-NULL columns ``(name, pg_type, values)``.

    Each tuple is ``int16 n_fields`` then, per field, ``int32 length`` and the big-endian value (PostgreSQL
    documentation, "COPY", binary format); the tuples are one packed NumPy structured array.
    """
    arrays = [np.asarray(v).ravel() for _, _, v in columns]
    n = arrays[0].size if arrays else 0
    fields: list[tuple[str, str]] = [("n_fields", ">i2")]
    for i, (_, pg_type, _) in enumerate(columns):
        fields += [(f"len{i}", ">i4"), (f"val{i}", _WIRE[pg_type][0])]
    rec = np.empty(n, dtype=np.dtype(fields))
    rec["n_fields"] = len(columns)
    for i, ((_, pg_type, _), values) in enumerate(zip(columns, arrays, strict=True)):
        rec[f"len{i}"] = np.dtype(_WIRE[pg_type][0]).itemsize
        rec[f"val{i}"] = values
    return _BINARY_HEADER + rec.tobytes() + _BINARY_TRAILER


def stage(conn: Conn, name: str, columns: Sequence[tuple[str, str, npt.ArrayLike]]) -> None:
    """(Re)fill temporary table ``name`` (dropped at commit) with ``columns`` by one binary COPY."""
    ddl = ", ".join(f"{col} {_WIRE[pg_type][1]} NOT NULL" for col, pg_type, _ in columns)
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({ddl}) ON COMMIT DROP")
    conn.execute(f"TRUNCATE {name}")
    cols = ", ".join(col for col, _, _ in columns)
    with conn.cursor().copy(f"COPY {name} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(binary_copy_buffer(columns))


def upsert_from_stage(conn: Conn, table: str, key: Sequence[str], select: str, columns: Sequence[str],
                      params: Sequence[object]) -> int:
    """``INSERT INTO table (columns) <select> ON CONFLICT (key) DO UPDATE`` only where a value changed.

    Returns the number of rows inserted or changed (0 when the stage repeats what is stored).
    """
    cols = ", ".join(columns)
    values = [c for c in columns if c not in key]
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in values)
    old = ", ".join(f"t.{c}" for c in values)
    new = ", ".join(f"EXCLUDED.{c}" for c in values)
    cur = conn.execute(f"INSERT INTO {table} AS t ({cols}) {select} ON CONFLICT ({', '.join(key)}) "
                       f"DO UPDATE SET {sets}, computed_at = now() WHERE ({old}) IS DISTINCT FROM ({new})",
                       list(params))
    return max(cur.rowcount, 0)


def participant_join(stage_name: str) -> str:
    """SQL fragment mapping a stage's ``pidx`` (0-based) back to the participant UUID (parameter: id list)."""
    return (f"FROM {stage_name} s JOIN unnest(%s::uuid[]) WITH ORDINALITY AS p(participant_id, idx) "
            "ON p.idx = s.pidx + 1")
