"""The HTTP API (FastAPI): managers' flags and reports, researchers' export requests, administration.

Build it with :func:`create_app` and serve it with uvicorn (``fatigue api``). Authentication is an opaque
bearer token (``Authorization: Bearer fat_...``, see :mod:`service.auth`); tokens never appear in URLs or logs.
Authorisation is checked twice: by the route (token role and scope against the URL) and by PostgreSQL, because
every data query runs as the token's database role with its scope set locally (see
:mod:`service.api_common` and ``store/migrations/050_access.sql``).

``/healthz`` says whether the database is reachable; ``/metrics`` exposes request counts by route template,
method and status, and latencies, in the Prometheus text format (no tokens, no URLs with values).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import structlog
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from psycopg_pool import PoolTimeout

from service import api_admin, api_manager, api_research
from service.api_common import ApiState, Database

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


def create_app(database_url: str, outbox_dir: Path, *, exports_dir: Path | None = None,
               pool_size: int = 8, admin_database_url: str | None = None) -> FastAPI:
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
    """
    admin_db = Database(admin_database_url, max(2, pool_size // 2)) if admin_database_url else None
    state = ApiState(Database(database_url, pool_size), Path(outbox_dir), Path(exports_dir or outbox_dir),
                     admin_db)
    metrics = _Metrics()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        state.db.close()
        if state.admin_db is not None:
            state.admin_db.close()

    app = FastAPI(title="fatigue-service API", version="1", lifespan=lifespan,
                  description="Weekly fatigue flags for force managers, export requests for researchers, "
                              "administration. Send the API token as `Authorization: Bearer fat_...`.")
    app.state.api = state
    app.include_router(api_manager.router)
    app.include_router(api_research.router)
    app.include_router(api_admin.router)
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_middleware(_ObserveMiddleware, metrics=metrics)

    @app.get("/healthz", tags=["operations"], summary="Is the database reachable?",
             responses={503: {"description": "database unreachable"}})
    def healthz() -> JSONResponse:
        try:
            with state.db.connection() as conn:
                conn.execute("SELECT 1")
                conn.rollback()
        except (psycopg.Error, PoolTimeout) as exc:
            return _database_unavailable(None, exc)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics of this API process",
             response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
