"""Refusing a request before the app sees it, in the error format of the protocol the client speaks.

ASGI middleware (auth, limits) answers for every protocol on the same routes: Connect unary and GET
(an HTTP status and a JSON error body), Connect streaming (an end-of-stream message), gRPC-Web (status
in the headers) and gRPC (status in the trailers, or in the headers of a trailers-only response).
"""

from __future__ import annotations

import json
import struct
from urllib.parse import quote

from connectrpc.code import Code
from starlette.types import Scope, Send

# The numbers gRPC gives the codes (Connect names them; gRPC numbers them).
GRPC_STATUS = {
    Code.CANCELED: 1, Code.UNKNOWN: 2, Code.INVALID_ARGUMENT: 3, Code.DEADLINE_EXCEEDED: 4,
    Code.NOT_FOUND: 5, Code.ALREADY_EXISTS: 6, Code.PERMISSION_DENIED: 7, Code.RESOURCE_EXHAUSTED: 8,
    Code.FAILED_PRECONDITION: 9, Code.ABORTED: 10, Code.OUT_OF_RANGE: 11, Code.UNIMPLEMENTED: 12,
    Code.INTERNAL: 13, Code.UNAVAILABLE: 14, Code.DATA_LOSS: 15, Code.UNAUTHENTICATED: 16,
}  # fmt: skip

# The HTTP status of a Connect unary error (the Connect protocol's table).
HTTP_STATUS = {
    Code.CANCELED: 499, Code.UNKNOWN: 500, Code.INVALID_ARGUMENT: 400, Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404, Code.ALREADY_EXISTS: 409, Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429, Code.FAILED_PRECONDITION: 400, Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400, Code.UNIMPLEMENTED: 501, Code.INTERNAL: 500, Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500, Code.UNAUTHENTICATED: 401,
}  # fmt: skip


def header(scope: Scope, name: bytes) -> str:
    """A request header as text ("" when absent); bytes that are not UTF-8 are replaced."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("utf-8", "replace")
    return ""


def protocol(scope: Scope) -> str:
    """The RPC protocol of a request, from its content type: connect, connect-stream, grpc-web or grpc."""
    content_type = header(scope, b"content-type").lower()
    if content_type.startswith("application/grpc-web"):
        return "grpc-web"
    if content_type.startswith("application/grpc"):
        return "grpc"
    if content_type.startswith("application/connect+"):
        return "connect-stream"
    return "connect"


def error_json(code: Code, message: str) -> bytes:
    return json.dumps({"code": code.value, "message": message}).encode()


async def reject(
    scope: Scope,
    send: Send,
    code: Code,
    message: str,
    *,
    http_status: int | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer the request with the error `code` and `message`, and nothing else.

    `http_status` overrides the Connect mapping where HTTP says it better (413, 408); gRPC and gRPC-Web
    always answer 200, as their clients read the status from grpc-status.
    """
    extra = list(headers or [])
    kind = protocol(scope)
    if kind in ("grpc", "grpc-web"):
        status_headers = [
            (b"grpc-status", str(GRPC_STATUS[code]).encode()),
            (b"grpc-message", quote(message, safe=" ").encode()),
        ]
        content_type = header(scope, b"content-type").encode() or b"application/grpc"
        start = [(b"content-type", content_type), *extra]
        with_trailers = kind == "grpc" and "http.response.trailers" in scope.get("extensions", {})
        if with_trailers:
            await send({"type": "http.response.start", "status": 200, "headers": start, "trailers": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            await send({"type": "http.response.trailers", "headers": status_headers, "more_trailers": False})
            return
        await send({"type": "http.response.start", "status": 200, "headers": start + status_headers})
        await send({"type": "http.response.body", "body": b""})
        return
    if kind == "connect-stream" and http_status is None:
        end = json.dumps({"error": {"code": code.value, "message": message}}).encode()
        body = struct.pack(">BI", 0b10, len(end)) + end
        content_type = b"application/connect+json"
        status = 200
    else:
        body, content_type = error_json(code, message), b"application/json"
        status = http_status or HTTP_STATUS[code]
    response_headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})
