"""Hostile connections against a real server process: trickled headers, too many connections, bad targets."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import httpx
import pytest

from conftest import ServerProcess
from taskservice.config import Settings

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

GET_STATUS = "/cloud.v1.TaskManagementService/GetStatus"
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
PARTIAL_HEADERS = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
FD_LIMIT = 256
TRICKLERS = 300  # more than FD_LIMIT: before the cap, they took every descriptor


@pytest.fixture
def quick_server(settings: Settings, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server that gives request headers one second."""
    server = ServerProcess(settings, tmp_path / "server.log", WORKER_COUNT="0", HEADER_TIMEOUT_SECONDS="1")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def closed_by_server(sock: socket.socket, trickle: bytes, within: float) -> bool:
    """Send `trickle` a byte at a time until the server closes the connection; False if it has not
    within `within` seconds (the test's bound, far above the server's)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + within
    sent = 0
    while time.monotonic() < deadline:
        try:
            if sent < len(trickle):
                sock.sendall(trickle[sent : sent + 1])
                sent += 1
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def test_http1_headers_that_trickle_are_cut_off(quick_server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", quick_server.port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        assert closed_by_server(sock, b"X-Slow: " + b"a" * 500, within=20)
    # A client that sends its request at once is served, on a new and on a kept-alive connection.
    with httpx.Client(base_url=quick_server.url, timeout=10) as client:
        for _ in range(2):
            assert client.post(GET_STATUS, json={}).status_code == 200


def test_http2_headers_that_trickle_are_cut_off(quick_server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", quick_server.port)) as sock:
        sock.sendall(H2_PREFACE + EMPTY_SETTINGS)
        # A HEADERS frame of 200 bytes (END_HEADERS), sent a byte at a time.
        frame = b"\x00\x00\xc8\x01\x04\x00\x00\x00\x01" + b"\x00" * 200
        assert closed_by_server(sock, frame, within=20)


def test_a_connection_that_says_nothing_is_closed(quick_server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", quick_server.port)) as sock:
        assert closed_by_server(sock, b"", within=20)


def test_a_target_that_is_not_ascii_is_400_without_a_traceback(quick_server: ServerProcess) -> None:
    before = len(quick_server.log())
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", quick_server.port), timeout=10) as sock:
            sock.sendall(b"GET /caf\xe9?x=\xff HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            reply = b""
            while b"\r\n\r\n" not in reply:
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
        assert reply.startswith(b"HTTP/1.1 400 "), reply
    assert h2_status(quick_server.port, b"/caf\xe9") == 400
    assert h2_status(quick_server.port, b"/healthz") == 200  # the connection's other streams go on
    log = quick_server.log()[before:]
    assert "Traceback" not in log, log
    assert len(log) < 1000, log  # nothing per request (the access log is off at info)


def h2_status(port: int, path: bytes) -> int:
    """The status of GET `path` over HTTP/2 (h2c by prior knowledge), sent as raw bytes."""
    headers = [(b":method", b"GET"), (b":path", path), (b":scheme", b"http")]
    answer, _ = h2_exchange(port, [*headers, (b":authority", b"127.0.0.1")])
    return int(answer[b":status"])


def h2_exchange(
    port: int, headers: list[tuple[bytes, bytes]], body: bytes | None = None
) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """The response headers and trailers of one request over HTTP/2 (h2c by prior knowledge)."""
    config = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False)
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    answer: dict[bytes, bytes] = {}
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(conn.data_to_send())
        conn.send_headers(1, headers, end_stream=body is None)
        if body is not None:
            conn.send_data(1, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        while True:
            data = sock.recv(65536)
            assert data, "the server closed the connection without an answer"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    answer = dict(event.headers)
                    if event.stream_ended is not None:
                        return answer, {}
                elif isinstance(event, h2.events.TrailersReceived):
                    return answer, dict(event.headers)
                elif isinstance(event, h2.events.StreamEnded):
                    return answer, {}
            sock.sendall(conn.data_to_send())


def test_grpc_over_http2_refuses_an_overflowing_timeout(quick_server: ServerProcess) -> None:
    request = [
        (b":method", b"POST"), (b":path", GET_STATUS.encode()), (b":scheme", b"http"),
        (b":authority", b"127.0.0.1"), (b"content-type", b"application/grpc"), (b"te", b"trailers"),
    ]  # fmt: skip
    envelope = b"\x00\x00\x00\x00\x00"
    answer, trailers = h2_exchange(
        quick_server.port, [*request, (b"grpc-timeout", b"99999999999H")], envelope
    )
    status = trailers.get(b"grpc-status", answer.get(b"grpc-status"))
    assert status == b"3", (answer, trailers)  # invalid_argument
    answer, trailers = h2_exchange(quick_server.port, [*request, (b"grpc-timeout", b"30S")], envelope)
    assert trailers.get(b"grpc-status", answer.get(b"grpc-status")) == b"0", (answer, trailers)


# -- too many connections ----------------------------------------------------------------------------


@pytest.fixture
def limited_server(settings: Settings, tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    """A server with auth, limited to FD_LIMIT descriptors, that gives headers two minutes (the cap,
    not the deadline, must make room here); and an admin token for it."""
    from taskservice.auth.tokens import issue
    from taskservice.db.connect import create_pool
    from taskservice.store import Credentials

    async def admin_token() -> str:
        pool = await create_pool(settings.database_url, max_size=1)
        try:
            _, secret = await issue(Credentials(pool), "admin", "admin", 0, "tests")
            return secret
        finally:
            await pool.close()

    with concurrent.futures.ThreadPoolExecutor(1) as thread:  # pytest-asyncio's loop runs in this one
        secret = thread.submit(asyncio.run, admin_token()).result()
    server = ServerProcess(
        settings, tmp_path / "server.log", wrapper=["prlimit", f"--nofile={FD_LIMIT}"],
        WORKER_COUNT="0", AUTH_REQUIRED="true", HEADER_TIMEOUT_SECONDS="120",
    )  # fmt: skip
    try:
        server.wait_ready()
        yield server, secret
    finally:
        server.stop()


def still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def test_too_many_trickling_connections_do_not_lock_out_clients(
    limited_server: tuple[ServerProcess, str],
) -> None:
    server, secret = limited_server
    assert resource.prlimit(server.process.pid, resource.RLIMIT_NOFILE) == (FD_LIMIT, FD_LIMIT)
    tricklers = []
    try:
        for _ in range(TRICKLERS):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(PARTIAL_HEADERS)
            tricklers.append(sock)
        headers = {"Authorization": f"Bearer {secret}", "Connect-Protocol-Version": "1"}
        for call in range(40):
            for sock in tricklers:  # they keep trickling between the calls
                with contextlib.suppress(OSError):  # closed by the server to make room
                    sock.send(b"X")
            # A new connection per call, as 40 clients would make.
            with httpx.Client(base_url=server.url, timeout=10) as client:
                reply = client.post(GET_STATUS, json={}, headers=headers)
            assert reply.status_code == 200, (call, reply.text)
        # The calls got in while the tricklers held every place they could: they still hold most.
        assert sum(still_open(sock) for sock in tricklers) > FD_LIMIT // 2
    finally:
        for sock in tricklers:
            sock.close()
    assert "Traceback" not in server.log()
