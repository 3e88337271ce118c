"""The export job: read one snapshot, anonymise, write the package to a temporary folder, check it with the
independent checker, record it in the ledger and only then move it into place.

``run_export`` is the library form of ``fatigue export run``; ``verify_delivery`` of ``fatigue export verify``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa

from exports import db
from exports.aggregate import DailyTotals, aggregate_table
from exports.anonymise import Generalised, daily_batch, flags_table, generalise, horizon_band
from exports.checker import require_releasable
from exports.ledger import LedgerEntry, chain_errors
from exports.policy import AGGREGATE_COUNTS, AGGREGATE_STATISTICS, POLICY_V1, ExportPolicy, ExportRefusedError
from exports.pseudonym import project_key, pseudonymise
from exports.publisher import TableWriter, file_sha256, write_frame, write_metadata

__all__ = ["ExportRequest", "ExportResult", "VerifyResult", "run_export", "verify_delivery"]

MAX_WEEK = 52


@dataclass(frozen=True)
class ExportRequest:
    """What to export, for whom, and with which key (the key itself is never stored)."""

    project: str
    out: Path
    master_key: bytes
    key_version: int
    requester: str
    from_week: int = 1
    to_week: int = MAX_WEEK
    fmt: str = "parquet"
    approver: str | None = None
    policy: ExportPolicy = POLICY_V1


@dataclass(frozen=True)
class ExportResult:
    """A delivered export: where, its ledger entry, and the figures reported to the research team."""

    out: Path
    ledger_seq: int
    row_counts: dict[str, int]
    k_achieved: int
    suppression: dict[str, int]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of checking a delivered folder against the ledger."""

    ok: bool
    ledger_seq: int | None
    problems: list[str]


def _check_request(req: ExportRequest) -> None:
    if req.fmt not in ("parquet", "csv"):
        raise ValueError("format must be parquet or csv")
    if not 1 <= req.from_week <= req.to_week <= MAX_WEEK:
        raise ValueError(f"weeks must satisfy 1 <= from-week <= to-week <= {MAX_WEEK}")
    if req.out.exists() and (not req.out.is_dir() or any(req.out.iterdir())):
        raise ValueError(f"{req.out} already exists and is not an empty folder; exports never overwrite")


def _released(people: pd.DataFrame, gen: Generalised) -> tuple[pa.Array, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Per eligible participant: pseudonym (null when suppressed) and whether released; and each released
    participant's position among the eligible."""
    pos = pd.Index(people["participant_id"]).get_indexer(gen.table["participant_id"])
    released = np.full(len(people), None, dtype=object)
    released[pos] = gen.table["pid"].to_numpy()
    is_released = np.zeros(len(people), bool)
    is_released[pos] = True
    return pa.array(released, pa.string()), is_released, pos


def _write_daily(conn: db.Conn, tmp: Path, people: pd.DataFrame, gen: Generalised,
                 req: ExportRequest) -> tuple[int, pd.DataFrame]:
    """Stream, anonymise and write ``daily_features`` up to each participant's horizon band; returns rows and
    the daily aggregate cells."""
    released, is_released, pos = _released(people, gen)
    roles = sorted(gen.table["role_group"].unique())
    role_of = np.full(len(people), -1, np.int64)
    role_of[pos] = pd.Index(roles).get_indexer(gen.table["role_group"])
    totals = DailyTotals(role_of, roles, req.to_week)
    horizon = np.zeros(len(people), np.int64)
    horizon[pos] = gen.table["weeks_band"].to_numpy(dtype=np.int64) * 7
    writer = TableWriter(tmp, "daily_features", req.fmt, req.policy, background=True)
    try:
        for chunk in db.read_daily(conn, people["participant_id"], (req.from_week - 1) * 7 + 1, req.to_week * 7):
            table, numeric = daily_batch(chunk, released, is_released, req.policy, horizon)
            writer.write(table)
            totals.add(numeric)
    finally:
        writer.close()
    return writer.rows, totals.cells()


def _report(req: ExportRequest, gen: Generalised, rows: dict[str, int], agg: pd.DataFrame,
            notes: list[str], held_back: int) -> dict[str, Any]:
    hidden_counts = int(agg[list(AGGREGATE_COUNTS)].isna().to_numpy().sum())
    hidden_stats = int(agg[list(AGGREGATE_STATISTICS)].isna().to_numpy().sum())
    return {"policy_version": req.policy.version, "key_version": req.key_version, "project": req.project,
            "k_required": req.policy.k, "k_achieved": gen.k_achieved,
            "quasi_identifiers": list(req.policy.quasi_identifiers), "generalisation_level": gen.level,
            "participants_eligible": gen.eligible, "participants_suppressed": gen.suppressed,
            "participants_held_back": held_back, "horizon_weeks": list(req.policy.horizon_weeks),
            "time_derived": list(req.policy.time_derived),
            "suppressed_fraction": round(gen.suppressed / gen.eligible, 4) if gen.eligible else 0.0,
            "max_suppressed_fraction": req.policy.max_suppressed_fraction,
            "aggregate_count_cells_suppressed": hidden_counts, "aggregate_statistics_hidden": hidden_stats,
            "small_cell_rule": f"counts 1-{req.policy.small_cell_max} suppressed, others rounded to "
                               f"{req.policy.rounding_base}; statistics only for n >= {req.policy.min_n_statistic}",
            "weeks": {"from": req.from_week, "to": req.to_week}, "row_counts": rows, "notes": notes}


def _build(conn: db.Conn, tmp: Path, req: ExportRequest) -> tuple[dict[str, Any], set[str], int, pd.DataFrame]:
    people = db.eligible_participants(conn)
    people["weeks_band"] = horizon_band(people.pop("weeks_done").to_numpy(), req.policy.horizon_weeks)
    held = people["weeks_band"].to_numpy() == 0  # read (the daily reader needs every eligible id), never released
    notes: list[str] = []
    if held.any():
        notes.append(f"{int(held.sum())} participant(s) completed fewer than {req.policy.horizon_weeks[0]} "
                     "programme weeks and are held back until a later export")
    forbidden = db.forbidden_identifiers(conn)
    key = project_key(req.master_key, req.project, req.key_version)
    ready = people.loc[~held].reset_index(drop=True)
    gen = generalise(ready, pseudonymise(key, ready["participant_id"]), key, req.policy)
    n_daily, daily_cells = _write_daily(conn, tmp, people, gen, req)
    raw_flags = db.read_flags(conn, req.from_week, req.to_week)
    if raw_flags is None:
        notes.append("risk.weekly_flags does not exist in this database: weekly_flags is empty")
        raw_flags = pd.DataFrame(columns=["participant_id", "programme_week", "overall_level", "criteria"])
    to_pid = dict(zip(gen.table["participant_id"].astype(str), gen.table["pid"], strict=True))
    band = dict(zip(gen.table["participant_id"].astype(str), gen.table["weeks_band"], strict=True))
    limit = raw_flags["participant_id"].astype(str).map(band).fillna(0).to_numpy()
    flags = flags_table(raw_flags[raw_flags["programme_week"].to_numpy() <= limit], lambda s: s.map(to_pid))
    participants = gen.table
    agg = aggregate_table(daily_cells, flags, participants, req.policy)
    rows = {"participants": write_frame(tmp, "participants", participants, req.fmt, req.policy),
            "daily_features": n_daily,
            "weekly_flags": write_frame(tmp, "weekly_flags", flags, req.fmt, req.policy),
            "aggregates": write_frame(tmp, "aggregates", agg, req.fmt, req.policy)}
    return _report(req, gen, rows, agg, notes, int(held.sum())), forbidden, len(ready), gen.table


def run_export(database_url: str, req: ExportRequest) -> ExportResult:
    """Produce, check, record and deliver one export.

    Raises
    ------
    ExportRefusedError
        A policy rule failed (``k_anonymity`` in the anonymiser, or any checker rule); nothing is delivered
        and nothing is recorded.
    ValueError
        The request is malformed or ``out`` is not an empty or absent folder.
    """
    _check_request(req)
    req.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{req.out.name}.partial-", dir=req.out.parent))
    try:
        with psycopg.connect(database_url) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.transaction():
                report, forbidden, eligible, released = _build(conn, tmp, req)
                previous = db.read_releases(conn, req.project)
        hashes = write_metadata(tmp, req.fmt, req.project, report, report["notes"], req.policy)
        checked = require_releasable(tmp, req.policy, forbidden, eligible, previous, req.key_version)
        return _deliver(database_url, tmp, req, report, hashes, checked.k_min, released)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _deliver(database_url: str, tmp: Path, req: ExportRequest, report: dict[str, Any], hashes: dict[str, str],
             k_min: int, released: pd.DataFrame) -> ExportResult:
    suppression = {"participants": int(report["participants_suppressed"]),
                   "aggregate_count_cells": int(report["aggregate_count_cells_suppressed"]),
                   "aggregate_statistics": int(report["aggregate_statistics_hidden"])}
    entry = LedgerEntry(0, datetime.now(UTC), req.requester, req.approver, req.project, req.policy.version,
                        req.key_version, dict(report["row_counts"]), k_min, suppression, hashes, "")
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        final = db.append_ledger(conn, entry)
        db.record_releases(conn, final.seq, req.project, req.key_version, released, req.policy.quasi_identifiers)
        if req.out.exists():
            req.out.rmdir()  # empty (checked): replace it atomically with the finished folder
        os.replace(tmp, req.out)
    return ExportResult(req.out, final.seq, dict(report["row_counts"]), k_min, suppression, list(report["notes"]))


def verify_delivery(database_url: str, folder: Path) -> VerifyResult:
    """Check a delivered folder: its files' SHA-256 equal one ledger entry's, and the whole chain verifies."""
    problems: list[str] = []
    if not folder.is_dir():
        return VerifyResult(False, None, [f"{folder} is not a folder"])
    hashes = {p.name: file_sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}
    with psycopg.connect(database_url, autocommit=True) as conn:
        entries = db.read_ledger(conn)
    problems.extend(chain_errors(entries))
    match = [e.seq for e in entries if e.file_hashes == hashes]
    if not match:
        near = [e for e in entries if e.file_hashes.get("manifest.json") == hashes.get("manifest.json")]
        problems.append("no ledger entry has exactly these files and hashes" +
                        (f" (entry {near[0].seq} lists the same manifest; a file was changed, added or removed)"
                         if near else ""))
    return VerifyResult(not problems, match[0] if match else None, problems)


__all__ += ["ExportRefusedError"]
