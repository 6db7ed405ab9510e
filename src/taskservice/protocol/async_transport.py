"""Connect calls over kept-alive HTTP/1.1 asyncio connections.

A connection is a buffered protocol (`recv_into` one reused buffer), not asyncio's StreamReader: the
stream transport receives into a new 256 KiB bytes object per read, which glibc serves with mmap,
mremap and munmap (three system calls per answer, a fifth of a unary call's CPU on this machine).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncGenerator
from typing import cast

from taskservice.protocol import wire
from taskservice.protocol.errors import Timeout, Unavailable
from taskservice.protocol.http11 import READ_BYTES, Endpoint, Exchange, failure

# Reading pauses while this much has arrived unread (a slow consumer of a stream), and resumes below.
PAUSE_BYTES = 1 << 20


class _Connection(asyncio.BufferedProtocol):
    """One connection: what has arrived and not been read yet, and a read that waits for more."""

    def __init__(self) -> None:
        self.arrived = bytearray()
        self._landing = memoryview(bytearray(READ_BYTES))
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._paused = False
        self.transport: asyncio.Transport | None = None

    # -- asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not asyncio's class

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._landing

    def buffer_updated(self, nbytes: int) -> None:
        self.arrived += self._landing[:nbytes]
        if len(self.arrived) > PAUSE_BYTES and self.transport is not None:
            self.transport.pause_reading()
            self._paused = True
        self._wake()

    def eof_received(self) -> bool:
        self._ended = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- ours

    def usable(self) -> bool:
        return not self._ended and self.transport is not None and not self.transport.is_closing()

    def write(self, data: bytes) -> None:
        if self._ended or self.transport is None:
            raise ConnectionError("the connection is closed")
        self.transport.write(data)

    async def receive(self) -> bytes:
        """What arrived since the last call, waiting for something; b"" once the connection ended."""
        while not self.arrived and not self._ended:
            if self._paused and self.transport is not None:
                self._paused = False
                self.transport.resume_reading()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = bytes(self.arrived)
        self.arrived.clear()
        return data

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class AsyncTransport(Endpoint):
    """A pool of at most `max_connections` kept-alive connections, one call at a time each (more
    concurrent calls wait their turn). `post` sends a unary call; `stream` a server-streaming one,
    on a connection of its own."""

    def __init__(
        self,
        address: str,
        timeout: float,
        tls: ssl.SSLContext | None = None,
        max_bytes: int = 64 << 20,
        max_connections: int = 100,
    ) -> None:
        super().__init__(address, timeout, tls, max_bytes)
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def _connect(self) -> _Connection:
        a = self.address
        try:
            async with asyncio.timeout(self.timeout):
                _, connection = await asyncio.get_running_loop().create_connection(
                    _Connection, a.host, a.port, ssl=self._tls, server_hostname=a.host if self._tls else None
                )
        except TimeoutError:
            raise Timeout(f"no connection to {a.url} within {self.timeout:g}s") from None
        except OSError as error:
            raise Unavailable(f"cannot reach {a.url}: {error}", sent=False) from None
        return connection

    async def _take(self) -> tuple[_Connection, bool]:
        while self._idle:
            connection = self._idle.pop()
            if connection.usable():
                return connection, True
            connection.close()
        return await self._connect(), False

    async def post(self, path: str, head: bytes, body: bytes) -> bytes:
        """The answer of a unary call; its Connect error raised, Unavailable or Timeout when no answer
        came. A kept-alive connection the server had closed (nothing of the call reached it: it closes
        idle ones, or restarted) is replaced by a new one and the call sent again."""
        async with self._slots:
            return await self._post(self.address.post(path, head, body))

    async def _post(self, request: bytes) -> bytes:
        for attempt in (1, 2):
            connection, reused = await self._take()
            call = Exchange(self.max_bytes)
            try:
                async with asyncio.timeout(self.timeout):
                    connection.write(request)
                    while not call.done:
                        call.feed(await connection.receive())
            except BaseException as error:
                connection.close()  # cancelled mid-call too: the answer would arrive for nobody
                if reused and attempt == 1 and call.stale(error):
                    continue
                raise failure(error, self.address.url, self.timeout) or error from None
            self.token_ignored |= call.token_ignored
            if call.answer.reusable:
                self._idle.append(connection)
            else:
                connection.close()
            return call.result()
        raise AssertionError("unreachable")

    async def stream(self, path: str, head: bytes, body: bytes, silence: float) -> AsyncGenerator[bytes]:
        """The messages of a server-streaming call as they arrive, until its end; its error raised.
        Timeout when the server sends nothing for `silence` seconds (it sends keep-alives)."""
        connection = await self._connect()
        call = Exchange(self.max_bytes, stream=True)
        try:
            connection.write(self.address.post(path, head, wire.envelope(body)))
            while not call.done:
                async with asyncio.timeout(silence):
                    data = await connection.receive()
                for message in call.feed(data):
                    yield message
            self.token_ignored |= call.token_ignored
            call.result()
        except BaseException as error:
            raise failure(error, self.address.url, silence) or error from None
        finally:
            connection.close()

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
