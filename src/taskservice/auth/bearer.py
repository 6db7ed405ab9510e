"""The client side of tokens: a Connect interceptor that sends `Authorization: Bearer <token>`."""

from __future__ import annotations

from connectrpc.request import RequestContext


class BearerToken:
    """A metadata interceptor (sync and async clients alike) adding the token to every request."""

    def __init__(self, token: str) -> None:
        self._value = f"Bearer {token.strip()}"

    def on_start_sync(self, ctx: RequestContext) -> None:  # type: ignore[type-arg]
        ctx.request_headers()["authorization"] = self._value

    def on_end_sync(self, token: None, ctx: RequestContext, error: Exception | None) -> None:  # type: ignore[type-arg]
        return

    async def on_start(self, ctx: RequestContext) -> None:  # type: ignore[type-arg]
        ctx.request_headers()["authorization"] = self._value

    async def on_end(self, token: None, ctx: RequestContext, error: Exception | None) -> None:  # type: ignore[type-arg]
        return
