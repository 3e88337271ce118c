"""Rules of the independent checker that look at a package as a whole and across the exports of one project
(issue 15). Part of :mod:`exports.checker` (same independence: only the policy, which is data, is imported).

=======================  =============================================================================
``time_horizon``         weeks_band holds a policy band, no row of daily_features or weekly_flags lies
                         after its participant's band, and every time-derived column is a
                         quasi-identifier (so k-anonymity counts it)
``package_consistency``  every shown flag count and participant count of the aggregate table equals (to
                         the policy's rounding) the count recomputed from the record-level tables of the
                         same package: the aggregates cover released participants only and add nothing
``cross_export``         linking this export's pids with the earlier exports of the project recorded in the
                         ledger (same key version) leaves every combined quasi-identifier class >= k
=======================  =============================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from exports.policy import ExportPolicy

__all__ = ["Release", "check_consistency", "check_cross_export", "check_time_horizon"]

Fail = Callable[[str, str], None]
_LEVELS = ("green", "amber", "red", "insufficient_data")


@dataclass(frozen=True)
class Release:
    """What an earlier export of the project released about its participants (from the ledger's tables).

    Attributes
    ----------
    seq : int
        Ledger sequence number of the earlier export.
    key_version : int
        Pseudonym key version (pids of different versions cannot be linked).
    qis : dict of str to tuple
        pid -> its quasi-identifier values in that export.
    """

    seq: int
    key_version: int
    qis: dict[str, tuple[Any, ...]] = field(default_factory=dict)


def _frame(table: pa.Table | None, columns: Sequence[str]) -> pd.DataFrame | None:
    if table is None or not set(columns) <= set(table.column_names):
        return None
    return pd.DataFrame({c: table[c].to_numpy(zero_copy_only=False) for c in columns})


def check_time_horizon(tables: dict[str, pa.Table], policy: ExportPolicy, fail: Fail) -> None:
    """Rule ``time_horizon``."""
    for col in policy.time_derived:
        if col not in policy.quasi_identifiers:
            fail("time_horizon", f"time-derived column {col} is not counted as a quasi-identifier")
    people = _frame(tables.get("participants"), ("pid", "weeks_band"))
    if people is None:
        fail("time_horizon", "participants has no weeks_band")
        return
    if not people["weeks_band"].isin(policy.horizon_weeks).all():
        fail("time_horizon", f"a weeks_band is not one of {list(policy.horizon_weeks)}")
    band = people.set_index("pid")["weeks_band"]
    for stem in ("daily_features", "weekly_flags"):
        rows = _frame(tables.get(stem), ("pid", "programme_week"))
        if rows is None or rows.empty:
            continue
        last = rows.groupby("pid")["programme_week"].max()
        limit = band.reindex(last.index).to_numpy(dtype=np.float64)
        if (last.to_numpy() > np.nan_to_num(limit, nan=0.0)).any():
            fail("time_horizon", f"{stem} has rows after a participant's weeks_band")


def _flag_counts(tables: dict[str, pa.Table]) -> pd.DataFrame | None:
    flags = _frame(tables.get("weekly_flags"), ("pid", "programme_week", "overall_level"))
    people = _frame(tables.get("participants"), ("pid", "role_group"))
    if flags is None or people is None:
        return None
    f = flags.assign(role_group=flags["pid"].map(people.set_index("pid")["role_group"]))
    counts = pd.crosstab([f["programme_week"], f["role_group"]], f["overall_level"])
    out = pd.DataFrame({f"n_{lv}": counts.get(lv, 0) for lv in _LEVELS}, index=counts.index)
    out["n_flagged"] = out.sum(axis=1)
    return out


def _day_counts(tables: dict[str, pa.Table]) -> pd.DataFrame | None:
    daily = _frame(tables.get("daily_features"), ("pid", "programme_week", "valid_sleep_day"))
    people = _frame(tables.get("participants"), ("pid", "role_group"))
    if daily is None or people is None:
        return None
    d = daily[daily["valid_sleep_day"].astype(bool)]
    d = d.assign(role_group=d["pid"].map(people.set_index("pid")["role_group"]))
    g = d.groupby(["programme_week", "role_group"])
    return pd.DataFrame({"n_participants": g["pid"].nunique(), "n_participant_days": g.size()})


def check_consistency(tables: dict[str, pa.Table], policy: ExportPolicy, fail: Fail) -> None:
    """Rule ``package_consistency``: the aggregates say nothing the records of the same package do not."""
    agg_table = tables.get("aggregates")
    if agg_table is None:
        return
    agg = agg_table.to_pandas().set_index(["programme_week", "role_group"])
    for truth in (_flag_counts(tables), _day_counts(tables)):
        if truth is None:
            continue
        for col in truth.columns:
            if col not in agg:
                continue
            shown = agg[col].astype(np.float64)
            true = truth[col].reindex(shown.index).fillna(0).to_numpy(dtype=np.float64)
            ok = shown.isna().to_numpy() | (np.abs(shown.to_numpy() - true) <= policy.rounding_base / 2)
            if not ok.all():
                fail("package_consistency", f"aggregates.{col} differs from the count the records give "
                                            f"({int((~ok).sum())} cells): it covers other participants")


def check_cross_export(people: pa.Table | None, key_version: int | None, previous: Sequence[Release],
                       policy: ExportPolicy, fail: Fail) -> int:
    """Rule ``cross_export``; returns the smallest combined class (0 when nothing is linked)."""
    qis = [q for q in policy.quasi_identifiers if people is not None and q in people.column_names]
    linked = [r for r in previous if key_version is not None and r.key_version == key_version]
    if people is None or not linked or people.num_rows == 0:
        return 0
    frame = _frame(people, ("pid", *qis))
    assert frame is not None
    signature = frame[qis].astype(str).agg("|".join, axis=1)
    for r in linked:
        signature = signature + "#" + frame["pid"].map(lambda p, r=r: "|".join(map(str, r.qis.get(p, ("-",)))))
    sizes = signature.map(signature.value_counts())
    smallest = int(sizes.min())
    if smallest < policy.k:
        fail("cross_export", f"linking pids with {len(linked)} earlier export(s) of the project leaves "
                             f"{int((sizes < policy.k).sum())} participants in classes below k={policy.k} "
                             f"(smallest {smallest})")
    return smallest
