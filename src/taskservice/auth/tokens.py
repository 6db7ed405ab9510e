"""Issuing API tokens: the rules of a token's name, role and lifetime, and the secret shown once."""

from __future__ import annotations

import re
from datetime import datetime

from taskservice.auth.roles import Role
from taskservice.auth.secrets import new_secret, secret_hash
from taskservice.store import Credentials, TokenRecord

NAME = re.compile(r"^[A-Za-z0-9._@-]{1,100}$")
MAX_LIFETIME = 10 * 366 * 86400.0


class BadTokenRequest(ValueError):
    """A field of a token request breaks a rule; the message starts with the field's name."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")


def check_request(name: str, role: str, expires_in_seconds: float) -> Role:
    if not NAME.fullmatch(name):  # match would let "name\n" through ($ matches before it)
        raise BadTokenRequest("name", "must be 1 to 100 letters, digits or . _ - @")
    try:
        parsed = Role(role)
    except ValueError:
        raise BadTokenRequest("role", f"must be one of {', '.join(Role)} (got {role!r})") from None
    if not 0 <= expires_in_seconds <= MAX_LIFETIME:
        raise BadTokenRequest("expires_in_seconds", "must be 0 (never) to ten years")
    return parsed


async def issue(
    credentials: Credentials, name: str, role: str, expires_in_seconds: float, created_by: str
) -> tuple[TokenRecord, str]:
    """A new token and its secret: the only time the secret exists outside the client."""
    parsed = check_request(name, role, expires_in_seconds)
    secret = new_secret()
    record = await credentials.create_token(name, parsed, secret_hash(secret), created_by, expires_in_seconds)
    return record, secret


def state(record: TokenRecord, now: datetime) -> str:
    """active, expired or revoked."""
    if record.revoked_at is not None:
        return "revoked"
    if record.expires_at is not None and record.expires_at <= now:
        return "expired"
    return "active"
