"""The protocol's HTTP/1.1 framing against answers our server never sends but a proxy (or a hostile
server) may: chunked bodies, bodies that end with the connection, error pages without a Connect body,
and streams split anywhere or ending badly, read alike by the clients and the agent."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import taskservice
from taskservice import TaskStatus
from taskservice.client.asynchronous import AsyncClient
from taskservice.client.sync import Client
from taskservice.client.wire import CallRetry
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.worker.agent import AgentLink

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
            pytest.raises(taskservice.Unavailable, match="HTTP 502: Bad Gateway"),
        ):
            client.get_status()
        async with AsyncClient(server.url, retry=CallRetry(attempts=2, base_seconds=0)) as aclient:
            with pytest.raises(taskservice.Unavailable, match="HTTP 502: Bad Gateway"):
                await aclient.get_status()
        assert server.requests == 4  # a read is retried on unavailable
    finally:
        server.close()


# -- streams: every reader of a Connect stream (the clients' WatchEvents, the agent's PullEvents) is the
# protocol's one envelope reader, with its bounds.

STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/connect+proto\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def frame(flags: int, payload: bytes) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def chunked_stream(body: bytes, piece: int) -> bytes:
    """A streaming answer whose body goes out in chunks of `piece` bytes, split anywhere."""
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + piece]), body[i : i + piece])
                      for i in range(0, len(body), piece))  # fmt: skip
    return STREAM_HEAD + chunks + b"0\r\n\r\n"


END_OK = frame(2, b"{}")
HELLO = pb.PullEventsResponse(agent_id="agent-1", installation_id="install-1", lease_seconds=30)
EVENT = pb.TaskEvent(id=7, task_id=3, keepalive=True)


async def read_stream(reader: str, url: str) -> list[Any]:
    """What `reader` makes of the stream at `url`: the clients' events, or what the agent heard."""
    if reader == "Client":
        with Client(url, retry=CallRetry(attempts=1)) as client:
            return list(client.events())
    if reader == "AsyncClient":
        async with AsyncClient(url, retry=CallRetry(attempts=1)) as aclient:
            return [event async for event in aclient.events()]
    link = AgentLink(url, "", "agent-1")
    try:
        await link.stream._follow()
    finally:
        await link.close()
    return [link.installation] if link.stream.connected.is_set() else []


READERS = ["Client", "AsyncClient", "agent"]


def message_for(reader: str) -> tuple[bytes, Any]:
    """The message a stream to `reader` carries, and what the reader makes of it."""
    return (
        (HELLO.SerializeToString(), "install-1") if reader == "agent" else (EVENT.SerializeToString(), EVENT)
    )


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("piece", [1, 3, 1000])
async def test_a_stream_split_anywhere_is_read_whole(reader: str, piece: int) -> None:
    message, expected = message_for(reader)
    server = OneAnswer(chunked_stream(frame(0, message) + END_OK, piece))
    try:
        assert await read_stream(reader, server.url) == [expected]
    finally:
        server.close()


ENDINGS = {
    "an error in the end message": (
        frame(2, b'{"error": {"code": "permission_denied", "message": "not yours"}}'),
        taskservice.PermissionDenied,
        "not yours",
    ),
    # Its announced size is refused before a byte of it is kept: memory stays bounded.
    "a message over the bound": (
        struct.pack(">BI", 0, 1 << 31),
        taskservice.ResourceExhausted,
        "over the limit",
    ),
    "a compressed message never asked for": (frame(1, b"x"), taskservice.TaskServiceError, "compressed"),
    "no end message": (b"", taskservice.Unavailable, "ended before its end message"),
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("ending", ENDINGS)
async def test_a_stream_that_ends_badly_raises_the_protocols_error(reader: str, ending: str) -> None:
    tail, error, text = ENDINGS[ending]
    message, _ = message_for(reader)
    server = OneAnswer(chunked_stream(frame(0, message) + tail, 7))
    try:
        with pytest.raises(error, match=text) as raised:
            await read_stream(reader, server.url)
        if ending == "a compressed message never asked for":
            assert isinstance(raised.value, taskservice.TaskServiceError)
            assert raised.value.code == "internal"
    finally:
        server.close()
