"""Running the server: uvicorn with our app, logs to stderr, graceful shutdown on SIGTERM/SIGINT.

Every protocol on one port: uvicorn's zttp protocol serves HTTP/1.1 and HTTP/2 (h2c by prior knowledge,
or h2 by ALPN over TLS) with the ASGI trailers extension on HTTP/2, which gRPC needs. Chosen by
measurement (docs/protocols.md): it costs the same CPU per CreateTask as httptools did; hypercorn
twice as much; granian has no trailers.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from typing import Any

import structlog
import uvicorn
import zttp
from starlette.applications import Starlette
from uvicorn.protocols.http.auto_zttp_impl import AutoZttpProtocol
from uvicorn.protocols.http.zttp_h2_impl import ZttpH2Protocol
from uvicorn.protocols.http.zttp_impl import ZttpProtocol

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


class _H2(ZttpH2Protocol):
    """uvicorn's HTTP/2, ending a request whose HEADERS frame ends its stream (a GET) at once.

    uvicorn 0.54 waits for a DATA frame to end the body, so an app that reads the body of a GET over
    HTTP/2 (our limits do, before anything else) waits until the body timeout.
    """

    def handle_request(self, event: zttp.Request) -> None:
        super().handle_request(event)
        cycle = self.cycles.get(event.stream_id)
        if event.end_stream and cycle is not None:
            cycle.more_body = False
            cycle.message_event.set()


# TCP keepalive on every connection: an original-style agent's PullEvents stream is sent nothing but
# work (its agent reads `work.task.id` of every message unchecked), so its idle connection is kept
# alive, and a vanished peer found, by the kernel's probes instead: after a minute idle, every 15 s.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES = 60, 15, 4


def keep_alive(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError, AttributeError):  # an option this platform lacks
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)


class _Protocols(AutoZttpProtocol):
    """HTTP/1.1 or HTTP/2 per connection, by ALPN or the HTTP/2 preface, as uvicorn's, with _H2."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        keep_alive(transport)
        super().connection_made(transport)

    def _switch(self, http2: bool, initial_data: bytes = b"") -> None:
        protocol_class: type[asyncio.Protocol] = _H2 if http2 else ZttpProtocol
        protocol: Any = protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.app_state, _loop=self.loop
        )
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        if initial_data:
            protocol.data_received(initial_data)


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
        http=_Protocols,  # zttp's HTTP/1.1 and HTTP/2 (what `http="zttp", http2=True` picks), fixed
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace),
        ssl_certfile=str(settings.tls_cert_file) if tls else None,
        ssl_keyfile=str(settings.tls_key_file) if tls else None,
    )
    _Server(config, app).run()
