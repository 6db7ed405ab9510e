"""The CLI's connection to the control plane: the generated Connect client, errors as one line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import click
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from taskservice.api.ids import SendsWideIds
from taskservice.gen.cloud.v1.task_connect import TaskManagementServiceClientSync

T = TypeVar("T")

TIMEOUT_MS = 30_000


@contextmanager
def api(ctx: click.Context) -> Iterator[TaskManagementServiceClientSync]:
    """A client for `--address` (binary proto, like the original Go CLI)."""
    address: str = ctx.obj["address"]
    # It reads the 64-bit ids (id64, ...): it says so, see api/ids.py.
    with TaskManagementServiceClientSync(
        address, timeout_ms=TIMEOUT_MS, interceptors=[SendsWideIds()]
    ) as client:
        try:
            yield client
        except ConnectError as error:
            raise click.ClickException(describe(error, address)) from None


def describe(error: ConnectError, address: str) -> str:
    if error.code == Code.UNAVAILABLE:
        return f"cannot reach the server at {address} ({error.message}); is `task-cli server` running?"
    return f"{error.code.value}: {error.message}"


def call(ctx: click.Context, rpc: Callable[[TaskManagementServiceClientSync], T]) -> T:
    """Run one RPC; a failure ends the command with one line on stderr and exit code 1."""
    with api(ctx) as client:
        return rpc(client)
