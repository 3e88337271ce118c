"""The HTTP API (FastAPI): managers' flags and reports, researchers' export requests, administration.

Build it with :func:`create_app` and serve it with uvicorn (``fatigue api``). Authentication is an opaque
bearer token (``Authorization: Bearer fat_...``, see :mod:`service.auth`); tokens never appear in URLs or logs.
Authorisation is checked twice: by the route (token role and scope against the URL) and by PostgreSQL, because
every data query runs as the token's database role with its scope set locally (see
:mod:`service.api_common` and ``store/migrations/050_access.sql``).

Operations (no token): ``/healthz`` is liveness (the parts of this process are running: in ``fatigue serve`` the
ingester thread and a scheduler that ticks), ``/readyz`` readiness (additionally the database answers and is
migrated, and the ingester holds its MQTT subscription); both answer 200 or 503 with each check's result.
``/metrics`` exposes request counts by route template, method and status, and latencies, in the Prometheus text
format (no tokens, no URLs with values), plus the ingester's and scheduler's metrics in ``fatigue serve``.

The interactive documentation (``/docs``, Swagger UI) is served from assets bundled in the ``swagger-ui-bundle``
package under ``/docs-assets``, so it works without internet access; ``/openapi.json`` is the schema.
Every route that takes a token documents its 401 and 403 answers; a malformed parameter is a 422 whose
``detail`` names the parameter and the expected form (see :mod:`service.api_errors`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import structlog
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.registry import Collector
from psycopg_pool import PoolTimeout

from service import api_admin, api_manager, api_research
from service.api_common import ApiState, Database, table_exists
from service.api_errors import add_offline_docs, document_auth_errors, install_validation_handler
from service.metrics import Probe, Union, probe_report

__all__ = ["create_app"]

log = structlog.get_logger("service.api")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Metrics:
    """Request counter and latency histogram in the app's own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("fatigue_api_requests", "API requests by route template, method and status",
                                ("route", "method", "status"), registry=self.registry)
        self.latency = Histogram("fatigue_api_request_seconds", "API request latency by route template",
                                 ("route",), registry=self.registry)


class _ObserveMiddleware:
    """Count and log each request by its route template (never the raw path, query or headers)."""

    def __init__(self, app: Asgi, metrics: _Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(route, scope["method"], str(status_code)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            log.info("api.request", route=route, method=scope["method"], status=status_code,
                     ms=round(elapsed * 1000, 1))


def _database_unavailable(_request: Any, exc: Exception) -> JSONResponse:
    log.warning("api.database_unavailable", error=exc.__class__.__name__)
    return JSONResponse({"detail": "database unavailable"}, status_code=503)


def _pool_probe(state: ApiState) -> Probe:
    def probe() -> str | None:
        try:
            with state.db.connection() as conn:
                migrated = table_exists(conn, "core", "participants")  # catalogue only: fatigue_api owns nothing
                conn.rollback()
        except (psycopg.Error, PoolTimeout) as exc:
            return f"database unreachable ({exc.__class__.__name__})"
        return None if migrated else "database not migrated: run `fatigue db migrate`"

    return probe


def _probe_response(probes: Mapping[str, Probe], ok_body: dict[str, Any]) -> JSONResponse:
    ok, checks = probe_report(probes)
    if ok:
        return JSONResponse(ok_body if not checks else {**ok_body, "checks": checks})
    log.warning("api.probe_failed", checks=checks)
    return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)


def create_app(database_url: str, outbox_dir: Path, *, exports_dir: Path | None = None,
               pool_size: int = 8, admin_database_url: str | None = None,
               metrics_sources: Sequence[Collector] = (),
               live_probes: Mapping[str, Probe] | None = None,
               ready_probes: Mapping[str, Probe] | None = None) -> FastAPI:
    """Build the API.

    Parameters
    ----------
    database_url : str
        PostgreSQL URL for managers and researchers; in production the ``fatigue_web`` login role (owns
        nothing, NOINHERIT, not a member of ``fatigue_admin``; migration 060).
    outbox_dir : Path
        Folder that ``risk.reports`` paths are relative to.
    exports_dir : Path, optional
        Folder that ``access.export_requests.files`` paths are relative to (default ``outbox_dir``).
    pool_size : int
        Maximum number of pooled database connections.
    admin_database_url : str, optional
        PostgreSQL URL for administrator tokens (login role ``fatigue_web_admin``); default ``database_url``.
    metrics_sources : sequence of registries
        Other parts' metrics to expose on ``/metrics`` too (``fatigue serve``: ingester, scheduler, database).
    live_probes, ready_probes : mapping of name to probe
        Extra liveness and readiness checks (:mod:`service.metrics`); the database is always a readiness check.
    """
    admin_db = Database(admin_database_url, max(2, pool_size // 2)) if admin_database_url else None
    state = ApiState(Database(database_url, pool_size), Path(outbox_dir), Path(exports_dir or outbox_dir),
                     admin_db)
    metrics = _Metrics()
    exposed = Union([metrics.registry, *metrics_sources])
    live = dict(live_probes or {})
    ready = {**live, "database": _pool_probe(state), **(ready_probes or {})}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        state.db.close()
        if state.admin_db is not None:
            state.admin_db.close()

    app = FastAPI(title="fatigue-service API", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Weekly fatigue flags for force managers, export requests for researchers, "
                              "administration. Send the API token as `Authorization: Bearer fat_...`.")
    app.state.api = state
    app.state.metrics_registry = metrics.registry
    for router in (api_manager.router, api_research.router, api_admin.router):
        document_auth_errors(router)
        app.include_router(router)
    install_validation_handler(app)
    add_offline_docs(app)
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_middleware(_ObserveMiddleware, metrics=metrics)

    @app.get("/healthz", tags=["operations"], summary="Liveness: are this process's parts running?",
             responses={503: {"description": "a part stopped (restart the process); `checks` says which"}})
    def healthz() -> JSONResponse:
        return _probe_response(live, {"status": "ok"})

    @app.get("/readyz", tags=["operations"],
             summary="Readiness: database reachable and migrated, broker subscription held, scheduler ticking",
             responses={503: {"description": "not ready; `checks` gives each check's reason"}})
    def readyz() -> JSONResponse:
        return _probe_response(ready, {"status": "ready"})

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics of this process",
             response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    def prometheus() -> Response:
        return Response(generate_latest(exposed), media_type=CONTENT_TYPE_LATEST)

    return app
