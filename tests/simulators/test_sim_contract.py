"""Every simulated message goes through ``ingest.contract.decode``; malformed ones fail with their reason."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ingest.contract import ContractError, decode
from ingest.prepare import Inbound, Rejected, prepare
from simulators.adapter_files import read_log, write_admin_csvs, write_log
from simulators.faults import FLUSH_COMPRESSION
from simulators.messages import iter_messages
from simulators.model import Simulation, simulate
from simulators.params import MALFORMED_REASONS, FaultRates, SimParams
from store.enrolment import AGE_BANDS, PARTICIPANT_COLUMNS, ROLE_GROUPS, ROSTER_COLUMNS, SEXES, SHIFT_TYPES


@pytest.fixture(scope="module")
def sim() -> Simulation:
    faults = replace(FaultRates(), malformed=0.003, duplicate=0.01, out_of_order=0.01, gateway_offline_per_day=0.05)
    return simulate(SimParams(n_participants=8, n_days=28, seed=3, faults=faults))


def test_every_message_decodes_or_fails_with_its_reason(sim: Simulation) -> None:
    outcomes: Counter[str] = Counter()
    for m in iter_messages(sim):
        if not m.reason:
            rec = decode(m.topic, m.payload)
            assert m.topic.split("/")[3] == rec.device_id
            outcomes["ok"] += 1
            continue
        with pytest.raises(ContractError) as err:
            decode(m.topic, m.payload)
        assert err.value.reason == m.reason
        outcomes[m.reason] += 1
    assert set(MALFORMED_REASONS) <= set(outcomes)
    assert outcomes["ok"] > 5000


def test_ingester_time_rules_accept_messages_at_publish_time(sim: Simulation) -> None:
    rejected: Counter[str] = Counter()
    for m in iter_messages(sim):
        if m.reason:
            continue
        out = prepare(Inbound(m.topic, m.payload), now_ms=m.publish_ms)
        if isinstance(out, Rejected):
            rejected[out.reason] += 1
        else:
            assert out.dropped_future == 0
    assert not rejected


def test_streams_faults_and_publish_order(sim: Simulation) -> None:
    t = sim.table
    kinds = {sim_kind for sim_kind in np.unique(t.kind)}
    assert kinds == set(range(6))
    assert np.all(np.diff(t.publish_ms) >= 0)
    assert t.duplicate.sum() > 0 and t.backlog.sum() > 0 and t.delayed.sum() > 0
    sent_order = t.sent_at_ms[~t.duplicate]
    assert np.any(np.diff(sent_order) < 0), "out-of-order messages arrive after later ones"


def test_backlog_is_flushed_after_the_outage_in_order(sim: Simulation) -> None:
    t, f = sim.table, sim.faults
    rows = np.flatnonzero(t.backlog & ~t.duplicate & ~t.delayed)
    assert rows.size > 0
    for i in rows[:300]:
        end_ms = f.outage_end_s[f.outage_p == t.participant[i]] * 1000
        length_ms = (f.outage_end_s - f.outage_start_s)[f.outage_p == t.participant[i]] * 1000
        sent = t.sent_at_ms[i]
        # flushed after the outage ends, one day of backlog per 86.4 s, plus up to 90 s upload latency
        assert np.any((sent >= end_ms) & (sent <= end_ms + length_ms // FLUSH_COMPRESSION + 90_000))


def test_duplicates_are_byte_identical(sim: Simulation) -> None:
    seen: dict[bytes, bytes] = {}
    dups = 0
    for m in iter_messages(sim):
        key = sim.table.msg_id[m.index].tobytes()
        if sim.table.duplicate[m.index]:
            dups += 1
            assert seen[key] == m.payload
        elif not m.reason:
            seen[key] = m.payload
    assert dups > 0


def test_admin_csvs_follow_the_import_format(sim: Simulation, tmp_path: Path) -> None:
    people, roster = write_admin_csvs(sim, tmp_path)
    with people.open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == PARTICIPANT_COLUMNS and len(rows) == 8
    for r in rows:
        assert r["role_group"] in ROLE_GROUPS and r["age_band"] in AGE_BANDS and r["sex"] in SEXES
        assert r["staff_ref"].startswith("PC") and r["consent_manager"] in ("true", "false")
    with roster.open() as fh:
        duties = list(csv.DictReader(fh))
    assert tuple(duties[0]) == ROSTER_COLUMNS
    assert {d["shift_type"] for d in duties} <= SHIFT_TYPES
    assert all(d["start"][-6] in "+-" and d["end"][-6] in "+-" for d in duties)
    assert {d["start"][-6:] for d in duties} <= {"+00:00", "+01:00"}


def test_log_round_trip(sim: Simulation, tmp_path: Path) -> None:
    path = tmp_path / "messages.bin"
    n = write_log(iter_messages(sim, 0, 500), path)
    back = list(read_log(path))
    assert n == len(back) == 500
    first = next(iter_messages(sim))
    assert (back[0].topic, back[0].payload, back[0].publish_ms) == (first.topic, first.payload, first.publish_ms)
