"""One source of truth: a force's own programme file changes the ingest window, features and flags together."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from importlib import resources
from pathlib import Path

import psycopg
import pytest

from features.job import run_features
from features.params import FeatureParams
from models.job import run_models
from risk.job import run_flags
from risk.programme import Programme, load_programme
from risk.validation.pipeline import _load
from simulators.params import FaultRates, SimParams
from simulators.run import simulate_to_dir
from store.migrate import migrate
from tests.conftest import create_database, drop_database

TZ = "Europe/London"
DAYS = 36


def _force_programme(tmp: Path) -> Programme:
    """A force running a 4-week programme, population need 7 h, 7-day calibration, 5-day model warm-up."""
    text = resources.files("risk").joinpath("programme_v2.toml").read_text(encoding="utf-8")
    for old, new in ((r'^version = "programme-v2"', 'version = "force-x-4w"'), (r"^days = 120.*", "days = 28"),
                     (r"^weeks = 17.*", "weeks = 4"), (r"^need_pop_h = 8\.0.*", "need_pop_h = 7.0"),
                     (r"^last_day = 14 .*", "last_day = 7"), (r"^first_day = 15", "first_day = 8"),
                     (r"^min_valid_nights = 10.*", "min_valid_nights = 5"), (r"^last_day = 28 .*", "last_day = 14"),
                     (r"^warmup_days = 4\.0.*", "warmup_days = 5.0")):
        assert re.search(old, text, flags=re.M), old
        text = re.sub(old, new, text, count=1, flags=re.M)
    path = tmp / "force.toml"
    path.write_text(text, encoding="utf-8")
    return load_programme(path)


def _run(admin: str, out: Path, prog: Programme, start: date) -> Iterator[str]:
    url = create_database(admin, "fatigue_prog")
    try:
        migrate(url)
        _load(url, out, TZ, prog.days)
        run_features(url, TZ, full=True, params=FeatureParams.of(prog))
        run_models(url, TZ, warmup_days=prog.warmup_days)
        with psycopg.connect(url) as conn:
            run_flags(conn, start + timedelta(days=DAYS + 3), prog, tz=TZ)
            conn.commit()
        yield url
    finally:
        drop_database(admin, url)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, date]:
    out = tmp_path_factory.mktemp("sim")
    start = date.today() - timedelta(days=DAYS + 4)
    params = replace(SimParams(n_participants=4, n_days=DAYS, start_date=start, seed=5),
                     faults=FaultRates.none())
    simulate_to_dir(params, out)
    return out, start


def _facts(url: str) -> dict[str, object]:
    with psycopg.connect(url) as conn:
        q = conn.execute
        return {
            "after_window": q("SELECT count(*) FROM ingest.dead_letters WHERE reason_code = 'after_window'").fetchone(),
            "max_day": q("SELECT max(programme_day) FROM derived.daily_features").fetchone(),
            "need_day3": q("SELECT DISTINCT sleep_need_h FROM derived.daily_features WHERE programme_day = 3"
                           ).fetchall(),
            "weeks": q("SELECT max(programme_week), min(programme_version) FROM risk.weekly_flags").fetchone(),
            "warmup": q("SELECT count(*) FILTER (WHERE minutes_kss_ge7 IS NULL) FROM derived.duty_exposure"
                        ).fetchone()}


def test_force_programme_changes_ingest_window_features_models_and_flags(
        pg_admin_url: str, simulated: tuple[Path, date], tmp_path: Path) -> None:
    out, start = simulated
    force = _force_programme(tmp_path)
    default = load_programme()
    got = {}
    for name, prog in (("force", force), ("default", default)):
        for url in _run(pg_admin_url, out, prog, start):
            got[name] = _facts(url)
    f, d = got["force"], got["default"]
    assert f["after_window"][0] > 0 and d["after_window"][0] == 0  # type: ignore[index]  # ingest window
    assert f["max_day"] == (28,) and d["max_day"][0] > 28  # type: ignore[index]  # days computed
    assert f["need_day3"] == [(7.0,)] and d["need_day3"] == [(8.0,)]  # population need in calibration
    assert f["weeks"] == (4, "force-x-4w") and d["weeks"][0] == 5  # type: ignore[index]  # flags
    assert f["warmup"][0] > d["warmup"][0]  # type: ignore[index]  # a longer model warm-up
