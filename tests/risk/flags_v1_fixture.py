"""Builds the stored-feature fixture of the programme-v1 reproduction test (tests/data/flags_v1/).

Run once with the evaluator that issued programme-v1 flags (commit a02a0bc) to regenerate:
``.venv/bin/python -m tests.risk.flags_v1_fixture``. The frames are random but cover every criterion, missing
values, weeks without duties, calibration weeks and H1 escalation; rows are sorted by (row, day / duty).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "data" / "flags_v1"
CRITERIA = ("S1", "S2", "S3", "S4", "H1", "R1", "W1", "W2", "W3", "W4", "F1")


def frames(seed: int = 20261202, people: int = 30, weeks: int = 17) -> tuple[pd.DataFrame, ...]:
    """Cohort, daily, duty and exposure frames (``row``-keyed, as the flag job reads them)."""
    rng = np.random.default_rng(seed)
    n = people * weeks
    cohort = pd.DataFrame({"participant_id": np.repeat([f"p{i:03d}" for i in range(people)], weeks),
                           "programme_week": np.tile(np.arange(1, weeks + 1), people)})
    cohort["roster_present"] = rng.random(n) < 0.85
    cohort["prev_h1_below"] = rng.random(n) < 0.2
    row = np.repeat(np.arange(n), 7)
    day = np.tile(np.arange(1, 8), n) + 7 * (cohort["programme_week"].to_numpy()[row] - 1)
    k = row.size
    mu = rng.normal(3.9, 0.3, people)[np.arange(n) // weeks][row]
    daily = pd.DataFrame({
        "row": row, "programme_day": day, "valid_sleep_day": rng.random(k) < 0.8,
        "tst_min": np.where(rng.random(k) < 0.1, np.nan, rng.normal(400, 70, k)),
        "se_pct": np.where(rng.random(k) < 0.1, np.nan, rng.normal(86, 7, k)),
        "debt_net_7d_h": np.where(rng.random(k) < 0.2, np.nan, rng.gamma(2.0, 3.5, k)),
        "sri_14d": np.where(rng.random(k) < 0.3, np.nan, rng.normal(76, 8, k)),
        "valid_hrv_night": rng.random(k) < 0.75, "ln_rmssd": rng.normal(mu - 0.05, 0.25, k),
        "resting_hr_bpm": rng.normal(58, 4, k), "hrv_baseline_mean": np.where(day > 14, mu, np.nan),
        "hrv_baseline_sd": np.where(day > 14, 0.2, np.nan),
        "rhr_baseline_mean": np.where(day > 14, 56.0, np.nan)})
    n_duty = rng.integers(0, 6, n) * cohort["roster_present"].to_numpy()
    drow = np.repeat(np.arange(n), n_duty)
    m = drow.size
    duties = pd.DataFrame({
        "row": drow, "quick_return": rng.random(m) < 0.1, "long_shift": rng.random(m) < 0.08,
        "consecutive_nights": rng.choice([0, 0, 1, 2, 3, 4, 5], m),
        "time_awake_end_h": np.where(rng.random(m) < 0.1, np.nan, rng.normal(13, 4, m))})
    exposure = pd.DataFrame({
        "row": drow, "minutes_kss_ge7": np.where(rng.random(m) < 0.05, np.nan, rng.choice([0, 0, 30, 65, 120], m)),
        "minutes_kss_ge8": rng.choice([0, 0, 0, 20, 70], m).astype(float), "estimated": rng.random(m) < 0.1})
    return cohort, daily, duties, exposure


def main() -> None:
    from risk.evaluate import weekly_flags
    from risk.programme import load_programme

    cohort, daily, duties, exposure = frames()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, frame in (("cohort", cohort), ("daily", daily), ("duties", duties), ("exposure", exposure)):
        frame.to_csv(OUT / f"{name}.csv", index=False)
        back = pd.read_csv(OUT / f"{name}.csv")
        pd.testing.assert_frame_equal(back, frame, check_dtype=False, check_exact=True)
    v1 = Path(__file__).resolve().parents[2] / "risk" / "programme_v1.toml"
    flags = weekly_flags(cohort, daily, duties, exposure, load_programme(v1))
    issued = {"overall": flags.overall.tolist(),
              "levels": {c: flags.levels[c].tolist() for c in CRITERIA},
              "why": {c: flags.why[c].tolist() for c in CRITERIA},
              "values_hex": {c: [float(v).hex() for v in flags.values[c]] for c in CRITERIA}}
    (OUT / "issued_flags.json").write_text(json.dumps(issued), encoding="utf-8")


if __name__ == "__main__":
    main()
