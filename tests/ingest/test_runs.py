"""Pure run kernels: only new samples are kept, and no stored offset can exceed the int4 column."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from ingest.runs import MAX_RUN_SPAN_MS, hr_runs, rr_beat_ends, rr_runs

T = 1_764_000_000_000


def _hr(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return t.astype(np.int64), (60 + np.arange(t.size) % 50).astype(np.int16), np.zeros(t.size, bool)


def test_rebatched_run_keeps_only_the_new_samples() -> None:
    first = T + np.arange(60) * 1000
    again = T + np.arange(120) * 1000
    runs = hr_runs(*_hr(again), stored_ms=first)
    assert len(runs) == 1
    assert runs[0].start_ms == T + 60_000  # starts at the first new sample, so its key is new
    np.testing.assert_array_equal(runs[0].start_ms + runs[0].offsets_ms, again[60:])


def test_fully_stored_run_writes_nothing_and_first_value_wins_within_a_message() -> None:
    t = T + np.arange(10) * 1000
    assert hr_runs(*_hr(t), stored_ms=t) == []
    twice = np.concatenate([t, t])
    t2, bpm, sus = _hr(twice)
    runs = hr_runs(t2, bpm, sus, stored_ms=np.empty(0, np.int64))
    assert len(runs) == 1 and runs[0].offsets_ms.size == 10
    np.testing.assert_array_equal(runs[0].bpm, bpm[:10])


def test_run_longer_than_the_int4_offset_is_split_not_wrapped() -> None:
    span = int(24.9 * 86_400_000)
    t = T + np.linspace(0, span, 200).astype(np.int64)
    runs = hr_runs(*_hr(t), stored_ms=np.empty(0, np.int64))
    assert len(runs) == 2
    assert all(int(r.offsets_ms.max()) <= MAX_RUN_SPAN_MS and int(r.offsets_ms.min()) == 0 for r in runs)
    np.testing.assert_array_equal(np.concatenate([r.start_ms + r.offsets_ms for r in runs]), t)


@given(st.lists(st.integers(0, 10 * 86_400_000), min_size=1, max_size=300),
       st.lists(st.integers(0, 10 * 86_400_000), max_size=300),
       st.integers(1_000, 4 * 86_400_000))
def test_runs_hold_exactly_the_new_distinct_samples(times: list[int], stored: list[int], span: int) -> None:
    t = T + np.array(times, dtype=np.int64)
    s = T + np.array(stored, dtype=np.int64)
    runs = hr_runs(*_hr(t), stored_ms=s, max_span_ms=span)
    kept = np.concatenate([r.start_ms + r.offsets_ms for r in runs]) if runs else np.empty(0, np.int64)
    np.testing.assert_array_equal(kept, np.setdiff1d(t, s))
    assert all(int(r.offsets_ms[-1]) <= span for r in runs)


def test_rr_keeps_new_beats_in_stretches_that_start_at_the_previous_beat() -> None:
    rr = np.full(10, 800, dtype=np.int16)
    art = np.zeros(10, bool)
    ends = rr_beat_ends(T, rr)
    stored = ends[[0, 1, 2, 5, 6]]
    runs = rr_runs(T, rr, art, stored)
    assert [(r.start_ms, r.rr_ms.size) for r in runs] == [(int(ends[2]), 2), (int(ends[6]), 3)]
    got = np.concatenate([rr_beat_ends(r.start_ms, r.rr_ms) for r in runs])
    np.testing.assert_array_equal(got, np.setdiff1d(ends, stored))
    assert rr_runs(T, rr, art, ends) == []
