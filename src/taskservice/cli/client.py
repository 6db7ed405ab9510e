"""The CLI's connection to the control plane: Connect unary calls in binary protobuf, errors as one line.

The CLI speaks the Connect protocol itself over the standard library's `http.client` rather than
through connect-python's client: that client loads asyncio, an HTTP stack and the package metadata,
which alone cost more than the whole start-up budget of a command (see `task-cli bench`, "CLI start").
A unary Connect call is one POST of the serialized request; the answer is the serialized response,
or a JSON error `{"code": ..., "message": ...}`.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import urlsplit

import click
from google.protobuf.message import DecodeError, Message

from taskservice.cli.escape import literal
from taskservice.cli.group import global_value
from taskservice.client.wire import HTTP_CODES

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
T = TypeVar("T")

SERVICE = "cloud.v1.TaskManagementService"
AUTH_SERVICE = "cloud.v1.AuthService"
TIMEOUT_SECONDS = 30.0
# Safe to send again on a fresh connection when a kept-alive one turns out to be closed.
_READ_ONLY = frozenset({"GetTask", "ListTasks", "GetTaskHistory", "GetStatus", "ListTaskExecutions",
                        "ListWorkers", "ListTaskTypes", "WhoAmI", "ListTokens"})  # fmt: skip


class ApiError(Exception):
    """A Connect error: `code` is its name (not_found, invalid_argument, unavailable, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class Api:
    """Unary calls to one server over one kept-alive connection."""

    def __init__(self, address: str, token: str = "", timeout: float = TIMEOUT_SECONDS) -> None:
        parts = urlsplit(address)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise click.UsageError(f"--address {address!r} is not an http:// or https:// address")
        self.address, self.timeout = address, timeout
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self._headers = {
            "Content-Type": "application/proto",
            "Connect-Protocol-Version": "1",
            "Connect-Timeout-Ms": str(int(timeout * 1000)),
            "User-Agent": "task-cli",
            # It reads the 64-bit ids (id64, ...): see api/ids.py.
            "Task-Id-Width": "64",
        }
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._token_sent = bool(token)
        self._connection: http.client.HTTPConnection | None = None

    def call(self, method: str, request: Message, response_type: type[M], service: str = SERVICE) -> M:
        """Call `method` of `service`; ApiError for a Connect error, or when unreachable."""
        body = request.SerializeToString()
        started = time.perf_counter()
        for attempt in (1, 2):
            connection = self._connect()
            try:
                connection.request("POST", f"{self._prefix}/{service}/{method}", body, self._headers)
                reply = connection.getresponse()
                data = reply.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as error:
                self.close()
                if attempt == 1 and method in _READ_ONLY:
                    continue  # the kept-alive connection had been closed by the server
                raise ApiError("unavailable", str(error) or type(error).__name__) from None
            except TimeoutError:
                self.close()
                raise ApiError("deadline_exceeded", f"no answer within {self.timeout:g}s") from None
            except (OSError, http.client.HTTPException) as error:
                self.close()
                raise ApiError("unavailable", str(error) or type(error).__name__) from None
            log.debug(
                "%s %s: HTTP %d, %d bytes in %.1f ms",
                method, self.address, reply.status, len(data), (time.perf_counter() - started) * 1000,
            )  # fmt: skip
            if self._token_sent and reply.getheader("Task-Token-Ignored"):
                _warn_token_ignored(self.address)
            if reply.status == 200:
                response = response_type()
                try:
                    response.ParseFromString(data)
                except DecodeError as error:
                    raise ApiError("internal", f"the server's answer does not decode: {error}") from None
                return response
            raise _error(reply.status, data)
        raise AssertionError("unreachable")

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._connection = kind(self._host, self._port, timeout=self.timeout)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


_warned: set[str] = set()  # the servers this command was told about, to say so once


def _warn_token_ignored(address: str) -> None:
    """The server did not check the token sent: its auth is off. Once per command, on stderr."""
    if address in _warned:
        return
    _warned.add(address)
    click.echo(
        f"Warning: the server at {address} runs with auth off: the token (--token or TASK_SERVICE_TOKEN) "
        "was not checked",
        err=True,
    )


def _error(status: int, body: bytes) -> ApiError:
    try:
        error = json.loads(body)
        return ApiError(str(error["code"]), str(error.get("message", "")))
    except (ValueError, TypeError, KeyError):
        text = body.decode(errors="replace").strip().splitlines()
        return ApiError(HTTP_CODES.get(status, "unknown"), f"HTTP {status}: {text[0] if text else ''}")


def describe(error: ApiError, address: str) -> str:
    """The one line a failed call prints (user data in it shown literally)."""
    if error.code == "unavailable":
        return (
            f"cannot reach the server at {address} ({literal(error.message)}); is `task-cli server` running?"
        )
    return f"{error.code}: {literal(error.message)}"


@contextmanager
def api(ctx: click.Context, timeout: float = TIMEOUT_SECONDS) -> Iterator[Api]:
    """A client for the command line's `--address` and `--token`; an ApiError ends the command."""
    address = global_value(ctx, "address")
    client = Api(address, global_value(ctx, "token"), timeout)
    try:
        yield client
    except ApiError as error:
        raise click.ClickException(describe(error, address)) from None
    finally:
        client.close()


def call(ctx: click.Context, rpc: Callable[[Api], T]) -> T:
    """Run one RPC; a failure ends the command with one line on stderr and exit code 1."""
    with api(ctx) as client:
        return rpc(client)
