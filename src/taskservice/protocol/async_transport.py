"""Connect calls over kept-alive HTTP/1.1 asyncio connections.

A connection is a buffered protocol (`recv_into` one reused buffer), not asyncio's StreamReader: the
stream transport receives into a new 256 KiB bytes object per read, which glibc serves with mmap,
mremap and munmap (three system calls per answer, a fifth of a unary call's CPU on this machine).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from typing import cast

from taskservice.protocol import wire
from taskservice.protocol.errors import TaskServiceError, Timeout, Unavailable
from taskservice.protocol.http11 import (
    MAX_HEAD_BYTES,
    READ_BYTES,
    Address,
    AnswerHead,
    answer_head,
    check_size,
    chunk_size,
)

# What a failed read or write raises when the connection, not the server's answer, was the problem.
_BROKEN = (OSError, ValueError)
# Reading pauses while this much has arrived unread (a slow consumer of a stream), and resumes below.
PAUSE_BYTES = 1 << 20


class _Closed(ConnectionError):
    """The server closed the connection before the answer was whole."""


class _Connection(asyncio.BufferedProtocol):
    """One connection: what has arrived and not been read yet, and reads that wait for more."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self._landing = memoryview(bytearray(READ_BYTES))
        self._waiter: asyncio.Future[None] | None = None
        self._ended: BaseException | None = None  # set once the connection is gone
        self._paused = False
        self.transport: asyncio.Transport | None = None

    # -- asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not asyncio's class

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._landing

    def buffer_updated(self, nbytes: int) -> None:
        self.buffer += self._landing[:nbytes]
        if len(self.buffer) > PAUSE_BYTES and self.transport is not None:
            self.transport.pause_reading()
            self._paused = True
        self._wake()

    def eof_received(self) -> bool:
        self._end(_Closed("the server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc or _Closed("the server closed the connection"))

    def _end(self, reason: BaseException) -> None:
        if self._ended is None:
            self._ended = reason
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- ours

    def usable(self) -> bool:
        return self._ended is None and self.transport is not None and not self.transport.is_closing()

    def write(self, data: bytes) -> None:
        if self._ended is not None or self.transport is None:
            raise _Closed("the connection is closed")
        self.transport.write(data)

    async def _more(self) -> None:
        if self._ended is not None:
            raise self._ended if isinstance(self._ended, OSError) else _Closed(str(self._ended))
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _take(self, size: int) -> bytes:
        taken = bytes(self.buffer[:size])
        del self.buffer[:size]
        return taken

    async def until(self, marker: bytes, limit: int) -> bytes:
        while (end := self.buffer.find(marker)) < 0:
            check_size(len(self.buffer), limit)
            await self._more()
        return self._take(end + len(marker))

    async def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            await self._more()
        return self._take(size)

    async def some(self, size: int, eof_ok: bool = False) -> bytes:
        """What has arrived, at most `size` bytes, waiting for at least one; b"" at the end only if
        `eof_ok`."""
        while not self.buffer:
            try:
                await self._more()
            except _Closed:
                if eof_ok:
                    return b""
                raise
        return self._take(size)

    async def body(self, head: AnswerHead, max_bytes: int | None) -> AsyncIterator[bytes]:
        """The answer's body as it arrives, de-chunked, at most `max_bytes` in all (None: no bound,
        for a stream, whose messages the envelope reader bounds)."""
        total = 0
        if head.chunked:
            while size := chunk_size(await self.until(b"\r\n", 4096)):
                total += size
                check_size(total, max_bytes)
                while size:
                    piece = await self.some(min(size, READ_BYTES))
                    size -= len(piece)
                    yield piece
                await self.exactly(2)
            while await self.until(b"\r\n", MAX_HEAD_BYTES) != b"\r\n":
                pass  # trailers
        elif head.length is None:  # the body runs to the end of the connection
            while piece := await self.some(READ_BYTES, eof_ok=True):
                total += len(piece)
                check_size(total, max_bytes)
                yield piece
        else:
            check_size(head.length, max_bytes)
            yield await self.exactly(head.length)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class AsyncTransport:
    """A pool of at most `max_connections` kept-alive connections, one call at a time each (more
    concurrent calls wait their turn).

    `post` sends a unary call; `stream` a server-streaming one, on a connection of its own.
    `token_ignored` turns true once the server says it did not check the token sent (auth off).
    """

    def __init__(
        self,
        address: str,
        timeout: float,
        tls: ssl.SSLContext | None = None,
        max_bytes: int = 64 << 20,
        max_connections: int = 100,
    ) -> None:
        self.address = Address(address)
        self.timeout, self.max_bytes = timeout, max_bytes
        self._tls = tls if tls is not None else (ssl.create_default_context() if self.address.tls else None)
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self.token_ignored = False

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

    async def _answer(self, connection: _Connection) -> AnswerHead:
        head = answer_head(await connection.until(b"\r\n\r\n", MAX_HEAD_BYTES))
        if head.token_ignored:
            self.token_ignored = True
        return head

    async def post(self, path: str, head: bytes, body: bytes) -> bytes:
        """The answer of a unary call; its Connect error raised, Unavailable or Timeout when no answer
        came. A kept-alive connection the server had closed (nothing of the call reached it: it closes
        idle ones, or restarted) is replaced by a new one and the call sent again."""
        async with self._slots:
            return await self._post(self.address.post(path, head, body))

    async def _post(self, request: bytes) -> bytes:
        for attempt in (1, 2):
            connection, reused = await self._take()
            try:
                async with asyncio.timeout(self.timeout):
                    connection.write(request)
                    answer = await self._answer(connection)
                    if not answer.chunked and answer.length is not None:
                        check_size(answer.length, self.max_bytes)
                        data = await connection.exactly(answer.length)
                    else:
                        data = b"".join([piece async for piece in connection.body(answer, self.max_bytes)])
            except TimeoutError:
                connection.close()
                raise Timeout(f"no answer from {self.address.url} within {self.timeout:g}s") from None
            except _BROKEN as error:
                connection.close()
                if reused and attempt == 1 and isinstance(error, OSError):
                    continue  # the server had closed the kept-alive connection: once more on a new one
                raise Unavailable(f"{self.address.url}: {error or type(error).__name__}") from None
            except BaseException:
                connection.close()  # cancelled mid-call: the answer would arrive for nobody
                raise
            if answer.keep_alive and (answer.length is not None or answer.chunked):
                self._idle.append(connection)
            else:
                connection.close()
            if answer.status != 200:
                raise wire.error(answer.status, data)
            return data
        raise AssertionError("unreachable")

    async def stream(self, path: str, head: bytes, body: bytes, silence: float) -> AsyncGenerator[bytes]:
        """The messages of a server-streaming call as they arrive, until its end; its error raised.
        Timeout when the server sends nothing for `silence` seconds (it sends keep-alives)."""
        connection = await self._connect()
        try:
            connection.write(self.address.post(path, head, wire.envelope(body)))
            async with asyncio.timeout(silence):
                answer = await self._answer(connection)
            pieces = connection.body(answer, self.max_bytes if answer.status != 200 else None)
            if answer.status != 200:
                async with asyncio.timeout(self.timeout):
                    data = b"".join([piece async for piece in pieces])
                raise wire.error(answer.status, data)
            reader = wire.EnvelopeReader()
            while True:
                async with asyncio.timeout(silence):
                    piece = await anext(pieces, None)
                if piece is None:
                    raise Unavailable(f"the stream from {self.address.url} ended before its end message")
                for message in reader.feed(piece):
                    yield message
                if reader.done:
                    return
        except TimeoutError:
            raise Timeout(f"the stream from {self.address.url} went silent for {silence:g}s") from None
        except TaskServiceError:
            raise
        except _BROKEN as error:
            raise Unavailable(
                f"the stream from {self.address.url}: {error or type(error).__name__}"
            ) from None
        finally:
            connection.close()

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
