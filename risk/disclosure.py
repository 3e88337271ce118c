"""Disclosure control of everything a force manager sees: pure functions over arrays.

Every number in the weekly report (tiles, "not named" line, revised flags, trend table and chart, CSV) and in
the managers' API summary comes from :func:`control_weeks`; nothing else computes a published aggregate.

The threat model (docs/security.md, "Disclosure control"): the reader knows every *named* officer exactly
(level, criteria values and revision: the API returns them, and the report lists and charts them), knows how
many officers are not named (the roster), and combines every number of the report and the API by arithmetic.
What must stay hidden is anything about the officers who are **not named** (no consent to be named to their
manager). So the rules act on the *unnamed part* of each published number:

R1 (primary)
    A count over unnamed officers between 1 and 4 is not shown.
R2 (small group)
    When 1-4 officers of a week are unnamed, no count of that week that involves them is shown (any shown cell,
    even a zero, would pin the rest from the known number of unnamed officers).
R3 (complementary)
    When exactly one cell of a week's level row is suppressed under R1, or every suppressed cell holds 1 (so
    their sum equals their number), the smallest other non-zero cell is suppressed too, so the row total
    cannot give them back; and when a group sum that is not shown (red + amber, while a cell inside it is
    hidden) would follow from the row total, the smallest non-zero cell outside the group is hidden too.
    Cells are suppressed per level for the whole row, so the tiles, the trend table (every week, including
    the report week) and the chart use one pattern.
R4 (derived numbers)
    A number derived from cells (flagged = red + amber, flagged but not named) is shown only when all its
    cells are shown; the revised-flags count is a two-cell row (revised, not revised) under R1-R3.
R5 (means)
    A mean over a group is shown only when the group minus the named officers still has at least 5 members
    with a value; it is rounded to whole minutes (the chart plots the same rounded value).
R6 (no shared attribute)
    When every unnamed officer of a week is in one level, or all are flagged (red or amber), no count of that
    week is shown either: it would tell the reader the level of each of them.

Zeros are shown (outside R2), so a reader knows a suppressed cell is not zero; with R3 at least two cells of a
row are suppressed and their sum exceeds their number, so no suppressed cell can be solved for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["LEVELS", "MIN_CELL", "WeekTable", "control_weeks", "protect_rows", "shown_mean"]

MIN_CELL = 5
LEVELS = ("red", "amber", "green", "insufficient_data")

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


def protect_rows(unnamed: IntArray, groups: Sequence[Sequence[int]] = ()) -> BoolArray:
    """Which cells of each row may be shown (rules R1-R3 and R6).

    Parameters
    ----------
    unnamed : ndarray of int, shape (n_rows, n_cells)
        Counts of unnamed officers per row (a week) and cell (a level); a row's cells partition its officers.
    groups : sequence of sequences of int
        Sets of cells whose sum is published as well (e.g. red + amber = flagged), for rule R6.

    Returns
    -------
    ndarray of bool, same shape
        True where the cell (and so the published count containing it) may be shown.
    """
    u = np.asarray(unnamed, dtype=np.int64)
    total = u.sum(axis=1)
    primary = (u > 0) & (u < MIN_CELL)
    small_group = (total > 0) & (total < MIN_CELL)
    k = primary.sum(axis=1)
    solvable = (k == 1) | ((k > 1) & (np.where(primary, u, 0).sum(axis=1) == k))  # one cell, or all ones
    none = np.iinfo(np.int64).max
    big = np.where(u >= MIN_CELL, u, none)
    partner = np.zeros_like(primary)
    rows = np.flatnonzero(solvable & (big.min(axis=1) < none))
    partner[rows, big[rows].argmin(axis=1)] = True
    hidden = primary | partner
    for cells in groups:  # a published group sum must not pin its hidden cells from the row total
        inside = np.zeros(u.shape[1], dtype=np.bool_)
        inside[list(cells)] = True
        derivable = (hidden & inside).any(axis=1) & ~(hidden & ~inside).any(axis=1)
        outside = np.where(~inside & (u > 0), u, none)
        rows = np.flatnonzero(derivable & (outside.min(axis=1) < none))
        hidden[rows, outside[rows].argmin(axis=1)] = True
    one_place = u.max(axis=1, initial=0) == total
    for cells in groups:
        one_place |= u[:, list(cells)].sum(axis=1) == total
    uniform = (total > 0) & one_place
    suppressed = hidden | (small_group | uniform)[:, None]
    return np.asarray(~suppressed, dtype=np.bool_)


def shown_mean(values: FloatArray, named: BoolArray, group: IntArray, n_groups: int) -> FloatArray:
    """Mean of finite ``values`` per group, NaN unless >= 5 unnamed members have a value (rule R5).

    Parameters
    ----------
    values : ndarray of float
        One value per officer-row (e.g. mean sleep, hours); NaN when missing.
    named : ndarray of bool
        Whether the row's officer is named to the manager.
    group : ndarray of int
        Group index of each row, in ``[0, n_groups)``.
    n_groups : int
        Number of groups.

    Returns
    -------
    ndarray of float, shape (n_groups,)
        The mean rounded to whole minutes (hours), or NaN where it must not be shown.
    """
    ok = np.isfinite(values)
    n = np.bincount(group[ok], minlength=n_groups)
    s = np.bincount(group[ok], weights=values[ok], minlength=n_groups)
    n_unnamed = np.bincount(group[ok & ~named], minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.round(s / n * 60.0) / 60.0
    return np.where(n_unnamed >= MIN_CELL, mean, np.nan)


@dataclass(frozen=True)
class WeekTable:
    """Disclosure-controlled counts of each week (row) of a report or API summary.

    Attributes
    ----------
    counts, shown : ndarray, shape (n_weeks, 4)
        Officers per level (order :data:`LEVELS`) and whether each may be shown.
    total : ndarray of int, shape (n_weeks,)
        Officers with a flag in the week (always shown: the number of officers is not a finding).
    flagged, flagged_shown : ndarray, shape (n_weeks,)
        Officers amber or red (R4).
    unnamed_flagged, unnamed_flagged_shown : ndarray, shape (n_weeks,)
        Officers amber or red who are not named (R4).
    revised, revised_shown : ndarray, shape (n_weeks,)
        Flags in their second or later revision (R4).
    mean_sleep : ndarray of float, shape (n_weeks,)
        Mean of the criterion S1 value (hours), NaN where not shown (R5).
    """

    counts: IntArray
    shown: BoolArray
    total: IntArray
    flagged: IntArray
    flagged_shown: BoolArray
    unnamed_flagged: IntArray
    unnamed_flagged_shown: BoolArray
    revised: IntArray
    revised_shown: BoolArray
    mean_sleep: FloatArray


def _per_week(week: IntArray, cell: IntArray, mask: BoolArray, n_weeks: int, n_cells: int) -> IntArray:
    flat = np.bincount(week[mask] * n_cells + cell[mask], minlength=n_weeks * n_cells)
    return np.asarray(flat.reshape(n_weeks, n_cells), dtype=np.int64)


def control_weeks(week: IntArray, level: IntArray, named: BoolArray, revised: BoolArray, sleep_h: FloatArray,
                  n_weeks: int) -> WeekTable:
    """Count officers per week and level and apply rules R1-R5.

    Parameters
    ----------
    week : ndarray of int
        Week index of each flag (one flag per officer and week), in ``[0, n_weeks)``.
    level : ndarray of int
        Index of the flag's overall level in :data:`LEVELS`.
    named : ndarray of bool
        The officer consented to be named to the manager (and has not withdrawn).
    revised : ndarray of bool
        The flag is a revision (revision > 1).
    sleep_h : ndarray of float
        The flag's S1 value (mean sleep, hours), NaN when missing.
    n_weeks : int
        Number of weeks (rows of the result).
    """
    week, level = np.asarray(week, dtype=np.int64), np.asarray(level, dtype=np.int64)
    named, revised = np.asarray(named, dtype=np.bool_), np.asarray(revised, dtype=np.bool_)
    everyone = np.ones(week.shape, dtype=np.bool_)
    counts = _per_week(week, level, everyone, n_weeks, len(LEVELS))
    unnamed = _per_week(week, level, ~named, n_weeks, len(LEVELS))
    shown = protect_rows(unnamed, groups=((0, 1),))
    rev_rows = _per_week(week, revised.astype(np.int64), ~named, n_weeks, 2)
    flagged_shown = shown[:, 0] & shown[:, 1]
    return WeekTable(
        counts=counts, shown=shown, total=counts.sum(axis=1),
        flagged=counts[:, 0] + counts[:, 1], flagged_shown=flagged_shown,
        unnamed_flagged=unnamed[:, 0] + unnamed[:, 1], unnamed_flagged_shown=flagged_shown,
        revised=np.bincount(week[revised], minlength=n_weeks).astype(np.int64),
        revised_shown=protect_rows(rev_rows)[:, 1],
        mean_sleep=shown_mean(np.asarray(sleep_h, dtype=np.float64), named, week, n_weeks))
