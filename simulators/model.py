"""The finished simulation: every generated table, and a pure seeded builder for it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulators.clock import Clock
from simulators.cohort import Cohort, make_cohort
from simulators.faults import Faults, intervals_mask, make_faults, worn_while_asleep
from simulators.params import SimParams
from simulators.physio import HeartGrid, Nightly, RRWindows, make_heart_rate, make_nightly, make_rr
from simulators.roster import Roster, duty_facts, make_roster
from simulators.schedule import KINDS, MessageTable, StatusTable, make_status, make_table
from simulators.sleep import Episodes, make_sleep
from simulators.surveys import Answers, make_answers

__all__ = ["Simulation", "simulate"]

IntArr = npt.NDArray[np.int64]
#: Independent random streams, so changing one component never perturbs the others.
_STREAMS = ("cohort", "roster", "sleep", "faults", "nightly", "hr", "rr", "surveys", "status", "table")


@dataclass(frozen=True)
class Simulation:
    """Everything one seed produces (see :func:`simulate`)."""

    params: SimParams
    clock: Clock
    cohort: Cohort
    roster: Roster
    duties: dict[str, npt.NDArray[np.generic]]
    episodes: Episodes
    nightly: Nightly
    faults: Faults
    hr: HeartGrid
    rr: RRWindows
    answers: Answers
    status: StatusTable
    table: MessageTable


def _duty_mask(sim_n: int, n_min: int, duties: dict[str, npt.NDArray[np.generic]], t0_s: int) -> npt.NDArray[np.bool_]:
    p = np.asarray(duties["participant"], dtype=np.int64)
    s = (np.asarray(duties["start_s"], dtype=np.int64) - t0_s) // 60
    e = (np.asarray(duties["end_s"], dtype=np.int64) - t0_s) // 60
    return intervals_mask(sim_n, n_min, p, s, e)


def _hr_sources(hr: HeartGrid, params: SimParams, t0_s: int) -> tuple[IntArr, IntArr, IntArr, IntArr]:
    n = hr.bpm.shape[0]
    b = params.hr_batch_min
    n_batch = (params.n_days * 1440) // b
    counts = (hr.bpm[:, : n_batch * b].reshape(n, n_batch, b) > 0).sum(axis=2)
    p, k = np.nonzero(counts)
    start_min = k.astype(np.int64) * b
    return p, start_min, t0_s + start_min * 60, t0_s + (start_min + b) * 60


def _sleep_sources(ep: Episodes, worn: npt.NDArray[np.bool_], params: SimParams,
                   t0_s: int) -> tuple[IntArr, IntArr, IntArr, IntArr]:
    n, n_min = worn.shape
    cum = np.zeros((n, n_min + 1), dtype=np.int32)
    np.cumsum(worn, axis=1, out=cum[:, 1:])
    m0 = np.clip((ep.onset_s - t0_s) // 60, 0, n_min)
    m1 = np.clip((ep.end_s - t0_s) // 60, 0, n_min)
    frac = (cum[ep.participant, m1] - cum[ep.participant, m0]) / np.maximum(m1 - m0, 1)
    ok = np.flatnonzero((frac >= 0.9) & (ep.day >= 0) & (ep.day < params.n_days))
    return ep.participant[ok], ok.astype(np.int64), ep.onset_s[ok], ep.end_s[ok] + 600


def simulate(params: SimParams) -> Simulation:
    """Generate a whole cohort from ``params.seed``: pure, no I/O, no wall-clock.

    Parameters
    ----------
    params : SimParams
        What to simulate.

    Returns
    -------
    Simulation
        All tables; messages are encoded lazily by :func:`simulators.messages.iter_messages`.
    """
    rngs = dict(zip(_STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(params.seed).spawn(
        len(_STREAMS))), strict=True))
    clock = Clock.for_window(params.start_date, params.n_days)
    cohort = make_cohort(params, rngs["cohort"])
    roster = make_roster(params, cohort, clock, rngs["roster"])
    duties = duty_facts(roster, clock)
    episodes = make_sleep(params, cohort, roster, clock, rngs["sleep"])
    faults = make_faults(params, clock.t0_s, rngs["faults"])
    asleep = intervals_mask(cohort.n, faults.worn.shape[1], episodes.participant,
                            (episodes.onset_s - clock.t0_s) // 60, -(-(episodes.end_s - clock.t0_s) // 60))
    faults = worn_while_asleep(faults, asleep)
    del asleep
    nightly = make_nightly(params, cohort, episodes, rngs["nightly"])
    n_min = faults.worn.shape[1]
    duty_mask = _duty_mask(cohort.n, n_min, duties, clock.t0_s)
    hr = make_heart_rate(params, episodes, duty_mask, nightly, faults.worn, clock, rngs["hr"])
    rr = make_rr(params, episodes, nightly, faults.worn, clock.t0_s, rngs["rr"])
    answers = make_answers(duties, episodes, nightly.debt_ew_h, clock, params.p_survey, rngs["surveys"])
    status = make_status(params, faults, clock.t0_s, rngs["status"])
    window_end = rr.start_s + params.rr_window_min * 60
    sources = {
        "hr": _hr_sources(hr, params, clock.t0_s),
        "rr": (rr.participant, np.arange(rr.participant.size), rr.start_s, window_end),
        "sleep": _sleep_sources(episodes, faults.worn, params, clock.t0_s),
        "status": (status.participant, np.arange(status.t_s.size), status.t_s, status.t_s),
        "survey": (answers.participant, np.arange(answers.t_s.size), answers.t_s, answers.t_s),
    }
    assert set(sources) | {"offline"} == set(KINDS)
    table = make_table(sources, faults, params, rngs["table"])
    return Simulation(params, clock, cohort, roster, duties, episodes, nightly, faults, hr, rr, answers,
                      status, table)
