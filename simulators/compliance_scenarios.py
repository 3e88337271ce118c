"""Scripted compliance scenarios: the seeded simulator with chosen device and gateway faults instead of random ones.

:func:`simulate_scenarios` runs the same generators as :func:`simulators.model.simulate` (same streams, same
encoding, same ground truth via :func:`simulators.truth.truth_frames`), but the faults are the ones given:
one :class:`Scenario` per participant, in minutes from minute 0 (local midnight of the start date). No random
faults, duplicates, malformed messages or clock drift are added, and nobody swaps devices, so the scenario is
the only departure from a compliant officer. A battery that recovers from flat was charged: its first status
readings afterwards show a full battery.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulators.clock import Clock
from simulators.cohort import make_cohort
from simulators.faults import Faults, intervals_mask
from simulators.model import _STREAMS, Simulation, _duty_mask, _hr_sources, _sleep_sources
from simulators.params import FaultRates, SimParams
from simulators.physio import make_heart_rate, make_nightly, make_rr
from simulators.roster import duty_facts, make_roster
from simulators.schedule import KINDS, StatusTable, make_status, make_table
from simulators.sleep import make_sleep
from simulators.surveys import make_answers

__all__ = ["CHARGED_PCT", "Scenario", "simulate_scenarios"]

IntArr = npt.NDArray[np.int64]
#: Battery shown by the statuses of the first day after a flat battery ends (the officer charged it).
CHARGED_PCT = 95


@dataclass(frozen=True)
class Scenario:
    """Faults of one participant, as half-open minute intervals ``(start, end)`` from minute 0.

    ``nonwear``: device powered and sending status (``worn`` false) but off the wrist (left in a drawer);
    ``flat``: battery flat (no data at all); ``gateway_down``: the gateway is offline, messages wait in its
    backlog and are flushed when it returns (never, within the simulation, if the interval outlasts it).
    """

    nonwear: tuple[tuple[int, int], ...] = ()
    flat: tuple[tuple[int, int], ...] = ()
    gateway_down: tuple[tuple[int, int], ...] = ()


def _intervals(scenarios: tuple[Scenario, ...], attr: str) -> tuple[IntArr, IntArr, IntArr]:
    items = [(p, s, e) for p, sc in enumerate(scenarios) for s, e in getattr(sc, attr)]
    if not items:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    p, s, e = (np.array(x, dtype=np.int64) for x in zip(*items, strict=True))
    return p, s, e


def scripted_faults(scenarios: tuple[Scenario, ...], n_days: int, t0_s: int) -> Faults:
    """The :class:`~simulators.faults.Faults` of the scenarios (no drift, no random faults)."""
    n, n_min = len(scenarios), (n_days + 1) * 1440
    nonwear, flat, down = (_intervals(scenarios, a) for a in ("nonwear", "flat", "gateway_down"))
    powered = ~intervals_mask(n, n_min, *flat)
    worn = ~intervals_mask(n, n_min, *nonwear) & powered
    order = np.lexsort((down[1], down[0]))
    return Faults(worn=worn, powered=powered, outage_p=down[0][order], outage_start_s=down[1][order] * 60 + t0_s,
                  outage_end_s=down[2][order] * 60 + t0_s, drift_ppm=np.zeros((n, 2)), offset_ms=np.zeros((n, 2)),
                  intervals={"nonwear": nonwear, "long_nonwear": _intervals((), "nonwear"), "flat_battery": flat,
                             "gateway_offline": down})


def _charged(status: StatusTable, flat: tuple[IntArr, IntArr, IntArr], t0_s: int) -> StatusTable:
    """Statuses within a day after a flat interval ends show :data:`CHARGED_PCT`."""
    p, _, e = flat
    end_s = t0_s + e * 60
    after = (status.participant[:, None] == p[None, :]) & (status.t_s[:, None] >= end_s[None, :]) \
        & (status.t_s[:, None] < end_s[None, :] + 86_400)
    battery = np.where(after.any(axis=1), CHARGED_PCT, status.battery_pct)
    return dataclasses.replace(status, battery_pct=battery.astype(np.int64))


def simulate_scenarios(scenarios: tuple[Scenario, ...], params: SimParams) -> Simulation:
    """A simulation of ``len(scenarios)`` participants with exactly the scripted faults.

    Parameters
    ----------
    scenarios : tuple of Scenario
        One per participant (the cohort size is taken from here).
    params : SimParams
        Everything else (``n_participants`` and ``faults`` are overridden).

    Returns
    -------
    Simulation
    """
    params = dataclasses.replace(params, n_participants=len(scenarios), faults=FaultRates.none())
    rngs = dict(zip(_STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(params.seed).spawn(
        len(_STREAMS))), strict=True))
    clock = Clock.for_window(params.start_date, params.n_days)
    cohort = make_cohort(params, rngs["cohort"])
    cohort = dataclasses.replace(cohort, device_b=("",) * cohort.n,
                                 swap_day=np.full(cohort.n, params.n_days, np.int64))
    roster = make_roster(params, cohort, clock, rngs["roster"])
    duties = duty_facts(roster, clock)
    episodes = make_sleep(params, cohort, roster, clock, rngs["sleep"])
    faults = scripted_faults(scenarios, params.n_days, clock.t0_s)
    nightly = make_nightly(params, cohort, episodes, rngs["nightly"])
    duty_mask = _duty_mask(cohort.n, faults.worn.shape[1], duties, clock.t0_s)
    hr = make_heart_rate(params, episodes, duty_mask, nightly, faults.worn, clock, rngs["hr"])
    rr = make_rr(params, episodes, nightly, faults.worn, clock.t0_s, rngs["rr"])
    answers = make_answers(duties, episodes, nightly.debt_ew_h, clock, params.p_survey, rngs["surveys"])
    status = _charged(make_status(params, faults, clock.t0_s, rngs["status"]), faults.intervals["flat_battery"],
                      clock.t0_s)
    sources = {
        "hr": _hr_sources(hr, params, clock.t0_s),
        "rr": (rr.participant, np.arange(rr.participant.size), rr.start_s, rr.start_s + params.rr_window_min * 60),
        "sleep": _sleep_sources(episodes, faults.worn, params, clock.t0_s),
        "status": (status.participant, np.arange(status.t_s.size), status.t_s, status.t_s),
        "survey": (answers.participant, np.arange(answers.t_s.size), answers.t_s, answers.t_s),
    }
    assert set(sources) | {"offline"} == set(KINDS)
    table = make_table(sources, faults, params, rngs["table"])
    return Simulation(params, clock, cohort, roster, duties, episodes, nightly, faults, hr, rr, answers, status,
                      table)
