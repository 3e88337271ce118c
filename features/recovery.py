"""Open recovery score 0-100 and its contributors, over participant x day arrays (science 3.5, TV-R1).

::

    z_h = clip((lnRMSSD_night - mu_ln) / max(sigma_ln, 0.05), -3, 3)
    z_r = clip(-(RHR_night - mu_rhr) / max(sigma_rhr, 1.0), -3, 3)
    z_s = clip((min(SP, 1.2) - mu_sp) / max(sigma_sp, 0.05), -3, 3)      SP = TST_day / Need_d
    Z   = 0.4 z_h + 0.3 z_r + 0.3 z_s          (weights renormalised over available components)
    R   = 100 Phi(Z / s_Z)                      s_Z = SD of Z over baseline nights (>= 14), else 0.6

Bands (WHOOP edges): green ``>= 67``, amber 34-66, red ``<= 33``. The score is displayed daily but is not a
weekly flag criterion (science 6.4).

References
----------
Biostrap, "Summary algorithm" (biostrap.com/academy/summary-algorithm): RHR and HRV vs rolling baselines plus
sleep. WHOOP, "WHOOP Recovery" (support.whoop.com): 0-100 %, bands 67/34.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

from features.baseline import BASELINE_MIN_NIGHTS, personal_baseline, window_stats, z_score

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]
Bool = npt.NDArray[np.bool_]

WEIGHTS = (0.4, 0.3, 0.3)
"""Weights of z_HRV, z_RHR, z_sleep (science 3.5 [ENG])."""
Z_CLIP = 3.0
SD_FLOOR_LN = 0.05
"""Floor of the lnRMSSD baseline SD (ln ms)."""
SD_FLOOR_RHR = 1.0
"""Floor of the RHR baseline SD (bpm)."""
SD_FLOOR_SP = 0.05
"""Floor of the sleep-performance baseline SD (ratio)."""
SP_CAP = 1.2
"""Sleep performance ratio is capped at 1.2 before scoring."""
S_Z_DEFAULT = 0.6
"""Default composite SD, about ``sqrt(0.4^2 + 0.3^2 + 0.3^2)``."""
GREEN_MIN = 67
RED_MAX = 33
BAND_MISSING, BAND_RED, BAND_AMBER, BAND_GREEN = -1, 0, 1, 2


@dataclass(frozen=True, slots=True)
class Recovery:
    """Recovery score and contributors (same shape as the inputs).

    Attributes
    ----------
    score : numpy.ndarray of float64
        ``R`` in [0, 100]; NaN when no component is available.
    band : numpy.ndarray of int8
        `BAND_RED`, `BAND_AMBER`, `BAND_GREEN` or `BAND_MISSING`.
    z_hrv, z_rhr, z_sleep : numpy.ndarray of float64
        Clipped component z-scores (NaN when missing).
    composite : numpy.ndarray of float64
        ``Z``.
    n_components : numpy.ndarray of int64
        Available components (0-3); ``partial = n_components < 3``.
    """

    score: F64
    band: I8
    z_hrv: F64
    z_rhr: F64
    z_sleep: F64
    composite: F64
    n_components: I64

    @property
    def partial(self) -> Bool:
        """True where at least one component is missing (weights were renormalised)."""
        return self.n_components < len(WEIGHTS)


def recovery_band(score: npt.ArrayLike) -> I8:
    """WHOOP-style band of a score: green ``>= 67``, red ``<= 33``, amber between.

    The edges are integers (WHOOP displays integer %), so the band is taken on the score rounded half up:
    red below 33.5, green from 66.5 [ENG]. NaN gives `BAND_MISSING`.

    Parameters
    ----------
    score : array_like
        Recovery score (0-100).

    Returns
    -------
    numpy.ndarray of int8
    """
    s = np.floor(np.asarray(score, dtype=np.float64) + 0.5)
    band = np.where(s >= GREEN_MIN, BAND_GREEN, np.where(s <= RED_MAX, BAND_RED, BAND_AMBER))
    return np.where(np.isnan(s), BAND_MISSING, band).astype(np.int8)


def recovery_score(ln_rmssd: npt.ArrayLike, rhr_bpm: npt.ArrayLike, sleep_perf: npt.ArrayLike,
                   hrv_mean: npt.ArrayLike, hrv_sd: npt.ArrayLike, rhr_mean: npt.ArrayLike,
                   rhr_sd: npt.ArrayLike, sp_mean: npt.ArrayLike, sp_sd: npt.ArrayLike,
                   s_z: npt.ArrayLike = S_Z_DEFAULT) -> Recovery:
    """Open recovery score ``R = 100 Phi(Z / s_Z)`` from nightly values and given baselines (science 3.5).

    A missing component (NaN value or baseline) is dropped and the remaining weights renormalised to sum 1;
    ``s_Z`` is kept (a NaN ``s_Z`` means 0.6). A night exactly at baseline gives ``R = 50``.

    Parameters
    ----------
    ln_rmssd : array_like
        Nightly ``lnRMSSD`` (ln ms).
    rhr_bpm : array_like
        Nightly resting HR (bpm).
    sleep_perf : array_like
        Sleep performance ratio ``TST_day / Need_d`` (uncapped; capped at 1.2 here).
    hrv_mean, hrv_sd, rhr_mean, rhr_sd, sp_mean, sp_sd : array_like
        Baseline means and SDs of the three inputs (SDs floored at 0.05, 1 bpm and 0.05).
    s_z : array_like
        SD of ``Z`` over baseline nights, or 0.6.

    Returns
    -------
    Recovery
        All arrays broadcast to a common shape.
    """
    z_h = np.clip(z_score(ln_rmssd, hrv_mean, hrv_sd, SD_FLOOR_LN), -Z_CLIP, Z_CLIP)
    z_r = np.clip(-z_score(rhr_bpm, rhr_mean, rhr_sd, SD_FLOOR_RHR), -Z_CLIP, Z_CLIP)
    sp = np.minimum(np.asarray(sleep_perf, dtype=np.float64), SP_CAP)
    z_s = np.clip(z_score(sp, sp_mean, sp_sd, SD_FLOOR_SP), -Z_CLIP, Z_CLIP)
    z_h, z_r, z_s = np.broadcast_arrays(z_h, z_r, z_s)
    big_z, n = composite(z_h, z_r, z_s)
    sz = np.asarray(s_z, dtype=np.float64)
    sz = np.where(np.isfinite(sz) & (sz > 0), sz, S_Z_DEFAULT)
    score = 100.0 * ndtr(big_z / sz)
    return Recovery(score, recovery_band(score), z_h.copy(), z_r.copy(), z_s.copy(), big_z, n)


def composite(z_hrv: F64, z_rhr: F64, z_sleep: F64) -> tuple[F64, I64]:
    """``Z = sum(w_i z_i) / sum(w_i)`` over the available (finite) components, and their number.

    Parameters
    ----------
    z_hrv, z_rhr, z_sleep : numpy.ndarray of float64
        Component z-scores of equal shape.

    Returns
    -------
    composite : numpy.ndarray of float64
        NaN when no component is available.
    n_components : numpy.ndarray of int64
    """
    z = np.stack((z_hrv, z_rhr, z_sleep))
    w = np.asarray(WEIGHTS).reshape((3,) + (1,) * z_hrv.ndim)
    ok = np.isfinite(z)
    wsum = np.sum(np.where(ok, w, 0.0), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        big_z = np.sum(np.where(ok, w * z, 0.0), axis=0) / wsum
    return np.where(wsum > 0, big_z, np.nan), ok.sum(axis=0).astype(np.int64)


def daily_recovery(ln_rmssd: npt.ArrayLike, rhr_bpm: npt.ArrayLike, sleep_perf: npt.ArrayLike) -> Recovery:
    """Recovery score per participant x day with personal baselines computed here (science 3.4-3.5).

    Baselines of ``ln_rmssd``, ``rhr_bpm`` and ``min(SP, 1.2)`` come from `features.baseline.personal_baseline`
    (days ``[max(1, d-60), d-7]``, >= 14 nights, else calibration). ``s_Z(d)`` is the SD (ddof 1) of the
    composite ``Z`` of the rolling-baseline nights of ``d`` when there are >= 14 of them, else 0.6.
    Using the capped SP for the sleep baseline is a choice made here (science 3.5 does not say) so that the
    baseline and the night are on the same scale.

    Parameters
    ----------
    ln_rmssd, rhr_bpm, sleep_perf : array_like, shape (n_participants, n_days)
        Nightly values, NaN for invalid nights.

    Returns
    -------
    Recovery
    """
    sp = np.minimum(np.atleast_2d(np.asarray(sleep_perf, dtype=np.float64)), SP_CAP)
    bh, br, bs = (personal_baseline(v) for v in (ln_rmssd, rhr_bpm, sp))
    first = recovery_score(ln_rmssd, rhr_bpm, sp, bh.mean, bh.sd, br.mean, br.sd, bs.mean, bs.sd)
    zs = window_stats(first.composite, 60, 7)
    s_z = np.where(zs.n >= BASELINE_MIN_NIGHTS, zs.sd, S_Z_DEFAULT)
    return recovery_score(ln_rmssd, rhr_bpm, sp, bh.mean, bh.sd, br.mean, br.sd, bs.mean, bs.sd, s_z)
