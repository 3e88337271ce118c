"""Pure kernels for storing runs of samples at sample level: new samples only, offsets within storage bounds.

A heart-rate or RR message is stored as *runs* (rows holding a start time and arrays). The key of a run is
``(device_id, start_ts)``, but the identity of a sample is ``(device_id, sample time)``: a gateway that
re-batches (60 samples from T, then 120 samples from T) sends the first 60 samples again inside a run with
the same start. The writer therefore looks up the samples already stored in overlapping runs and keeps only
the new ones (:func:`hr_runs`, :func:`rr_runs`). A run built from new samples starts at a new sample's time,
and every stored run starts at a stored sample's time (heart rate) or at the end of a stored beat's
predecessor (RR), so its key cannot collide with a stored run's key in the heart-rate case; for RR the
writer's ``ON CONFLICT DO NOTHING`` and its written-row count keep a rare collision visible.

Storage bound: ``raw.hr_runs.offsets_ms`` is ``int4[]`` (milliseconds after ``start_ts``), so one row can span
at most :data:`MAX_RUN_SPAN_MS` (24.86 days). Longer heart-rate runs are split into several rows, each
starting at its own first sample; nothing wraps and nothing is rejected (issue 17, point 4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_RUN_SPAN_MS", "HrRun", "RrRun", "hr_runs", "rr_beat_ends", "rr_runs"]

I64 = npt.NDArray[np.int64]
MAX_RUN_SPAN_MS = 2**31 - 1  # largest offset an int4 offsets_ms element holds


@dataclass(frozen=True)
class HrRun:
    """One heart-rate row: start (epoch ms UTC), offsets after it (ms, each < 2**31) and values."""

    start_ms: int
    offsets_ms: I64
    bpm: npt.NDArray[np.int16]
    suspect: npt.NDArray[np.bool_]

    @property
    def end_ms(self) -> int:
        """Exclusive end: one millisecond after the last sample."""
        return self.start_ms + int(self.offsets_ms[-1]) + 1


@dataclass(frozen=True)
class RrRun:
    """One RR row: start (epoch ms UTC, the instant before the first beat) and the intervals (ms)."""

    start_ms: int
    rr_ms: npt.NDArray[np.int16]
    artifact: npt.NDArray[np.bool_]

    @property
    def end_ms(self) -> int:
        """The end of the last beat."""
        return self.start_ms + int(self.rr_ms.sum(dtype=np.int64))


def hr_runs(t_ms: I64, bpm: npt.NDArray[np.int16], suspect: npt.NDArray[np.bool_], stored_ms: I64,
            max_span_ms: int = MAX_RUN_SPAN_MS) -> list[HrRun]:
    """Rows for the heart-rate samples not yet stored.

    Parameters
    ----------
    t_ms, bpm, suspect : ndarray
        The message's samples (sample times in epoch ms UTC, any order, repeats allowed: first wins).
    stored_ms : ndarray of int64
        Sample times (epoch ms UTC) of this device already stored, or earlier in the same batch.
    max_span_ms : int
        Largest offset one row may hold (the storage bound).

    Returns
    -------
    list of HrRun
        Empty when every sample is already stored; several rows when the new samples span more than
        ``max_span_ms``.
    """
    order = np.argsort(t_ms, kind="stable")
    t = t_ms[order]
    keep = np.concatenate([[True], np.diff(t) != 0]) & ~np.isin(t, stored_ms)
    t, b, s = t[keep], bpm[order][keep], suspect[order][keep]
    if t.size == 0:
        return []
    chunk = (t - t[0]) // (max_span_ms + 1)  # fixed-width windows: every offset inside one is < the bound
    cuts = np.flatnonzero(np.diff(chunk)) + 1
    bounds = zip(np.concatenate([[0], cuts]).tolist(), np.concatenate([cuts, [t.size]]).tolist(), strict=True)
    return [HrRun(int(t[a]), t[a:z] - t[a], b[a:z], s[a:z]) for a, z in bounds]


def rr_beat_ends(start_ms: int, rr_ms: npt.NDArray[np.int16]) -> I64:
    """Instants (epoch ms UTC) at which each beat of an RR run ends."""
    return start_ms + np.cumsum(rr_ms, dtype=np.int64)


def rr_runs(start_ms: int, rr_ms: npt.NDArray[np.int16], artifact: npt.NDArray[np.bool_],
            stored_ms: I64) -> list[RrRun]:
    """Rows for the RR beats not yet stored: one row per stretch of consecutive new beats.

    A beat is identified by the instant it ends (``stored_ms`` holds the stored beats' ends). A stretch that
    follows a stored beat starts where that beat ends, so intervals keep their meaning.
    """
    ends = rr_beat_ends(start_ms, rr_ms)
    new = ~np.isin(ends, stored_ms)
    if not new.any():
        return []
    edges = np.diff(np.concatenate([[False], new, [False]]).astype(np.int8))
    firsts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    starts = np.where(firsts > 0, ends[np.maximum(firsts - 1, 0)], start_ms)
    return [RrRun(int(s0), rr_ms[a:z], artifact[a:z])
            for s0, a, z in zip(starts.tolist(), firsts.tolist(), stops.tolist(), strict=True)]
