"""Programme parameters the feature kernels need, taken from the programme file (one source of truth).

The feature job receives a :class:`FeatureParams` built from the force's programme (``risk.programme``) instead
of constants beside the kernels: days computed, population sleep need, and the calibration window (first
``calib_days`` days, extended day by day up to ``max_calib_days`` until ``calib_min_nights`` valid nights).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_FEATURE_PARAMS", "FeatureParams"]


@dataclass(frozen=True)
class FeatureParams:
    """Programme-driven parameters of the feature job (defaults = programme-v1/v2 values)."""

    n_days: int = 120
    need_pop_h: float = 8.0
    calib_days: int = 14
    max_calib_days: int = 28
    calib_min_nights: int = 10

    @classmethod
    def of(cls, programme: Any) -> FeatureParams:
        """From a :class:`risk.programme.Programme` (``days``, ``need_pop_h``, ``phases``)."""
        ph = programme.phases
        return cls(n_days=int(programme.days), need_pop_h=float(programme.need_pop_h),
                   calib_days=int(ph.calibration_last_day), max_calib_days=int(ph.extension_last_day),
                   calib_min_nights=int(ph.calibration_min_valid_nights))


DEFAULT_FEATURE_PARAMS = FeatureParams()
