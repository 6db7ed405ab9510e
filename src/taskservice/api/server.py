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
from typing import ClassVar

import structlog
import uvicorn
import zttp
from starlette.applications import Starlette
from uvicorn.protocols.http.auto_zttp_impl import AutoZttpProtocol
from uvicorn.protocols.http.zttp_h2_impl import ZttpH2Protocol
from uvicorn.protocols.http.zttp_impl import ZttpProtocol

from taskservice.api.app import create_app
from taskservice.api.connections import ConnectionWatch, HeaderDeadline, connection_cap
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


NOT_ASCII = b"Invalid HTTP request target: bytes above 0x7f must be percent-encoded."


class _H1(ZttpProtocol):
    """uvicorn's HTTP/1.1, with a deadline for request headers, and a 400 for a target that is not ASCII.

    uvicorn 0.54 decodes the target as ASCII without a guard: a byte above 0x7f raised out of
    data_received, which dropped the connection and logged a traceback per request.
    """

    deadline: HeaderDeadline | None = None  # set before connection_made

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.deadline is not None:
            self.deadline.start(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline is not None:
            self.deadline.stop(self)
        super().connection_lost(exc)

    def drop(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def handle_events(self, event: zttp.Event) -> None:
        before = self.scope
        try:
            super().handle_events(event)
        except UnicodeDecodeError:
            self.send_400_response(NOT_ASCII.decode())
        if self.scope is not before and self.deadline is not None:  # a request's headers came
            self.deadline.stop(self)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and self.deadline is not None and not self.transport.is_closing():
            self.deadline.start(self)  # the next request's headers, on this keep-alive connection


class _H2(ZttpH2Protocol):
    """uvicorn's HTTP/2, ending a request whose HEADERS frame ends its stream (a GET) at once; with a
    deadline for request headers while no stream is open, and a 400 for a path that is not ASCII.

    uvicorn 0.54 waits for a DATA frame to end the body, so an app that reads the body of a GET over
    HTTP/2 (our limits do, before anything else) waits until the body timeout.
    """

    deadline: HeaderDeadline | None = None  # set before connection_made

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline is not None:
            self.deadline.stop(self)
        super().connection_lost(exc)

    def drop(self) -> None:
        self._close_connection()

    def _watch_headers(self) -> None:
        if self.deadline is None or self.transport.is_closing():
            return
        if self.cycles:
            self.deadline.stop(self)
        else:
            self.deadline.start(self)

    def handle_events(self) -> None:
        super().handle_events()
        self._watch_headers()

    def on_stream_closed(self) -> None:
        super().on_stream_closed()
        self._watch_headers()

    def handle_request(self, event: zttp.Request) -> None:
        if not event.path.isascii():
            stream = self.conn.stream(event.stream_id)
            length = str(len(NOT_ASCII)).encode()
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", length)]
            stream.send_response(400, headers)
            stream.send_data(NOT_ASCII)
            stream.end_message()
            self.flush()
            return
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
    """HTTP/1.1 or HTTP/2 per connection, by ALPN or the HTTP/2 preface, as uvicorn's, with _H1 and
    _H2; each new connection is admitted under the cap of `watch` (see api/connections.py)."""

    watch: ClassVar[ConnectionWatch]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        keep_alive(transport)  # an original-style agent's idle stream gets no message to keep it alive
        self.deadline = HeaderDeadline(self.watch, self.loop)
        super().connection_made(transport)  # over TLS, it switches at once
        if transport.get_protocol() is self:
            self.deadline.start(self)  # the first bytes, which say the protocol, are awaited
        self.watch.admit(len(self.connections))

    def connection_lost(self, exc: Exception | None) -> None:
        self.deadline.stop(self)
        super().connection_lost(exc)

    def drop(self) -> None:
        self.transport.close()

    def _switch(self, http2: bool, initial_data: bytes = b"") -> None:
        self.deadline.stop(self)
        protocol: _H1 | _H2 = (_H2 if http2 else _H1)(
            config=self.config, server_state=self.server_state, app_state=self.app_state, _loop=self.loop
        )
        protocol.deadline = HeaderDeadline(self.watch, self.loop)
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
    watch = ConnectionWatch(settings.header_timeout_seconds, connection_cap(settings.db_pool_max_conns))
    log.info("open connections capped", cap=watch.cap, header_timeout_seconds=watch.header_timeout)
    protocols = type("_ServedProtocols", (_Protocols,), {"watch": watch})
    tls = settings.tls_cert_file is not None and settings.tls_key_file is not None
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=log_level == "debug",
        log_config=None,  # keep taskservice.logs' stderr setup rather than uvicorn's own
        loop="uvloop",
        http=protocols,  # zttp's HTTP/1.1 and HTTP/2 (what `http="zttp", http2=True` picks), fixed
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace),
        ssl_certfile=str(settings.tls_cert_file) if tls else None,
        ssl_keyfile=str(settings.tls_key_file) if tls else None,
    )
    _Server(config, app).run()
