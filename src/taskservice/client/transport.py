"""Unary POSTs over kept-alive HTTP/1.1 connections: http.client for `Client`, asyncio streams for
`AsyncClient`.

httpx costs the caller about three times the CPU per call of these (bench scenario j measured it at a
third of the protocol client's rate), and a CreateTask loop is bound by exactly that. A unary Connect
call needs little of HTTP: one POST, one answer with a Content-Length (chunked is read too). The event
streams, where per-call cost does not matter, stay on httpx.
"""

from __future__ import annotations

import asyncio
import http.client
import select
import ssl
import threading
from urllib.parse import urlsplit

from taskservice.client.errors import TaskServiceError, Timeout, Unavailable

_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, http.client.BadStatusLine)


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


def _closed_by_peer(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle kept-alive connection was closed by the server (readable while idle = EOF)."""
    sock = connection.sock
    if sock is None:
        return True
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


class SyncTransport:
    """A small pool of http.client connections; safe to share between threads."""

    def __init__(self, address: Address, timeout: float, tls: ssl.SSLContext | None = None) -> None:
        self.address, self.timeout, self._tls = address, timeout, tls
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            while self._idle:
                connection = self._idle.pop()
                if not _closed_by_peer(connection):
                    return connection, True
                connection.close()
        a = self.address
        if a.tls:
            return http.client.HTTPSConnection(a.host, a.port, timeout=self.timeout, context=self._tls), False
        return http.client.HTTPConnection(a.host, a.port, timeout=self.timeout), False

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """(HTTP status, body); Unavailable or Timeout when no answer came."""
        url = self.address.prefix + path
        for attempt in (1, 2):
            connection, reused = self._take()
            try:
                connection.request("POST", url, body, headers)
                reply = connection.getresponse()
                data = reply.read()
            except _STALE as error:
                connection.close()
                if reused and attempt == 1:
                    continue  # the server had closed the kept-alive connection: once more on a new one
                raise Unavailable(f"{self.address.url}: {error or type(error).__name__}") from None
            except TimeoutError:
                connection.close()
                raise Timeout(f"no answer from {self.address.url} within {self.timeout:g}s") from None
            except (OSError, http.client.HTTPException) as error:
                never_connected = connection.sock is None  # refused, unreachable: nothing was sent
                connection.close()
                raise Unavailable(
                    f"cannot reach {self.address.url}: {error}", sent=not never_connected
                ) from None
            if reply.will_close:
                connection.close()
            else:
                with self._lock:
                    self._idle.append(connection)
            return reply.status, data
        raise AssertionError("unreachable")

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
        # Every call sends the same headers: encoded once.
        lines = [f"Host: {address.host_header}", *(f"{k}: {v}" for k, v in headers.items())]
        self._head = "".join(f"{line}\r\n" for line in lines).encode("latin-1")
        self._prefix = address.prefix.encode()
        self._tls = tls if tls is not None else (ssl.create_default_context() if address.tls else None)
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)

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
        request = b"POST %s%s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s" % (
            self._prefix,
            path.encode(),
            self._head,
            len(body),
            body,
        )
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
        head = await reader.readuntil(b"\r\n\r\n")  # the status line and every header at once
        status_line, *lines = head[:-4].split(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ValueError(f"not an HTTP/1.1 answer: {status_line[:80]!r}")
        status = int(parts[1])
        length, chunked, keep = None, False, parts[0] == b"HTTP/1.1"
        for line in lines:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
            elif name == b"connection":
                keep = value != b"close"
        if chunked:
            chunks, size = [], 0
            while chunk := int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16):
                size += chunk
                self._check(size)
                chunks.append(await reader.readexactly(chunk))
                await reader.readexactly(2)
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            return status, b"".join(chunks), keep
        if length is None:  # the body runs to the end of the connection
            return status, await reader.read(self.max_bytes + 1), False
        self._check(length)
        return status, await reader.readexactly(length), keep

    def _check(self, size: int) -> None:
        if size > self.max_bytes:
            raise TaskServiceError(f"the answer is larger than {self.max_bytes} bytes", "resource_exhausted")

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
