"""Ground truth as pandas frames: participants, participant-days, duties, surveys, faults and messages.

Truth for validation (issue 14): per officer ``at_risk`` and ``habitual_tst_h``; per day the true sleep
(``tst_min``, ``main_se_pct``); per duty the true time awake at its end (``true_time_awake_h``, from the true
sleep episodes of >= 30 min, science 5) and the true predicted sleepiness (``true_minutes_kss_ge7`` /
``true_minutes_kss_ge8`` / ``true_peak_kss``: the three-process model of :mod:`models.exposure` driven by the
true sleep, no device faults, same warm-up).

Times are UTC ``datetime64[ns, UTC]``; ``sleep_date`` is the local (Europe/London) date on which an episode
ends. Column names follow the shared frames of docs/developing.md where a quantity is the same
(``tst_min``, ``main_tst_min``, ``nap_min``, ``rmssd_ms``, ``resting_hr_bpm``, ``quick_return`` ...).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.roster import time_awake_at
from models.exposure import duty_exposure
from simulators.cohort import AGE_BANDS, SEXES
from simulators.model import Simulation
from simulators.params import MALFORMED_REASONS, PATTERNS, ROLE_GROUPS
from simulators.schedule import KINDS
from simulators.sleep import DAY_KINDS

__all__ = ["TRUTH_TABLES", "truth_frames", "uuid_strings"]

TRUTH_TABLES = ("participants", "days", "duties", "surveys", "faults", "messages")


def _utc(s: npt.ArrayLike) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(s, dtype=np.int64), unit="s", utc=True)


def _participants(sim: Simulation) -> pd.DataFrame:
    c = sim.cohort
    return pd.DataFrame({
        "force_id": c.force, "staff_ref": c.staff_ref,
        "role_group": np.array(ROLE_GROUPS)[c.role], "roster_pattern": np.array(PATTERNS)[c.pattern],
        "age_band": np.array(AGE_BANDS)[c.age_band], "sex": np.array(SEXES)[c.sex],
        "chronotype_h": c.chronotype_h, "sleep_need_h": c.sleep_need_h,
        "rhr_baseline_bpm": c.rhr_bpm, "rmssd_baseline_ms": np.exp(c.ln_rmssd), "ln_rmssd_baseline": c.ln_rmssd,
        "gateway_id": c.gateway_id, "device_a": c.device_a, "device_b": c.device_b,
        "swap_day": c.swap_day, "drift_ppm_a": sim.faults.drift_ppm[:, 0], "drift_ppm_b": sim.faults.drift_ppm[:, 1],
        "at_risk": c.at_risk, "habitual_tst_h": c.habitual_tst_h,
    })


def _day_sums(sim: Simulation, values: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    ep, shape = sim.episodes, sim.nightly.tst_h.shape
    ok = mask & (ep.day >= 0) & (ep.day < shape[1])
    flat = ep.participant[ok] * shape[1] + ep.day[ok]
    sums = np.bincount(flat, weights=values[ok], minlength=shape[0] * shape[1]).astype(np.float64)
    return sums.reshape(shape)


def _days(sim: Simulation) -> pd.DataFrame:
    ep, nt, params = sim.episodes, sim.nightly, sim.params
    n, days = nt.tst_h.shape
    p, d = np.divmod(np.arange(n * days), days)
    main_idx = np.full(n * days, -1)
    okm = ep.main & (ep.day >= 0) & (ep.day < days)
    main_idx[ep.participant[okm] * days + ep.day[okm]] = np.flatnonzero(okm)
    deficit = sim.cohort.sleep_need_h[:, None] - nt.tst_h
    d7 = np.maximum(pd.DataFrame(deficit.T).rolling(7, min_periods=1).sum().to_numpy().T, 0.0)
    worn_min = sim.faults.worn[:, : days * 1440].reshape(n, days, 1440).sum(axis=2)
    dates = pd.date_range(params.start_date, periods=days, freq="D").date
    return pd.DataFrame({
        "staff_ref": np.array(sim.cohort.staff_ref)[p], "sleep_date": dates[d], "programme_day": d + 1,
        "day_kind": np.array(DAY_KINDS)[ep.day_kind.ravel()],
        "on_duty": sim.roster.on_duty.ravel(),
        "tst_min": nt.tst_h.ravel() * 60.0,
        "main_tst_min": np.where(main_idx >= 0, ep.tst_min[main_idx], np.nan),
        "main_se_pct": np.where(main_idx >= 0, 100.0 * ep.tst_min[main_idx]
                                / np.maximum((ep.end_s[main_idx] - ep.onset_s[main_idx]) / 60.0, 1.0), np.nan),
        "nap_min": _day_sums(sim, ep.tst_min, ~ep.main).ravel(),
        "n_episodes": _day_sums(sim, np.ones(ep.n), np.ones(ep.n, bool)).ravel().astype(np.int64),
        "main_onset": _utc(np.where(main_idx >= 0, ep.onset_s[main_idx], 0)),
        "main_end": _utc(np.where(main_idx >= 0, ep.end_s[main_idx], 0)),
        "sleep_need_h": np.repeat(sim.cohort.sleep_need_h, days),
        "debt_ew_h": nt.debt_ew_h.ravel(), "debt_net_7d_h": d7.ravel(),
        "ln_rmssd": nt.ln_rmssd.ravel(), "rmssd_target_ms": np.exp(nt.ln_rmssd.ravel()),
        "rmssd_ms": sim.rr.clean_rmssd_ms.ravel(), "resting_hr_bpm": nt.rhr_bpm.ravel(),
        "wear_h_utc_day": worn_min.ravel() / 60.0,
    })


def _duties(sim: Simulation) -> pd.DataFrame:
    f = sim.duties
    p = np.asarray(f["participant"], dtype=np.int64)
    out = pd.DataFrame({"staff_ref": np.array(sim.cohort.staff_ref)[p],
                        "roster_pattern": np.array(PATTERNS)[sim.cohort.pattern[p]],
                        "start_ts": _utc(f["start_s"]), "end_ts": _utc(f["end_s"])})
    for col in ("shift_type", "overtime", "length_h", "rest_gap_h", "quick_return", "long_shift", "night",
                "early_start"):
        out[col] = f[col]
    ep = sim.episodes
    long_enough = (ep.end_s - ep.onset_s) >= 30 * 60
    end_s = np.asarray(f["end_s"], dtype=np.int64)
    out["true_time_awake_h"] = time_awake_at(p, end_s, ep.participant[long_enough], ep.end_s[long_enough])
    exp = duty_exposure(p, np.asarray(f["start_s"], dtype=np.int64), end_s, ep.participant, ep.onset_s, ep.end_s,
                        n_participants=sim.cohort.n, start=sim.clock.t0_s // 300 * 300,
                        end=max(int(end_s.max(initial=0)), sim.clock.t0_s + 300))
    out["true_minutes_kss_ge7"], out["true_minutes_kss_ge8"] = exp.minutes_kss_ge7, exp.minutes_kss_ge8
    out["true_peak_kss"] = exp.peak_kss
    return out.rename(columns={"night": "night_duty"})


def _surveys(sim: Simulation) -> pd.DataFrame:
    a = sim.answers
    return pd.DataFrame({"staff_ref": np.array(sim.cohort.staff_ref)[a.participant], "t": _utc(a.t_s),
                         "context": a.context, "kss_true": a.kss_true, "kss": a.kss,
                         "samn_perelli": a.samn_perelli, "time_awake_h": a.time_awake_h})


def _faults(sim: Simulation) -> pd.DataFrame:
    rows = []
    for kind, (p, s, e) in sim.faults.intervals.items():
        rows.append(pd.DataFrame({"kind": kind, "staff_ref": np.array(sim.cohort.staff_ref, dtype=object)[p],
                                  "start_ts": _utc(sim.clock.t0_s + s * 60), "end_ts": _utc(sim.clock.t0_s + e * 60)}))
    return pd.concat(rows, ignore_index=True)


def uuid_strings(raw: npt.NDArray[np.uint8]) -> npt.NDArray[np.str_]:
    """Hyphenated version-4 UUID text of each row of 16 random bytes (as :func:`uuid.UUID` would print)."""
    b = raw.copy()
    b[:, 6] = (b[:, 6] & 0x0F) | 0x40
    b[:, 8] = (b[:, 8] & 0x3F) | 0x80
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    hexed = np.stack([digits[b >> 4], digits[b & 0x0F]], axis=2).reshape(b.shape[0], 32)
    text = np.full((b.shape[0], 36), ord("-"), dtype=np.uint8)
    text[:, [i for i in range(36) if i not in (8, 13, 18, 23)]] = hexed
    return np.ascontiguousarray(text).view("S36").ravel().astype(str)


def _messages(sim: Simulation) -> pd.DataFrame:
    t, c = sim.table, sim.cohort
    swap_s = sim.clock.t0_s + c.swap_day * 86400
    has_b = np.array([bool(b) for b in c.device_b])
    slot_b = has_b[t.participant] & (t.data_s >= swap_s[t.participant])
    dev = np.where(slot_b, np.array(c.device_b)[t.participant], np.array(c.device_a)[t.participant])
    stream = np.array([k if k != "offline" else "status" for k in KINDS])[t.kind]
    return pd.DataFrame({
        "index": np.arange(t.n), "publish_ms": t.publish_ms, "sent_at_ms": t.sent_at_ms,
        "gateway_id": np.array(c.gateway_id)[t.participant], "device_id": dev, "stream": stream,
        "kind": np.array(KINDS)[t.kind],
        "msg_id": uuid_strings(t.msg_id),
        "duplicate": t.duplicate, "delayed": t.delayed, "backlog": t.backlog,
        "reason": np.array(("", *MALFORMED_REASONS))[t.reason + 1],
    })


def truth_frames(sim: Simulation, tables: tuple[str, ...] = TRUTH_TABLES) -> dict[str, pd.DataFrame]:
    """Ground-truth tables (all by default), keyed by the names in :data:`TRUTH_TABLES`."""
    build = {"participants": _participants, "days": _days, "duties": _duties, "surveys": _surveys,
             "faults": _faults, "messages": _messages}
    return {name: build[name](sim) for name in tables}
