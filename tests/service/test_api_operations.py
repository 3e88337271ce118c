"""The API as an operator and a client developer meet it: offline docs, documented errors, clear 422s,
liveness and readiness that mean something, one /metrics for every part. Real PostgreSQL (access seed)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from service.api import create_app
from service.metrics import SchedulerMetrics
from tests.access.access_support import World, bearer, client, world

__all__ = ["client", "world"]


def test_docs_page_loads_every_asset_from_this_server(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text) + re.findall(r"url: *'([^']+)'", page.text)
    assert urls, "the page names no assets"
    assert not [u for u in urls if u.startswith(("http:", "https:", "//"))], f"external assets: {urls}"
    for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"):
        assert asset in page.text
        got = client.get(asset)
        assert got.status_code == 200 and len(got.content) > 10_000
    assert client.get("/redoc").status_code == 404  # not offered rather than blank without internet


def test_every_token_route_documents_401_and_403(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    token_ops = [(path, method, op) for path, ops in spec["paths"].items() if path.startswith("/v1/")
                 for method, op in ops.items()]
    assert len(token_ops) >= 8
    for path, method, op in token_ops:
        for code in ("401", "403"):
            assert code in op["responses"], f"{method.upper()} {path} does not document {code}"
            assert op["responses"][code]["description"]
    ops = [op for path, ops in spec["paths"].items() if not path.startswith("/v1/") for op in ops.values()]
    assert all("401" not in op["responses"] for op in ops), "operations routes need no token"


def test_wrong_role_message_is_proof_read(client: TestClient, world: World) -> None:
    denied = client.get("/v1/admin/tokens", headers=bearer(world.managers["WMP"]))
    assert denied.status_code == 403
    assert denied.json()["detail"] == "this resource needs an admin token"
    denied = client.get("/v1/forces/WMP/flags", headers=bearer(world.admin))
    assert denied.json()["detail"] == "this resource needs a manager token"


def test_a_number_for_a_date_parameter_is_a_clear_422(client: TestClient, world: World) -> None:
    for bad in ("1", "2026-13-01", "next week"):
        got = client.get("/v1/forces/WMP/flags", params={"week": bad}, headers=bearer(world.managers["WMP"]))
        assert got.status_code == 422, bad
        (error,) = got.json()["detail"]
        assert error["loc"] == ["query", "week"]
        assert error["msg"].startswith("expected a date like 2026-03-02 (YYYY-MM-DD)"), error
        assert "datetime" not in error["msg"]
    good = client.get("/v1/forces/WMP/flags", params={"week": "2024-03-05"}, headers=bearer(world.managers["WMP"]))
    # two of the force's three officers consent to be named; the third is only in /flags/summary (issue 15)
    assert good.status_code == 200 and len(good.json()) == 2


def test_readyz_checks_the_database_and_healthz_the_parts(client: TestClient, world: World) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}
    assert client.get("/healthz").json() == {"status": "ok"}
    dead = create_app("postgresql://nobody@127.0.0.1:1/none", world.outbox, pool_size=1)
    with TestClient(dead) as c:
        got = c.get("/readyz")
        assert got.status_code == 503
        assert got.json()["checks"]["database"].startswith("database unreachable")
        assert c.get("/healthz").status_code == 200  # alive, not ready: no restart loop while PostgreSQL is away


def test_probes_of_other_parts_and_their_metrics_are_served(world: World, tmp_path: Path) -> None:
    sched = SchedulerMetrics()
    sched.ticked()
    subscribed = {"ok": False}
    app = create_app(world.api_url, world.outbox, pool_size=1, metrics_sources=[sched.registry],
                     live_probes={"scheduler_thread": lambda: None},
                     ready_probes={"broker_subscription": lambda: None if subscribed["ok"] else "not subscribed"})
    with TestClient(app) as c:
        got = c.get("/readyz")
        assert got.status_code == 503 and got.json()["checks"] == {
            "scheduler_thread": "ok", "database": "ok", "broker_subscription": "not subscribed"}
        subscribed["ok"] = True
        assert c.get("/readyz").status_code == 200
        text = c.get("/metrics").text
        tick = re.search(r"^fatigue_scheduler_last_tick_timestamp_seconds (\S+)$", text, re.MULTILINE)
        assert tick and abs(float(tick.group(1)) - sched.last_tick_at) < 1
        assert "fatigue_api_requests_total" in text
