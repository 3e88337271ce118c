"""Parameters of the seeded cohort simulator, with defaults from science.md section 7.

Every figure that drives the simulation lives here so that tests can state tolerances against the same
numbers. Defaults marked [ENG] are engineering assumptions, not published police distributions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

__all__ = ["FORCES", "MALFORMED_REASONS", "PATTERNS", "ROLE_GROUPS", "FaultRates", "SimParams"]

ROLE_GROUPS: tuple[str, ...] = ("response", "firearms", "investigation", "contact_management")
FORCES: tuple[str, ...] = ("MERSEY", "WMIDS", "SURREY", "CLEVELAND", "NOTTS")
#: Roster patterns, indexes used in :mod:`simulators.roster`.
PATTERNS: tuple[str, ...] = ("2-2-2", "4on4off", "vsa5", "office")
#: Reason codes of the malformed messages the simulator injects (reliability_security.md section 5).
MALFORMED_REASONS: tuple[str, ...] = (
    "malformed_json",
    "non_finite_number",
    "schema_violation",
    "ts_invalid",
    "ts_unit",
    "too_many_samples",
    "topic_mismatch",
    "duplicate_key",
    "empty_payload",
)


@dataclass(frozen=True)
class FaultRates:
    """Device, gateway and transport fault rates.

    Attributes
    ----------
    nonwear_per_day : float
        Poisson rate of short non-wear gaps (30-180 min, daytime) per participant-day.
    long_nonwear_per_day : float
        Rate of multi-day non-wear gaps (1-3 days, watch left at home) per participant-day.
    flat_battery_per_day : float
        Rate of flat-battery gaps (6-36 h, no data and no status) per participant-day.
    gateway_offline_per_day : float
        Rate of gateway outages (1-4 days, backlog flushed on recovery) per participant-day.
    duplicate : float
        Share of messages published twice (identical bytes).
    out_of_order : float
        Share of messages delayed by 5 min to 6 h so they arrive after later ones.
    drift_ppm_sd : float
        SD of the per-device clock drift (parts per million) between daily resynchronisations (20 ppm is
        1.7 s a day); each device also has a fixed offset ~ N(0, 1.5 s).
    malformed : float
        Malformed messages injected per good message; at least one of each reason code when > 0.
    """

    nonwear_per_day: float = 0.3
    long_nonwear_per_day: float = 1 / 60
    flat_battery_per_day: float = 1 / 40
    gateway_offline_per_day: float = 1 / 60
    duplicate: float = 0.005
    out_of_order: float = 0.005
    drift_ppm_sd: float = 20.0
    malformed: float = 0.0005

    @staticmethod
    def none() -> FaultRates:
        """No faults at all (clean data for model tests)."""
        return FaultRates(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    @staticmethod
    def heavy() -> FaultRates:
        """Three times the default device and gateway fault rates (stress level for validation) [ENG]."""
        d = FaultRates()
        return FaultRates(3 * d.nonwear_per_day, 3 * d.long_nonwear_per_day, 3 * d.flat_battery_per_day,
                          3 * d.gateway_offline_per_day, d.duplicate, d.out_of_order, d.drift_ppm_sd, d.malformed)

    @staticmethod
    def preset(name: str) -> FaultRates:
        """``"none"``, ``"default"`` or ``"heavy"`` (the ``--faults`` choices)."""
        presets = {"none": FaultRates.none, "default": FaultRates, "heavy": FaultRates.heavy}
        if name not in presets:
            raise ValueError(f"faults must be one of {sorted(presets)}, got {name!r}")
        return presets[name]()


@dataclass(frozen=True)
class SimParams:
    """What to simulate.

    Attributes
    ----------
    n_participants : int
        Cohort size.
    n_days : int
        Programme length in days (science.md 6.1: 120).
    start_date : datetime.date
        Local (Europe/London) programme start; no wall-clock is ever read.
    seed : int
        Seed of the NumPy generator; one seed gives byte-identical output.
    rmssd_median_ms, rmssd_ln_sd : float
        Per-officer mean nightly RMSSD ~ LogNormal(median 50 ms, ln-SD 0.35) [ENG, science.md 7].
    rmssd_within_cv : float
        Within-officer nightly lnRMSSD SD as a share of mean lnRMSSD (0.054, Bellenger 2022).
    rhr_mean_bpm, rhr_sd_bpm, rhr_within_sd_bpm : float
        Per-officer RHR ~ N(58, 7^2); within-officer daily SD 3 bpm [ENG, science.md 7].
    tst_work_h, tst_work_sd_h : float
        TST before a work day ~ N(6.2, 1.0^2) h (Third Pillar of Health, 6 h 11 min).
    free_day_extra_h : float
        Extra sleep on free days (+1.0 h).
    tst_after_night_h, tst_after_night_sd_h : float
        Day sleep after a night shift ~ N(5.5, 1.2^2) h.
    quick_return_penalty_h : float
        Sleep lost before a quick return (1.0 h, Oster et al. 2024).
    se_mean_pct, se_sd_pct : float
        Sleep efficiency ~ N(88, 5^2) % clipped to [60, 99].
    debt_half_life_d : float
        Half-life of the exponentially weighted debt (4 d, science.md 2.3).
    rmssd_per_debt_h : float
        Drop of nightly lnRMSSD per hour of exponentially weighted debt [ENG].
    rhr_per_debt_h : float
        Rise of nightly RHR (bpm) per hour of exponentially weighted debt [ENG].
    rr_every_min, rr_window_min : int
        RR sampling during main sleep: a window of ``rr_window_min`` minutes every ``rr_every_min``
        minutes; ``rr_every_min == rr_window_min`` records the whole night.
    hr_batch_min : int
        Minutes of heart rate per ``hr`` message (<= 3600 samples).
    p_survey : float
        Probability that a KSS answer is given at a shift start or end.
    p_at_risk : float
        Share of officers in the at-risk subgroup: 40.4 % screened positive for at least one sleep disorder
        (Rajaratnam et al. 2011 JAMA 306:2567, n = 4,957 North American officers; OSA 33.6 %, insomnia 6.5 %,
        shift-work disorder 5.4 %). See docs/simulator.md.
    habitual_sd_h : float
        SD of the per-officer habitual sleep effect added to every main sleep (h) [ENG: between-person SD of
        habitual TST ~ 0.5-0.7 h in actigraphy cohorts].
    at_risk_tst_h, at_risk_se_pct : float
        Mean TST shift (h) and sleep-efficiency shift (points) of the at-risk subgroup [ENG: insomnia and OSA
        shorten and fragment sleep]; the others get the opposite TST shift scaled so the cohort mean is
        unchanged (the 6 h 11 min police figure still holds for the cohort).
    faults : FaultRates
        Device and transport faults.
    """

    n_participants: int = 100
    n_days: int = 120
    start_date: date = date(2025, 3, 3)
    seed: int = 0
    rmssd_median_ms: float = 50.0
    rmssd_ln_sd: float = 0.35
    rmssd_within_cv: float = 0.054
    rhr_mean_bpm: float = 58.0
    rhr_sd_bpm: float = 7.0
    rhr_within_sd_bpm: float = 3.0
    tst_work_h: float = 6.2
    tst_work_sd_h: float = 1.0
    free_day_extra_h: float = 1.0
    tst_after_night_h: float = 5.5
    tst_after_night_sd_h: float = 1.2
    quick_return_penalty_h: float = 1.0
    se_mean_pct: float = 88.0
    se_sd_pct: float = 5.0
    debt_half_life_d: float = 4.0
    rmssd_per_debt_h: float = 0.02
    rhr_per_debt_h: float = 0.4
    rr_every_min: int = 60
    rr_window_min: int = 5
    hr_batch_min: int = 60
    p_survey: float = 0.6
    p_at_risk: float = 0.404
    habitual_sd_h: float = 0.4
    at_risk_tst_h: float = -1.2
    at_risk_se_pct: float = -8.0
    faults: FaultRates = field(default_factory=FaultRates)

    def __post_init__(self) -> None:
        if self.n_participants < 1 or self.n_days < 2:
            raise ValueError("need at least one participant and two days")
        if not 1 <= self.hr_batch_min <= 60 * 24:
            raise ValueError("hr_batch_min must be 1..1440")
        if not 1 <= self.rr_window_min <= self.rr_every_min:
            raise ValueError("need 1 <= rr_window_min <= rr_every_min")
        if self.rr_window_min > 30:
            raise ValueError("rr_window_min above 30 could exceed 3600 beats per message")
