"""The client's HTTP/1.1 framing against answers our server never sends but a proxy may: chunked
bodies, bodies that end with the connection, and error pages without a Connect body."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from taskservice import TaskStatus
from taskservice.client import errors
from taskservice.client.asynchronous import AsyncClient
from taskservice.client.sync import Client
from taskservice.client.wire import CallRetry
from taskservice.gen.cloud.v1 import task_pb2 as pb

BODY = pb.GetStatusResponse(
    status_counts={0: 5, 2: 1, 3: 2}, exact_status_counts={0: 4, 3: 2, 6: 1, 7: 1}
).SerializeToString()
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/proto\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"%x\r\n%s\r\n" % (3, BODY[:3])
    + b"%x;ext=1\r\n%s\r\n" % (len(BODY) - 3, BODY[3:])
    + b"0\r\nX-Trailer: t\r\n\r\n"
)
TO_THE_END = b"HTTP/1.1 200 OK\r\nContent-Type: application/proto\r\nConnection: close\r\n\r\n" + BODY
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Gateway"


class OneAnswer:
    """A TCP server that reads each request whole and sends `answer` (then closes if it says so)."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))  # fmt: skip
                while len(data) < length:
                    data += conn.recv(65536)
                data = data[length:]
                self.requests += 1
                conn.sendall(self.answer)
                if b"Connection: close" in self.answer:
                    return

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(params=["chunked", "to the end"])
def framed(request: pytest.FixtureRequest) -> Iterator[OneAnswer]:
    server = OneAnswer(CHUNKED if request.param == "chunked" else TO_THE_END)
    yield server
    server.close()


EXPECTED = {
    TaskStatus.QUEUED: 4,
    TaskStatus.SUCCEEDED: 2,
    TaskStatus.RETRYING: 1,
    TaskStatus.CANCELLED: 1,
}  # the exact counts


def test_sync_reads_every_framing(framed: OneAnswer) -> None:
    with Client(framed.url) as client:
        assert client.get_status() == EXPECTED
        assert client.get_status() == EXPECTED  # the connection kept, or a new one after a close
    assert framed.requests == 2


async def test_async_reads_every_framing(framed: OneAnswer) -> None:
    async with AsyncClient(framed.url) as client:
        assert await client.get_status() == EXPECTED
        assert await client.get_status() == EXPECTED
    assert framed.requests == 2


async def test_an_error_page_without_a_connect_body_takes_the_http_statuss_code() -> None:
    server = OneAnswer(BAD_GATEWAY)
    try:
        with (
            Client(server.url, retry=CallRetry(attempts=2, base_seconds=0)) as client,
            pytest.raises(errors.Unavailable, match="HTTP 502: Bad Gateway"),
        ):
            client.get_status()
        async with AsyncClient(server.url, retry=CallRetry(attempts=2, base_seconds=0)) as aclient:
            with pytest.raises(errors.Unavailable, match="HTTP 502: Bad Gateway"):
                await aclient.get_status()
        assert server.requests == 4  # a read is retried on unavailable
    finally:
        server.close()
