"""The benchmark's API client: Connect unary calls (binary protobuf) over one keep-alive HTTP/1.1 connection.

The load comes from the same two cores as the server it measures, so the client must cost little: the
generated client spends about as much CPU per call as half the server does. This one writes each request
in one piece and reads the response with asyncio streams; it speaks the same wire protocol.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import TypeVar
from urllib.parse import urlsplit

from google.protobuf.message import Message

SERVICE = "/cloud.v1.TaskManagementService/"
M = TypeVar("M", bound=Message)


class CallFailed(Exception):
    """The server answered a call with an error (a Connect error is JSON: code and message)."""


class Client:
    """`async with Client(address) as api: await api.call("CreateTask", request, pb.CreateTaskResponse)`."""

    def __init__(self, address: str) -> None:
        parts = urlsplit(address)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Client:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._writer is not None:
            self._writer.close()

    async def call(self, method: str, request: Message, response: type[M]) -> M:
        """One unary call; the connection must not be shared by two calls at once."""
        if self._reader is None or self._writer is None:
            raise RuntimeError("use `async with Client(...)`")
        body = request.SerializeToString()
        self._writer.write(
            b"POST %s%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/proto\r\n"
            b"Connect-Protocol-Version: 1\r\nTask-Id-Width: 64\r\nContent-Length: %d\r\n\r\n%s"
            % (SERVICE.encode(), method.encode(), self.host.encode(), len(body), body)
        )
        status, payload = await self._read_response(self._reader)
        if status != 200:
            raise CallFailed(f"{method}: HTTP {status}: {payload.decode(errors='replace')}")
        return response.FromString(payload)

    @staticmethod
    async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        status = int((await reader.readline()).split(b" ", 2)[1])
        length, chunked = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if not chunked:
            return status, await reader.readexactly(length)
        chunks = []
        while size := int((await reader.readline()).strip(), 16):
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readexactly(2)  # the blank line after the last chunk
        return status, b"".join(chunks)
