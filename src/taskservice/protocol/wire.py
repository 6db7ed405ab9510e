"""The Connect protocol's rules: request headers, errors from answers, and a stream's envelopes."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from taskservice.protocol.errors import TaskServiceError, error_for

SERVICE_PATH = "/cloud.v1.TaskManagementService/"
AUTH_SERVICE_PATH = "/cloud.v1.AuthService/"
# Task-Id-Width: our clients read the 64-bit id twins (`id64`, ...): see api/ids.py, which owns the rule.
UNARY_HEADERS = {
    "Content-Type": "application/proto",
    "Connect-Protocol-Version": "1",
    "Task-Id-Width": "64",
    "User-Agent": "taskservice-python",
    # Answers are small: inflating them costs the server more CPU than the bytes cost the network.
    "Accept-Encoding": "identity",
}
STREAM_CONTENT_TYPE = {"Content-Type": "application/connect+proto"}
# Connect's codes for HTTP statuses that carry no Connect error body (a proxy's page, say).
HTTP_CODES = {400: "internal", 401: "unauthenticated", 403: "permission_denied", 404: "unimplemented",
              429: "unavailable", 502: "unavailable", 503: "unavailable", 504: "unavailable"}  # fmt: skip
END_STREAM = 0x02
COMPRESSED = 0x01
_PREFIX = struct.Struct(">BI")
M = TypeVar("M", bound=Message)
MAX_STREAM_MESSAGE_BYTES = 16 << 20


def headers(token: str, timeout: float | None, user_agent: str = "", stream: bool = False) -> dict[str, str]:
    """A call's headers: with the token and the call's deadline (the server gives up when the client
    has); `stream`: a streaming call's content type."""
    result = {**UNARY_HEADERS, **(STREAM_CONTENT_TYPE if stream else {})}
    if user_agent:
        result["User-Agent"] = user_agent
    if token:
        result["Authorization"] = f"Bearer {token}"
    if timeout is not None:
        result["Connect-Timeout-Ms"] = str(max(1, int(timeout * 1000)))
    return result


def error(status: int, body: bytes) -> TaskServiceError:
    """The exception of a non-200 answer: its Connect error, or the HTTP status's code."""
    try:
        payload = json.loads(body)
        return error_for(str(payload["code"]), str(payload.get("message", "")))
    except (ValueError, TypeError, KeyError):
        text = body.decode(errors="replace").strip().splitlines()
        return error_for(HTTP_CODES.get(status, "unknown"), f"HTTP {status}: {text[0] if text else ''}")


def decode(data: bytes, message_type: type[M]) -> M:
    """An answer as `message_type`; `internal` when it does not decode (the server is wrong)."""
    try:
        return message_type.FromString(data)
    except DecodeError as error:
        raise error_for(
            "internal", f"the server's answer does not decode as {message_type.__name__}: {error}"
        ) from None


def envelope(message: bytes) -> bytes:
    """One message of a Connect stream: flags, length, bytes."""
    return _PREFIX.pack(0, len(message)) + message


class EnvelopeReader:
    """Splits a Connect stream's bytes, as they arrive, into its messages; raises the error its
    end-of-stream message carries. `done` once that message came."""

    def __init__(self, max_bytes: int = MAX_STREAM_MESSAGE_BYTES) -> None:
        self._buffer = bytearray()
        self.max_bytes = max_bytes
        self.done = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._buffer += data
        while not self.done and len(self._buffer) >= _PREFIX.size:
            flags, size = _PREFIX.unpack_from(self._buffer)
            if size > self.max_bytes:
                raise error_for("resource_exhausted", f"a stream message of {size} bytes is over the limit")
            if len(self._buffer) < _PREFIX.size + size:
                return
            message = bytes(self._buffer[_PREFIX.size : _PREFIX.size + size])
            del self._buffer[: _PREFIX.size + size]
            if flags & COMPRESSED:
                raise error_for("internal", "the server compressed a stream message it was not asked to")
            if flags & END_STREAM:
                self.done = True
                failure = end_of_stream(message)
                if failure is not None:
                    raise failure
                return
            yield message


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
