"""S2 and the API's behaviour per role: managers see their own force only (every ordered pair of forces, and a
Hypothesis search over random token x force x endpoint), researchers their own project, admins administer."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.access.access_support import FORCES, World, bearer

ENDPOINTS = ("flags", "flags_week", "summary", "reports", "report")


def _path(world: World, endpoint: str, force: str) -> str:
    base = f"/v1/forces/{force}"
    report = world.reports.get(force, uuid.uuid4())
    return {"flags": f"{base}/flags", "flags_week": f"{base}/flags?week=2024-03-06",
            "summary": f"{base}/flags/summary",
            "reports": f"{base}/reports", "report": f"{base}/reports/{report}"}[endpoint]


def _force_data(world: World, force: str) -> list[str]:
    """Strings that would reveal force data in a response body."""
    return [*(str(p) for p in world.participants[force]), *world.staff_refs[force], str(world.reports[force]),
            f"report of {force}"]


def test_manager_reads_own_force(client: TestClient, world: World) -> None:
    token = world.managers["WMP"]
    flags = client.get("/v1/forces/WMP/flags", headers=bearer(token)).json()
    # only the two officers who consented to be named; the third is counted in the summary only (issue 15)
    assert {f["participant_id"] for f in flags} == {str(p) for p in world.participants["WMP"][:2]}
    assert sorted(f["staff_ref"] for f in flags) == world.staff_refs["WMP"][:2]
    week = client.get("/v1/forces/WMP/flags", params={"week": "2024-03-10"}, headers=bearer(token)).json()
    assert len(week) == 2
    summary = client.get("/v1/forces/WMP/flags/summary", headers=bearer(token)).json()
    assert summary["iso_week"] == "2024-W10" and summary["officers"] == 3
    assert set(summary["levels"].values()) == {None} and summary["flagged_not_named"] is None
    assert client.get("/v1/forces/WMP/flags", params={"week": "2024-03-11"}, headers=bearer(token)).json() == []
    reports = client.get("/v1/forces/WMP/reports", headers=bearer(token)).json()
    assert [r["report_id"] for r in reports] == [str(world.reports["WMP"])]
    html = client.get(f"/v1/forces/WMP/reports/{world.reports['WMP']}", headers=bearer(token))
    assert html.status_code == 200 and "report of WMP" in html.text


def test_every_ordered_force_pair_is_isolated(client: TestClient, world: World) -> None:
    for own in FORCES:
        for other in FORCES:
            if own == other:
                continue
            for endpoint in ENDPOINTS:
                resp = client.get(_path(world, endpoint, other), headers=bearer(world.managers[own]))
                assert resp.status_code in (403, 404), (own, other, endpoint)
                assert not any(s in resp.text for s in _force_data(world, other)), (own, other, endpoint)
            # the own force's report id under the other force's URL, and the other's id under the own URL
            resp = client.get(f"/v1/forces/{own}/reports/{world.reports[other]}", headers=bearer(world.managers[own]))
            assert resp.status_code == 404 and "report of" not in resp.text


def test_denials_are_audited(client: TestClient, world: World) -> None:
    client.get("/v1/forces/GMP/flags", headers=bearer(world.managers["MPS"]))
    with psycopg.connect(world.url) as conn:
        row = conn.execute("SELECT role, action, force_id, outcome FROM access.audit_log "
                           "WHERE outcome = 'denied' ORDER BY audit_id DESC LIMIT 1").fetchone()
    assert row == ("manager", "out_of_scope", "MPS", "denied")


def _expect(world: World, token: str, force: str, endpoint: str, resp: Any) -> None:
    manager_of = {t: f for f, t in world.managers.items()}
    allowed = manager_of.get(token) == force
    if not allowed:
        assert resp.status_code in (401, 403, 404), resp.status_code
        for f in FORCES:
            assert not any(s in resp.text for s in _force_data(world, f))
        return
    assert resp.status_code == 200
    others = [s for f in FORCES if f != force for s in _force_data(world, f)]
    assert not any(s in resp.text for s in others)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_no_leak_over_random_requests(client: TestClient, world: World, data: st.DataObject) -> None:
    token = data.draw(st.sampled_from(world.all_tokens()), label="token")
    force = data.draw(st.sampled_from([*FORCES, "XYZ"]), label="force")
    endpoint = data.draw(st.sampled_from(ENDPOINTS), label="endpoint")
    resp = client.get(_path(world, endpoint, force), headers=bearer(token))
    _expect(world, token, force, endpoint, resp)


def test_researcher_exports_own_project_only(client: TestClient, world: World) -> None:
    p1, p2 = world.researchers["P1"], world.researchers["P2"]
    created = client.post("/v1/projects/P1/exports", json={"description": "sleep debt by week"}, headers=bearer(p1))
    assert created.status_code == 201 and created.json()["status"] == "requested"
    rid = created.json()["request_id"]
    assert client.get(f"/v1/projects/P1/exports/{rid}", headers=bearer(p1)).json()["status"] == "requested"
    assert client.get(f"/v1/projects/P1/exports/{rid}/files/0", headers=bearer(p1)).status_code == 409
    assert client.get(f"/v1/projects/P1/exports/{rid}", headers=bearer(p2)).status_code == 403
    assert client.get(f"/v1/projects/P2/exports/{rid}", headers=bearer(p2)).status_code == 404
    assert client.get("/v1/projects/P2/exports", headers=bearer(p2)).json() == []
    assert client.post("/v1/projects/P2/exports", headers=bearer(p1)).status_code == 403
    assert client.get("/v1/forces/WMP/flags", headers=bearer(p1)).status_code == 403
    (world.outbox / "exports").mkdir(exist_ok=True)
    (world.outbox / "exports" / "features.csv").write_text("pid,day\n", encoding="utf-8")
    with psycopg.connect(world.url, autocommit=True) as conn:
        conn.execute("UPDATE access.export_requests SET status = 'done', files = %s WHERE request_id = %s",
                     (["exports/features.csv", "../../etc/passwd"], rid))
    got = client.get(f"/v1/projects/P1/exports/{rid}/files/0", headers=bearer(p1))
    assert got.status_code == 200 and got.text == "pid,day\n"
    assert client.get(f"/v1/projects/P1/exports/{rid}/files/1", headers=bearer(p1)).status_code == 404
    assert client.get(f"/v1/projects/P1/exports/{rid}/files/2", headers=bearer(p1)).status_code == 404


def test_researcher_rls_rejects_other_project_rows(world: World) -> None:
    with psycopg.connect(world.url, autocommit=True) as conn:
        conn.execute("SET ROLE fatigue_researcher")
        conn.execute("SET fatigue.project = 'P2'")
        assert conn.execute("SELECT count(*) FROM access.export_requests WHERE project = 'P1'").fetchone() == (0,)
        try:
            conn.execute("INSERT INTO access.export_requests (project, requested_by) VALUES ('P1', %s)",
                         (uuid.uuid4(),))
            raise AssertionError("insert into another project was accepted")
        except psycopg.errors.InsufficientPrivilege:
            pass


def test_admin_participants_devices_and_withdraw(client: TestClient, world: World) -> None:
    admin = bearer(world.admin)
    plain = client.get("/v1/admin/participants", params={"force_id": "MPS"}, headers=admin).json()
    assert len(plain) == 3 and all(p["staff_ref"] is None for p in plain)
    named = client.get("/v1/admin/participants", params={"include_identity": "true"}, headers=admin).json()
    assert {p["staff_ref"] for p in named} == {r for refs in world.staff_refs.values() for r in refs}
    assert client.get("/v1/admin/devices", headers=admin).status_code == 200
    assert client.get("/v1/admin/participants", headers=bearer(world.managers["WMP"])).status_code == 403
    pid = world.participants["MPS"][2]
    done = client.post(f"/v1/admin/participants/{pid}/withdraw", headers=admin)
    assert done.status_code == 200 and done.json()["erased"] is False
    assert client.post(f"/v1/admin/participants/{uuid.uuid4()}/withdraw", headers=admin).status_code == 404
    erased = client.post(f"/v1/admin/participants/{pid}/withdraw", json={"erase": True}, headers=admin)
    assert erased.status_code == 200 and erased.json()["rows_erased"]["core.participants"] == 1
    with psycopg.connect(world.url) as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM access.audit_log WHERE role = 'admin' "
                                              "ORDER BY audit_id").fetchall()]
    assert {"read_participants", "read_identities", "withdraw", "erase"} <= set(actions)
    world.participants["MPS"].pop(2)
    world.staff_refs["MPS"].pop(2)


def test_admin_tokens_create_list_revoke(client: TestClient, world: World) -> None:
    admin = bearer(world.admin)
    made = client.post("/v1/admin/tokens", json={"role": "manager", "force_id": "GMP", "lifetime": "12h"},
                       headers=admin)
    assert made.status_code == 201
    token, token_id = made.json()["token"], made.json()["token_id"]
    assert client.get("/v1/forces/GMP/reports", headers=bearer(token)).status_code == 200
    listed = client.get("/v1/admin/tokens", headers=admin).json()
    assert token_id in {t["token_id"] for t in listed} and all(t["token"] is None for t in listed)
    assert client.post(f"/v1/admin/tokens/{token_id}/revoke", headers=admin).status_code == 200
    assert client.get("/v1/forces/GMP/reports", headers=bearer(token)).status_code == 401
    bad = client.post("/v1/admin/tokens", json={"role": "manager", "force_id": "NOPE"}, headers=admin)
    assert bad.status_code == 422
    assert client.post("/v1/admin/tokens", json={"role": "researcher"}, headers=admin).status_code == 422
    assert client.post("/v1/admin/tokens", json={"role": "admin", "lifetime": "91d"}, headers=admin).status_code == 422


def test_health_and_metrics(client: TestClient, world: World) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    client.get("/v1/forces/WMP/flags", headers=bearer(world.managers["WMP"]))
    text = client.get("/metrics").text
    assert 'route="/v1/forces/{force_id}/flags"' in text and 'status="200"' in text
    assert "fat_" not in text and "/v1/forces/WMP" not in text
