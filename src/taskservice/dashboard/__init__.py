"""The web dashboard: the page, its static files, and the routes that serve them (same origin as the API)."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"

# The page and its modules change with each release while their URLs stay the same: the browser must
# revalidate (cheap: a 304 via ETag) rather than run yesterday's JavaScript against today's API.
NO_STALE = {"Cache-Control": "no-cache"}


class RevalidatedStaticFiles(StaticFiles):
    """Static files that the browser always revalidates before use."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(NO_STALE)
        return response


async def index(request: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html", headers=NO_STALE)


def routes(retention_note: str = "", trace_ui_url: str = "") -> list[BaseRoute]:
    """The dashboard's routes, mounted at / by the server; `retention_note` says what is kept, and
    `trace_ui_url` (TRACE_UI_URL) where a task's trace is shown ({trace_id} standing for its id)."""

    async def retention(request: Request) -> JSONResponse:
        return JSONResponse({"note": retention_note, "traceUrl": trace_ui_url}, headers=NO_STALE)

    return [
        Route("/", index),
        Route("/retention", retention),
        Mount("/static", app=RevalidatedStaticFiles(directory=STATIC), name="dashboard-static"),
    ]
