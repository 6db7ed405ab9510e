"""Running the server: uvicorn with our app, logs to stderr, graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import math

import uvicorn

from taskservice.api.app import create_app
from taskservice.config import Settings


def run_server(settings: Settings, host: str, port: int, log_level: str) -> None:
    config = uvicorn.Config(
        create_app(settings),
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
    uvicorn.Server(config).run()
