"""The aggregate table of a research export, with statistical disclosure control (reliability_security.md 1.2, 1.9).

Cells are programme week x role group. Counts: participants with at least one valid sleep day, valid
participant-days, participants contributing to each mean, and participants per weekly flag level. Statistics:
mean and SD of the released (rounded) participant-day values.

Disclosure control, in this order:

1. counts ``1..small_cell_max`` (1-9) become missing; other counts are rounded to the nearest
   ``rounding_base`` (5), 0 stays 0;
2. secondary suppression: when exactly one component of a row total (``n_green + n_amber + n_red +
   n_insufficient_data = n_flagged``) is hidden, the total is hidden too, so the hidden cell cannot be
   recomputed from the others;
3. a mean or SD is shown only when its participant count is at least ``min_n_statistic`` (10).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from exports.policy import AGGREGATE_COUNTS, AGGREGATE_KEYS, AGGREGATE_STATISTICS, AGGREGATE_TOTALS, ExportPolicy

__all__ = ["METRICS", "DailyTotals", "aggregate_table"]

#: Aggregated daily metric -> (released column, count column, mean column, sd column or None).
METRICS: dict[str, tuple[str, str, str | None]] = {
    "tst_min": ("n_tst", "mean_tst_min", "sd_tst_min"),
    "se_pct": ("n_se", "mean_se_pct", None),
    "resting_hr_bpm": ("n_rhr", "mean_resting_hr_bpm", None),
    "rmssd_ms": ("n_rmssd", "mean_rmssd_ms", None),
}


class DailyTotals:
    """Running totals of released valid participant-days, fed chunk by chunk (no per-row Python).

    Per (participant, week) only "has a valid day" and "has a value of metric m" are needed (for the participant
    counts); sums, sums of squares and value counts are additive, so they are kept per cell (week x role group).

    Parameters
    ----------
    role_of : numpy.ndarray of int
        Role-group code of every eligible participant (``pidx`` order); -1 for suppressed participants.
    roles : sequence of str
        Role-group names of the codes.
    weeks : int
        Programme weeks covered (week numbers 1..weeks).
    """

    def __init__(self, role_of: np.ndarray[Any, Any], roles: Sequence[str], weeks: int) -> None:
        self.role_of, self.roles, self.weeks = role_of.astype(np.int64), list(roles), weeks
        n_pw, n_cells = len(role_of) * weeks, weeks * len(roles)
        self.has_day = np.zeros(n_pw, bool)
        self.has = {m: np.zeros(n_pw, bool) for m in METRICS}
        self.cell_days = np.zeros(n_cells, np.int64)
        self.cell = {(m, k): np.zeros(n_cells) for m in METRICS for k in ("s", "ss", "c")}

    def add(self, num: dict[str, np.ndarray[Any, Any]]) -> None:
        """Add the released rows of one chunk (``pidx``, ``programme_week``, ``valid_sleep_day``, metrics)."""
        valid = num["valid_sleep_day"].astype(bool) & (num["programme_week"] >= 1) \
            & (num["programme_week"] <= self.weeks)
        pidx, week = num["pidx"][valid], num["programme_week"][valid] - 1
        key = pidx * self.weeks + week
        cell = week * len(self.roles) + self.role_of[pidx]
        self.has_day[key] = True
        self.cell_days += np.bincount(cell, minlength=self.cell_days.size)
        for m in METRICS:
            v = num[m][valid]
            ok = ~np.isnan(v)
            self.has[m][key[ok]] = True
            self.cell[m, "s"] += np.bincount(cell[ok], weights=v[ok], minlength=self.cell_days.size)
            self.cell[m, "ss"] += np.bincount(cell[ok], weights=v[ok] ** 2, minlength=self.cell_days.size)
            self.cell[m, "c"] += np.bincount(cell[ok], minlength=self.cell_days.size)

    def _participants(self, per_pw: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Participants per cell whose flag in ``per_pw`` (participant x week) is set."""
        nz = np.flatnonzero(per_pw)
        cell = (nz % self.weeks) * len(self.roles) + self.role_of[nz // self.weeks]
        return np.bincount(cell, minlength=self.cell_days.size)

    def cells(self) -> pd.DataFrame:
        """Daily cells indexed by ``(programme_week, role_group)``: counts, means and SDs (unsuppressed)."""
        agg: dict[str, np.ndarray[Any, Any]] = {"n_participants": self._participants(self.has_day),
                                                "n_participant_days": self.cell_days}
        for m, (n_col, mean_col, sd_col) in METRICS.items():
            s, ss, c = self.cell[m, "s"], self.cell[m, "ss"], self.cell[m, "c"]
            agg[n_col] = self._participants(self.has[m])
            with np.errstate(divide="ignore", invalid="ignore"):
                mean = np.where(c > 0, s / c, np.nan)
                agg[mean_col] = np.round(mean, 1)
                if sd_col:
                    var = np.where(c > 1, (ss - c * mean**2) / (c - 1), np.nan)
                    agg[sd_col] = np.round(np.sqrt(np.clip(var, 0, None)), 1)
        index = pd.MultiIndex.from_product([range(1, self.weeks + 1), self.roles], names=list(AGGREGATE_KEYS))
        frame = pd.DataFrame(agg, index=index)
        return frame[self.cell_days > 0]


def _round_counts(counts: pd.DataFrame, policy: ExportPolicy) -> pd.DataFrame:
    raw = counts.to_numpy(dtype=np.float64)
    rounded = np.floor(raw / policy.rounding_base + 0.5) * policy.rounding_base
    hidden = (raw >= 1) & (raw <= policy.small_cell_max)
    return pd.DataFrame(np.where(hidden, np.nan, rounded), index=counts.index, columns=counts.columns)


def _secondary(counts: pd.DataFrame) -> pd.DataFrame:
    out = counts.copy()
    for total, parts in AGGREGATE_TOTALS.items():
        one_hidden = out[list(parts)].isna().sum(axis=1) == 1
        out.loc[one_hidden, total] = np.nan
    return out


def _flag_cells(flags: pd.DataFrame, roles: pd.Series) -> pd.DataFrame:
    f = flags.assign(role_group=flags["pid"].map(roles))
    table = pd.crosstab([f["programme_week"], f["role_group"]], f["overall_level"])
    out = pd.DataFrame(index=table.index)
    for level in ("green", "amber", "red", "insufficient_data"):
        out[f"n_{level}"] = table.get(level, 0)
    out["n_flagged"] = out.sum(axis=1)
    return out


def aggregate_table(daily: pd.DataFrame, flags: pd.DataFrame, participants: pd.DataFrame,
                    policy: ExportPolicy) -> pd.DataFrame:
    """Build the disclosure-controlled aggregate table.

    Parameters
    ----------
    daily : pandas.DataFrame
        :meth:`DailyTotals.cells` of every released daily row.
    flags : pandas.DataFrame
        Released weekly flags (``pid, programme_week, overall_level``).
    participants : pandas.DataFrame
        Released participants (``pid, role_group``).
    policy : ExportPolicy

    Returns
    -------
    pandas.DataFrame
        Columns ``programme_week, role_group``, the counts of :data:`exports.policy.AGGREGATE_COUNTS` (float,
        NaN = suppressed) and the statistics of :data:`exports.policy.AGGREGATE_STATISTICS` (NaN = not shown).
    """
    roles = participants.set_index("pid")["role_group"]
    cells = daily.join(_flag_cells(flags, roles), how="outer") if len(flags) else daily
    for col in (*AGGREGATE_COUNTS, *AGGREGATE_STATISTICS):
        if col not in cells:
            cells[col] = np.nan
    counts = cells[list(AGGREGATE_COUNTS)].fillna(0)
    shown = _secondary(_round_counts(counts, policy))
    stats = cells[list(AGGREGATE_STATISTICS)].copy()
    for stat, n_col in AGGREGATE_STATISTICS.items():
        stats.loc[~(counts[n_col] >= policy.min_n_statistic) | shown[n_col].isna(), stat] = np.nan
    out = pd.concat([shown, stats], axis=1).reset_index()
    out = out.rename(columns={"level_0": "programme_week", "level_1": "role_group"})
    out["programme_week"] = out["programme_week"].astype("int64")
    return out[[*AGGREGATE_KEYS, *AGGREGATE_COUNTS, *AGGREGATE_STATISTICS]].sort_values(
        list(AGGREGATE_KEYS)).reset_index(drop=True)
