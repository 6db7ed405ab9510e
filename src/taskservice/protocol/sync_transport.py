"""Connect calls over kept-alive HTTP/1.1 socket connections, blocking. Stdlib only: `task-cli` starts
on it in about 0.1 s."""

from __future__ import annotations

import select
import socket
import ssl
import threading
from collections.abc import Generator

from taskservice.protocol import wire
from taskservice.protocol.errors import Timeout, Unavailable
from taskservice.protocol.http11 import READ_BYTES, Endpoint, Exchange, failure


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server closed an idle connection (readable while idle means EOF)."""
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


class SyncTransport(Endpoint):
    """A small pool of kept-alive connections, one call at a time each; safe to share between threads.
    `post` sends a unary call; `stream` a server-streaming one, on a connection of its own."""

    def __init__(
        self,
        address: str,
        timeout: float,
        tls: ssl.SSLContext | None = None,
        max_bytes: int = 64 << 20,
    ) -> None:
        super().__init__(address, timeout, tls, max_bytes)
        self._idle: list[socket.socket] = []
        self._lock = threading.Lock()

    def _connect(self) -> socket.socket:
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
        return sock

    def _take(self) -> tuple[socket.socket, bool]:
        with self._lock:
            while self._idle:
                sock = self._idle.pop()
                if not _closed_by_peer(sock):
                    return sock, True
                sock.close()
        return self._connect(), False

    def post(self, path: str, head: bytes, body: bytes) -> bytes:
        """The answer of a unary call; its Connect error raised, Unavailable or Timeout when no answer
        came. A kept-alive connection the server had closed (nothing of the call reached it: it closes
        idle ones, or restarted) is replaced by a new one and the call sent again."""
        request = self.address.post(path, head, body)
        for attempt in (1, 2):
            sock, reused = self._take()
            call = Exchange(self.max_bytes)
            try:
                sock.sendall(request)
                while not call.done:
                    call.feed(sock.recv(READ_BYTES))
            except BaseException as error:
                sock.close()
                if reused and attempt == 1 and call.stale(error):
                    continue
                raise failure(error, self.address.url, self.timeout) or error from None
            self.token_ignored |= call.token_ignored
            if call.answer.reusable:
                with self._lock:
                    self._idle.append(sock)
            else:
                sock.close()
            return call.result()
        raise AssertionError("unreachable")

    def stream(self, path: str, head: bytes, body: bytes, silence: float) -> Generator[bytes]:
        """The messages of a server-streaming call as they arrive, until its end; its error raised.
        Timeout when the server sends nothing for `silence` seconds (it sends keep-alives)."""
        sock = self._connect()
        call = Exchange(self.max_bytes, stream=True)
        try:
            sock.sendall(self.address.post(path, head, wire.envelope(body)))
            sock.settimeout(silence)
            while not call.done:
                yield from call.feed(sock.recv(READ_BYTES))
            self.token_ignored |= call.token_ignored
            call.result()
        except BaseException as error:
            raise failure(error, self.address.url, silence) or error from None
        finally:
            sock.close()

    def close(self) -> None:
        with self._lock:
            for sock in self._idle:
                sock.close()
            self._idle.clear()
