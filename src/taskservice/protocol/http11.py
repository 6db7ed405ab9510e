"""What both transports need of HTTP/1.1: the address, a request's bytes, an answer's head. Stdlib only.

A Connect call needs little of HTTP: one POST, one answer with a Content-Length, or chunked (a stream),
or running to the end of the connection. httpx costs the caller about three times the CPU per call of
these transports (bench scenario j measured it), and a CreateTask loop is bound by exactly that;
http.client parses every answer's headers with the email package.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from taskservice.protocol.errors import error_for

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


def chunk_size(line: bytes) -> int:
    """The size a chunked body's size line announces (extensions ignored)."""
    size = int(line.split(b";", 1)[0], 16)
    if size < 0:
        raise ValueError(f"a negative chunk size: {size}")
    return size


def check_size(size: int, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        raise error_for("resource_exhausted", f"the answer is larger than {max_bytes} bytes")
