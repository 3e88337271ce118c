"""Seeded cohort: officers across forces and role groups with personal sleep and physiology parameters.

Distributions follow science.md section 7 ("Simulator defaults proposed" [ENG]): per-officer mean nightly
RMSSD ~ LogNormal(median 50 ms, ln-SD 0.35); RHR ~ N(58, 7^2) bpm; UK officers aged 41 +/- 7 (Sharma et al.
2023). Firearms officers get slightly higher HRV and lower RHR (direction from Cox et al. 2024 abstract).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulators.params import FORCES, PATTERNS, ROLE_GROUPS, SimParams

__all__ = ["AGE_BANDS", "PATTERN_BY_ROLE", "SEXES", "Cohort", "make_cohort"]

AGE_BANDS: tuple[str, ...] = ("18-24", "25-29", "30-34", "35-39", "40-44", "45-49", "50-54", "55+")
SEXES: tuple[str, ...] = ("male", "female", "other", "not_stated")
_SEX_P = np.array([0.64, 0.34, 0.01, 0.01])
_ROLE_P = np.array([0.45, 0.15, 0.25, 0.15])
#: P(pattern | role): rows follow ROLE_GROUPS, columns follow PATTERNS [ENG].
PATTERN_BY_ROLE = np.array([
    [0.40, 0.30, 0.30, 0.00],  # response
    [0.00, 0.60, 0.40, 0.00],  # firearms
    [0.00, 0.00, 0.40, 0.60],  # investigation
    [0.50, 0.50, 0.00, 0.00],  # contact_management
])
_P_DEVICE_SWAP = 0.1
F = npt.NDArray[np.float64]
IntArr = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Cohort:
    """Whole-cohort arrays, one entry per participant (index ``p``).

    Attributes
    ----------
    force, staff_ref, gateway_id, device_a, device_b : tuple of str
        Identifiers; ``device_b`` is ``""`` when the participant keeps one device.
    role, age_band, sex, pattern : ndarray of int
        Indexes into ROLE_GROUPS, AGE_BANDS, SEXES and PATTERNS.
    age_y : ndarray of float
        Age in years.
    swap_day : ndarray of int
        Programme day from which ``device_b`` is worn (``n_days`` when no swap).
    roster_phase : ndarray of int
        Offset into the roster cycle.
    chronotype_h : ndarray of float
        Shift of the preferred sleep midpoint (h, positive = later).
    sleep_need_h : ndarray of float
        Personal sleep need (h).
    rhr_bpm : ndarray of float
        Baseline nightly resting heart rate (bpm).
    ln_rmssd : ndarray of float
        Baseline mean nightly ln RMSSD (ln ms).
    consent_manager, consent_research : ndarray of bool
        Consents written to ``participants.csv``.
    at_risk : ndarray of bool
        In the at-risk subgroup (screens positive for a sleep disorder, ``SimParams.p_at_risk``).
    habitual_tst_h : ndarray of float
        Per-officer habitual sleep effect (h) added to every main sleep.
    se_shift_pct : ndarray of float
        Per-officer sleep-efficiency shift (points; the at-risk shift, else 0).
    """

    force: tuple[str, ...]
    staff_ref: tuple[str, ...]
    gateway_id: tuple[str, ...]
    device_a: tuple[str, ...]
    device_b: tuple[str, ...]
    role: IntArr
    age_band: IntArr
    sex: IntArr
    pattern: IntArr
    age_y: F
    swap_day: IntArr
    roster_phase: IntArr
    chronotype_h: F
    sleep_need_h: F
    rhr_bpm: F
    ln_rmssd: F
    consent_manager: npt.NDArray[np.bool_]
    consent_research: npt.NDArray[np.bool_]
    at_risk: npt.NDArray[np.bool_]
    habitual_tst_h: F
    se_shift_pct: F

    @property
    def n(self) -> int:
        """Number of participants."""
        return int(self.role.size)


def _choice_rows(rng: np.random.Generator, probs: npt.NDArray[np.float64]) -> IntArr:
    """One category per row of a probability matrix (inverse-CDF, vectorised)."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random((probs.shape[0], 1))
    out: IntArr = np.minimum((u > cdf).sum(axis=1), probs.shape[1] - 1).astype(np.int64)
    return out


def _age_band(age: F) -> IntArr:
    edges = np.array([25, 30, 35, 40, 45, 50, 55])
    return np.searchsorted(edges, age, side="right").astype(np.int64)


def make_cohort(params: SimParams, rng: np.random.Generator) -> Cohort:
    """Draw a cohort of ``params.n_participants`` officers.

    Parameters
    ----------
    params : SimParams
        Cohort size, programme length and physiology distributions.
    rng : numpy.random.Generator
        Seeded generator (consumed in a fixed order).

    Returns
    -------
    Cohort
    """
    n = params.n_participants
    role = rng.choice(len(ROLE_GROUPS), size=n, p=_ROLE_P).astype(np.int64)
    sex = rng.choice(len(SEXES), size=n, p=_SEX_P).astype(np.int64)
    age = np.clip(rng.normal(41.0, 7.0, n), 19.0, 64.0)
    pattern = _choice_rows(rng, PATTERN_BY_ROLE[role])
    firearms = role == ROLE_GROUPS.index("firearms")
    female = sex == SEXES.index("female")
    rhr = rng.normal(params.rhr_mean_bpm, params.rhr_sd_bpm, n) - 2.0 * firearms + 3.0 * female
    ln_rmssd = (np.log(params.rmssd_median_ms) + params.rmssd_ln_sd * rng.standard_normal(n)
                + 0.10 * firearms - 0.015 * (age - 41.0))
    swap = rng.random(n) < _P_DEVICE_SWAP
    swap_day = np.where(swap, rng.integers(params.n_days // 4, max(params.n_days // 4 + 1, 3 * params.n_days // 4),
                                           n), params.n_days)
    ids = [f"{p:05d}" for p in range(n)]
    traits: list[F] = []  # filled last, inside the call below, so that every earlier draw is unchanged
    return Cohort(
        force=tuple(FORCES[i] for i in rng.integers(0, len(FORCES), n)),
        staff_ref=tuple(f"PC{p + 1:04d}" for p in range(n)),
        gateway_id=tuple(f"GW{i}" for i in ids),
        device_a=tuple(f"WR{i}A" for i in ids),
        device_b=tuple(f"WR{i}B" if s else "" for i, s in zip(ids, swap, strict=True)),
        role=role, age_band=_age_band(age), sex=sex, pattern=pattern, age_y=age,
        swap_day=swap_day.astype(np.int64),
        roster_phase=rng.integers(0, 35, n).astype(np.int64),
        chronotype_h=np.clip(rng.normal(0.0, 0.8, n), -2.0, 2.5),
        sleep_need_h=np.clip(rng.normal(7.9, 0.5, n), 6.8, 9.2),
        rhr_bpm=np.clip(rhr, 40.0, 90.0),
        ln_rmssd=np.clip(ln_rmssd, np.log(15.0), np.log(180.0)),
        consent_manager=rng.random(n) < 0.9,
        consent_research=rng.random(n) < 0.95,
        at_risk=_sleep_traits(params, rng, n, traits),
        habitual_tst_h=traits[0],
        se_shift_pct=traits[1],
    )



def _sleep_traits(params: SimParams, rng: np.random.Generator, n: int, out: list[F]) -> npt.NDArray[np.bool_]:
    """At-risk label; appends the habitual sleep effect (h) and sleep-efficiency shift (points) to ``out``.

    The at-risk shift ``at_risk_tst_h`` is balanced by ``-at_risk_tst_h * p / (1 - p)`` for the others so that
    the cohort mean TST is unchanged (science.md 7: 6 h 11 min before work days).
    """
    p = params.p_at_risk
    at_risk = rng.random(n) < p
    other = -params.at_risk_tst_h * p / (1.0 - p) if p < 1.0 else 0.0
    habitual = np.where(at_risk, params.at_risk_tst_h, other) + params.habitual_sd_h * rng.standard_normal(n)
    out.extend((habitual, np.where(at_risk, params.at_risk_se_pct, 0.0)))
    return at_risk


assert len(PATTERNS) == PATTERN_BY_ROLE.shape[1]
