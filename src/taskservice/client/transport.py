"""Unary POSTs over kept-alive HTTP/1.1 connections: sockets for `Client`, asyncio streams for
`AsyncClient`.

httpx costs the caller about three times the CPU per call of these (bench scenario j measured it at a
third of the protocol client's rate), and a CreateTask loop is bound by exactly that; http.client,
tried next for `Client`, parses every answer's headers with the email package. A unary Connect call
needs little of HTTP: one POST, one answer with a Content-Length (chunked is read too). The event
streams, where per-call cost does not matter, stay on httpx.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import threading
from urllib.parse import urlsplit

from taskservice.client.errors import TaskServiceError, Timeout, Unavailable


class Address:
    """Where the server is: scheme, host, port and path prefix of an http(s) URL."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"address: {url!r} is not an http:// or https:// URL")
        self.url = url.rstrip("/")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        self.host_header = parts.netloc.rpartition("@")[2]


def _head(address: Address, headers: dict[str, str]) -> bytes:
    """The request headers every call sends, encoded once."""
    lines = [f"Host: {address.host_header}", *(f"{k}: {v}" for k, v in headers.items())]
    return "".join(f"{line}\r\n" for line in lines).encode("latin-1")


def _request(prefix: bytes, path: str, head: bytes, body: bytes) -> bytes:
    return b"POST %s%s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s" % (
        prefix,
        path.encode(),
        head,
        len(body),
        body,
    )


# A server with auth off says so when it was sent a token it did not check (api/access.py).
TOKEN_IGNORED = b"task-token-ignored"


def _answer_head(head: bytes) -> tuple[int, int | None, bool, bool, bool]:
    """(status, Content-Length or None, chunked, keep-alive, token ignored) of an answer's status line
    and headers."""
    status_line, *lines = head[:-4].split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP/1.1 answer: {status_line[:80]!r}")
    length, chunked, keep, ignored = None, False, parts[0] == b"HTTP/1.1", False
    for line in lines:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            keep = value != b"close"
        elif name == TOKEN_IGNORED:
            ignored = True
    return int(parts[1]), length, chunked, keep, ignored


def _too_large(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise TaskServiceError(f"the answer is larger than {max_bytes} bytes", "resource_exhausted")


class _Closed(ConnectionError):
    """The server closed the connection before the answer was whole."""


class _Socket:
    """One kept-alive connection of SyncTransport, with what it has read ahead."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, bytearray()

    def closed_by_peer(self) -> bool:
        """Whether the server closed it while it was idle (readable while idle means EOF)."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise _Closed("the server closed the connection")
        self.buffer += data

    def until(self, marker: bytes, limit: int) -> bytes:
        while (end := self.buffer.find(marker)) < 0:
            _too_large(len(self.buffer), limit)
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

    def rest(self, limit: int) -> bytes:
        """Everything until the server closes the connection (at most `limit` bytes)."""
        while True:
            try:
                self._fill()
            except _Closed:
                return bytes(self.buffer)
            _too_large(len(self.buffer), limit)

    def close(self) -> None:
        self.sock.close()


class SyncTransport:
    """A small pool of kept-alive socket connections, one call at a time each; safe to share between
    threads."""

    def __init__(
        self,
        address: Address,
        timeout: float,
        headers: dict[str, str],
        tls: ssl.SSLContext | None = None,
        max_bytes: int = 64 << 20,
    ) -> None:
        self.address, self.timeout, self.max_bytes = address, timeout, max_bytes
        self._tls = tls if tls is not None else (ssl.create_default_context() if address.tls else None)
        self._head, self._prefix = _head(address, headers), address.prefix.encode()
        self._idle: list[_Socket] = []
        self._lock = threading.Lock()
        self.token_ignored = False  # the server said it did not check the token sent

    def _take(self) -> tuple[_Socket, bool]:
        with self._lock:
            while self._idle:
                connection = self._idle.pop()
                if not connection.closed_by_peer():
                    return connection, True
                connection.close()
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
        return _Socket(sock), False

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """(HTTP status, body); Unavailable or Timeout when no answer came."""
        request = _request(self._prefix, path, self._head, body)
        for attempt in (1, 2):
            connection, reused = self._take()
            try:
                connection.sock.sendall(request)
                status, data, keep = self._read(connection)
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
            if keep:
                with self._lock:
                    self._idle.append(connection)
            else:
                connection.close()
            return status, data
        raise AssertionError("unreachable")

    def _read(self, connection: _Socket) -> tuple[int, bytes, bool]:
        status, length, chunked, keep, ignored = _answer_head(connection.until(b"\r\n\r\n", 65536))
        if ignored:
            self.token_ignored = True
        if chunked:
            chunks, size = [], 0
            while chunk := int(connection.until(b"\r\n", 4096).split(b";", 1)[0], 16):
                size += chunk
                _too_large(size, self.max_bytes)
                chunks.append(connection.exactly(chunk + 2)[:-2])
            while connection.until(b"\r\n", 65536) != b"\r\n":
                pass  # trailers
            return status, b"".join(chunks), keep
        if length is None:  # the body runs to the end of the connection
            return status, connection.rest(self.max_bytes), False
        _too_large(length, self.max_bytes)
        return status, connection.exactly(length), keep

    def close(self) -> None:
        with self._lock:
            for connection in self._idle:
                connection.close()
            self._idle.clear()


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class AsyncTransport:
    """A pool of at most `max_connections` asyncio stream connections, one call at a time each (more
    concurrent calls wait their turn)."""

    def __init__(
        self,
        address: Address,
        timeout: float,
        headers: dict[str, str],
        tls: ssl.SSLContext | None = None,
        max_bytes: int = 64 << 20,
        max_connections: int = 100,
    ) -> None:
        self.address, self.timeout, self.max_bytes = address, timeout, max_bytes
        self._head, self._prefix = _head(address, headers), address.prefix.encode()
        self._tls = tls if tls is not None else (ssl.create_default_context() if address.tls else None)
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self.token_ignored = False  # the server said it did not check the token sent

    async def _take(self) -> tuple[_Connection, bool]:
        while self._idle:
            connection = self._idle.pop()
            if connection.usable():
                return connection, True
            connection.close()
        a = self.address
        try:
            reader, writer = await asyncio.open_connection(
                a.host, a.port, ssl=self._tls, server_hostname=a.host if self._tls else None
            )
        except OSError as error:
            raise Unavailable(f"cannot reach {a.url}: {error}", sent=False) from None
        return _Connection(reader, writer), False

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """(HTTP status, body); Unavailable or Timeout when no answer came."""
        async with self._slots:
            return await self._post(path, body)

    async def _post(self, path: str, body: bytes) -> tuple[int, bytes]:
        request = _request(self._prefix, path, self._head, body)
        for attempt in (1, 2):
            connection, reused = await self._take()
            try:
                async with asyncio.timeout(self.timeout):
                    connection.writer.write(request)
                    status, data, keep = await self._read(connection.reader)
            except TimeoutError:
                connection.close()
                raise Timeout(f"no answer from {self.address.url} within {self.timeout:g}s") from None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
                connection.close()
                if reused and attempt == 1 and isinstance(error, asyncio.IncompleteReadError | OSError):
                    continue  # the server had closed the kept-alive connection: once more on a new one
                raise Unavailable(f"{self.address.url}: {error or type(error).__name__}") from None
            except BaseException:
                connection.close()  # cancelled mid-call: the answer would arrive for nobody
                raise
            if keep:
                self._idle.append(connection)
            else:
                connection.close()
            return status, data
        raise AssertionError("unreachable")

    async def _read(self, reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
        status, length, chunked, keep, ignored = _answer_head(await reader.readuntil(b"\r\n\r\n"))
        if ignored:
            self.token_ignored = True
        if chunked:
            chunks, size = [], 0
            while chunk := int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16):
                size += chunk
                _too_large(size, self.max_bytes)
                chunks.append(await reader.readexactly(chunk))
                await reader.readexactly(2)
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            return status, b"".join(chunks), keep
        if length is None:  # the body runs to the end of the connection
            return status, await reader.read(self.max_bytes + 1), False
        _too_large(length, self.max_bytes)
        return status, await reader.readexactly(length), keep

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
