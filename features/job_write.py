"""Writes of the daily feature job: NumPy columns -> binary COPY into a staging table -> one upsert.

Staged rows are fixed width (NaN for a missing real, -1 for a missing boolean code); the ``INSERT ... SELECT``
turns those into NULL, so no value ever passes through a Python object.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import psycopg

from features.job_io import DAY_COLUMNS, Duties
from features.roster import SHIFT_TYPES, DutyFeatures
from store.copyio import PG_EPOCH_S, copy_rows_in

__all__ = ["write_daily", "write_duties"]

Conn = psycopg.Connection[tuple[object, ...]]
B = npt.NDArray[np.bool_]
_PG_EPOCH_DAYS = PG_EPOCH_S // 86_400

_DAILY_FIELDS = [("participant_id", "uuid"), ("sleep_date", "date"), ("programme_day", "int4"),
                 ("valid_sleep_day", "bool"), ("n_episodes", "int2"), ("pair_match", "float8"),
                 ("pair_valid", "float8"), *[(c, "float4") for c in DAY_COLUMNS]]
_DUTY_FIELDS = [("participant_id", "uuid"), ("start_ts", "timestamptz"), ("end_ts", "timestamptz"),
                ("shift_code", "int2"),
                ("overtime", "bool"), ("length_h", "float4"), ("long_shift", "bool"), ("rest_gap_h", "float4"),
                ("quick_return", "bool"), ("night_duty", "bool"), ("consecutive_nights", "int2"),
                ("consecutive_duty_days", "int2"), ("early_start", "bool"), ("forward_rotation", "int2"),
                ("time_awake_end_h", "float4")]


def _uuids(ids: Sequence[uuid.UUID], idx: npt.NDArray[np.int64]) -> npt.NDArray[np.void]:
    keys = np.frombuffer(b"".join(i.bytes for i in ids), dtype="V16") if ids else np.zeros(0, "V16")
    return keys[idx]


def _stage(conn: Conn, name: str, fields: list[tuple[str, str]]) -> None:
    types = {"uuid": "uuid", "int2": "int2", "int4": "int4", "int8": "int8", "float4": "float4",
             "float8": "float8", "bool": "bool", "date": "date", "timestamptz": "timestamptz"}
    cols = ", ".join(f"{f} {types[k]}" for f, k in fields)
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({cols}) ON COMMIT DELETE ROWS")
    conn.execute(f"TRUNCATE {name}")


def write_daily(conn: Conn, ids: Sequence[uuid.UUID], day0: npt.NDArray[np.int64], rows: B,
                cols: dict[str, np.ndarray], version: str) -> int:
    """Upsert the daily rows (and their SRI pair state) where ``rows`` (P, n_days) is True; returns rows."""
    p, d = np.nonzero(rows)
    if p.size == 0:
        return 0
    staged = {"participant_id": _uuids(ids, p), "sleep_date": day0[p] + d - _PG_EPOCH_DAYS,
              "programme_day": d + 1, **{c: cols[c][p, d] for c, _ in _DAILY_FIELDS[3:]}}
    _stage(conn, "stage_daily", _DAILY_FIELDS)
    copy_rows_in(conn, "stage_daily", _DAILY_FIELDS, staged)
    names = ", ".join(DAY_COLUMNS)
    values = ", ".join(f"nullif({c}, 'NaN')" for c in DAY_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in (
        "programme_day", "valid_sleep_day", "n_episodes", "valid_hrv_night", "hrv_source", "rhr_source",
        "algorithm_version", *DAY_COLUMNS))
    cur = conn.execute(
        "INSERT INTO derived.daily_features (participant_id, sleep_date, programme_day, valid_sleep_day, "
        f"n_episodes, valid_hrv_night, hrv_source, rhr_source, algorithm_version, {names}) "
        "SELECT participant_id, sleep_date, programme_day, valid_sleep_day, n_episodes, ln_rmssd <> 'NaN', "
        "CASE WHEN ln_rmssd <> 'NaN' THEN 'rr' END, CASE WHEN resting_hr_bpm <> 'NaN' THEN 'rr' END, "
        f"%s, {values} FROM stage_daily ON CONFLICT (participant_id, sleep_date) DO UPDATE SET {updates}, "
        "computed_at = now()", (version,))
    conn.execute("INSERT INTO derived.daily_state (participant_id, sleep_date, pair_match, pair_valid) "
                 "SELECT participant_id, sleep_date, pair_match, pair_valid FROM stage_daily "
                 "ON CONFLICT (participant_id, sleep_date) DO UPDATE SET pair_match = EXCLUDED.pair_match, "
                 "pair_valid = EXCLUDED.pair_valid")
    return cur.rowcount


def write_duties(conn: Conn, ids: Sequence[uuid.UUID], du: Duties, duty: DutyFeatures, keep: B, version: str
                 ) -> int:
    """Upsert the duty features of the duties where ``keep`` is True; returns rows."""
    if not keep.any():
        return 0
    rot = np.where(np.isnan(duty.forward_rotation), -1, duty.forward_rotation == 1.0)
    staged = {"participant_id": _uuids(ids, du.participant[keep]),
              "start_ts": (du.start[keep] - PG_EPOCH_S) * 1_000_000, "end_ts": (du.end[keep] - PG_EPOCH_S) * 1_000_000,
              "shift_code": du.shift_code[keep], "overtime": du.overtime[keep], "length_h": duty.length_h[keep],
              "long_shift": duty.long_shift[keep], "rest_gap_h": duty.rest_gap_h[keep],
              "quick_return": duty.quick_return[keep], "night_duty": duty.night_duty[keep],
              "consecutive_nights": duty.consecutive_nights[keep],
              "consecutive_duty_days": duty.consecutive_duty_days[keep],
              "early_start": np.asarray(duty.early_start, np.bool_)[keep], "forward_rotation": rot[keep],
              "time_awake_end_h": duty.time_awake_end_h[keep]}
    _stage(conn, "stage_duty", _DUTY_FIELDS)
    copy_rows_in(conn, "stage_duty", _DUTY_FIELDS, staged)
    cols = ("end_ts", "shift_type", "overtime", "length_h", "long_shift", "rest_gap_h", "quick_return", "night_duty",
            "consecutive_nights", "consecutive_duty_days", "early_start", "forward_rotation", "time_awake_end_h",
            "algorithm_version")
    cur = conn.execute(
        f"INSERT INTO derived.duty_features (participant_id, start_ts, {', '.join(cols)}) "
        "SELECT participant_id, start_ts, end_ts, "
        "(%s::text[])[shift_code + 1], overtime, length_h, long_shift, nullif(rest_gap_h, 'NaN'), quick_return, "
        "night_duty, consecutive_nights, consecutive_duty_days, early_start, "
        "CASE forward_rotation WHEN 1 THEN true WHEN 0 THEN false END, nullif(time_awake_end_h, 'NaN'), %s "
        "FROM stage_duty ON CONFLICT (participant_id, start_ts) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in cols) + ", computed_at = now()", (list(SHIFT_TYPES), version))
    return cur.rowcount
