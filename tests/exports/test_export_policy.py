"""P1 and P2 (reliability_security.md 6) on a simulated 300-participant cohort with skewed force sizes."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from exports.checker import check_package
from exports.db import read_ledger
from exports.job import verify_delivery
from exports.ledger import chain_errors
from exports.policy import POLICY_V1, ExportPolicy, ExportRefusedError
from exports.pseudonym import project_key, pseudonym
from tests.exports.export_cohort import MASTER_KEY, World, export

TABLES = ("participants", "daily_features", "weekly_flags", "aggregates")


def _pids(project: str, ids: list[str]) -> set[str]:
    key = project_key(MASTER_KEY, project, 1)
    return {pseudonym(key, i) for i in ids}


def test_p1_k_anonymity_and_suppression(world: World) -> None:
    for run in (world.a1, world.a2, world.b):
        people = run.tables["participants"]
        sizes = people.groupby(list(POLICY_V1.quasi_identifiers)).size()
        assert sizes.min() >= 10
        eligible = len(world.cohort.participant_ids) - len(world.cohort.no_consent)
        if run is world.a2:
            eligible -= len(world.cohort.withdrawn)
        assert (eligible - len(people)) / eligible <= 0.05
        assert run.result.k_achieved == sizes.min()
        assert set(people["age_band"]) <= {"18-29", "30-39", "40-49", "50+", "18-39", "40+", "all"}


def test_p1_aggregate_cells(world: World) -> None:
    agg = world.a1.tables["aggregates"]
    counts = agg[[c for c in agg.columns if c.startswith("n_")]].to_numpy(dtype=float)
    shown = counts[~pd.isna(counts)]
    assert not ((shown >= 1) & (shown <= 9)).any()
    assert (shown % 5 == 0).all()
    for mean, n in (("mean_tst_min", "n_tst"), ("sd_tst_min", "n_tst"), ("mean_rmssd_ms", "n_rmssd")):
        assert (agg.loc[agg[mean].notna(), n] >= 10).all()
    assert agg["mean_tst_min"].notna().any()


_DATE = re.compile(r"(19|20)\d\d-\d\d-\d\d|\d\d/\d\d/(19|20)\d\d")


def test_p1_no_identifier_in_any_file(world: World) -> None:
    c = world.cohort
    needles = [*c.staff_refs, *c.device_ids, *c.gateway_ids, *c.participant_ids, "force1", "Force 0"]
    for out in (world.a2.result.out, world.b.result.out):  # CSV and JSON: scan the raw text
        for path in out.iterdir():
            text = path.read_text(encoding="utf-8")
            assert not _DATE.search(text), path.name
            tokens = set(re.split(r"[^A-Za-z0-9_-]+", text))
            assert not tokens & set(needles), path.name
    parquet_text = "\n".join(df.to_csv(index=False) for df in world.a1.tables.values())
    assert not _DATE.search(parquet_text)
    assert not set(re.split(r"[^A-Za-z0-9_-]+", parquet_text)) & set(needles)


def test_p1_pseudonyms_stable_and_unlinkable(world: World) -> None:
    a1 = set(world.a1.tables["participants"]["pid"])
    a2 = set(world.a2.tables["participants"]["pid"])
    b = set(world.b.tables["participants"]["pid"])
    assert a1 <= _pids("sleep-study-a", world.cohort.participant_ids)
    assert a2 <= a1  # same project: the same pid for everyone still eligible (100 % stable)
    assert a2 == a1 - _pids("sleep-study-a", world.cohort.withdrawn)
    assert not a1 & b  # cross-project overlap 0
    assert all(re.fullmatch(r"[A-Z2-7]{26}", p) for p in a1 | b)


def test_p1_withdrawn_and_unconsented_never_exported(world: World) -> None:
    no_consent_a, no_consent_b = (_pids(p, world.cohort.no_consent) for p in ("sleep-study-a", "other-project-b"))
    withdrawn = _pids("sleep-study-a", world.cohort.withdrawn)
    assert withdrawn <= set(world.a1.tables["participants"]["pid"])  # present before withdrawal
    for run, banned in ((world.a1, no_consent_a), (world.b, no_consent_b), (world.a2, no_consent_a | withdrawn),
                        (world.a_after, no_consent_a | withdrawn)):
        for name in ("participants", "daily_features", "weekly_flags"):
            assert not set(run.tables[name]["pid"]) & banned, name


def test_p1_programme_days_keep_weekday(world: World) -> None:
    key = project_key(MASTER_KEY, "sleep-study-a", 1)
    start_of = {pseudonym(key, i): s for i, s in world.cohort.starts.items()}
    daily = world.a1.tables["daily_features"]
    true_dates = [start_of[p] + timedelta(days=int(d) - 1) for p, d in zip(daily["pid"], daily["programme_day"],
                                                                           strict=True)]
    assert [d.weekday() for d in true_dates] == daily["weekday"].tolist()
    offset = (daily["programme_day"] - daily["weekday"]) % 7
    assert (offset.groupby(daily["pid"]).nunique() == 1).all()  # a constant whole-week shift per participant
    assert ((daily["midpoint_local_h"].dropna() * 4) % 1 == 0).all()
    assert world.a_after.tables["daily_features"]["programme_week"].between(2, 4).all()
    assert set(world.a_after.tables["weekly_flags"]["programme_week"]) <= {2, 3, 4}
    assert date(2026, 1, 5).isoformat() not in world.a1.tables["weekly_flags"].to_csv()


def test_p1_independent_checker_passes(world: World) -> None:
    for run in (world.a1, world.a2, world.b):
        result = check_package(run.result.out, POLICY_V1, [*world.cohort.staff_refs, *world.cohort.device_ids])
        assert result.ok, result.failures


def test_p2_every_export_in_ledger_and_chain_verifies(world: World) -> None:
    with psycopg.connect(world.url, autocommit=True) as conn:
        entries = read_ledger(conn)
    assert chain_errors(entries) == []
    for run in (world.a1, world.a2, world.b, world.a_after):
        check = verify_delivery(world.url, run.result.out)
        assert check.ok, check.problems
        entry = next(e for e in entries if e.seq == run.result.ledger_seq)
        assert set(entry.file_hashes) == {p.name for p in run.result.out.iterdir()}
        assert entry.row_counts == run.result.row_counts and entry.k_achieved == run.result.k_achieved


def test_p2_tampered_delivery_fails_verification(world: World, tmp_path: Path) -> None:
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(world.b.result.out, copy)
    assert verify_delivery(world.url, copy).ok
    with (copy / "participants.csv").open("a", encoding="utf-8") as fh:
        fh.write("X\n")
    check = verify_delivery(world.url, copy)
    assert not check.ok and "a file was changed" in check.problems[-1]


def test_p2_ledger_update_delete_truncate_denied(world: World) -> None:
    with psycopg.connect(world.url, autocommit=True) as conn:
        for sql in ("UPDATE exports.export_ledger SET requester = 'x'", "DELETE FROM exports.export_ledger",
                    "TRUNCATE exports.export_ledger"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
            conn.execute("""INSERT INTO exports.export_ledger (seq, requested_at, requester, project, policy_version,
                            key_version, row_counts, k_achieved, suppression, file_hashes, prev_hash, entry_hash)
                            VALUES (999, now(), 'x', 'p', 'v', 1, '{}', 10, '{}', '{}', repeat('0', 64),
                            repeat('1', 64))""")
        assert chain_errors(read_ledger(conn)) == []


def test_refused_export_leaves_nothing(world: World, tmp_path: Path) -> None:
    with psycopg.connect(world.url, autocommit=True) as conn:
        before = len(read_ledger(conn))
    strict = ExportPolicy(k=400)
    with pytest.raises(ExportRefusedError) as info:
        export(world.url, tmp_path / "never", "sleep-study-a", policy=strict)
    assert info.value.rule == "k_anonymity"
    assert not (tmp_path / "never").exists() and list(tmp_path.iterdir()) == []
    with psycopg.connect(world.url, autocommit=True) as conn:
        assert len(read_ledger(conn)) == before


def test_existing_folder_is_never_overwritten(world: World) -> None:
    with pytest.raises(ValueError, match="never overwrite"):
        export(world.url, world.a1.result.out, "sleep-study-a")
