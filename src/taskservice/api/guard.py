"""What every request must pass before the app reads it: readable headers, a known protocol, a body
of bounded size that arrives in bounded time, and stream envelopes that say the truth.

ASGI middleware, so it holds under any ASGI server and for every protocol on the same routes.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskservice.api.rejection import header, protocol, reject

ENVELOPE_PREFIX = 5
COMPRESSED = 0b01
# The protocols' own grammars: gRPC's "at most 8 digits and a unit", Connect's "at most 10 digits".
# connect-python let some bad values through to a 500 `unknown` (Grpc-Timeout: 99999999999H) or a
# negative deadline (Connect-Timeout-Ms: -5).
GRPC_TIMEOUT = re.compile(r"[0-9]{1,8}[HMSmun]")
CONNECT_TIMEOUT = re.compile(r"[0-9]{1,10}")


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 4 * 1024 * 1024
    body_read_timeout: float = 30.0


class RequestGuard:
    """Refuses, in the client's protocol, what would otherwise end in a 500 or take the memory."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            try:
                bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                shown = bytes(name).decode("latin-1")
                await reject(scope, send, Code.INVALID_ARGUMENT, f"header {shown}: is not valid UTF-8")
                return
        kind = protocol(scope)
        bad_timeout = _bad_timeout(scope, kind)
        if bad_timeout:
            await reject(scope, send, Code.INVALID_ARGUMENT, bad_timeout)
            return
        if kind == "grpc" and "http.response.trailers" not in scope.get("extensions", {}):
            await reject(
                scope, send, Code.UNIMPLEMENTED,
                "gRPC needs HTTP/2 (h2c by prior knowledge, or h2 over TLS) and this request came over "
                "HTTP/1.1; over HTTP/1.1 use the Connect protocol (application/proto or application/json) "
                "or gRPC-Web",
                http_status=415,
            )  # fmt: skip
            return
        limit = self.limits.max_body_bytes
        length = header(scope, b"content-length")
        if length:
            if not length.isdigit():
                await reject(
                    scope, send, Code.INVALID_ARGUMENT, f"header content-length: {length!r} is no size"
                )
                return
            if int(length) > limit:
                await reject(scope, send, Code.RESOURCE_EXHAUSTED, _too_big(limit), http_status=413)
                return
        if kind == "connect" or scope["method"] != "POST":
            await self._buffered(scope, receive, send)
        else:
            await self.app(scope, _StreamReader(scope, receive, self.limits).receive, send)

    async def _buffered(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the whole body (as connect-python would), bounded in size and time, then pass it on."""
        limit, chunks, size = self.limits.max_body_bytes, [], 0
        try:
            async with asyncio.timeout(self.limits.body_read_timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return  # the client went away
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        await reject(scope, send, Code.RESOURCE_EXHAUSTED, _too_big(limit), http_status=413)
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            seconds = self.limits.body_read_timeout
            text = f"the request body did not arrive within {seconds:g}s (BODY_READ_TIMEOUT)"
            await reject(scope, send, Code.DEADLINE_EXCEEDED, text, http_status=408)
            return
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # e.g. http.disconnect, for apps that watch for it

        await self.app(scope, replay, send)


def _bad_timeout(scope: Scope, kind: str) -> str | None:
    """What is wrong with the request's timeout header in its protocol, if anything."""
    if kind in ("grpc", "grpc-web"):
        name, grammar, rule = b"grpc-timeout", GRPC_TIMEOUT, "1 to 8 digits and a unit (H M S m u n)"
    else:
        name, grammar, rule = b"connect-timeout-ms", CONNECT_TIMEOUT, "1 to 10 digits (milliseconds)"
    value = header(scope, name)
    if value and not grammar.fullmatch(value):
        return f"header {name.decode()}: {value[:40]!r} is not a timeout: it must be {rule}"
    return None


def _too_big(limit: int) -> str:
    return f"the request body is larger than {limit} bytes (MAX_REQUEST_BYTES)"


class _StreamReader:
    """The body of a streaming request, checked as it passes: each envelope's size, the time it takes
    to arrive, and its compressed flag against the compression the request names.

    Errors are raised as ConnectError from `receive`, which connect-python sends as the stream's end.
    """

    def __init__(self, scope: Scope, receive: Receive, limits: Limits) -> None:
        self._receive, self.limits = receive, limits
        name = b"grpc-encoding" if protocol(scope) in ("grpc", "grpc-web") else b"connect-content-encoding"
        self._compressed_allowed = header(scope, name).lower() not in ("", "identity")
        self._buffer = bytearray()  # the unread part of the current envelope's prefix
        self._remaining = 0  # bytes of the current envelope's message still to come
        self._deadline: float | None = time.monotonic() + limits.body_read_timeout  # the first message

    async def receive(self) -> Message:
        try:
            if self._deadline is None:
                message = await self._receive()
            else:
                message = await asyncio.wait_for(self._receive(), max(self._deadline - time.monotonic(), 0))
        except TimeoutError:
            raise ConnectError(
                Code.DEADLINE_EXCEEDED,
                f"a request message did not arrive within {self.limits.body_read_timeout:g}s "
                "(BODY_READ_TIMEOUT)",
            ) from None
        if message["type"] == "http.request":
            self._scan(memoryview(message.get("body", b"")))
            if not message.get("more_body", False) and (self._buffer or self._remaining):
                raise ConnectError(Code.INVALID_ARGUMENT, "the request ends inside a message envelope")
        return message

    def _scan(self, data: memoryview) -> None:
        while data:
            if self._remaining:
                step = min(self._remaining, len(data))
                self._remaining -= step
                data = data[step:]
                if not self._remaining:
                    self._deadline = None  # a whole message: waiting for the next one is no offence
                continue
            if not self._buffer and self._deadline is None:
                self._deadline = time.monotonic() + self.limits.body_read_timeout  # a message begins
            need = ENVELOPE_PREFIX - len(self._buffer)
            self._buffer += data[:need]
            data = data[need:]
            if len(self._buffer) < ENVELOPE_PREFIX:
                return
            flags, length = self._buffer[0], int.from_bytes(self._buffer[1:5], "big")
            self._buffer.clear()
            if flags & COMPRESSED and not self._compressed_allowed:
                raise ConnectError(
                    Code.INVALID_ARGUMENT,
                    "a message is flagged compressed but the request names no compression "
                    "(Connect-Content-Encoding or grpc-encoding)",
                )
            if length > self.limits.max_body_bytes:
                raise ConnectError(Code.RESOURCE_EXHAUSTED, _too_big(self.limits.max_body_bytes))
            self._remaining = length
            if not length:
                self._deadline = None
