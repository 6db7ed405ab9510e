"""The secrets of API tokens and sessions: made random, recognisable by prefix, kept only as SHA-256."""

from __future__ import annotations

import hashlib
import re
import secrets

TOKEN_PREFIX = "tsk_"
SESSION_PREFIX = "tss_"
SECRET_BYTES = 32  # 256 bits: guessing is hopeless, so a fast hash is enough (no salt, no KDF)
_SHAPE = re.compile(r"^ts[ks]_[A-Za-z0-9_-]{43}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def new_secret(prefix: str = TOKEN_PREFIX) -> str:
    """A fresh secret like `tsk_` + 43 URL-safe characters (secret scanners can spot the prefix)."""
    return prefix + secrets.token_urlsafe(SECRET_BYTES)


def well_formed(secret: str, prefix: str = TOKEN_PREFIX) -> bool:
    return secret.startswith(prefix) and bool(_SHAPE.match(secret))


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_duration(text: str) -> float:
    """Seconds in `30d`, `12h`, `90m`, `45s`, `2w` or a plain number of seconds; ValueError otherwise."""
    match = _DURATION.match(text)
    if not match or float(match[1]) <= 0:
        raise ValueError(f"{text!r} is not a duration such as 30d, 12h, 90m or 3600")
    return float(match[1]) * _UNIT_SECONDS[match[2]]
