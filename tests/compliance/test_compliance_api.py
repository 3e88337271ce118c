"""GET /v1/admin/compliance: administrators only, names only on request (audited); managers and researchers 403.

Uses the access tests' world (three forces x three participants from 2024-03-04, API as ``fatigue_api``).
Nobody has sent any data: on programme day 7 everyone is lapsed (silent since the programme start), which is
exactly who a compliance view must show.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from fastapi.testclient import TestClient

from compliance.job import run_compliance
from compliance.rules import ComplianceRules
from tests.access.access_support import FORCES, World, bearer, client, world

__all__ = ["client", "world"]
NOW = datetime(2024, 3, 10, 12, tzinfo=UTC)


@pytest.fixture(scope="module", autouse=True)
def evaluated(world: World) -> None:
    with psycopg.connect(world.url, autocommit=True) as conn:
        summary = run_compliance(conn, ComplianceRules(), "Europe/London", now=NOW)
    assert summary.participants == 9


def test_admin_sees_everyone_worst_first_without_names(client: TestClient, world: World) -> None:
    r = client.get("/v1/admin/compliance", headers=bearer(world.admin))
    assert r.status_code == 200
    rows = r.json()
    assert len(rows) == 9
    assert {x["level"] for x in rows} == {"lapsed"}
    assert all(x["staff_ref"] is None for x in rows)
    assert all(x["expected_nights_7d"] == 6 and x["valid_nights_7d"] == 0 for x in rows)
    assert all("silent" in x["reasons"] and "nights" in x["reasons"] for x in rows)
    assert all(x["last_seen_ts"] is None for x in rows), "never heard from is shown as such"


def test_names_only_on_request_and_the_read_is_audited(client: TestClient, world: World) -> None:
    r = client.get("/v1/admin/compliance", params={"force_id": "WMP", "include_identity": "true"},
                   headers=bearer(world.admin))
    assert sorted(x["staff_ref"] for x in r.json()) == sorted(world.staff_refs["WMP"])
    with psycopg.connect(world.url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM access.audit_log WHERE action = 'read_compliance_identities' "
                           "AND force_id = 'WMP'").fetchone()
    assert row == (1,)


def test_level_filter(client: TestClient, world: World) -> None:
    r = client.get("/v1/admin/compliance", params=[("level", "ok"), ("level", "watch")], headers=bearer(world.admin))
    assert r.status_code == 200 and r.json() == []


@pytest.mark.parametrize("who", ["manager", "researcher"])
def test_other_roles_are_refused(client: TestClient, world: World, who: str) -> None:
    token = world.managers[FORCES[0]] if who == "manager" else next(iter(world.researchers.values()))
    r = client.get("/v1/admin/compliance", headers=bearer(token))
    assert r.status_code == 403
    assert world.staff_refs[FORCES[0]][0] not in r.text
