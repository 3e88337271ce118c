"""Three-process model: FIPS reference trajectories, TV-T1 closed forms, properties, DST."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.exposure import local_to_utc
from models.three_process import (
    DEFAULT_PARAMS,
    TPMParams,
    TPMResult,
    circadian,
    inertia,
    local_clock_hours,
    s_sleep,
    s_wake,
    simulate,
    ultradian,
    utc_offsets,
)

FIPS_DIR = Path(__file__).resolve().parents[1] / "data" / "fips"
TOL = 1e-9
H = 3600


def ts(text: str, tz: str = "UTC") -> int:
    return int(pd.Timestamp(text, tz=tz).timestamp())


# series.start, series.end (inclusive), sleep episodes: fips_tpm_reference/README.md
FIPS_CASES = {
    "A": ("2018-05-01 07:00", "2018-05-02 23:00", [("2018-05-01 23:00", "2018-05-02 07:00")]),
    "B": ("2018-05-01 07:00", "2018-05-07 21:00",
          [(f"2018-05-0{d} 23:00", f"2018-05-0{d + 1} 06:30") for d in range(1, 7)]),
    "C": ("2018-05-01 07:00", "2018-05-03 07:00", [("2018-05-02 08:00", "2018-05-02 14:00")]),
}


def run_fips_case(name: str) -> TPMResult:
    first, last, episodes = FIPS_CASES[name]
    return simulate(np.zeros(len(episodes), dtype=np.int64), [ts(a) for a, _ in episodes],
                    [ts(b) for _, b in episodes], n_participants=1, start=ts(first), end=ts(last) + 300, tz="UTC")


@pytest.mark.parametrize("name", sorted(FIPS_CASES))
def test_matches_fips_reference_row_by_row(name: str) -> None:
    ref = pd.read_csv(FIPS_DIR / f"fips_{name}.csv")
    res = run_fips_case(name)
    expected_times = [int(x.timestamp()) for x in pd.to_datetime(ref["dt"], utc=True)]
    np.testing.assert_array_equal(res.time, expected_times)
    np.testing.assert_array_equal(res.awake[0], ref["wake_status"].to_numpy(dtype=bool))
    np.testing.assert_allclose(res.clock_hour, ref["time"], rtol=0, atol=TOL)
    for ours, theirs in [(res.s, "s"), (res.c, "c"), (res.u, "u"), (res.w, "w"), (res.alertness, "alertness"),
                         (res.kss, "KSS")]:
        np.testing.assert_allclose(ours[0], ref[theirs].to_numpy(), rtol=0, atol=TOL, err_msg=theirs)


def test_key_rows_tv_t3() -> None:
    res = run_fips_case("B")
    at = {t: int(np.searchsorted(res.time, ts(t))) for t in
          ["2018-05-02 06:30", "2018-05-03 06:30", "2018-05-07 06:30", "2018-05-07 15:00", "2018-05-07 21:00"]}
    np.testing.assert_allclose(res.s[0, [at["2018-05-02 06:30"], at["2018-05-03 06:30"], at["2018-05-07 06:30"]]],
                               [11.567078530, 13.183386117, 13.659612090], atol=1e-8)
    np.testing.assert_allclose(res.kss[0, [at["2018-05-07 15:00"], at["2018-05-07 21:00"]]],
                               [3.361659218, 4.486998943], atol=1e-8)


def test_tv_t4_night_duty_exposure_counts() -> None:
    res = run_fips_case("C")
    lo, hi = np.searchsorted(res.time, [ts("2018-05-01 23:00"), ts("2018-05-02 07:00")])
    window = res.kss[0, lo:hi]
    assert window.size == 96
    assert int(np.count_nonzero(window >= 7)) == 96
    assert int(np.count_nonzero(window >= 8)) == 89
    assert window.max() == pytest.approx(9.459661, abs=1e-6)


def test_tv_t1_closed_forms() -> None:
    np.testing.assert_allclose(s_wake([14.3, 7.96, 12.0], 16.0), [9.164838579, 5.560714496, 7.857348769],
                               atol=1e-9)
    assert DEFAULT_PARAMS.g == pytest.approx(-0.3813564466, abs=1e-10)
    assert DEFAULT_PARAMS.sleep_slope == pytest.approx(0.8008485379, abs=1e-10)
    assert (12.2 - 5.560714496) / DEFAULT_PARAMS.sleep_slope == pytest.approx(8.290314, abs=1e-6)
    assert float(s_sleep(5.560714496, 8.0)) == pytest.approx(11.967502798, abs=1e-9)
    np.testing.assert_allclose(circadian([16.8, 4.8]), [2.5, -2.5], atol=1e-12)
    assert float(ultradian(7.8)) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(inertia([0.0, 1.0]), [-5.72, -1.263605074], atol=1e-9)


def test_sleep_branch_is_exponential_after_break_time() -> None:
    s_s = 5.560714496
    tas = 10.0
    bt = (12.2 - s_s) / DEFAULT_PARAMS.sleep_slope
    expected = 14.3 - (14.3 - 12.2) * np.exp(DEFAULT_PARAMS.g * (tas - bt))
    assert float(s_sleep(s_s, tas)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("field", "value"), [("d", 0.1), ("g", 0.0), ("wd", 1.0), ("bl", 20.0), ("la", 13.0),
                                              ("ca", -1.0), ("p", 24.0), ("kss_beta", 0.0),
                                              ("s0", float("nan")), ("ha", float("inf"))])
def test_params_validation_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"TPMParams\.{field}\b|\b{field}\b"):
        TPMParams(**{field: value})


def test_params_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_PARAMS.la = 3.0  # type: ignore[misc]


def test_result_arrays_are_read_only() -> None:
    res = run_fips_case("A")
    with pytest.raises(ValueError, match="read-only"):
        res.s[0, 0] = 1.0


def test_unaligned_start_is_rejected() -> None:
    with pytest.raises(ValueError, match="start"):
        simulate([0], [0], [H], n_participants=1, start=10, end=86400)


# ---- properties --------------------------------------------------------------------------------------------

DAY0 = ts("2024-06-03 00:00")

history_st = st.lists(st.tuples(st.floats(20.0, 26.0), st.floats(0.5, 10.0)), min_size=0, max_size=4)


def _episodes(history: list[tuple[float, float]]) -> tuple[list[int], list[int]]:
    starts = [DAY0 + int((24 * i + onset) * H) for i, (onset, _) in enumerate(history)]
    return starts, [s + int(length * H) for s, (_, length) in zip(starts, history, strict=True)]


@settings(max_examples=60, deadline=None)
@given(history=history_st, onset=st.floats(20.0, 26.0), length=st.floats(3.0, 10.0),
       extra=st.floats(0.0, 8.0), s0=st.floats(DEFAULT_PARAMS.la, DEFAULT_PARAMS.ha))
def test_more_sleep_never_lowers_alertness_at_next_wake(history: list[tuple[float, float]], onset: float,
                                                         length: float, extra: float, s0: float) -> None:
    starts, ends = _episodes(history)
    k = len(history)
    onset_s = DAY0 + int((24 * k + onset) * H)
    wake_s = onset_s + int(length * H)
    pid = np.zeros(k + 1, dtype=np.int64)
    first, last = DAY0 - 12 * H, DAY0 + (24 * k + 48) * H
    a = simulate(pid, [*starts, onset_s], [*ends, wake_s], n_participants=1, start=first, end=last, s0=s0)
    b = simulate(pid, [*starts, onset_s - int(extra * H)], [*ends, wake_s], n_participants=1, start=first,
                 end=last, s0=s0)
    j = int(np.searchsorted(a.time, (wake_s + 150) // 300 * 300))
    assert a.awake[0, j] and b.awake[0, j]
    assert b.alertness[0, j] >= a.alertness[0, j] - 1e-12
    assert b.kss[0, j] <= a.kss[0, j] + 1e-12


cohort_st = st.lists(st.lists(st.tuples(st.integers(0, 6 * 288), st.integers(1, 200)), max_size=6),
                     min_size=1, max_size=5)


def _cohort(groups: list[list[tuple[int, int]]], first: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pid = [first + p for p, eps in enumerate(groups) for _ in eps]
    start = [DAY0 + 300 * a + 17 for eps in groups for a, _ in eps]
    end = [DAY0 + 300 * (a + n) + 17 for eps in groups for a, n in eps]
    return np.asarray(pid, dtype=np.int64), np.asarray(start, dtype=np.int64), np.asarray(end, dtype=np.int64)


@settings(max_examples=40, deadline=None)
@given(group_a=cohort_st, group_b=cohort_st)
def test_results_do_not_depend_on_batching(group_a: list[list[tuple[int, int]]],
                                           group_b: list[list[tuple[int, int]]]) -> None:
    end = DAY0 + 7 * 86400
    na, nb = len(group_a), len(group_b)
    pa, sa, ea = _cohort(group_a)
    pb, sb, eb = _cohort(group_b)
    alone_a = simulate(pa, sa, ea, n_participants=na, start=DAY0, end=end)
    alone_b = simulate(pb, sb, eb, n_participants=nb, start=DAY0, end=end)
    pab, sab, eab = _cohort(group_b + group_a)  # B first, A second, episodes interleaved below
    order = np.random.default_rng(len(pab)).permutation(len(pab))
    together = simulate(pab[order], sab[order], eab[order], n_participants=na + nb, start=DAY0,
                        end=end)
    for field in ("awake", "s", "w", "kss"):
        np.testing.assert_array_equal(getattr(together, field)[nb:], getattr(alone_a, field))
        np.testing.assert_array_equal(getattr(together, field)[:nb], getattr(alone_b, field))


# ---- time zone / DST ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("first", "change_utc", "jump_h"), [("2024-03-29 12:00", "2024-03-31 01:00", 1.0),
                                                             ("2024-10-25 12:00", "2024-10-27 01:00", -1.0)])
def test_dst_simulation_is_continuous_and_uses_local_clock(first: str, change_utc: str, jump_h: float) -> None:
    start = ts(first)
    nights = [(ts(first) + (11 + 24 * d) * H, ts(first) + (18 + 24 * d) * H) for d in range(4)]
    pid = np.zeros(len(nights), dtype=np.int64)
    on, off = [a for a, _ in nights], [b for _, b in nights]
    london = simulate(pid, on, off, n_participants=1, start=start, end=start + 4 * 86400, tz="Europe/London")
    utc = simulate(pid, on, off, n_participants=1, start=start, end=start + 4 * 86400, tz="UTC")
    # S and W depend only on elapsed time: identical, no jump at the change
    np.testing.assert_array_equal(london.s, utc.s)
    np.testing.assert_array_equal(london.w, utc.w)
    # C and U use the local wall clock (zoneinfo per element here, as the independent check)
    zone = ZoneInfo("Europe/London")
    wall = [datetime.fromtimestamp(int(t), tz=zone) for t in london.time]
    expected_hour = np.asarray([d.hour + d.minute / 60 for d in wall])
    np.testing.assert_allclose(london.clock_hour, expected_hour, atol=1e-12)
    np.testing.assert_allclose(london.c[0], circadian(expected_hour), atol=1e-12)
    k = int(np.searchsorted(london.time, ts(change_utc)))
    step = (london.clock_hour[k] - london.clock_hour[k - 1] + 12) % 24 - 12
    assert step == pytest.approx(5 / 60 + jump_h)
    # within runs S moves by at most one 5-min step of the closed forms (< 0.07)
    ds = np.abs(np.diff(london.s[0]))
    same_run = london.awake[0, 1:] == london.awake[0, :-1]
    assert ds[same_run].max() < 0.07


def test_offsets_and_local_to_utc_roundtrip() -> None:
    t = np.arange(ts("2024-01-01"), ts("2025-01-01"), 3 * H, dtype=np.int64)
    zone = ZoneInfo("Europe/London")
    expected = [int(datetime.fromtimestamp(int(x), tz=zone).utcoffset().total_seconds())  # type: ignore[union-attr]
                for x in t]
    np.testing.assert_array_equal(utc_offsets(t), expected)
    unambiguous = utc_offsets(t) == utc_offsets(t - 2 * H)  # wall times in the repeated October hour excluded
    np.testing.assert_array_equal(local_to_utc(t + utc_offsets(t))[unambiguous], t[unambiguous])
    assert local_clock_hours(np.asarray([ts("2024-07-01 12:34")]))[0] == pytest.approx(13 + 34 / 60)
    assert datetime.fromtimestamp(int(local_to_utc(np.asarray([ts("2024-07-01 23:00")]))[0]), tz=UTC).hour == 22
