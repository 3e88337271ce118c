"""The independent checker catches each rule in a deliberately broken copy of a good export (one case per rule).

Each breaker edits one thing and then re-hashes the package (datapackage.json and manifest.json), so only the
targeted rule can fail; the manifest and schema cases deliberately skip or break that step.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from exports.checker import check_package, require_releasable
from exports.policy import POLICY_V1, ExportRefusedError
from tests.exports.export_cohort import World

Frame = pd.DataFrame


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rehash(folder: Path) -> None:
    package = json.loads((folder / "datapackage.json").read_text())
    for res in package["resources"]:
        res["hash"] = f"sha256:{_sha(folder / res['path'])}"
    (folder / "datapackage.json").write_text(json.dumps(package))
    files = {p.name: _sha(p) for p in sorted(folder.iterdir()) if p.name != "manifest.json"}
    (folder / "manifest.json").write_text(json.dumps({"algorithm": "sha256", "files": files}))


def _edit(folder: Path, table: str, change: Callable[[Frame], Frame]) -> None:
    path = folder / f"{table}.parquet"
    old = pq.read_table(path)
    new = change(old.to_pandas())
    fields = [old.schema.field(c) if c in old.schema.names else pa.field(c, pa.string()) for c in new.columns]
    pq.write_table(pa.Table.from_pandas(new, schema=pa.schema(fields), preserve_index=False), path)


def _edit_json(folder: Path, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads((folder / name).read_text())
    change(data)
    (folder / name).write_text(json.dumps(data))


def _set(col: str, value: Any, row: int = 0) -> Callable[[Frame], Frame]:
    def change(df: Frame) -> Frame:
        df[col] = df[col].astype(object) if isinstance(value, str) else df[col]
        df.loc[row, col] = value
        return df
    return change


def _first_row(df: Frame, mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])


def _break_secondary(folder: Path) -> None:
    def change(df: Frame) -> Frame:
        cols = ["n_green", "n_amber", "n_red", "n_insufficient_data", "n_flagged"]
        row = _first_row(df, df[cols].notna().all(axis=1))
        df.loc[row, "n_red"] = np.nan
        return df
    _edit(folder, "aggregates", change)


def _break_statistic(folder: Path) -> None:
    def change(df: Frame) -> Frame:
        df.loc[_first_row(df, df["mean_tst_min"].notna()), "n_tst"] = np.nan
        return df
    _edit(folder, "aggregates", change)


def _break_suppression(folder: Path) -> None:
    people = pq.read_table(folder / "participants.parquet").to_pandas()
    gone = set(people["pid"].iloc[: len(people) // 10])
    for table in ("participants", "daily_features", "weekly_flags"):
        _edit(folder, table, lambda df: df[~df["pid"].isin(gone)].reset_index(drop=True))
    _edit_json(folder, "privacy_report.json", lambda r: r["row_counts"].update(
        {t: pq.read_metadata(folder / f"{t}.parquet").num_rows for t in ("participants", "daily_features",
                                                                         "weekly_flags")}))


def _break_k(folder: Path) -> None:
    def change(df: Frame) -> Frame:
        df.loc[0, "age_band"] = "40+" if df.loc[0, "age_band"] != "40+" else "18-39"
        df.loc[0, "sex"] = "not_stated"
        return df
    _edit(folder, "participants", change)


def _add_column(folder: Path) -> None:
    _edit(folder, "participants", lambda df: df.assign(force_id="x"))
    _edit_json(folder, "datapackage.json", lambda p: next(
        r for r in p["resources"] if r["path"] == "participants.parquet")["schema"]["fields"].append(
        {"name": "force_id", "type": "string"}))


def _drop_resource(folder: Path) -> None:
    _edit_json(folder, "datapackage.json", lambda p: p.update(
        resources=[r for r in p["resources"] if r["path"] != "weekly_flags.parquet"]))


BREAKERS: dict[str, tuple[str, Callable[[Path], None], bool]] = {
    "manifest": ("manifest", lambda f: (f / "privacy_report.json").open("a").write(" "), False),
    "unreadable": ("package_schema", lambda f: (f / "aggregates.parquet").open("ab").write(b"x"), True),
    "package_schema": ("package_schema", _drop_resource, True),
    "released_columns": ("released_columns", _add_column, True),
    "pseudonym_format": ("pseudonym_format", lambda f: _edit(f, "daily_features", _set("pid", "abc")), True),
    "generalisation": ("generalisation", lambda f: _edit(f, "participants", _set("age_band", "25-29")), True),
    "k_anonymity": ("k_anonymity", _break_k, True),
    "suppression_limit": ("suppression_limit", _break_suppression, True),
    "small_cells": ("small_cells", lambda f: _edit(f, "aggregates", _set("n_participants", 5.0)), True),
    "count_rounding": ("count_rounding", lambda f: _edit(f, "aggregates", _set("n_participant_days", 12.0)), True),
    "secondary_suppression": ("secondary_suppression", _break_secondary, True),
    "statistic_threshold": ("statistic_threshold", _break_statistic, True),
    "staff_ref": ("identifier_scan", lambda f: _edit(f, "daily_features", _set("algorithm_version", "PC0001")),
                  True),
    "device_in_json": ("identifier_scan", lambda f: _edit_json(f, "privacy_report.json",
                                                               lambda r: r["notes"].append("see DEV-00002-W")), True),
    "calendar_date": ("identifier_scan", lambda f: _edit(f, "weekly_flags", _set("criteria", '{"H1": "2026-03-01"}')),
                      True),
    "uuid": ("identifier_scan", lambda f: _edit(
        f, "daily_features", _set("algorithm_version", "2f1c7f0e-9a53-4c4b-8d1e-1a2b3c4d5e6f")), True),
    "categorical_values": ("categorical_values", lambda f: _edit(
        f, "weekly_flags", _set("overall_level", "tired after the Smith job")), True),
    "date_shift": ("date_shift", lambda f: _edit(
        f, "daily_features", lambda df: df.assign(weekday=np.where(df.index == 3, (df["weekday"] + 1) % 7,
                                                                   df["weekday"]))), True),
    "clock_rounding": ("clock_rounding", lambda f: _edit(f, "daily_features", _set("midpoint_local_h", 3.1)), True),
    "granularity": ("granularity", lambda f: _edit(f, "daily_features", _set("resting_hr_bpm", 55.5)), True),
    "time_horizon": ("time_horizon", lambda f: _edit(f, "participants", lambda df: df.assign(weeks_band=4)), True),
    "package_consistency": ("package_consistency", lambda f: _edit(
        f, "aggregates", lambda df: df.assign(n_participants=df["n_participants"] + 20)), True),
    "privacy_report": ("privacy_report", lambda f: _edit_json(f, "privacy_report.json",
                                                              lambda r: r.update(k_achieved=99)), True),
}

FORBIDDEN = ("PC0001", "DEV-00002-W", "GW-F1")


@pytest.fixture
def good(world: World, tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    shutil.copytree(world.a1.result.out, folder)
    return folder


def test_good_export_passes(good: Path) -> None:
    result = check_package(good, POLICY_V1, FORBIDDEN)
    assert result.ok, result.failures


@pytest.mark.parametrize("case", list(BREAKERS))
def test_checker_catches_broken_rule(good: Path, case: str) -> None:
    rule, breaker, rehash = BREAKERS[case]
    breaker(good)
    if rehash:
        _rehash(good)
    result = check_package(good, POLICY_V1, FORBIDDEN)
    assert rule in result.failures, result.failures
    with pytest.raises(ExportRefusedError, match=rule):
        require_releasable(good, POLICY_V1, FORBIDDEN)


def test_suppression_limit_uses_database_count(good: Path) -> None:
    released = pq.read_metadata(good / "participants.parquet").num_rows
    assert check_package(good, POLICY_V1, FORBIDDEN).ok
    result = check_package(good, POLICY_V1, FORBIDDEN, eligible=int(released / 0.9))
    assert "suppression_limit" in result.failures
