"""Independent privacy checker of an export folder (reliability_security.md 1.3 "borrow this idea", 1.9 "Checks").

Written apart from the anonymiser and importing none of its code (only the policy, which is data): every rule
is re-derived from the files about to be released, the policy and two facts from outside the package (the
identifiers that must never appear, and the number of eligible participants).

Rules (the name is what a refusal reports):

=======================  =============================================================================
``manifest``             manifest.json lists exactly the other files and every SHA-256 matches
``package_schema``       datapackage.json describes every table; columns and hashes match the files
``released_columns``     every column of every table is on the policy's list for that table
``pseudonym_format``     pids are 26 base32 characters, unique per participant, and every pid in another
                         table belongs to a released participant
``generalisation``       quasi-identifier values are generalised values of the policy
``k_anonymity``          every combination of the quasi-identifiers holds >= k participants
``suppression_limit``    at most max_suppressed_fraction of the eligible participants were suppressed
``small_cells``          no aggregate count in 1..small_cell_max
``count_rounding``       aggregate counts are multiples of rounding_base
``secondary_suppression`` never exactly one hidden component of a shown total
``statistic_threshold``  means and SDs only where their count is >= min_n_statistic
``identifier_scan``      no staff reference, device/gateway/force id, UUID or calendar date in any string
``categorical_values``   categorical columns hold only their documented codes (no free text)
``date_shift``           per pid, programme_day - weekday is constant mod 7 (a whole-week shift that keeps
                         the weekday) and programme_week matches programme_day
``clock_rounding``       local clock times are multiples of 15 min in [0, 24)
``granularity``          heart rate and RMSSD/SDNN are whole numbers
``privacy_report``       the report's policy version, k and row counts agree with the files
=======================  =============================================================================

and the package-wide and cross-export rules ``time_horizon``, ``package_consistency`` and ``cross_export`` of
:mod:`exports.checker_package` (issue 15).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from exports.checker_package import Release, check_consistency, check_cross_export, check_time_horizon
from exports.policy import ExportPolicy, ExportRefusedError

__all__ = ["CheckResult", "check_package", "require_releasable"]

_PID = re.compile(r"^[A-Z2-7]{26}$")
_FORCE_CODE = re.compile(r"^force_[a-z2-7]{6}$")
_CRITERION = re.compile(r"^[A-Z][A-Z0-9_]{0,15}$")
_PATTERNS: dict[str, re.Pattern[str]] = {
    "uuid": re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
    "hex-uuid": re.compile(r"\b[0-9a-fA-F]{32}\b"),
    "iso date": re.compile(r"\b(19|20)\d\d[-/.](0?[1-9]|1[0-2])[-/.](0?[1-9]|[12]\d|3[01])\b"),
    "dmy date": re.compile(r"\b(0?[1-9]|[12]\d|3[01])[-/.](0?[1-9]|1[0-2])[-/.](19|20)?\d\d\b"),
    "compact date": re.compile(r"\b(19|20)\d\d(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\b"),
    "iso week": re.compile(r"\b(19|20)\d\d-?W(0[1-9]|[1-4]\d|5[0-3])\b"),
    "named date": re.compile(r"\b\d{1,2}\s+(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{2,4}\b",
                             re.IGNORECASE),
}
_SPLIT_COARSE = re.compile(r"[\s,;:\"'(){}\[\]<>|=]+")
_SPLIT_FINE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass
class CheckResult:
    """Outcome of a check: ``failures`` maps a rule name to its messages (empty = releasable)."""

    failures: dict[str, list[str]] = field(default_factory=dict)
    k_min: int = 0
    tables: dict[str, int] = field(default_factory=dict)

    def fail(self, rule: str, message: str) -> None:
        """Record a failed rule."""
        self.failures.setdefault(rule, []).append(message)

    @property
    def ok(self) -> bool:
        """Whether every rule passed."""
        return not self.failures


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_json(path: Path, res: CheckResult, rule: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        res.fail(rule, f"{path.name} is missing or not JSON ({exc.__class__.__name__})")
        return None


def _check_manifest(folder: Path, res: CheckResult) -> None:
    manifest = _load_json(folder / "manifest.json", res, "manifest")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        res.fail("manifest", "manifest.json has no 'files' object")
        return
    listed = dict(manifest["files"])
    present = {p.name for p in folder.iterdir() if p.name != "manifest.json"}
    for extra in sorted(present - set(listed)):
        res.fail("manifest", f"{extra} is in the folder but not in the manifest")
    for name, digest in sorted(listed.items()):
        path = folder / name
        if "/" in name or not path.is_file():
            res.fail("manifest", f"{name} is listed but missing")
        elif _sha256(path) != digest:
            res.fail("manifest", f"SHA-256 of {name} does not match the manifest")


_KINDS = {"integer": pa.int64(), "number": pa.float64(), "string": pa.string(), "boolean": pa.bool_()}
#: daily_features columns the rules read; string columns are always read too (for the identifier scan).
_DAILY_RULE_COLUMNS = {"pid", "programme_day", "weekday", "programme_week", "midpoint_local_h", "valid_sleep_day"}


def _read_table(path: Path, schema: dict[str, Any], needed: set[str] | None = None) -> tuple[pa.Table, list[str]]:
    """The table (only ``needed`` and string columns of a parquet file when given) and all its column names.

    A parquet column that is not read is still checked against its declared type (from the file's schema).
    """
    types = {f["name"]: _KINDS.get(f.get("type", "string"), pa.string()) for f in schema.get("fields", [])}
    if path.suffix == ".parquet":
        file_schema = pq.read_schema(path)
        for name in file_schema.names:
            if name in types and file_schema.field(name).type != types[name]:
                raise ValueError(f"column {name} is {file_schema.field(name).type}, not {types[name]}")
        columns = None if needed is None else [
            n for n in file_schema.names if n in needed or pa.types.is_string(file_schema.field(n).type)]
        return pq.read_table(path, columns=columns), list(file_schema.names)
    convert = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True, null_values=[""],
                                   true_values=["true"], false_values=["false"])
    table = pacsv.read_csv(path, convert_options=convert)
    return table, table.column_names


def _load_tables(folder: Path, policy: ExportPolicy, res: CheckResult) -> tuple[dict[str, pa.Table],
                                                                                dict[str, dict[str, Any]]]:
    package = _load_json(folder / "datapackage.json", res, "package_schema")
    resources = {r.get("path", ""): r for r in (package or {}).get("resources", []) if isinstance(r, dict)}
    tables: dict[str, pa.Table] = {}
    schemas: dict[str, dict[str, Any]] = {}
    for stem in policy.released_columns:
        matches = [p for p in resources if Path(p).stem == stem]
        if not matches or not (folder / matches[0]).is_file():
            res.fail("package_schema", f"table '{stem}' is not described or its file is missing")
            continue
        resource, path = resources[matches[0]], folder / matches[0]
        schema = resource.get("schema", {})
        if resource.get("hash") != f"sha256:{_sha256(path)}":
            res.fail("package_schema", f"hash of {path.name} does not match datapackage.json")
        needed = {*_DAILY_RULE_COLUMNS, *policy.integer_valued} if stem == "daily_features" else None
        try:
            table, names = _read_table(path, schema, needed)
        except (pa.ArrowException, OSError, ValueError) as exc:
            res.fail("package_schema", f"{path.name} cannot be read as its schema says ({exc.__class__.__name__})")
            continue
        declared = [f.get("name") for f in schema.get("fields", [])]
        if declared != names:
            res.fail("package_schema", f"{path.name}: columns {names} differ from its schema")
        for col in names:
            if col not in policy.released_columns[stem]:
                res.fail("released_columns", f"{path.name}: column '{col}' may not be released")
        tables[stem], schemas[stem] = table, schema
    return tables, schemas


def _col(table: pa.Table, name: str) -> np.ndarray[Any, Any] | None:
    if name not in table.column_names:
        return None
    values: np.ndarray[Any, Any] = np.asarray(table[name].to_numpy(zero_copy_only=False))
    return values


def _check_pids(tables: dict[str, pa.Table], res: CheckResult) -> None:
    people = tables.get("participants")
    known: set[str] = set()
    if people is not None and "pid" in people.column_names:
        pids = [str(p) for p in people["pid"].to_pylist()]
        known = set(pids)
        if len(known) != len(pids):
            res.fail("pseudonym_format", "a pid occurs twice in participants")
    for stem, table in tables.items():
        if "pid" not in table.column_names:
            if stem != "aggregates":
                res.fail("pseudonym_format", f"{stem} has no pid column")
            continue
        for pid in pc.unique(table["pid"]).to_pylist():
            if pid is None or not _PID.match(str(pid)):
                res.fail("pseudonym_format", f"{stem}: a pid is not 26 base32 characters")
                break
            if stem != "participants" and pid not in known:
                res.fail("pseudonym_format", f"{stem}: a pid is not a released participant")
                break


def _check_qis(people: pa.Table, policy: ExportPolicy, res: CheckResult) -> None:
    allowed: dict[str, Collection[Any]] = {"age_band": policy.age_bands, "role_group": policy.role_groups,
                                           "sex": policy.sexes, "weeks_band": policy.horizon_weeks}
    present = [q for q in policy.quasi_identifiers if q in people.column_names]
    for qi in present:
        for value in pc.unique(people[qi]).to_pylist():
            ok = (value in policy.force_size_groups or bool(_FORCE_CODE.match(str(value)))) \
                if qi == "force_group" else value in allowed.get(qi, frozenset())
            if not ok:
                res.fail("generalisation", f"{qi} value {value!r} is not a generalised value of the policy")
    if not present or people.num_rows == 0:
        return
    sizes = people.group_by(present).aggregate([([], "count_all")])["count_all"].to_numpy()
    res.k_min = int(sizes.min())
    if res.k_min < policy.k:
        small = int((sizes < policy.k).sum())
        res.fail("k_anonymity", f"{small} quasi-identifier classes hold fewer than k={policy.k} "
                                f"participants (smallest {res.k_min})")


def _check_suppression(report: dict[str, Any], released: int, eligible: int | None, policy: ExportPolicy,
                       res: CheckResult) -> None:
    base = eligible if eligible is not None else int(report.get("participants_eligible", released))
    suppressed = base - released
    if eligible is not None and int(report.get("participants_eligible", -1)) != eligible:
        res.fail("suppression_limit", "the privacy report's eligible count differs from the database's")
    if suppressed < 0 or (base and suppressed / base > policy.max_suppressed_fraction):
        res.fail("suppression_limit", f"{suppressed} of {base} participants suppressed "
                                      f"(limit {policy.max_suppressed_fraction:.0%})")


def _check_aggregates(table: pa.Table, schema: dict[str, Any], policy: ExportPolicy, res: CheckResult) -> None:
    sdc = {f["name"]: f.get("sdc", {}) for f in schema.get("fields", [])}
    values = {c: table[c].to_numpy(zero_copy_only=False).astype(np.float64) for c in table.column_names
              if pa.types.is_integer(table[c].type) or pa.types.is_floating(table[c].type)}
    for name, v in values.items():
        role = sdc.get(name, {}).get("role")
        if name == "programme_week":
            continue
        if role not in ("count", "statistic"):
            res.fail("small_cells", f"aggregate column '{name}' has no disclosure-control role")
        elif role == "count":
            shown = v[~np.isnan(v)]
            if ((shown >= 1) & (shown <= policy.small_cell_max)).any():
                res.fail("small_cells", f"{name}: a count of 1-{policy.small_cell_max} is shown")
            if (np.mod(shown, policy.rounding_base) != 0).any():
                res.fail("count_rounding", f"{name}: a count is not a multiple of {policy.rounding_base}")
            parts = [values.get(c) for c in sdc[name].get("components", [])]
            if parts and all(p is not None for p in parts):
                hidden = np.sum([np.isnan(p) for p in parts if p is not None], axis=0)
                if ((hidden == 1) & ~np.isnan(v)).any():
                    res.fail("secondary_suppression", f"{name} is shown with exactly one hidden component")
        else:
            n = values.get(str(sdc[name].get("n_field")))
            if n is None:
                res.fail("statistic_threshold", f"{name} names no count column")
                continue
            bad = ~np.isnan(v) & ~(n >= policy.min_n_statistic)
            if bad.any():
                res.fail("statistic_threshold", f"{name} is shown where n < {policy.min_n_statistic}")


def _strings_of(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k)
            yield from _strings_of(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings_of(v)


def _table_strings(tables: dict[str, pa.Table]) -> Iterator[str]:
    for table in tables.values():
        yield from table.column_names
        for col in table.column_names:
            if pa.types.is_string(table[col].type) or pa.types.is_large_string(table[col].type):
                yield from (s for s in pc.unique(table[col]).to_pylist() if s is not None)


def _scan_identifiers(strings: Iterator[str], forbidden: Collection[str], res: CheckResult) -> None:
    hits: dict[str, int] = {}
    banned = set(forbidden)
    for s in strings:
        tokens = {s, *_SPLIT_COARSE.split(s), *_SPLIT_FINE.split(s)}
        if banned and not banned.isdisjoint(tokens):
            hits["known identifier"] = hits.get("known identifier", 0) + 1
        for label, pattern in _PATTERNS.items():
            if pattern.search(s):
                hits[label] = hits.get(label, 0) + 1
    for label, n in sorted(hits.items()):
        res.fail("identifier_scan", f"{n} string(s) look like a {label}")


def _check_categoricals(tables: dict[str, pa.Table], policy: ExportPolicy, res: CheckResult) -> None:
    allowed = {"hrv_source": policy.sources, "rhr_source": policy.sources, "overall_level": policy.flag_levels}
    for stem, table in tables.items():
        for col, codes in allowed.items():
            if col in table.column_names:
                bad = [v for v in pc.unique(table[col]).to_pylist() if v is not None and v not in codes]
                if bad:
                    res.fail("categorical_values", f"{stem}.{col} holds values outside its codes")
        if "criteria" in table.column_names:
            for raw in pc.unique(table["criteria"]).to_pylist():
                if not _criteria_ok(raw, policy):
                    res.fail("categorical_values", f"{stem}.criteria is not a JSON object of criterion levels")
                    break


def _criteria_ok(raw: Any, policy: ExportPolicy) -> bool:
    try:
        data = json.loads(raw) if raw is not None else {}
    except ValueError:
        return False
    return isinstance(data, dict) and all(
        isinstance(k, str) and _CRITERION.match(k) and v in policy.criterion_levels for k, v in data.items())


def _check_days(daily: pa.Table, policy: ExportPolicy, res: CheckResult) -> None:
    day, wd, week = (_col(daily, c) for c in ("programme_day", "weekday", "programme_week"))
    if day is None or wd is None or week is None or "pid" not in daily.column_names:
        res.fail("date_shift", "daily_features lacks pid, programme_day, weekday or programme_week")
        return
    if daily.num_rows:
        if (day < 1).any() or ((wd < 0) | (wd > 6)).any() or ((day - 1) // 7 + 1 != week).any():
            res.fail("date_shift", "programme_day, weekday or programme_week is out of range or inconsistent")
        codes = pc.dictionary_encode(daily["pid"]).combine_chunks().indices.to_numpy()
        offset = np.mod(day - wd, 7)
        first = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
        first[codes] = offset
        if (first[codes] != offset).any():
            res.fail("date_shift", "a participant's weekday is not a constant whole-week shift of programme_day")
    mid = _col(daily, "midpoint_local_h")
    if mid is not None:
        m = mid.astype(np.float64)
        m = m[~np.isnan(m)]
        steps = m / policy.clock_round_h
        if (np.abs(steps - np.round(steps)) > 1e-6).any() or ((m < 0) | (m >= 24)).any():
            res.fail("clock_rounding", f"midpoint_local_h is not a multiple of {policy.clock_round_h * 60:.0f} min")
    for name in policy.integer_valued:
        v = _col(daily, name)
        if v is not None:
            x = v.astype(np.float64)
            x = x[~np.isnan(x)]
            if (np.abs(x - np.round(x)) > 1e-9).any():
                res.fail("granularity", f"{name} is not rounded to whole units")


def _check_report(report: dict[str, Any], res: CheckResult, policy: ExportPolicy) -> None:
    if report.get("policy_version") != policy.version:
        res.fail("privacy_report", "policy_version differs from the policy being checked")
    if res.tables.get("participants") and int(report.get("k_achieved", -1)) != res.k_min:
        res.fail("privacy_report", f"k_achieved {report.get('k_achieved')} but the files give {res.k_min}")
    if int(report.get("k_required", -1)) != policy.k:
        res.fail("privacy_report", "k_required differs from the policy")
    for stem, rows in res.tables.items():
        if int(report.get("row_counts", {}).get(stem, -1)) != rows:
            res.fail("privacy_report", f"row count of {stem} differs from the file")


def check_package(folder: Path, policy: ExportPolicy, forbidden: Collection[str] = (),
                  eligible: int | None = None, previous: Collection[Release] = (),
                  key_version: int | None = None) -> CheckResult:
    """Check every rule on an export folder.

    Parameters
    ----------
    folder : pathlib.Path
        The folder about to be released.
    policy : ExportPolicy
        Thresholds and allowed values.
    forbidden : collection of str
        Identifiers that must not appear anywhere (staff references, device, gateway and force ids).
    eligible : int, optional
        Participants eligible for the export according to the database (for ``suppression_limit``); without it
        the privacy report's figure is used.
    previous : collection of Release, optional
        What earlier exports of the same project released (from the ledger), for ``cross_export``.
    key_version : int, optional
        Key version of this export's pids (earlier releases of the same version are linked by pid).

    Returns
    -------
    CheckResult
    """
    res = CheckResult()
    _check_manifest(folder, res)
    tables, schemas = _load_tables(folder, policy, res)
    res.tables = {stem: t.num_rows for stem, t in tables.items()}
    report = _load_json(folder / "privacy_report.json", res, "privacy_report") or {}
    _check_pids(tables, res)
    if "participants" in tables:
        _check_qis(tables["participants"], policy, res)
        _check_suppression(report, tables["participants"].num_rows, eligible, policy, res)
    if "aggregates" in tables:
        _check_aggregates(tables["aggregates"], schemas["aggregates"], policy, res)
    if "daily_features" in tables:
        _check_days(tables["daily_features"], policy, res)
    check_time_horizon(tables, policy, res.fail)
    check_consistency(tables, policy, res.fail)
    check_cross_export(tables.get("participants"), key_version, list(previous), policy, res.fail)
    _check_categoricals(tables, policy, res)
    json_strings = (s for p in sorted(folder.glob("*.json")) for s in _strings_of(_load_json(p, res, "manifest")))
    _scan_identifiers(iter([*_table_strings(tables), *json_strings]), forbidden, res)
    _check_report(report, res, policy)
    return res


def require_releasable(folder: Path, policy: ExportPolicy, forbidden: Collection[str] = (),
                       eligible: int | None = None, previous: Collection[Release] = (),
                       key_version: int | None = None) -> CheckResult:
    """:func:`check_package`, raising :class:`ExportRefusedError` naming the first failed rule (all are listed)."""
    res = check_package(folder, policy, forbidden, eligible, previous, key_version)
    if not res.ok:
        rule = next(iter(res.failures))
        detail = "; ".join(f"{r}: {' / '.join(m)}" for r, m in res.failures.items())
        raise ExportRefusedError(rule, detail)
    return res
