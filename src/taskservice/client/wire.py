"""The Connect protocol as the Python client speaks it: headers, errors, retries, stream envelopes."""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskservice.client.errors import TaskServiceError, error_for

SERVICE_PATH = "/cloud.v1.TaskManagementService/"
# Task-Id-Width: this client reads the 64-bit id twins (`id64`, ...): see api/ids.py, which owns the rule.
UNARY_HEADERS = {
    "Content-Type": "application/proto",
    "Connect-Protocol-Version": "1",
    "Task-Id-Width": "64",
    "User-Agent": "taskservice-python",
    # Answers are small: inflating them costs the server more CPU than the bytes cost the network.
    "Accept-Encoding": "identity",
}
STREAM_HEADERS = {**UNARY_HEADERS, "Content-Type": "application/connect+proto"}
# Connect's codes for HTTP statuses that carry no Connect error body (a proxy's page, say).
HTTP_CODES = {400: "internal", 401: "unauthenticated", 403: "permission_denied", 404: "unimplemented",
              429: "unavailable", 502: "unavailable", 503: "unavailable", 504: "unavailable"}  # fmt: skip
END_STREAM = 0x02
COMPRESSED = 0x01
_PREFIX = struct.Struct(">BI")


def headers(base: dict[str, str], token: str, timeout: float | None) -> dict[str, str]:
    """`base` with the token and the call's deadline (the server gives up when the client has)."""
    result = dict(base)
    if token:
        result["Authorization"] = f"Bearer {token}"
    if timeout is not None:
        result["Connect-Timeout-Ms"] = str(max(1, int(timeout * 1000)))
    return result


def warn_token_ignored(address: str) -> None:
    """Tell the user, once per client, that the server at `address` did not check their token."""
    import warnings

    warnings.warn(
        f"the server at {address} runs with auth off (AUTH_REQUIRED=false): the token this client "
        "sends is not checked there",
        UserWarning,
        stacklevel=4,
    )


def error(status: int, body: bytes) -> TaskServiceError:
    """The exception of a non-200 answer: its Connect error, or the HTTP status's code."""
    try:
        payload = json.loads(body)
        return error_for(str(payload["code"]), str(payload.get("message", "")))
    except (ValueError, TypeError, KeyError):
        text = body.decode(errors="replace").strip().splitlines()
        return error_for(HTTP_CODES.get(status, "unknown"), f"HTTP {status}: {text[0] if text else ''}")


@dataclass(frozen=True)
class CallRetry:
    """Backoff for calls that failed `unavailable` and are safe to send again."""

    attempts: int = 4  # in all, the first one included
    base_seconds: float = 0.1
    max_seconds: float = 2.0

    def delays(self) -> Iterator[float]:
        """The pause before each repeat: exponential, capped, with full jitter (callers spread out)."""
        for n in range(self.attempts - 1):
            yield random.uniform(0, min(self.max_seconds, self.base_seconds * 2**n))


def envelope(message: bytes) -> bytes:
    """One message of a Connect stream: flags, length, bytes."""
    return _PREFIX.pack(0, len(message)) + message


class EnvelopeReader:
    """Splits a Connect stream's bytes, as they arrive, into (flags, message) pairs."""

    def __init__(self, max_bytes: int = 16 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        self.max_bytes = max_bytes

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        self._buffer += data
        while len(self._buffer) >= _PREFIX.size:
            flags, size = _PREFIX.unpack_from(self._buffer)
            if size > self.max_bytes:
                raise error_for("resource_exhausted", f"a stream message of {size} bytes is over the limit")
            if len(self._buffer) < _PREFIX.size + size:
                return
            message = bytes(self._buffer[_PREFIX.size : _PREFIX.size + size])
            del self._buffer[: _PREFIX.size + size]
            if flags & COMPRESSED:
                raise error_for("internal", "the server compressed a stream message it was not asked to")
            yield flags, message


def end_of_stream(message: bytes) -> TaskServiceError | None:
    """The error an end-of-stream message carries, if any."""
    try:
        payload = json.loads(message or b"{}")
    except ValueError:
        return error_for("internal", "the stream's last message does not decode")
    failure = payload.get("error") if isinstance(payload, dict) else None
    if not failure:
        return None
    return error_for(str(failure.get("code", "unknown")), str(failure.get("message", "")))


if not TYPE_CHECKING:  # type checkers see only the current names

    def __getattr__(name: str) -> Any:
        from taskservice.client.renamed import old_name

        return old_name(__name__, name)
