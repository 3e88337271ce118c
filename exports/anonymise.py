"""Quasi-identifier generalisation to k-anonymity, and the record-level transforms of the released tables.

Generalisation ladder (reliability_security.md 1.6, 1.9). Each level is tried in order; the first level at
which the participants in equivalence classes smaller than ``k`` are at most ``max_suppressed_fraction`` of the
eligible participants is used, and those participants are suppressed (removed from every table). If no level
gets there the export is refused (rule ``k_anonymity``).

=====  ===============================  ===============  ====================  ===========
level  force_group                      role_group       age_band              sex
=====  ===============================  ===============  ====================  ===========
0      keyed force code (only when       3 groups         10-year, 50+          F/M/not
       every force has >= k)
1      size group small/medium/large    3 groups         10-year, 50+          F/M/not
2      all                              3 groups         10-year, 50+          F/M/not
3      all                              3 groups         18-39 / 40+           F/M/not
4      all                              all              18-39 / 40+           F/M/not
5      all                              all              all                   F/M/not
=====  ===============================  ===============  ====================  ===========

Every level also carries ``weeks_band`` (the participant's horizon band, see :func:`horizon_band`); levels 6-9
repeat levels 2-5 with everyone's band set to the smallest band present (one common horizon), so the band
never blocks an export that the other quasi-identifiers allow.

Role groups: ``response``; ``investigation``; ``specialist_other`` (firearms, contact management, other).
Force size groups count the force's eligible participants: small < 25, medium 25-74, large >= 75.
Sex values other than female/male are merged into ``not_stated``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from exports.daily_read import SOURCE_CODES, DailyChunk
from exports.policy import DAILY_RELEASED, ExportPolicy, ExportRefusedError
from exports.pseudonym import force_code

__all__ = ["Generalised", "daily_batch", "flags_table", "generalise", "horizon_band"]

_SMALL_FORCE, _LARGE_FORCE = 25, 75
_ROLE3 = {"response": "response", "investigation": "investigation", "firearms": "specialist_other",
          "contact_management": "specialist_other", "other": "specialist_other"}
#: Rounding of released daily features: column -> decimals (granularity rule of 1.9).
DAILY_DECIMALS: dict[str, int] = {
    "wear_h": 1, "tib_min": 0, "tst_min": 0, "main_tst_min": 0, "nap_min": 0, "se_pct": 1, "sol_min": 0,
    "waso_min": 0, "awakenings": 0, "sleep_need_h": 2, "debt_net_7d_h": 2, "debt_gross_7d_h": 2,
    "debt_carry_h": 2, "sleep_performance_pct": 1, "sri_14d": 1, "sleep_consistency": 2, "rmssd_ms": 0,
    "sdnn_ms": 0, "pnn50_pct": 1, "resting_hr_bpm": 0, "hrv_baseline_mean": 2, "hrv_baseline_sd": 2,
    "rhr_baseline_mean": 1, "recovery_score": 0,
}


@dataclass(frozen=True)
class Generalised:
    """Released participants after generalisation and suppression.

    Attributes
    ----------
    table : pandas.DataFrame
        ``participant_id`` (internal, never written), ``pid`` and the generalised quasi-identifiers.
    level : int
        Ladder level used (see module docstring).
    eligible : int
        Participants eligible before suppression.
    suppressed : int
        Participants removed because their class stayed below ``k``.
    k_achieved : int
        Smallest equivalence class among released participants (0 when none are released).
    """

    table: pd.DataFrame
    level: int
    eligible: int
    suppressed: int
    k_achieved: int


def _age10(band: pd.Series) -> pd.Series:
    lo = band.str.slice(0, 2).astype(int)
    decade = (lo // 10) * 10
    out = decade.astype(str) + "-" + (decade + 9).astype(str)
    out = out.where(lo >= 30, "18-29")
    return out.where(lo < 50, "50+")


def _age2(band: pd.Series) -> pd.Series:
    lo = band.str.slice(0, 2).astype(int)
    return pd.Series(np.where(lo < 40, "18-39", "40+"), index=band.index)


def _force_size(force: pd.Series) -> pd.Series:
    size = force.map(force.value_counts())
    return pd.Series(np.select([size < _SMALL_FORCE, size < _LARGE_FORCE], ["small", "medium"], "large"),
                     index=force.index)


def horizon_band(weeks_done: np.ndarray[Any, Any], bands: Sequence[int]) -> np.ndarray[Any, Any]:
    """The largest band (programme weeks) not above each participant's completed weeks; 0 below the smallest.

    Parameters
    ----------
    weeks_done : numpy.ndarray of int
        Whole programme weeks completed at the export date.
    bands : sequence of int
        Increasing horizon bands (:attr:`exports.policy.ExportPolicy.horizon_weeks`).
    """
    b = np.asarray(bands, dtype=np.int64)
    idx = np.searchsorted(b, np.asarray(weeks_done, dtype=np.int64), side="right") - 1
    return np.where(idx >= 0, b[np.clip(idx, 0, None)], 0)


def _ladder(people: pd.DataFrame, key: bytes, k: int) -> list[dict[str, pd.Series]]:
    """Candidate QI columns per level, least generalised first (``people`` has ``weeks_band``)."""
    role3 = people["role_group"].map(_ROLE3)
    age10, age2 = _age10(people["age_band"]), _age2(people["age_band"])
    sex = people["sex"].where(people["sex"].isin(["female", "male"]), "not_stated")
    every = pd.Series("all", index=people.index)
    levels: list[dict[str, pd.Series]] = []
    codes = {f: force_code(key, f) for f in people["force_id"].unique()}
    levels.append({"force_group": people["force_id"].map(codes), "role_group": role3, "age_band": age10,
                   "sex": sex})
    levels.append({"force_group": _force_size(people["force_id"]), "role_group": role3, "age_band": age10,
                   "sex": sex})
    levels.append({"force_group": every, "role_group": role3, "age_band": age10, "sex": sex})
    levels.append({"force_group": every, "role_group": role3, "age_band": age2, "sex": sex})
    levels.append({"force_group": every, "role_group": every, "age_band": age2, "sex": sex})
    levels.append({"force_group": every, "role_group": every, "age_band": every, "sex": sex})
    band = people["weeks_band"].astype("int64")
    common = pd.Series(int(band.min()) if len(band) else 0, index=people.index)
    return [*({**lv, "weeks_band": band} for lv in levels), *({**lv, "weeks_band": common} for lv in levels[2:])]


def generalise(people: pd.DataFrame, pids: np.ndarray[Any, Any], key: bytes,
               policy: ExportPolicy) -> Generalised:
    """Generalise the quasi-identifiers of eligible participants until every class holds ``k`` or more.

    Parameters
    ----------
    people : pandas.DataFrame
        One row per eligible participant: ``participant_id, force_id, role_group, age_band, sex, weeks_band``
        (participants below the smallest band are held back by the caller before this).
    pids : numpy.ndarray
        Pseudonyms in the same order.
    key : bytes
        Per-project key (for keyed force codes).
    policy : ExportPolicy
        ``k`` and ``max_suppressed_fraction``.

    Returns
    -------
    Generalised

    Raises
    ------
    ExportRefusedError
        Rule ``k_anonymity`` when every level would suppress more than the allowed fraction.
    """
    n = len(people)
    allowed = int(np.floor(policy.max_suppressed_fraction * n))
    force_ok = bool((people["force_id"].value_counts() >= policy.k).all())
    best = n
    for level, qis in enumerate(_ladder(people, key, policy.k)):
        if level == 0 and not force_ok:
            continue
        frame = pd.DataFrame(qis)
        size = frame.groupby(list(frame.columns), sort=False)["sex"].transform("size").to_numpy()
        small = size < policy.k
        best = min(best, int(small.sum()))
        if small.sum() <= allowed:
            keep = ~small
            table = frame.loc[keep].assign(participant_id=people["participant_id"].to_numpy()[keep],
                                           pid=pids[keep])
            k_ach = int(size[keep].min()) if keep.any() else 0
            return Generalised(table.reset_index(drop=True), level, n, int(small.sum()), k_ach)
    raise ExportRefusedError("k_anonymity", f"every generalisation level leaves classes below k={policy.k}; the best "
                                       f"would suppress {best} of {n} participants (limit {allowed}, "
                                       f"{policy.max_suppressed_fraction:.0%})")


def _to_arrow(values: np.ndarray[Any, Any]) -> pa.Array:
    """Float array with NaN as null."""
    return pa.array(values, mask=np.isnan(values))


def _decode(codes: np.ndarray[Any, Any], values: Sequence[str]) -> pa.Array:
    """1-based codes (0 = null) as strings."""
    return pa.array(list(values), pa.string()).take(pa.array(codes.astype(np.int32) - 1, mask=codes == 0))


def daily_batch(chunk: DailyChunk, released: pa.Array, is_released: np.ndarray[Any, Any],
                policy: ExportPolicy, horizon_days: np.ndarray[Any, Any] | None = None
                ) -> tuple[pa.Table, dict[str, np.ndarray[Any, Any]]]:
    """Anonymise one chunk of ``derived.daily_features`` rows (see :mod:`exports.daily_read`).

    ``chunk.columns["pidx"]`` indexes ``released`` (each eligible participant's pseudonym, null when
    suppressed) and ``is_released``; suppressed participants' rows are dropped and ``pidx`` becomes ``pid``.
    Rows after a participant's horizon (``horizon_days[pidx]``, programme days) are dropped too.
    ``sleep_date`` becomes ``programme_week`` and the local ``weekday`` (0 = Monday); clock times are rounded to
    ``policy.clock_round_h``; durations, HR and HRV are rounded (:data:`DAILY_DECIMALS`, half to even);
    ``ln_rmssd`` is recomputed from the rounded RMSSD.

    Returns
    -------
    table : pyarrow.Table
        The released rows, columns :data:`exports.policy.DAILY_RELEASED`.
    numeric : dict of str to numpy.ndarray
        ``pidx``, ``programme_week``, ``valid_sleep_day`` and the rounded values (NaN = missing) of the kept
        rows, for the aggregate table.
    """
    src = chunk.columns
    keep = is_released[src["pidx"]]
    if horizon_days is not None:
        keep = keep & (src["programme_day"].astype(np.int64) <= horizon_days[src["pidx"]])
    col = {name: values[keep] for name, values in src.items()}
    day = col["programme_day"].astype(np.int64)
    num: dict[str, np.ndarray[Any, Any]] = {"pidx": col["pidx"], "programme_week": (day - 1) // 7 + 1,
                                            "valid_sleep_day": col["valid_sleep_day"]}
    step = 1.0 / policy.clock_round_h
    mid = np.round(col["midpoint_local_h"].astype(np.float64) * step) / step
    num["midpoint_local_h"] = np.where(mid >= 24.0, mid - 24.0, mid)
    for name, decimals in DAILY_DECIMALS.items():
        num[name] = np.round(col[name].astype(np.float64), decimals)
    with np.errstate(divide="ignore", invalid="ignore"):
        num["ln_rmssd"] = np.round(np.log(np.where(num["rmssd_ms"] > 0, num["rmssd_ms"], np.nan)), 3)
    out: dict[str, Any] = {
        "pid": released.take(pa.array(col["pidx"])), "programme_day": pa.array(day),
        "programme_week": pa.array(num["programme_week"]),
        "weekday": pa.array((col["sleep_date"].astype(np.int64) + 3) % 7),  # 1970-01-01 was a Thursday (3)
        "valid_sleep_day": pa.array(col["valid_sleep_day"]), "valid_hrv_night": pa.array(col["valid_hrv_night"]),
        "n_episodes": pa.array(col["n_episodes"].astype(np.int64)),
        "hrv_source": _decode(col["hrv_source"], SOURCE_CODES), "rhr_source": _decode(col["rhr_source"], SOURCE_CODES),
        "algorithm_version": _decode(col["algorithm_version"], chunk.versions),
    }
    for name in DAILY_RELEASED:
        if name not in out:
            out[name] = _to_arrow(num[name])
    return pa.table({name: out[name] for name in DAILY_RELEASED}), num


def flags_table(flags: pd.DataFrame, id_to_pid: Callable[[pd.Series], pd.Series]) -> pd.DataFrame:
    """Released weekly flags: ``pid, programme_week, overall_level, criteria``.

    ``criteria`` keeps only each criterion's level (``{"H1": "amber", ...}`` as JSON): the stored values and the
    generated reason text are not released (free text never leaves).
    """
    pid = id_to_pid(flags["participant_id"].astype(str))
    keep = pid.notna().to_numpy()
    crit = flags.loc[keep, "criteria"].map(_criteria_levels)
    return pd.DataFrame({"pid": pid[keep].to_numpy(), "programme_week": flags.loc[keep, "programme_week"]
                         .astype("int64").to_numpy(), "overall_level": flags.loc[keep, "overall_level"]
                         .astype(str).to_numpy(), "criteria": crit.to_numpy()})


def _criteria_levels(raw: Any) -> str:
    data = json.loads(raw) if isinstance(raw, str) else (raw or {})
    levels = {str(code): str(v.get("level")) for code, v in sorted(data.items()) if isinstance(v, dict)}
    return json.dumps(levels, sort_keys=True)
