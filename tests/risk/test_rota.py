"""Rota-level predicted sleepiness: per roster position, small cells suppressed, rendered as a block."""

from __future__ import annotations

import numpy as np
import pandas as pd

from risk.programme import load_programme
from risk.rota import ROTA_COLUMNS, rota_block, rota_sleepiness

PROG = load_programme()


def _duties() -> pd.DataFrame:
    rows = []
    for officer in range(4):
        for night in (1, 2, 3):  # KSS rises over the block for everybody
            rows.append({"participant_id": f"o{officer}", "shift_type": "night", "consecutive_nights": night,
                         "consecutive_duty_days": night, "minutes_kss_ge7": [0.0, 30.0, 90.0][night - 1],
                         "minutes_kss_ge8": [0.0, 0.0, 70.0 if officer < 2 else 10.0][night - 1],
                         "peak_kss": 5.0 + night})
        rows.append({"participant_id": f"o{officer}", "shift_type": "early", "consecutive_nights": 0,
                     "consecutive_duty_days": 1, "minutes_kss_ge7": np.nan, "minutes_kss_ge8": np.nan,
                     "peak_kss": np.nan})  # warm-up: no model output, skipped
    rows.append({"participant_id": "lonely", "shift_type": "late", "consecutive_nights": 0,
                 "consecutive_duty_days": 2, "minutes_kss_ge7": 200.0, "minutes_kss_ge8": 200.0, "peak_kss": 9.0})
    return pd.DataFrame(rows)


def test_rota_table_is_per_position_and_suppresses_small_cells() -> None:
    t = rota_sleepiness(_duties(), PROG)
    assert tuple(t.columns) == ROTA_COLUMNS
    assert t["position"].tolist() == ["night 1", "night 2", "night 3"]  # the single 'late' officer is hidden
    assert t["share_kss7_pct"].tolist() == [0.0, 0.0, 100.0] and t["share_kss8_pct"].tolist() == [0.0, 0.0, 50.0]
    assert t["n_officers"].tolist() == [4, 4, 4] and t["median_peak_kss"].tolist() == [6.0, 7.0, 8.0]
    assert "participant_id" not in t.columns


def test_rota_block_renders_and_handles_an_empty_week() -> None:
    html = rota_block(rota_sleepiness(_duties(), PROG), PROG)
    assert "night 3" in html and "100 %" in html and "o1" not in html
    empty = rota_block(rota_sleepiness(_duties().iloc[:0], PROG), PROG)
    assert "No duties with model output" in empty
