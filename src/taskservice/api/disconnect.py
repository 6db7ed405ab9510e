"""Telling a server stream that its client went away, as soon as it does (not at its next message).

connect-python notices a disconnect only when the stream yields its next message, and then drops that
message: for the agents' dispatch stream that would be an assignment sent nowhere, and a session of a
gone agent left open (and fed) until then. This ASGI wrapper notes the client's `http.disconnect` in
an event the handler reads (`client_gone()`), so it can stop before taking anything more.
"""

from __future__ import annotations

import asyncio
import contextvars

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_GONE: contextvars.ContextVar[asyncio.Event | None] = contextvars.ContextVar("client_gone", default=None)


def client_gone() -> asyncio.Event:
    """Set when the client of the request being handled disconnects (never set outside a request)."""
    return _GONE.get() or asyncio.Event()


class DisconnectWatch:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gone = asyncio.Event()

        async def watched() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
            return message

        token = _GONE.set(gone)
        try:
            await self.app(scope, watched, send)
        finally:
            _GONE.reset(token)
