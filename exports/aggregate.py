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

import numpy as np
import pandas as pd
import pyarrow as pa

from exports.policy import AGGREGATE_COUNTS, AGGREGATE_KEYS, AGGREGATE_STATISTICS, AGGREGATE_TOTALS, ExportPolicy

__all__ = ["METRICS", "aggregate_table", "daily_partials"]

#: Aggregated daily metric -> (released column, count column, mean column, sd column or None).
METRICS: dict[str, tuple[str, str, str | None]] = {
    "tst_min": ("n_tst", "mean_tst_min", "sd_tst_min"),
    "se_pct": ("n_se", "mean_se_pct", None),
    "resting_hr_bpm": ("n_rhr", "mean_resting_hr_bpm", None),
    "rmssd_ms": ("n_rmssd", "mean_rmssd_ms", None),
}


def daily_partials(released: pa.Table) -> pd.DataFrame:
    """Per ``(pid, programme_week)`` sums of one released daily batch (valid sleep days only).

    Returns columns ``pid, programme_week, days`` and ``<metric>_s``, ``<metric>_ss``, ``<metric>_c`` (sum, sum of
    squares, count of non-missing values) for every metric in :data:`METRICS`.
    """
    cols = ["pid", "programme_week", "valid_sleep_day", *METRICS]
    frame = released.select(cols).to_pandas()
    frame = frame[frame["valid_sleep_day"].fillna(False).astype(bool)]
    parts: dict[str, pd.Series] = {"days": frame["valid_sleep_day"].astype(np.int64)}
    for m in METRICS:
        v = frame[m].astype(np.float64)
        parts[f"{m}_s"], parts[f"{m}_ss"], parts[f"{m}_c"] = v.fillna(0.0), v.fillna(0.0) ** 2, v.notna()
    data = pd.DataFrame(parts).assign(pid=frame["pid"], programme_week=frame["programme_week"])
    return data.groupby(["pid", "programme_week"], as_index=False, sort=False).sum()


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


def _daily_cells(partials: pd.DataFrame, roles: pd.Series) -> pd.DataFrame:
    per = partials.groupby(["pid", "programme_week"], as_index=False, sort=False).sum()
    per["role_group"] = per["pid"].map(roles)
    agg: dict[str, pd.Series] = {}
    grouped = per.groupby(list(AGGREGATE_KEYS))
    agg["n_participants"] = grouped["days"].apply(lambda d: int((d > 0).sum()))
    agg["n_participant_days"] = grouped["days"].sum()
    for m, (n_col, mean_col, sd_col) in METRICS.items():
        s, ss, c = grouped[f"{m}_s"].sum(), grouped[f"{m}_ss"].sum(), grouped[f"{m}_c"].sum()
        agg[n_col] = grouped[f"{m}_c"].apply(lambda x: int((x > 0).sum()))
        mean = s / c.where(c > 0)
        agg[mean_col] = mean.round(1)
        if sd_col:
            var = (ss - c * mean**2) / (c - 1).where(c > 1)
            agg[sd_col] = np.sqrt(var.clip(lower=0)).round(1)
    return pd.DataFrame(agg)


def _flag_cells(flags: pd.DataFrame, roles: pd.Series) -> pd.DataFrame:
    f = flags.assign(role_group=flags["pid"].map(roles))
    table = pd.crosstab([f["programme_week"], f["role_group"]], f["overall_level"])
    out = pd.DataFrame(index=table.index)
    for level in ("green", "amber", "red", "insufficient_data"):
        out[f"n_{level}"] = table.get(level, 0)
    out["n_flagged"] = out.sum(axis=1)
    return out


def aggregate_table(partials: list[pd.DataFrame], flags: pd.DataFrame, participants: pd.DataFrame,
                    policy: ExportPolicy) -> pd.DataFrame:
    """Build the disclosure-controlled aggregate table.

    Parameters
    ----------
    partials : list of pandas.DataFrame
        Outputs of :func:`daily_partials` for every released daily batch.
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
    empty = pd.DataFrame(columns=["pid", "programme_week", "days"])
    daily = _daily_cells(pd.concat(partials) if partials else empty.assign(
        **{f"{m}_{s}": [] for m in METRICS for s in ("s", "ss", "c")}), roles)
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
