"""risk.disclosure against the attacker's solver: for any split of officers not named over the four levels,
no hidden cell can be pinned and no number about 1-4 of them is shown (Hypothesis search)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.disclosure import control_weeks, protect_rows, shown_mean
from tests.privacy.attacker import _solve, _Week

ROW = st.lists(st.integers(0, 12), min_size=4, max_size=4)


@settings(max_examples=400, deadline=None)
@given(ROW)
def test_no_hidden_cell_can_be_solved(unnamed: list[int]) -> None:
    u = np.array([unnamed], dtype=np.int64)
    shown = protect_rows(u, groups=((0, 1),))[0]
    wk = _Week(officers=int(u.sum()))
    for j in range(4):
        if shown[j]:
            wk.eq.append(((j,), int(u[0, j])))
        else:
            wk.suppressed.add((j,))
            if shown.any():
                wk.rng.append(((j,), 1, 10**6))
    if shown[0] and shown[1]:
        wk.eq.append(((0, 1), int(u[0, 0] + u[0, 1])))
    else:
        wk.suppressed.add((0, 1))
    assert _solve("w", wk, int(u.sum())) == [], (unnamed, shown)
    assert not (shown & (u[0] > 0) & (u[0] < 5)).any()


def test_rules_by_example() -> None:
    rows = np.array([[3, 10, 20, 0], [1, 1, 10, 0], [2, 2, 0, 0], [0, 0, 7, 0], [0, 0, 0, 0]])
    assert protect_rows(rows, groups=((0, 1),)).tolist() == [
        [False, False, False, True],  # R1 + R3: the 3, the 10, and the 20 (else red + amber = 13 follows)
        [False, False, False, True],  # 1 + 1: the two ones would be solvable, hide the 10 too
        [False, False, False, False],  # R2: 4 officers not named, nothing shown
        [False, False, False, False],  # R6: all 7 in one level would give each of them their level
        [True, True, True, True]]


def test_mean_needs_five_unnamed_values() -> None:
    values = np.array([6.0] * 6 + [7.0] * 5 + [np.nan])
    named = np.array([True] * 6 + [False] * 6)
    group = np.zeros(12, dtype=np.int64)
    assert shown_mean(values, named, group, 1)[0] == round((36 + 35) / 11 * 60) / 60
    named[6] = True
    assert np.isnan(shown_mean(values, named, group, 1)[0])  # 4 unnamed values left


def test_week_table_derived_numbers() -> None:
    t = control_weeks(np.zeros(12, dtype=np.int64), np.array([0] * 2 + [2] * 10), np.array([False] * 12),
                      np.array([True] + [False] * 11), np.full(12, 7.0), 1)
    assert not t.shown[0, 0] and not t.shown[0, 2] and t.shown[0, 1] and t.shown[0, 3]
    assert not t.flagged_shown[0] and not t.unnamed_flagged_shown[0] and not t.revised_shown[0]
    assert t.total[0] == 12 and t.mean_sleep[0] == 7.0
