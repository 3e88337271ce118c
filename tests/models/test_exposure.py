"""Duty exposure: window statistics, TV-T4, gap filling with roster-predicted sleep, warm-up, batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.exposure import MODEL_VERSION, DutyExposure, duty_exposure, fill_sleep_gaps, kss_exposure
from models.three_process import simulate

H = 3600
DAY = 86400
FIPS_C = Path(__file__).resolve().parents[1] / "data" / "fips" / "fips_C.csv"


def ldn(text: str) -> int:
    return int(pd.Timestamp(text, tz="Europe/London").timestamp())


def utc(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").timestamp())


def test_tv_t4_exposure_of_a_night_duty_from_fips_trajectory() -> None:
    ref = pd.read_csv(FIPS_C)
    kss = ref["KSS"].to_numpy()[None, :]
    n7, n8, peak, to7 = kss_exposure(kss, utc("2018-05-01 07:00"), [0], [utc("2018-05-01 23:00")],
                                     [utc("2018-05-02 07:00")])
    assert n7[0] == 480.0  # 96 epochs
    assert n8[0] == 445.0  # 89 epochs = 7.42 h
    assert peak[0] == pytest.approx(9.459661, abs=1e-6)
    assert to7[0] == 0.0


def test_window_statistics_against_direct_slices() -> None:
    rng = np.random.default_rng(3)
    kss = rng.uniform(4.0, 9.5, size=(3, 200))
    grid = utc("2024-01-01 00:00")
    rows = np.asarray([0, 2, 1, 2, 2])
    a = grid + np.asarray([0, 17, 3000, 190 * 300 + 1, 100 * 300])
    b = grid + np.asarray([300 * 200, 17 + 40 * 300, 3000, 250 * 300, 100 * 300 + 299])
    n7, n8, peak, to7 = kss_exposure(kss, grid, rows, a, b)
    for i in range(rows.size):
        k0 = -(-(a[i] - grid) // 300)
        k1 = min(200, -(-(b[i] - grid) // 300))
        window = kss[rows[i], k0:max(k0, k1)]
        assert n7[i] == 5.0 * np.count_nonzero(window >= 7)
        assert n8[i] == 5.0 * np.count_nonzero(window >= 8)
        if window.size:
            assert peak[i] == window.max()
        else:
            assert np.isnan(peak[i])
        hits = np.flatnonzero(window >= 7)
        expected = (grid + (k0 + hits[0]) * 300 - a[i]) / 60 if hits.size else np.nan
        np.testing.assert_equal(to7[i], expected)


def regular_nights(p: int, first: str, days: int, skip: tuple[int, ...] = ()) -> list[tuple[int, int, int]]:
    """23:00 -> 07:00 local sleep for ``days`` nights, skipping night indices in ``skip``."""
    base = ldn(first)
    return [(p, base + d * DAY + 23 * H, base + d * DAY + 31 * H) for d in range(days) if d not in skip]


def as_arrays(rows: list[tuple[int, int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arr = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    return arr[:, 0], arr[:, 1], arr[:, 2]


def test_gap_filling_rule_rest_day_night_duty_and_early_start() -> None:
    # measured sleep on nights 0-9 and 16-20 (2024-06-03 ...); gap of 6 nights between
    sleep = regular_nights(0, "2024-06-03", 21, skip=(10, 11, 12, 13, 14, 15))
    duties = [
        (0, ldn("2024-06-14 22:00"), ldn("2024-06-15 07:00")),  # night duty -> 08:00-14:00 day sleep on 15th
        (0, ldn("2024-06-17 06:30"), ldn("2024-06-17 15:00")),  # early start in measured time (no fill)
        (0, ldn("2024-06-16 06:00"), ldn("2024-06-16 14:00")),  # early start in the gap -> 21:30-05:00
    ]
    filled = fill_sleep_gaps(*as_arrays(sleep), *as_arrays(duties), n_participants=1, start=ldn("2024-06-03 12:00"),
                             end=ldn("2024-06-24 12:00"))
    predicted = {(int(a), int(b)) for a, b, f in zip(filled.start, filled.end, filled.predicted, strict=True) if f}
    assert (ldn("2024-06-13 23:00"), ldn("2024-06-14 07:00")) in predicted  # rest-day night
    assert (ldn("2024-06-15 08:00"), ldn("2024-06-15 14:00")) in predicted  # after the night duty
    assert (ldn("2024-06-15 21:30"), ldn("2024-06-16 05:00")) in predicted  # 7.5 h ending 1 h before 06:00
    assert not any(a < ldn("2024-06-15 07:00") and b > ldn("2024-06-14 22:00") for a, b in predicted)
    assert all(ldn("2024-06-13 07:00") <= a and b <= ldn("2024-06-19 23:00") for a, b in predicted)
    assert int(filled.predicted.sum()) == len(predicted) == 6
    assert filled.gap_participant.tolist() == [0]
    assert (filled.gap_start[0], filled.gap_end[0]) == (ldn("2024-06-13 07:00"), ldn("2024-06-19 23:00"))


def test_duty_exposure_marks_estimated_and_warmup() -> None:
    sleep = regular_nights(0, "2024-06-01", 30, skip=(15, 16, 17)) + regular_nights(1, "2024-06-01", 30)
    duties = [(p, ldn(f"2024-06-{d:02d} 09:00"), ldn(f"2024-06-{d:02d} 17:00")) for p in (0, 1) for d in
              (3, 10, 17, 20, 25)]
    out = duty_exposure(*as_arrays(duties), *as_arrays(sleep), n_participants=2, start=ldn("2024-06-01 12:00"))
    assert isinstance(out, DutyExposure) and out.model_version == MODEL_VERSION
    assert out.warmup.tolist() == [True, False, False, False, False] * 2
    assert np.isnan(out.minutes_kss_ge7[out.warmup]).all() and np.isnan(out.peak_kss[out.warmup]).all()
    # participant 0: nights 15-17 missing (gap 06-16 07:00 -> 06-19 23:00, 64 h > 24 h); 72-h look-back
    assert out.estimated.tolist() == [False, False, True, True, False] + [False] * 5
    reported = ~out.warmup
    assert (out.peak_kss[reported] < 7).all()  # rested day workers: never sleepy on a day duty
    assert (out.minutes_kss_ge7[reported] == 0).all() and np.isnan(out.minutes_to_kss7[reported]).all()


def test_night_duty_without_day_sleep_is_sleepy() -> None:
    sleep = [*regular_nights(0, "2024-06-01", 8), (0, ldn("2024-06-10 08:00"), ldn("2024-06-10 14:00"))]
    sleep += regular_nights(0, "2024-06-10", 3)
    duty = [(0, ldn("2024-06-09 23:00"), ldn("2024-06-10 07:00"))]
    out = duty_exposure(*as_arrays(duty), *as_arrays(sleep), n_participants=1, start=ldn("2024-06-01 12:00"))
    assert not out.warmup[0] and not out.estimated[0]
    # well rested (S ~ 13.8 at 07:00 wake): ~7.8 at 04:00 after 21 h awake (vs 9.46 from S0 = 7.96 in TV-T4)
    assert out.minutes_kss_ge7[0] >= 300 and out.minutes_kss_ge8[0] == 0
    assert 60 < out.minutes_to_kss7[0] < 180 and out.minutes_to_kss7[0] % 5 == 0
    assert 7.5 < out.peak_kss[0] < 8.0


def test_exposure_equals_direct_slicing_of_the_simulation() -> None:
    rng = np.random.default_rng(11)
    n = 4
    sleep = [(p, ldn("2024-09-01") + d * DAY + int(rng.uniform(20, 27) * H),
              0) for p in range(n) for d in range(20) if rng.uniform() > 0.1]
    sleep = [(p, a, a + int(rng.uniform(3, 9) * H)) for p, a, _ in sleep]
    duties = [(p, ldn("2024-09-01") + d * DAY + int(rng.uniform(0, 24) * H), 0) for p in range(n)
              for d in range(6, 19, 3)]
    duties = [(p, a, a + int(rng.uniform(6, 12) * H)) for p, a, _ in duties]
    start, end = ldn("2024-09-01 00:00"), ldn("2024-09-22 00:00")
    out = duty_exposure(*as_arrays(duties), *as_arrays(sleep), n_participants=n, start=start, end=end)
    filled = fill_sleep_gaps(*as_arrays(sleep), *as_arrays(duties), n_participants=n, start=start, end=end)
    sim = simulate(filled.participant, filled.start, filled.end, n_participants=n, start=start, end=end)
    for i, (p, a, b) in enumerate(duties):
        in_duty = (sim.time >= a) & (sim.time < b)
        window = sim.kss[p, in_duty]
        assert out.minutes_kss_ge7[i] == 5 * np.count_nonzero(window >= 7)
        assert out.minutes_kss_ge8[i] == 5 * np.count_nonzero(window >= 8)
        assert out.peak_kss[i] == window.max()


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(1, 5), seed=st.integers(0, 1000))
def test_exposure_does_not_depend_on_batch_size(batch: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 5
    sleep = [(p, ldn("2024-03-20") + d * DAY + int(rng.uniform(21, 26) * H)) for p in range(n) for d in range(14)
             if rng.uniform() > 0.2]
    sleep3 = [(p, a, a + int(rng.uniform(4, 9) * H)) for p, a in sleep]
    duties = [(p, ldn("2024-03-20") + d * DAY + int(rng.uniform(0, 24) * H)) for p in range(n) for d in (5, 9, 12)]
    duties3 = [(p, a, a + 8 * H) for p, a in duties]
    kw = {"n_participants": n, "start": ldn("2024-03-20 00:00")}
    one = duty_exposure(*as_arrays(duties3), *as_arrays(sleep3), batch_size=batch, **kw)  # type: ignore[arg-type]
    all_ = duty_exposure(*as_arrays(duties3), *as_arrays(sleep3), batch_size=250, **kw)  # type: ignore[arg-type]
    for field in ("minutes_kss_ge7", "minutes_kss_ge8", "peak_kss", "minutes_to_kss7", "estimated", "warmup"):
        np.testing.assert_array_equal(getattr(one, field), getattr(all_, field))


def test_short_warmup_is_rejected() -> None:
    with pytest.raises(ValueError, match="warmup_days"):
        duty_exposure([0], [0], [H], [], [], [], n_participants=1, warmup_days=2.0)
