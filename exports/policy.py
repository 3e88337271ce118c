"""The research export policy (reliability_security.md 1.9, "Proposed default export policy, v1") as data.

The policy is plain data: thresholds, the allowed values of every generalised quasi-identifier and the
columns each released table may hold. Both the anonymiser and the independent checker read it; neither
takes code from the other (the checker re-derives every rule from the files and this policy).

Summary of v1
-------------
- Pseudonyms: ``pid = base32(HMAC-SHA-256(K_project, participant_uuid.bytes)[:16])`` without padding
  (26 characters ``A-Z2-7``); ``K_project`` is derived from the master key, the project name and the key
  version (:mod:`exports.pseudonym`).
- Dates: no calendar date leaves. Days are the programme (study) day index 1..n since enrolment, weeks are
  programme weeks, plus the local weekday (0 = Monday). This is the "study-day index with no calendar date"
  option of 1.9; it implies a per-participant shift by a whole number of weeks that keeps the weekday.
  Local clock times are rounded to 15 min.
- Quasi-identifiers: force (keyed code, size group or dropped), role group, 10-year age band (50+ top-coded),
  sex; k >= 10 on their combination; at most 5 % of eligible participants suppressed.
- Aggregates: counts 1-9 suppressed, other counts rounded to the nearest 5, one-cell secondary suppression
  against the row total, means and SDs only when n >= 10.
- Time (issue 15): no column or combination gives how long ago an officer enrolled. ``n_days`` is not
  released. Each participant's rows stop at a *horizon band* (``weeks_band``: 4, 8, 12 or 17 programme weeks,
  the largest band not above the weeks completed at the export date), so the last programme day no longer
  equals the export date minus the start. Participants with fewer than 4 completed weeks are held back until
  the next export. ``weeks_band`` is a quasi-identifier (counted in k-anonymity); the last generalisation
  levels give everyone the common (smallest) band. Every time-derived column is listed in
  :attr:`ExportPolicy.time_derived` and the checker counts it.
- Package (issue 15): record-level tables and the aggregate table may share a package because the aggregates
  are computed over the released participants only and the checker recomputes every flag count from
  ``weekly_flags`` and ``participants`` (rule ``package_consistency``): the aggregates add nothing the records do
  not. Their small-cell rules protect an aggregate table released on its own. Across exports of one project
  the checker compares with what the ledger says was released before (rule ``cross_export``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["POLICY_V1", "ExportPolicy", "ExportRefusedError"]

#: Columns of the released daily-feature table (shared names of derived.daily_features, with sleep_date,
#: computed_at and participant_id replaced by pid, programme_week and weekday).
DAILY_RELEASED: tuple[str, ...] = (
    "pid", "programme_day", "programme_week", "weekday", "valid_sleep_day", "wear_h", "n_episodes",
    "tib_min", "tst_min", "main_tst_min", "nap_min", "se_pct", "sol_min", "waso_min", "awakenings",
    "midpoint_local_h", "sleep_need_h", "debt_net_7d_h", "debt_gross_7d_h", "debt_carry_h",
    "sleep_performance_pct", "sri_14d", "sleep_consistency", "valid_hrv_night", "rmssd_ms", "ln_rmssd",
    "sdnn_ms", "pnn50_pct", "hrv_source", "resting_hr_bpm", "rhr_source", "hrv_baseline_mean",
    "hrv_baseline_sd", "rhr_baseline_mean", "recovery_score", "algorithm_version",
)

PARTICIPANTS_RELEASED: tuple[str, ...] = ("pid", "force_group", "role_group", "age_band", "sex", "weeks_band")

FLAGS_RELEASED: tuple[str, ...] = ("pid", "programme_week", "overall_level", "criteria")

#: Count measures of the aggregate table (all subject to small-cell suppression and rounding).
AGGREGATE_COUNTS: tuple[str, ...] = (
    "n_participants", "n_participant_days", "n_tst", "n_se", "n_rhr", "n_rmssd",
    "n_flagged", "n_green", "n_amber", "n_red", "n_insufficient_data",
)
#: Mean/SD measures of the aggregate table and the count that must reach ``min_n_statistic``.
AGGREGATE_STATISTICS: dict[str, str] = {
    "mean_tst_min": "n_tst", "sd_tst_min": "n_tst", "mean_se_pct": "n_se",
    "mean_resting_hr_bpm": "n_rhr", "mean_rmssd_ms": "n_rmssd",
}
#: Row totals and their components (secondary suppression: never exactly one hidden cell per group).
AGGREGATE_TOTALS: dict[str, tuple[str, ...]] = {
    "n_flagged": ("n_green", "n_amber", "n_red", "n_insufficient_data"),
}
AGGREGATE_KEYS: tuple[str, ...] = ("programme_week", "role_group")


@dataclass(frozen=True)
class ExportPolicy:
    """Thresholds and allowed values of one export policy version.

    Attributes
    ----------
    version : str
        Recorded in the privacy report and the ledger.
    k : int
        Minimum size of every equivalence class on :attr:`quasi_identifiers` (k-anonymity).
    max_suppressed_fraction : float
        Largest fraction of eligible participants that may be suppressed to reach ``k``.
    small_cell_max : int
        Aggregate counts ``1..small_cell_max`` are suppressed.
    rounding_base : int
        Other aggregate counts are rounded to a multiple of this.
    min_n_statistic : int
        Means and SDs are shown only when their count is at least this.
    clock_round_h : float
        Local clock times (``midpoint_local_h``) are rounded to this many hours (15 min).
    horizon_weeks : tuple of int
        Allowed ``weeks_band`` values; rows after a participant's band are not released.
    """

    version: str = "export-policy-v1"
    k: int = 10
    max_suppressed_fraction: float = 0.05
    small_cell_max: int = 9
    rounding_base: int = 5
    min_n_statistic: int = 10
    clock_round_h: float = 0.25
    quasi_identifiers: tuple[str, ...] = ("force_group", "role_group", "age_band", "sex", "weeks_band")
    #: Released columns derived from enrolment or time (all are quasi-identifiers above).
    time_derived: tuple[str, ...] = ("weeks_band",)
    #: Horizon bands (programme weeks); 17 is the length of programme v1 (risk/programme_v1.toml).
    horizon_weeks: tuple[int, ...] = (4, 8, 12, 17)
    age_bands: frozenset[str] = frozenset({"18-29", "30-39", "40-49", "50+", "18-39", "40+", "all"})
    role_groups: frozenset[str] = frozenset({"response", "investigation", "specialist_other", "all"})
    sexes: frozenset[str] = frozenset({"female", "male", "not_stated"})
    force_size_groups: frozenset[str] = frozenset({"small", "medium", "large", "all"})
    flag_levels: frozenset[str] = frozenset({"green", "amber", "red", "insufficient_data"})
    criterion_levels: frozenset[str] = frozenset({"not_evaluated", "green", "amber", "red"})
    sources: frozenset[str] = frozenset({"rr", "device"})
    #: Columns each released table may hold (file stem -> columns).
    released_columns: dict[str, tuple[str, ...]] = field(default_factory=lambda: {
        "participants": PARTICIPANTS_RELEASED,
        "daily_features": DAILY_RELEASED,
        "weekly_flags": FLAGS_RELEASED,
        "aggregates": (*AGGREGATE_KEYS, *AGGREGATE_COUNTS, *AGGREGATE_STATISTICS),
    })
    #: Released columns that must hold whole numbers (granularity: HR to 1 bpm, RMSSD and SDNN to 1 ms).
    integer_valued: tuple[str, ...] = ("resting_hr_bpm", "rmssd_ms", "sdnn_ms")


POLICY_V1 = ExportPolicy()


class ExportRefusedError(RuntimeError):
    """An export rule failed; nothing was released. ``rule`` names the rule (e.g. ``"k_anonymity"``)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"export refused by rule '{rule}': {message}")
        self.rule = rule
