"""The CLI's connection to the control plane: Connect unary calls in binary protobuf, errors as one line.

It speaks through the protocol's stdlib-only transport (taskservice.protocol.sync_transport), as the
Python client does: connect-python's client, or httpx, loads more than the whole start-up budget of a
command (see `task-cli bench`, "CLI start").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import click
from google.protobuf.message import Message

from taskservice.cli.escape import literal
from taskservice.cli.group import global_value
from taskservice.protocol import wire
from taskservice.protocol.errors import TaskServiceError
from taskservice.protocol.sync_transport import SyncTransport

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
T = TypeVar("T")

SERVICE = wire.SERVICE_PATH
AUTH_SERVICE = wire.AUTH_SERVICE_PATH
TIMEOUT_SECONDS = 30.0


class Api:
    """Unary calls to one server over one kept-alive connection."""

    def __init__(self, address: str, token: str = "", timeout: float = TIMEOUT_SECONDS) -> None:
        try:
            self._transport = SyncTransport(address, timeout)
        except ValueError:
            raise click.UsageError(f"--address {address!r} is not an http:// or https:// address") from None
        self.address, self.timeout = address, timeout
        self._head = self._transport.address.head(wire.headers(token, timeout, user_agent="task-cli"))
        self._token_sent = bool(token)

    def call(self, method: str, request: Message, response_type: type[M], service: str = SERVICE) -> M:
        """Call `method` of `service`; a TaskServiceError for a Connect error, or when unreachable."""
        started = time.perf_counter()
        try:
            data = self._transport.post(service + method, self._head, request.SerializeToString())
        finally:
            if self._token_sent and self._transport.token_ignored:
                _warn_token_ignored(self.address)
        log.debug("%s %s: %d bytes in %.1f ms", method, self.address, len(data),
                  (time.perf_counter() - started) * 1000)  # fmt: skip
        return wire.decode(data, response_type)

    def close(self) -> None:
        self._transport.close()


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


def describe(error: TaskServiceError, address: str) -> str:
    """The one line a failed call prints (user data in it shown literally)."""
    if error.code == "unavailable":
        reason = error.message.partition(f"cannot reach {address.rstrip('/')}: ")[2] or error.message
        return f"cannot reach the server at {address} ({literal(reason)}); is `task-cli server` running?"
    return f"{error.code}: {literal(error.message)}"


@contextmanager
def api(ctx: click.Context, timeout: float = TIMEOUT_SECONDS) -> Iterator[Api]:
    """A client for the command line's `--address` and `--token`; a TaskServiceError ends the command."""
    address = global_value(ctx, "address")
    client = Api(address, global_value(ctx, "token"), timeout)
    try:
        yield client
    except TaskServiceError as error:
        raise click.ClickException(describe(error, address)) from None
    finally:
        client.close()


def call(ctx: click.Context, rpc: Callable[[Api], T]) -> T:
    """Run one RPC; a failure ends the command with one line on stderr and exit code 1."""
    with api(ctx) as client:
        return rpc(client)
