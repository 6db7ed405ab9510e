"""Running the server: uvicorn with our app, logs to stderr, graceful shutdown on SIGTERM/SIGINT.

Every protocol on one port: uvicorn's zttp protocol serves HTTP/1.1 and HTTP/2 (h2c by prior knowledge,
or h2 by ALPN over TLS) with the ASGI trailers extension on HTTP/2, which gRPC needs. Chosen by
measurement (docs/protocols.md): it costs the same CPU per CreateTask as httptools did; hypercorn
twice as much; granian has no trailers.
"""

from __future__ import annotations

import math
import socket

import structlog
import uvicorn
from starlette.applications import Starlette

from taskservice.api.app import create_app
from taskservice.auth.exposure import auth_required, is_loopback
from taskservice.config import Settings

log = structlog.get_logger(__name__)


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
    """Serve until SIGTERM/SIGINT. Raises InsecureRefused rather than listen open beyond loopback."""
    required = auth_required(settings, host)
    if not required and not is_loopback(host):
        log.warning(
            "ALLOW_INSECURE=true: listening beyond loopback WITHOUT authentication; anyone who reaches "
            "this address can read and change every task",
            host=host,
        )
    app = create_app(settings, auth_required=required)
    tls = settings.tls_cert_file is not None and settings.tls_key_file is not None
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=log_level == "debug",
        log_config=None,  # keep taskservice.logs' stderr setup rather than uvicorn's own
        loop="uvloop",
        http="zttp",
        http2=True,
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace),
        ssl_certfile=str(settings.tls_cert_file) if tls else None,
        ssl_keyfile=str(settings.tls_key_file) if tls else None,
    )
    _Server(config, app).run()
