"""Connect calls over kept-alive HTTP/1.1 asyncio stream connections."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncGenerator, AsyncIterator

from taskservice.protocol import wire
from taskservice.protocol.errors import TaskServiceError, Timeout, Unavailable
from taskservice.protocol.http11 import READ_BYTES, Address, AnswerHead, answer_head, check_size, chunk_size

# What a failed read or write raises when the connection, not the server's answer, was the problem.
_BROKEN = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    async def some(self, size: int) -> bytes:
        piece = await self.reader.read(size)
        if not piece:
            raise asyncio.IncompleteReadError(b"", size)
        return piece

    async def body(self, head: AnswerHead, max_bytes: int | None) -> AsyncIterator[bytes]:
        """The answer's body as it arrives, de-chunked, at most `max_bytes` in all (None: no bound,
        for a stream, whose messages the envelope reader bounds)."""
        reader, total = self.reader, 0
        if head.chunked:
            while size := chunk_size(await reader.readuntil(b"\r\n")):
                total += size
                check_size(total, max_bytes)
                while size:
                    piece = await self.some(min(size, READ_BYTES))
                    size -= len(piece)
                    yield piece
                await reader.readexactly(2)
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
        elif head.length is None:  # the body runs to the end of the connection
            while piece := await reader.read(READ_BYTES):
                total += len(piece)
                check_size(total, max_bytes)
                yield piece
        else:
            check_size(head.length, max_bytes)
            yield await reader.readexactly(head.length)

    def close(self) -> None:
        self.writer.close()


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
                reader, writer = await asyncio.open_connection(
                    a.host, a.port, ssl=self._tls, server_hostname=a.host if self._tls else None
                )
        except TimeoutError:
            raise Timeout(f"no connection to {a.url} within {self.timeout:g}s") from None
        except OSError as error:
            raise Unavailable(f"cannot reach {a.url}: {error}", sent=False) from None
        return _Connection(reader, writer)

    async def _take(self) -> tuple[_Connection, bool]:
        while self._idle:
            connection = self._idle.pop()
            if connection.usable():
                return connection, True
            connection.close()
        return await self._connect(), False

    async def _answer(self, connection: _Connection) -> AnswerHead:
        head = answer_head(await connection.reader.readuntil(b"\r\n\r\n"))
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
                    connection.writer.write(request)
                    answer = await self._answer(connection)
                    if not answer.chunked and answer.length is not None:
                        check_size(answer.length, self.max_bytes)
                        data = await connection.reader.readexactly(answer.length)
                    else:
                        data = b"".join([piece async for piece in connection.body(answer, self.max_bytes)])
            except TimeoutError:
                connection.close()
                raise Timeout(f"no answer from {self.address.url} within {self.timeout:g}s") from None
            except _BROKEN as error:
                connection.close()
                if reused and attempt == 1 and isinstance(error, asyncio.IncompleteReadError | OSError):
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
            connection.writer.write(self.address.post(path, head, wire.envelope(body)))
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
