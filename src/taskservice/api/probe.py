"""For tools that start a server process: a free port to give it, and waiting until it is ready."""

from __future__ import annotations

import socket
import subprocess
import time

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerExited(RuntimeError):
    """The server process ended before it became ready."""


def wait_until_ready(address: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Block until `address`/readyz answers 200.

    ServerExited if `process` ends first; TimeoutError after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerExited(f"the server exited with code {process.returncode}")
        try:
            if httpx.get(f"{address}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the server did not become ready within {timeout:g}s")
