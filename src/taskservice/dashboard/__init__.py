"""The web dashboard: the page, its static files, and the routes that serve them (same origin as the API)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Route


async def index(request: Request) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><title>taskservice</title><h1>taskservice</h1>"
        "<p>API: <code>POST /cloud.v1.TaskManagementService/&lt;Method&gt;</code>. "
        '<a href="/healthz">/healthz</a> <a href="/readyz">/readyz</a> <a href="/metrics">/metrics</a>'
    )


def routes() -> list[BaseRoute]:
    """The dashboard's routes, mounted at / by the server."""
    return [Route("/", index)]
