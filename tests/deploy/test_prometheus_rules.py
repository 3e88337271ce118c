"""deploy/prometheus and deploy/grafana, checked without promtool or Grafana: every expression parses as PromQL,
names only metrics listed in deploy/prometheus/README.md, and the ones listed as exported *here* really are."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import psycopg
import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest

from ingest.metrics import IngestMetrics
from service.api import _Metrics
from service.metrics import DatabaseCollector, SchedulerMetrics, SubscriptionCollector, Union
from store.job_metrics import JobHealthCollector

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
REQUIRED_ALERTS = {  # what the operator asked for (issue 20)
    "FatigueIngestNoCommitWhileMessagesWait", "FatigueDeadLetterRateHigh", "FatigueDirtyDayBacklog",
    "FatigueWeeklyJobOverdue", "FatiguePolicyJobFailing", "FatigueReportDeliveriesFailing"}


def _listed() -> dict[str, str]:
    """Metric name -> source column of the README table."""
    rows = re.findall(r"^\| `([a-z_]+)(?:\{[^`]*\})?` \| [^|]+\| [^|]+\| ([^|]+) \|$",
                      (PROM / "README.md").read_text(), re.MULTILINE)
    return {name: source.strip() for name, source in rows}


def _names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (raises ValueError when it does not parse)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.add(node.name)
            return
        for attr in ("lhs", "rhs", "expr", "param", "vector_selector"):
            child = getattr(node, attr, None)
            if child is not None:
                walk(child)
        for arg in getattr(node, "args", None) or []:
            walk(arg)

    walk(promql_parser.parse(expr))
    return found


def _base(name: str) -> str:
    return re.sub(r"_(bucket|sum|count)$", "", name)


def _rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dash = json.loads((ROOT / "deploy" / "grafana" / "fatigue-service.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_the_names_walker_finds_every_selector_and_the_parser_refuses_bad_promql() -> None:
    assert _names("sum by (job) (increase(a_total[1h])) > 0 and on() (time() - max(b)) > 5 or c{x='1'}") == {
        "a_total", "b", "c"}
    with pytest.raises(ValueError):
        _names("sum(rate(a_total[5m])")
    with pytest.raises(ValueError):
        _names("rate(a_total[5x])")


def test_every_alert_is_complete_and_the_asked_for_ones_exist() -> None:
    rules = _rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), "alert names repeat"
    assert set(names) >= REQUIRED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule["alert"]


@pytest.mark.parametrize("expr", [r["expr"] for r in _rules()] + _dashboard_exprs())
def test_expressions_parse_and_name_only_listed_metrics(expr: str) -> None:
    listed = _listed()
    unknown = {n for n in _names(expr) if _base(n) not in listed and n not in listed}
    assert not unknown, f"{unknown} used but not listed in deploy/prometheus/README.md"


def _seed_state(db_url: str) -> None:
    """One waiting dirty day and one flag run, so that every database gauge has a value to report."""
    from store.migrate import migrate

    migrate(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SET fatigue.all_forces = 'on'")
        conn.execute("INSERT INTO core.forces (force_id, name) VALUES ('MON', 'Monitoring') ON CONFLICT DO NOTHING")
        row = conn.execute("INSERT INTO core.participants (force_id, role_group, age_band, sex, programme_start) "
                           "VALUES ('MON', 'response', '30-34', 'female', current_date) RETURNING participant_id"
                           ).fetchone()
        assert row is not None
        conn.execute("INSERT INTO ingest.dirty_days (participant_id, sleep_date) VALUES (%s, current_date)", row)
        conn.execute("INSERT INTO risk.flag_runs (as_of, programme_version, algorithm_version, evaluated, issued, "
                     "revised, unchanged, started_at) VALUES (current_date, 'v1', 'a1', 0, 0, 0, 0, now())")


def test_metrics_listed_as_ours_are_exported(db_url: str) -> None:
    _seed_state(db_url)
    ours = {name for name, source in _listed().items() if source.startswith("here")}
    import risk.delivery  # noqa: F401  (registers the deliveries' process-wide counters)
    import service.scheduler  # noqa: F401  (registers the scheduler's process-wide counters)

    union = Union([IngestMetrics().registry, SchedulerMetrics().registry, _Metrics().registry, REGISTRY,
                   DatabaseCollector(db_url), SubscriptionCollector(lambda: True), JobHealthCollector(db_url)])
    text = generate_latest(union).decode()  # type: ignore[arg-type]
    exported = {_base(m.group(1)) for m in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE)}
    exported |= {f"{n}_total" for n in list(exported)}  # counters are exposed with the _total suffix
    assert "fatigue_dirty_days_oldest_timestamp_seconds" in text and "fatigue_database_up 1.0" in text
    assert ours - exported == set(), f"listed as exported here but not exported: {ours - exported}"
    assumed = {name for name, source in _listed().items() if source.startswith("assumed")}
    assert not assumed & exported, "a metric marked assumed is exported here: mark it 'here'"


def test_every_listed_metric_is_used_by_an_alert_or_the_dashboard() -> None:
    used = {_base(n) for e in [r["expr"] for r in _rules()] + _dashboard_exprs() for n in _names(e)}
    spare = set(_listed()) - used - {"fatigue_ingest_samples_total", "fatigue_ingest_duplicates_absorbed_total",
                                     "fatigue_ingest_quarantined_total"}
    assert not spare, f"listed but never used: {spare}"


def test_scrape_config_loads_the_rules_and_scrapes_every_process() -> None:
    conf = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert conf["rule_files"] == ["/etc/prometheus/alerts.yml"]
    jobs = {j["job_name"] for j in conf["scrape_configs"]}
    assert jobs == {"fatigue-ingest", "fatigue-scheduler", "fatigue-api"}


def test_dashboard_is_importable() -> None:
    dash = json.loads((ROOT / "deploy" / "grafana" / "fatigue-service.json").read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and len(ids) >= 10
    assert dash["__inputs"][0]["name"] == "DS_PROMETHEUS"
    assert all(p["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in dash["panels"])
