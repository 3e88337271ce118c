"""How the API documents and words its errors, and its offline documentation pages.

- Every route that depends on a bearer token documents ``401`` (missing, malformed, expired or revoked token)
  and ``403`` (wrong role or outside the token's scope), with the ``{"detail": "..."}`` body they return.
- A malformed parameter is a ``422`` whose ``detail`` keeps FastAPI's list (``loc``, ``type``, ``input``) but
  whose ``msg`` names the expected form in words: ``?week=1`` on a date parameter says
  ``expected a date like 2026-03-02 (YYYY-MM-DD)`` instead of a datetime parser's internals.
- ``/docs`` is Swagger UI from the ``swagger-ui-bundle`` package's files, served under ``/docs-assets``: it
  works on a machine without internet access. ReDoc is not offered (no packaged copy of its assets).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute, APIRouter
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

__all__ = ["ASSETS_URL", "ErrorDetail", "add_offline_docs", "document_auth_errors", "install_validation_handler",
           "plain_message"]

ASSETS_URL = "/docs-assets"


class ErrorDetail(BaseModel):
    """Body of every error the API raises itself."""

    detail: str


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorDetail, "description": "Missing, malformed, expired or revoked bearer token "
                                               "(`WWW-Authenticate: Bearer`); send `Authorization: Bearer fat_...`."},
    403: {"model": ErrorDetail, "description": "The token's role may not use this route, or the force or project "
                                               "in the URL is outside the token's scope (the denial is audited)."},
    503: {"model": ErrorDetail, "description": "The database is unavailable; try again later."},
}

#: Pydantic error types -> the expected form, in words.
_EXPECTED = {
    "date": "a date like 2026-03-02 (YYYY-MM-DD)",
    "datetime": "a date and time with offset like 2026-03-02T08:00:00Z (RFC 3339)",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "uuid": "a UUID like 3f2b8c1e-7a4d-4e2a-9c1b-2d3e4f5a6b7c",
}


def _needs_token(route: APIRoute) -> bool:
    from service.api_common import authenticate

    return _depends_on(route.dependant, authenticate)


def _depends_on(dependant: Any, target: Any) -> bool:
    return dependant.call is target or any(_depends_on(d, target) for d in dependant.dependencies)


def document_auth_errors(router: APIRouter) -> None:
    """Add the 401/403/503 responses to every route of ``router`` that authenticates (before including it)."""
    for route in router.routes:
        if isinstance(route, APIRoute) and _needs_token(route):
            for code, spec in AUTH_RESPONSES.items():
                route.responses.setdefault(code, spec)


def plain_message(error: dict[str, Any]) -> str:
    """The ``msg`` for one validation error: the expected form in words when the type says what it was."""
    kind = str(error.get("type", ""))
    for prefix, expected in _EXPECTED.items():
        if kind == prefix or kind.startswith(prefix + "_"):
            got = error.get("input")
            return f"expected {expected}" + ("" if got is None else f", got {str(got)[:40]!r}")
    return str(error.get("msg", "invalid value"))


def install_validation_handler(app: FastAPI) -> None:
    """Answer malformed parameters with 422 and a ``msg`` that says what form was expected."""

    async def handler(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail = []
        for error in exc.errors():
            item = {k: v for k, v in error.items() if k in ("loc", "type", "input")}
            item["msg"] = plain_message(error)
            detail.append(item)
        return JSONResponse({"detail": detail}, status_code=422)

    app.add_exception_handler(RequestValidationError, handler)


def add_offline_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` from the bundled assets (no CDN)."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount(ASSETS_URL, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - docs",
                                   swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png")
