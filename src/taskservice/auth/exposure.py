"""Whether a server must require credentials: by default, whenever it listens beyond loopback."""

from __future__ import annotations

import ipaddress

from taskservice.config import Settings


class InsecureRefused(RuntimeError):
    """The server would listen beyond loopback without auth, and ALLOW_INSECURE does not say so."""


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def auth_required(settings: Settings, host: str) -> bool:
    """AUTH_REQUIRED, or when unset: required unless `host` is loopback. Raises InsecureRefused."""
    required = settings.auth_required if settings.auth_required is not None else not is_loopback(host)
    if not required and not is_loopback(host) and not settings.allow_insecure:
        raise InsecureRefused(
            f"refusing to listen on {host} without authentication: anyone who reaches it could read and "
            "change every task. Unset AUTH_REQUIRED (or set it to true) and use tokens, listen on "
            "127.0.0.1, or set ALLOW_INSECURE=true to run open anyway"
        )
    return required
