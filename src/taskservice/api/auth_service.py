"""The Connect service `cloud.v1.AuthService`: who am I, and the API tokens (the table says who may;
api/errors.py answers what the calls raise)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from taskservice import auth
from taskservice.api.convert import timestamp
from taskservice.auth import tokens
from taskservice.gen.cloud.v1 import auth_pb2 as pb
from taskservice.store import Credentials, TokenRecord


def token_message(record: TokenRecord, now: datetime) -> pb.ApiToken:
    return pb.ApiToken(
        id=record.id,
        name=record.name,
        role=record.role,
        created_at=timestamp(record.created_at),
        expires_at=timestamp(record.expires_at),
        revoked_at=timestamp(record.revoked_at),
        last_used_at=timestamp(record.last_used_at),
        created_by=record.created_by,
        state=tokens.state(record, now),
    )


class AuthService:
    """Implements every RPC of AuthService; `credentials` is set when the server starts."""

    def __init__(self) -> None:
        self._credentials: Credentials | None = None

    def attach(self, credentials: Credentials) -> None:
        self._credentials = credentials

    @property
    def credentials(self) -> Credentials:
        if self._credentials is None:
            raise ConnectError(Code.UNAVAILABLE, "the server is starting; try again")
        return self._credentials

    async def who_am_i(self, request: pb.WhoAmIRequest, ctx: RequestContext[Any, Any]) -> pb.WhoAmIResponse:
        caller = auth.current()
        rights = sorted(right.value for right in auth.ROLE_RIGHTS[caller.role])
        return pb.WhoAmIResponse(name=caller.name, role=caller.role.value, kind=caller.kind, rights=rights)

    async def create_token(
        self, request: pb.CreateTokenRequest, ctx: RequestContext[Any, Any]
    ) -> pb.CreateTokenResponse:
        caller = auth.current()
        record, secret = await tokens.issue(
            self.credentials, request.name, request.role, request.expires_in_seconds, caller.name
        )
        return pb.CreateTokenResponse(token=token_message(record, datetime.now(UTC)), secret=secret)

    async def list_tokens(
        self, request: pb.ListTokensRequest, ctx: RequestContext[Any, Any]
    ) -> pb.ListTokensResponse:
        now = datetime.now(UTC)
        return pb.ListTokensResponse(
            tokens=[token_message(r, now) for r in await self.credentials.list_tokens()]
        )

    async def revoke_token(
        self, request: pb.RevokeTokenRequest, ctx: RequestContext[Any, Any]
    ) -> pb.ApiToken:
        if not request.name and request.id <= 0:
            raise ConnectError(Code.INVALID_ARGUMENT, "name: give the token's name, or its id")
        record = await self.credentials.revoke_token(name=request.name, token_id=request.id)
        return token_message(record, datetime.now(UTC))
