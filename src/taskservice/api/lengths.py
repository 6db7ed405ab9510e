"""Content-Length on every answer sent in one piece (connect-python's unary answers have none).

Without it an HTTP/1.1 server sends the body chunked: the client pays for the framing and cannot
size its read. A response whose first body message is also its last gets the header; a stream
(a body in several messages, such as WatchEvents) passes unchanged.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LENGTH = b"content-length"


class ContentLength:
    """ASGI middleware: holds back `http.response.start` until the first body message says more."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None

        async def send_with_length(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if start is not None and message["type"] == "http.response.body":
                held, start = start, None
                headers = list(held.get("headers", []))
                if not message.get("more_body", False) and all(k.lower() != _LENGTH for k, _ in headers):
                    headers.append((_LENGTH, str(len(message.get("body", b""))).encode()))
                    held = {**held, "headers": headers}
                await send(held)
            elif start is not None:  # trailers or anything else: the start goes first, as it was
                held, start = start, None
                await send(held)
            await send(message)

        await self.app(scope, receive, send_with_length)
        if start is not None:  # a start with no body at all
            await send(start)
