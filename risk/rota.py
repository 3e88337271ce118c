"""Rota-level view of predicted sleepiness: where in the roster pattern sleepiness occurs, not who is sleepy.

A block of night shifts makes predicted sleepiness (TPM KSS, science.md 4.1) high for everybody who works it; that
is a property of the rota, so programme-v2 no longer turns it red per officer (F1 changelog) and shows it here
instead, per *roster position*: the shift type and the duty's ordinal inside its run (night 1, night 2, ... of a
block; day 1, 2, ... of a run of duties). For each position the table gives the number of duties, the share of
duties with at least the F1 amber minutes at KSS >= 7 and at least the F1 red minutes at KSS >= 8, and the median
peak KSS. Positions with fewer than ``min_officers`` distinct officers are suppressed (small cells could single
out an officer: the manager sees patterns, not people).

Pure: takes a frame, returns a frame. :func:`rota_block` renders the table with
``risk/templates/rota_sleepiness.html.j2`` for inclusion in the manager report.
"""

from __future__ import annotations

from importlib import resources

import jinja2
import numpy as np
import pandas as pd

from risk.programme import Programme

__all__ = ["ROTA_COLUMNS", "rota_block", "rota_sleepiness"]

ROTA_COLUMNS = ("shift_type", "position", "n_duties", "n_officers", "share_kss7_pct", "share_kss8_pct",
                "median_peak_kss")
_MAX_POSITION = 7  # ordinals above this are pooled as "7+"


def rota_sleepiness(duties: pd.DataFrame, programme: Programme, min_officers: int = 3) -> pd.DataFrame:
    """Predicted sleepiness per roster position.

    Parameters
    ----------
    duties : DataFrame
        One row per duty with ``participant_id``, ``shift_type``, ``consecutive_nights``,
        ``consecutive_duty_days`` (``derived.duty_features``) and ``minutes_kss_ge7``, ``minutes_kss_ge8``
        (minutes), ``peak_kss`` (``derived.duty_exposure``; NaN where not computable: those duties are skipped).
    programme : Programme
        F1 thresholds (minutes at KSS >= 7 for amber, >= 8 for red).
    min_officers : int
        Positions worked by fewer distinct officers are dropped.

    Returns
    -------
    DataFrame
        :data:`ROTA_COLUMNS`, ordered by shift type and position; shares in percent.
    """
    thr = programme.thresholds["F1"]
    red_min = thr.red if thr.red is not None else thr.amber
    d = duties[np.isfinite(duties["minutes_kss_ge7"].to_numpy(np.float64, na_value=np.nan))]
    if d.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ROTA_COLUMNS})
    night = d["consecutive_nights"].fillna(0).to_numpy(np.int64)
    ordinal = np.where(night > 0, night, d["consecutive_duty_days"].fillna(1).to_numpy(np.int64))
    kind = np.where(night > 0, "night", "day")
    pos = np.minimum(ordinal, _MAX_POSITION)
    label = np.char.add(np.char.add(kind.astype(str), " "), pos.astype(str))
    label = np.where(ordinal >= _MAX_POSITION, np.char.add(label, "+"), label)
    frame = pd.DataFrame({
        "shift_type": d["shift_type"].astype(str).to_numpy(), "position": label, "rank": pos,
        "pid": d["participant_id"].astype(str).to_numpy(),
        "a": d["minutes_kss_ge7"].to_numpy(np.float64) >= thr.amber,
        "r": d["minutes_kss_ge8"].to_numpy(np.float64, na_value=0.0) >= red_min,
        "peak": d["peak_kss"].to_numpy(np.float64, na_value=np.nan) if "peak_kss" in d else np.nan})
    g = frame.groupby(["shift_type", "position"], sort=True)
    out = pd.DataFrame({"n_duties": g.size(), "n_officers": g["pid"].nunique(),
                        "share_kss7_pct": 100.0 * g["a"].mean(), "share_kss8_pct": 100.0 * g["r"].mean(),
                        "median_peak_kss": g["peak"].median(), "rank": g["rank"].first()}).reset_index()
    out = out[out["n_officers"] >= min_officers].sort_values(["shift_type", "rank", "position"])
    return out[list(ROTA_COLUMNS)].reset_index(drop=True)


def rota_block(table: pd.DataFrame, programme: Programme) -> str:
    """HTML block (``rota_sleepiness.html.j2``) of a :func:`rota_sleepiness` table for the manager report."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    text = resources.files("risk").joinpath("templates/rota_sleepiness.html.j2").read_text(encoding="utf-8")
    thr = programme.thresholds["F1"]
    return env.from_string(text).render(rows=table.to_dict("records"), amber_min=thr.amber,
                                        red_min=thr.red if thr.red is not None else thr.amber)
