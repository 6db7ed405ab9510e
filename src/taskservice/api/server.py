"""Running the server: uvicorn with our app, logs to stderr, graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import math
import socket

import uvicorn
from starlette.applications import Starlette

from taskservice.api.app import create_app
from taskservice.config import Settings


class _Server(uvicorn.Server):
    """uvicorn's server, which first ends the app's event streams when it stops.

    uvicorn waits for open responses before it stops: a WatchEvents stream (the dashboard keeps one
    open) would hold it for the whole graceful-shutdown timeout, then be cancelled with a traceback.
    """

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._app.state.end_streams()
        await super().shutdown(sockets)


def run_server(settings: Settings, host: str, port: int, log_level: str) -> None:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=log_level == "debug",
        log_config=None,  # keep taskservice.logs' stderr setup rather than uvicorn's own
        loop="uvloop",
        http="httptools",
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace),
    )
    _Server(config, app).run()
