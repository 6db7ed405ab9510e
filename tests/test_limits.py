"""Limits on what a client sends, and the right codes for its mistakes, against a real server process."""

from __future__ import annotations

import gzip
import json
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Iterator

import httpx
import psutil
import pytest

from conftest import Served, serving

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

SERVICE = "/cloud.v1.TaskManagementService"
MiB = 1024 * 1024
RSS_LIMIT = 300 * MiB


@pytest.fixture(scope="module")
def server(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("limits")
    with serving(pg_server_url, template_database, folder, WORKER_COUNT="0", BODY_READ_TIMEOUT="1") as s:
        yield s


@pytest.fixture
async def http(server: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        yield client


def raw_reply(sock: socket.socket, until: bytes) -> str:
    """What the server sends back, read until `until` shows up or it closes the connection."""
    reply = b""
    while until not in reply:
        data = sock.recv(65536)
        if not data:
            break
        reply += data
    return reply.decode("latin-1")


def rss(server: Served) -> int:
    return int(psutil.Process(server.process.process.pid).memory_info().rss)


def gzip_bomb(inflated: int) -> bytes:
    """gzip data of `inflated` zero bytes, made without holding them (about 1 KB per MB)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block, parts = bytes(MiB), []
    for _ in range(inflated // MiB):
        parts.append(deflater.compress(block))
    parts.append(deflater.flush())
    return b"".join(parts)


def envelope(message: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(message)) + message


def end_of_stream(body: bytes) -> dict[str, object]:
    """The error of a Connect stream that ended with one end-of-stream envelope and nothing before it."""
    flags, length = struct.unpack(">BI", body[:5])
    assert flags == 0b10, body
    end = json.loads(body[5 : 5 + length])
    assert isinstance(end, dict)
    error = end["error"]
    assert isinstance(error, dict)
    return error


async def test_a_gzip_bomb_is_refused_while_inflating(http: httpx.AsyncClient, server: Served) -> None:
    bomb = gzip_bomb(500 * MiB)
    assert len(bomb) < 1 * MiB
    response = await http.post(
        f"{SERVICE}/GetStatus",
        content=bomb,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 429, response.text
    assert response.json()["code"] == "resource_exhausted"
    assert "MAX_DECOMPRESSED_BYTES" in response.json()["message"]
    assert rss(server) < RSS_LIMIT


async def test_gzip_within_the_limit_still_works(http: httpx.AsyncClient) -> None:
    response = await http.post(
        f"{SERVICE}/ListTasks",
        content=gzip.compress(b'{"limit": 5}'),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    assert "tasks" in response.json()


@pytest.mark.parametrize(
    "body", [b"not gzip at all", gzip.compress(b'{"limit": 5}')[:-12]], ids=["garbage", "truncated"]
)
async def test_bad_gzip_is_invalid_argument(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post(
        f"{SERVICE}/ListTasks",
        content=body,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_argument"
    assert "gzip" in response.json()["message"]


async def test_a_100_mb_body_is_refused_before_it_is_read(http: httpx.AsyncClient, server: Served) -> None:
    """Content-Length says too much: 413 at once (the client need not even send the body)."""
    with socket.create_connection(("127.0.0.1", server.process.port), timeout=30) as sock:
        sock.sendall(
            f"POST {SERVICE}/CreateTask HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {100 * MiB}\r\n\r\n".encode()
        )
        reply = raw_reply(sock, b"MAX_REQUEST_BYTES")
    assert reply.startswith("HTTP/1.1 413"), reply
    assert "resource_exhausted" in reply
    assert "MAX_REQUEST_BYTES" in reply


async def test_a_100_mb_chunked_body_is_cut_off_at_the_limit(http: httpx.AsyncClient, server: Served) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        piece = b" " * MiB
        for _ in range(100):
            yield piece

    try:
        response = await http.post(
            f"{SERVICE}/CreateTask", content=chunks(), headers={"Content-Type": "application/json"}
        )
    except httpx.WriteError:  # the server answered and closed while we were still sending: fine
        pass
    else:
        assert response.status_code == 413, response.text
        assert response.json()["code"] == "resource_exhausted"
    assert rss(server) < RSS_LIMIT


async def test_a_slow_body_gets_408_after_body_read_timeout(server: Served) -> None:
    with socket.create_connection(("127.0.0.1", server.process.port), timeout=30) as sock:
        sock.sendall(
            f"POST {SERVICE}/GetStatus HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nContent-Length: 10\r\n\r\n{".encode()
        )
        reply = raw_reply(sock, b"BODY_READ_TIMEOUT")  # the server answers by itself after 1 s
    assert reply.startswith("HTTP/1.1 408"), reply
    assert "deadline_exceeded" in reply
    assert "BODY_READ_TIMEOUT" in reply


async def test_a_slow_stream_request_ends_the_stream_with_deadline_exceeded(server: Served) -> None:
    with socket.create_connection(("127.0.0.1", server.process.port), timeout=30) as sock:
        sock.sendall(
            f"POST {SERVICE}/WatchEvents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/connect+json\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\n\x00\x00\x00\r\n".encode()
        )
        reply = b""
        while b"deadline_exceeded" not in reply:
            data = sock.recv(65536)
            assert data, reply
            reply += data
    assert b"BODY_READ_TIMEOUT" in reply


GRPC_TYPES = ["application/grpc", "application/grpc+proto", "application/grpc+json"]


@pytest.mark.parametrize("content_type", GRPC_TYPES)
async def test_grpc_without_http2_is_a_clear_error(http: httpx.AsyncClient, content_type: str) -> None:
    response = await http.post(
        f"{SERVICE}/GetStatus", content=envelope(b""), headers={"Content-Type": content_type}
    )
    assert response.status_code == 200, response.text  # gRPC reads its status from grpc-status
    assert response.headers["grpc-status"] == "12"  # unimplemented
    assert "HTTP/2" in httpx.URL("?m=" + response.headers["grpc-message"]).params["m"]


async def test_grpc_web_is_served(http: httpx.AsyncClient) -> None:
    response = await http.post(
        f"{SERVICE}/GetStatus", content=envelope(b""), headers={"Content-Type": "application/grpc-web+proto"}
    )
    assert response.status_code == 200
    assert response.headers.get("grpc-status", "0") == "0"
    assert response.content[0] == 0  # a message envelope first, the trailers after it
    assert b"grpc-status: 0" in response.content


BAD_TIMEOUTS = [
    pytest.param("application/grpc-web+proto", "Grpc-Timeout", "99999999999H", id="grpc-web-11-digits"),
    pytest.param("application/grpc-web+proto", "Grpc-Timeout", "5X", id="grpc-web-bad-unit"),
    pytest.param("application/grpc-web+proto", "Grpc-Timeout", "-5S", id="grpc-web-negative"),
    pytest.param("application/grpc-web+proto", "Grpc-Timeout", "S", id="grpc-web-no-digits"),
    pytest.param("application/json", "Connect-Timeout-Ms", "-5", id="connect-negative"),
    pytest.param("application/json", "Connect-Timeout-Ms", "1_000", id="connect-underscore"),
    pytest.param("application/json", "Connect-Timeout-Ms", "12345678901", id="connect-11-digits"),
    pytest.param("application/connect+json", "Connect-Timeout-Ms", "+5", id="connect-stream-plus"),
]


@pytest.mark.parametrize(("content_type", "name", "value"), BAD_TIMEOUTS)
async def test_a_malformed_or_overflowing_timeout_header_is_invalid_argument(
    http: httpx.AsyncClient, server: Served, content_type: str, name: str, value: str
) -> None:
    body = envelope(b"{}" if content_type.endswith("json") else b"")
    method = "WatchEvents" if content_type == "application/connect+json" else "GetStatus"
    if content_type == "application/json":
        body = b"{}"
    response = await http.post(
        f"{SERVICE}/{method}", content=body, headers={"Content-Type": content_type, name: value}
    )
    if content_type.startswith("application/grpc-web"):
        assert response.status_code == 200, response.text
        assert response.headers["grpc-status"] == "3", response.headers  # invalid_argument
        message = httpx.URL("?m=" + response.headers["grpc-message"]).params["m"]
    elif content_type == "application/connect+json":
        error = end_of_stream(response.content)
        assert error["code"] == "invalid_argument", error
        message = str(error["message"])
    else:
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "invalid_argument"
        message = response.json()["message"]
    assert message.startswith(f"header {name.lower()}: "), message
    assert "Traceback" not in server.process.log()


@pytest.mark.parametrize(
    ("content_type", "name", "value"),
    [
        ("application/grpc-web+proto", "Grpc-Timeout", "99999999H"),
        ("application/grpc-web+proto", "Grpc-Timeout", "30S"),
        ("application/json", "Connect-Timeout-Ms", "9999999999"),
    ],
)
async def test_the_largest_timeouts_each_protocol_allows_are_served(
    http: httpx.AsyncClient, content_type: str, name: str, value: str
) -> None:
    body = b"{}" if content_type == "application/json" else envelope(b"")
    response = await http.post(
        f"{SERVICE}/GetStatus", content=body, headers={"Content-Type": content_type, name: value}
    )
    assert response.status_code == 200, response.text
    assert response.headers.get("grpc-status", "0") == "0", response.headers


async def test_a_header_that_is_not_utf8_is_invalid_argument(server: Served) -> None:
    with socket.create_connection(("127.0.0.1", server.process.port), timeout=30) as sock:
        sock.sendall(
            f"POST {SERVICE}/GetStatus HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
            + b"X-Note: caf\xe9\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        )
        reply = raw_reply(sock, b"x-note")
    assert reply.startswith("HTTP/1.1 400"), reply
    assert "invalid_argument" in reply
    assert "x-note" in reply


async def test_a_compressed_flag_without_compression_ends_the_stream_with_invalid_argument(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        f"{SERVICE}/WatchEvents",
        content=envelope(gzip.compress(b"{}"), flags=1),
        headers={"Content-Type": "application/connect+json"},
    )
    assert response.status_code == 200
    error = end_of_stream(response.content)
    assert error["code"] == "invalid_argument", error
    assert "compress" in str(error["message"])


async def test_a_gzip_bomb_in_a_stream_message_is_resource_exhausted(http: httpx.AsyncClient) -> None:
    response = await http.post(
        f"{SERVICE}/WatchEvents",
        content=envelope(gzip_bomb(100 * MiB), flags=1),
        headers={"Content-Type": "application/connect+json", "Connect-Content-Encoding": "gzip"},
    )
    assert response.status_code == 200
    error = end_of_stream(response.content)
    assert error["code"] == "resource_exhausted", error
