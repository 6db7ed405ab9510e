"""Connect calls over kept-alive HTTP/1.1 socket connections, blocking. Stdlib only: `task-cli` starts
on it in about 0.1 s."""

from __future__ import annotations

import select
import socket
import ssl
import threading
from collections.abc import Generator, Iterator

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


class _Closed(ConnectionError):
    """The server closed the connection before the answer was whole."""


class _Socket:
    """One connection, with what it has read ahead."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, bytearray()

    def closed_by_peer(self) -> bool:
        """Whether the server closed it while it was idle (readable while idle means EOF)."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def _fill(self) -> None:
        data = self.sock.recv(READ_BYTES)
        if not data:
            raise _Closed("the server closed the connection")
        self.buffer += data

    def until(self, marker: bytes, limit: int) -> bytes:
        while (end := self.buffer.find(marker)) < 0:
            check_size(len(self.buffer), limit)
            self._fill()
        end += len(marker)
        taken = bytes(self.buffer[:end])
        del self.buffer[:end]
        return taken

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        taken = bytes(self.buffer[:size])
        del self.buffer[:size]
        return taken

    def some(self, size: int, eof_ok: bool = False) -> bytes:
        """What has arrived, at most `size` bytes, waiting for at least one; b"" at the end only if
        `eof_ok`."""
        if not self.buffer:
            try:
                self._fill()
            except _Closed:
                if eof_ok:
                    return b""
                raise
        taken = bytes(self.buffer[:size])
        del self.buffer[:size]
        return taken

    def body(self, head: AnswerHead, max_bytes: int | None) -> Iterator[bytes]:
        """The answer's body as it arrives, de-chunked, at most `max_bytes` in all (None: no bound,
        for a stream, whose messages the envelope reader bounds)."""
        total = 0
        if head.chunked:
            while size := chunk_size(self.until(b"\r\n", 4096)):
                total += size
                check_size(total, max_bytes)
                while size:
                    piece = self.some(min(size, READ_BYTES))
                    size -= len(piece)
                    yield piece
                self.exactly(2)
            while self.until(b"\r\n", MAX_HEAD_BYTES) != b"\r\n":
                pass  # trailers
        elif head.length is None:  # the body runs to the end of the connection
            while piece := self.some(READ_BYTES, eof_ok=True):
                total += len(piece)
                check_size(total, max_bytes)
                yield piece
        else:
            check_size(head.length, max_bytes)
            yield self.exactly(head.length)

    def close(self) -> None:
        self.sock.close()


class SyncTransport:
    """A small pool of kept-alive connections, one call at a time each; safe to share between threads.

    `post` sends a unary call; `stream` a server-streaming one, on a connection of its own.
    `token_ignored` turns true once the server says it did not check the token sent (auth off).
    """

    def __init__(
        self,
        address: str,
        timeout: float,
        tls: ssl.SSLContext | None = None,
        max_bytes: int = 64 << 20,
    ) -> None:
        self.address = Address(address)
        self.timeout, self.max_bytes = timeout, max_bytes
        self._tls = tls if tls is not None else (ssl.create_default_context() if self.address.tls else None)
        self._idle: list[_Socket] = []
        self._lock = threading.Lock()
        self.token_ignored = False

    def _connect(self) -> _Socket:
        a = self.address
        try:
            sock = socket.create_connection((a.host, a.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=a.host)
        except TimeoutError:
            raise Timeout(f"no connection to {a.url} within {self.timeout:g}s") from None
        except OSError as error:
            raise Unavailable(f"cannot reach {a.url}: {error}", sent=False) from None
        return _Socket(sock)

    def _take(self) -> tuple[_Socket, bool]:
        with self._lock:
            while self._idle:
                connection = self._idle.pop()
                if not connection.closed_by_peer():
                    return connection, True
                connection.close()
        return self._connect(), False

    def _answer(self, connection: _Socket) -> AnswerHead:
        head = answer_head(connection.until(b"\r\n\r\n", MAX_HEAD_BYTES))
        if head.token_ignored:
            self.token_ignored = True
        return head

    def post(self, path: str, head: bytes, body: bytes) -> bytes:
        """The answer of a unary call; its Connect error raised, Unavailable or Timeout when no answer
        came. A kept-alive connection the server had closed (nothing of the call reached it: it closes
        idle ones, or restarted) is replaced by a new one and the call sent again."""
        request = self.address.post(path, head, body)
        for attempt in (1, 2):
            connection, reused = self._take()
            try:
                connection.sock.sendall(request)
                answer = self._answer(connection)
                if not answer.chunked and answer.length is not None:
                    check_size(answer.length, self.max_bytes)
                    data = connection.exactly(answer.length)  # the usual answer, read at once
                else:
                    data = b"".join(connection.body(answer, self.max_bytes))
            except TimeoutError:
                connection.close()
                raise Timeout(f"no answer from {self.address.url} within {self.timeout:g}s") from None
            except (OSError, ValueError) as error:
                connection.close()
                if reused and attempt == 1 and isinstance(error, OSError):
                    continue  # the server had closed the kept-alive connection: once more on a new one
                raise Unavailable(f"{self.address.url}: {error or type(error).__name__}") from None
            except BaseException:
                connection.close()
                raise
            if answer.keep_alive and (answer.length is not None or answer.chunked):
                with self._lock:
                    self._idle.append(connection)
            else:
                connection.close()
            if answer.status != 200:
                raise wire.error(answer.status, data)
            return data
        raise AssertionError("unreachable")

    def stream(self, path: str, head: bytes, body: bytes, silence: float) -> Generator[bytes]:
        """The messages of a server-streaming call as they arrive, until its end; its error raised.
        Timeout when the server sends nothing for `silence` seconds (it sends keep-alives)."""
        connection = self._connect()
        try:
            connection.sock.sendall(self.address.post(path, head, wire.envelope(body)))
            connection.sock.settimeout(silence)
            answer = self._answer(connection)
            if answer.status != 200:
                raise wire.error(answer.status, b"".join(connection.body(answer, self.max_bytes)))
            reader = wire.EnvelopeReader()
            for piece in connection.body(answer, None):
                yield from reader.feed(piece)
                if reader.done:
                    return
            raise Unavailable(f"the stream from {self.address.url} ended before its end message")
        except TimeoutError:
            raise Timeout(f"the stream from {self.address.url} went silent for {silence:g}s") from None
        except TaskServiceError:
            raise
        except (OSError, ValueError) as error:
            raise Unavailable(
                f"the stream from {self.address.url}: {error or type(error).__name__}"
            ) from None
        finally:
            connection.close()

    def close(self) -> None:
        with self._lock:
            for connection in self._idle:
                connection.close()
            self._idle.clear()
