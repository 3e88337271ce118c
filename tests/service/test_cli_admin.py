"""The CLI end to end against a real database: migrate, status, import, withdraw."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from service.cli import main


def test_help_teaches_the_order_of_work() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "fatigue db migrate" in result.output and "FATIGUE_" in result.output


def test_migrate_status_import_withdraw(pg_admin_url: str, tmp_path: Path) -> None:
    from tests.conftest import create_database, drop_database

    url = create_database(pg_admin_url, "fatigue_cli")
    env = {"FATIGUE_DATABASE_URL": url}
    runner = CliRunner()
    try:
        first = runner.invoke(main, ["db", "migrate"], env=env)
        assert first.exit_code == 0, first.output
        assert "applied" in first.output
        second = runner.invoke(main, ["db", "migrate"], env=env)
        assert "nothing to apply" in second.output
        st = runner.invoke(main, ["db", "status"], env=env)
        assert "pending migrations: 0" in st.output and "storage mode:" in st.output
        csv = tmp_path / "p.csv"
        csv.write_text("force_id,staff_ref,role_group,age_band,sex,programme_start,consent_manager,"
                       "consent_research,device_ids,gateway_id\n"
                       "WMP,PC1,response,25-29,male,2026-03-02,true,true,d1,g1\n")
        imp = runner.invoke(main, ["participants", "import", str(csv)], env=env)
        assert imp.exit_code == 0 and "1 new" in imp.output
        bad = tmp_path / "bad.csv"
        bad.write_text(csv.read_text().replace("male,", "robot,"))
        res = runner.invoke(main, ["participants", "import", str(bad)], env=env)
        assert res.exit_code == 1 and "line 2, column sex" in res.output
        wd = runner.invoke(main, ["participants", "withdraw", "WMP/PC1", "--erase", "--yes"], env=env)
        assert wd.exit_code == 0 and "erased" in wd.output
    finally:
        drop_database(pg_admin_url, url)


def test_bad_setting_is_one_line() -> None:
    result = CliRunner().invoke(main, ["db", "status"], env={"FATIGUE_TIMEZONE": "Nowhere/Here"})
    assert result.exit_code == 1
    assert "FATIGUE_TIMEZONE" in result.output


def test_db_maintain_creates_future_partitions(db_url: str) -> None:
    import psycopg

    env = {"FATIGUE_DATABASE_URL": db_url}
    runner = CliRunner()
    first = runner.invoke(main, ["db", "maintain", "--months-ahead", "6"], env=env)
    assert first.exit_code == 0, first.output
    with psycopg.connect(db_url) as conn:
        mode = conn.execute("SELECT mode FROM store.storage_mode").fetchone()
    if mode == ("partitioned",):
        assert "created 15 partition(s)" in first.output  # 3 more months for each of the 5 raw tables
        again = runner.invoke(main, ["db", "maintain", "--months-ahead", "6"], env=env)
        assert "created 0 partition(s)" in again.output
