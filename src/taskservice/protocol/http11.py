"""What both transports need of HTTP/1.1: the address, a request's bytes, an answer's head. Stdlib only.

A Connect call needs little of HTTP: one POST, one answer with a Content-Length, or chunked (a stream),
or running to the end of the connection. httpx costs the caller about three times the CPU per call of
these transports (bench scenario j measured it), and a CreateTask loop is bound by exactly that;
http.client parses every answer's headers with the email package.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from taskservice.protocol import wire
from taskservice.protocol.errors import TaskServiceError, Timeout, Unavailable, error_for

MAX_HEAD_BYTES = 65536
READ_BYTES = 65536  # at most this much is read from the socket at once
# A server with auth off says so when it was sent a token it did not check (api/access.py).
TOKEN_IGNORED = b"task-token-ignored"


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
        self.prefix = parts.path.rstrip("/").encode()
        self.host_header = parts.netloc.rpartition("@")[2]

    def head(self, headers: dict[str, str]) -> bytes:
        """A request's header lines, encoded once and sent with every call that uses them."""
        lines = [f"Host: {self.host_header}", *(f"{k}: {v}" for k, v in headers.items())]
        return "".join(f"{line}\r\n" for line in lines).encode("latin-1")

    def post(self, path: str, head: bytes, body: bytes) -> bytes:
        """The whole request: a POST of `body` to `path` with the header lines `head`."""
        return b"POST %s%s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s" % (
            self.prefix,
            path.encode(),
            head,
            len(body),
            body,
        )


class Endpoint:
    """What both transports hold: where the server is and how long a call may take, the TLS context
    for an https:// address (the system's by default), the bound on an answer, and whether the server
    said it did not check the token sent (auth off)."""

    def __init__(self, address: str, timeout: float, tls: ssl.SSLContext | None, max_bytes: int) -> None:
        self.address = Address(address)
        self.timeout, self.max_bytes = timeout, max_bytes
        self._tls = tls if tls is not None else (ssl.create_default_context() if self.address.tls else None)
        self.token_ignored = False


@dataclass(frozen=True, slots=True)
class AnswerHead:
    status: int
    length: int | None  # Content-Length; None: chunked, or to the end of the connection
    chunked: bool
    keep_alive: bool
    token_ignored: bool


def answer_head(head: bytes) -> AnswerHead:
    """An answer's status line and headers (`head` ends with the blank line)."""
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
    if length is not None and length < 0:
        raise ValueError(f"a negative Content-Length: {length}")
    return AnswerHead(int(parts[1]), None if chunked else length, chunked, keep, ignored)


class AnswerReader:
    """Sans-I/O: an answer's bytes in as they arrive (`feed`, then `end` if the connection ends),
    its head (`head`, once whole) and its body's pieces out; `done` once the answer is whole.

    Bounds: the head at MAX_HEAD_BYTES, the body at `max_bytes` (a stream's 200 answer is unbounded,
    its messages bounded by the envelope reader), a chunk's size line at 4 KiB.
    """

    def __init__(self, max_bytes: int, stream: bool = False) -> None:
        self.head: AnswerHead | None = None
        self.done = False
        self._buffer = bytearray()
        self._max_bytes, self._stream = max_bytes, stream
        self._read = self._head  # what to read next: the step the answer is at
        self._left = 0  # bytes left of the body (a Content-Length) or of the chunk being read
        self._total = 0

    @property
    def reusable(self) -> bool:
        """The connection may carry another call: whole, kept alive, nothing read beyond the answer."""
        return (
            self.done and self.head is not None and self.head.keep_alive and not self._buffer
            and (self.head.length is not None or self.head.chunked)
        )  # fmt: skip

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        pieces: list[bytes] = []
        while not self.done and self._read(pieces):
            pass
        return pieces

    def end(self) -> None:
        """The server closed the connection: the end of a body that runs to it, else too early."""
        if self.head is None or not (self.head.length is None and not self.head.chunked):
            raise ConnectionError("the server closed the connection before the answer was whole")
        self.done = True

    # Each step reads what it can from the buffer: True if it moved on, False when it needs more.

    def _head(self, pieces: list[bytes]) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            check_size(len(self._buffer), MAX_HEAD_BYTES)
            return False
        self.head = head = answer_head(bytes(self._take(end + 4)))
        if self._stream and head.status == 200:
            self._max_bytes = 1 << 62  # the envelope reader bounds each message
        if head.chunked:
            self._read = self._chunk_size
        elif head.length is None:
            self._read = self._to_the_end
        else:
            self._count(head.length)
            self._left, self._read = head.length, self._body
            self.done = head.length == 0
        return True

    def _body(self, pieces: list[bytes]) -> bool:
        if not self._buffer:
            return False
        self._left -= self._piece(pieces, self._left)
        self.done = not self._left
        return True

    def _chunk(self, pieces: list[bytes]) -> bool:
        if not self._buffer:
            return False
        self._left -= self._piece(pieces, self._left)
        if not self._left:
            self._read = self._chunk_end
        return True

    def _to_the_end(self, pieces: list[bytes]) -> bool:
        if not self._buffer:
            return False
        self._count(len(self._buffer))
        self._piece(pieces, len(self._buffer))
        return True

    def _chunk_size(self, pieces: list[bytes]) -> bool:
        line = self._line(4096)
        if line is None:
            return False
        self._left = chunk_size(line)
        self._count(self._left)
        self._read = self._chunk if self._left else self._trailer
        return True

    def _chunk_end(self, pieces: list[bytes]) -> bool:
        if len(self._buffer) < 2:
            return False
        if self._take(2) != b"\r\n":
            raise ValueError("a chunk does not end with CRLF")
        self._read = self._chunk_size
        return True

    def _trailer(self, pieces: list[bytes]) -> bool:
        line = self._line(MAX_HEAD_BYTES)
        if line is None:
            return False
        self.done = not line
        return True

    def _line(self, limit: int) -> bytes | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            check_size(len(self._buffer), limit)
            return None
        return self._take(end + 2)[:-2]

    def _piece(self, pieces: list[bytes], size: int) -> int:
        pieces.append(self._take(size))
        return len(pieces[-1])

    def _take(self, size: int) -> bytes:
        taken = bytes(self._buffer[:size])
        del self._buffer[:size]
        return taken

    def _count(self, size: int) -> None:
        self._total += size
        check_size(self._total, self._max_bytes)


class Exchange:
    """Sans-I/O: one call's answer. Bytes in as they arrive (b"" when the connection ended), a
    stream's messages out, and at the end `result()`: the unary answer's body, or the error."""

    def __init__(self, max_bytes: int, stream: bool = False) -> None:
        self.answer = AnswerReader(max_bytes, stream)
        self._envelopes = wire.EnvelopeReader() if stream else None
        self._pieces: list[bytes] = []  # a unary answer's body, or a refused stream's

    @property
    def done(self) -> bool:
        return self.answer.done or (self._envelopes is not None and self._envelopes.done)

    @property
    def token_ignored(self) -> bool:
        return self.answer.head is not None and self.answer.head.token_ignored

    def feed(self, data: bytes) -> list[bytes]:
        if not data:
            self.answer.end()
            return []
        pieces = self.answer.feed(data)
        head = self.answer.head
        if self._envelopes is None or head is None or head.status != 200:
            self._pieces += pieces
            return []
        return [message for piece in pieces for message in self._envelopes.feed(piece)]

    def result(self) -> bytes:
        """The unary answer's body; else its Connect error, or, for a stream, that it ended early."""
        head = self.answer.head
        assert head is not None, "result() before the answer was whole"
        if head.status != 200:
            raise wire.error(head.status, b"".join(self._pieces))
        if self._envelopes is not None and not self._envelopes.done:
            raise error_for("unavailable", "the stream ended before its end message")
        return self._pieces[0] if len(self._pieces) == 1 else b"".join(self._pieces)

    def stale(self, error: BaseException) -> bool:
        """Whether `error` says a kept-alive connection had been closed before the call reached the
        server (nothing of an answer came), so that it may go again on a new one."""
        return isinstance(error, OSError) and not isinstance(error, TimeoutError) and self.answer.head is None


def failure(error: BaseException, url: str, timeout: float) -> TaskServiceError | None:
    """The protocol's error for what a call's I/O raised (None: not an I/O failure; raise it as is)."""
    if isinstance(error, TaskServiceError):
        return error
    if isinstance(error, TimeoutError):
        return Timeout(f"no answer from {url} within {timeout:g}s")
    if isinstance(error, OSError | ValueError):
        return Unavailable(f"{url}: {error or type(error).__name__}")
    return None


def chunk_size(line: bytes) -> int:
    """The size a chunked body's size line announces (extensions ignored)."""
    size = int(line.split(b";", 1)[0], 16)
    if size < 0:
        raise ValueError(f"a negative chunk size: {size}")
    return size


def check_size(size: int, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        raise error_for("resource_exhausted", f"the answer is larger than {max_bytes} bytes")
