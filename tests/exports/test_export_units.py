"""Pure parts of the export: pseudonyms, the generalisation ladder, disclosure control, the ledger chain, CLI."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from exports.aggregate import METRICS, DailyTotals, aggregate_table
from exports.anonymise import generalise, horizon_band
from exports.ledger import GENESIS, LedgerEntry, chain_errors, entry_hash
from exports.policy import POLICY_V1, ExportRefusedError
from exports.pseudonym import PID_RE, project_key, pseudonym
from service.cli_exports import register
from tests.exports.export_cohort import MASTER_KEY, World

UUID = "2f1c7f0e-9a53-4c4b-8d1e-1a2b3c4d5e6f"


def test_pseudonym_is_keyed_per_project_and_version() -> None:
    a, b = project_key(MASTER_KEY, "a", 1), project_key(MASTER_KEY, "b", 1)
    assert PID_RE.match(pseudonym(a, UUID))
    assert pseudonym(a, UUID) == pseudonym(project_key(MASTER_KEY, "a", 1), UUID)
    assert len({pseudonym(a, UUID), pseudonym(b, UUID), pseudonym(project_key(MASTER_KEY, "a", 2), UUID)}) == 3
    with pytest.raises(ValueError):
        project_key(b"short", "a", 1)


def _people(n: int, rng: np.random.Generator, forces: int = 6) -> pd.DataFrame:
    return pd.DataFrame({"participant_id": [f"{i:032x}" for i in range(n)],
                         "force_id": rng.choice([f"f{i}" for i in range(forces)], n),
                         "role_group": rng.choice(["response", "firearms", "investigation", "other"], n),
                         "age_band": rng.choice(["18-24", "25-29", "30-34", "45-49", "50-54", "55+"], n),
                         "sex": rng.choice(["female", "male", "male", "other"], n), "weeks_band": 17})


def test_horizon_band_and_common_horizon_level() -> None:
    assert list(horizon_band(np.array([0, 3, 4, 7, 8, 12, 16, 17, 40]), POLICY_V1.horizon_weeks)) == [
        0, 0, 4, 4, 8, 12, 12, 17, 17]
    rng = np.random.default_rng(3)
    people = _people(100, rng, forces=1).assign(role_group="response", age_band="30-34", sex="female")
    people["weeks_band"] = np.where(np.arange(100) < 8, 4, 17)  # 8 recent starters: too few, too many to drop
    gen = generalise(people, np.array([str(i) for i in range(100)], dtype=object), b"k" * 32, POLICY_V1)
    assert gen.suppressed == 0 and set(gen.table["weeks_band"]) == {4} and gen.level >= 6


def test_ladder_reaches_k_within_the_suppression_limit() -> None:
    rng = np.random.default_rng(1)
    people = _people(400, rng)
    gen = generalise(people, np.array([f"P{i}" for i in range(400)], dtype=object), b"k" * 32, POLICY_V1)
    assert gen.k_achieved >= 10 and gen.suppressed <= 20
    assert gen.table.groupby(list(POLICY_V1.quasi_identifiers)).size().min() >= 10
    assert set(gen.table["age_band"]) <= POLICY_V1.age_bands


def test_ladder_keeps_keyed_force_codes_when_every_force_is_large() -> None:
    people = pd.DataFrame({"participant_id": [str(i) for i in range(200)], "force_id": ["f1", "f2"] * 100,
                           "role_group": "response", "age_band": "30-34", "sex": "male", "weeks_band": 17})
    gen = generalise(people, np.array([str(i) for i in range(200)], dtype=object), b"k" * 32, POLICY_V1)
    assert gen.level == 0 and all(v.startswith("force_") for v in gen.table["force_group"])
    assert not set(gen.table["force_group"]) & {"f1", "f2"}


def test_ladder_refuses_when_too_much_would_be_suppressed() -> None:
    people = _people(12, np.random.default_rng(2))
    people.loc[:2, "sex"] = "female"
    with pytest.raises(ExportRefusedError) as info:
        generalise(people, np.array([str(i) for i in range(12)], dtype=object), b"k" * 32, POLICY_V1)
    assert info.value.rule == "k_anonymity"


def test_aggregate_disclosure_control() -> None:
    participants = pd.DataFrame({"pid": [f"p{i}" for i in range(40)], "role_group": ["response"] * 33 + ["all"] * 7})
    levels = ["green"] * 25 + ["amber"] * 4 + ["red"] * 4 + ["green"] * 7
    flags = pd.DataFrame({"pid": participants["pid"], "programme_week": 1, "overall_level": levels})
    no_daily = DailyTotals(np.zeros(0, np.int64), ["all", "response"], 1).cells()
    agg = aggregate_table(no_daily, flags, participants, POLICY_V1).set_index("role_group")
    assert agg.loc["response", "n_green"] == 25 and np.isnan(agg.loc["response", "n_amber"])
    assert np.isnan(agg.loc["response", "n_red"]) and agg.loc["response", "n_flagged"] == 35
    assert np.isnan(agg.loc["all", "n_green"]) and np.isnan(agg.loc["all", "n_flagged"])


def test_daily_totals_equal_a_pandas_groupby_fed_in_chunks() -> None:
    rng = np.random.default_rng(5)
    n_people, weeks, n = 60, 4, 3000
    role_of = rng.integers(-1, 2, n_people)  # -1: suppressed (its rows never reach the totals)
    rows = pd.DataFrame({"pidx": rng.choice(np.flatnonzero(role_of >= 0), n), "programme_week": rng.integers(1, 5, n),
                         "valid_sleep_day": rng.random(n) < 0.8})
    for m in METRICS:
        rows[m] = np.where(rng.random(n) < 0.2, np.nan, np.round(rng.normal(400, 50, n)))
    totals = DailyTotals(role_of, ["investigation", "response"], weeks)
    for part in np.array_split(np.arange(n), 7):
        totals.add({c: rows[c].to_numpy()[part] for c in rows.columns})
    got = totals.cells()
    valid = rows[rows["valid_sleep_day"]].assign(
        role_group=lambda f: np.array(["investigation", "response"])[role_of[f["pidx"]]])
    by = valid.groupby(["programme_week", "role_group"])
    assert (got["n_participant_days"] == by.size()).all()
    assert (got["n_participants"] == by["pidx"].nunique()).all()
    assert (got["n_tst"] == by.apply(lambda g: g.loc[g["tst_min"].notna(), "pidx"].nunique())).all()
    assert np.allclose(got["mean_tst_min"], by["tst_min"].mean().round(1))
    assert np.allclose(got["sd_tst_min"], by["tst_min"].std().round(1))


def _entry(prev: str, seq: int) -> LedgerEntry:
    e = LedgerEntry(seq, datetime(2026, 1, 1, tzinfo=UTC), "r", None, "p", "v1", 1, {"a": 1}, 10, {"b": 0},
                    {"f": "0" * 64}, prev)
    return replace(e, entry_hash=entry_hash(e))


def test_chain_detects_edits_and_gaps() -> None:
    first = _entry(GENESIS, 1)
    second = _entry(first.entry_hash, 2)
    assert chain_errors([first, second]) == []
    assert chain_errors([replace(first, k_achieved=3), second])
    assert chain_errors([second])


def test_cli_run_and_verify(world: World, tmp_path: Path) -> None:
    @click.group()
    @click.pass_context
    def root(ctx: click.Context) -> None:
        ctx.obj = SimpleNamespace(database_url=world.url, pseudonym_key=MASTER_KEY, pseudonym_key_version=1)

    register(root)
    runner = CliRunner()
    out = tmp_path / "cli"
    done = runner.invoke(root, ["export", "run", "--project", "cli-proj", "--out", str(out), "--format", "csv",
                                "--to-week", "3", "--requester", "tester"])
    assert done.exit_code == 0, done.output
    assert "k achieved" in done.output and (out / "datapackage.json").exists()
    checked = runner.invoke(root, ["export", "verify", str(out)])
    assert checked.exit_code == 0 and "chain verifies" in checked.output
    (out / "aggregates.csv").write_text("tampered\n")
    assert runner.invoke(root, ["export", "verify", str(out)]).exit_code != 0
