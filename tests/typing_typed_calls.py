"""What mypy says of a declared type's typed calls (checked by `make lint`, never run).

Each `type: ignore[...]` marks a call mypy must refuse: mypy is strict (warn_unused_ignores), so if
the typed calls stopped checking the function's own parameters, the ignore goes unused and lint fails.
"""

from __future__ import annotations

from typing import Any

from taskservice import AsyncClient, AsyncTaskHandle, Client, TaskHandle, TaskOptions
from typed_tasks import Order, Size, typed_resize, typed_ship


def typed_calls_are_checked(conn: Any, client: Client) -> None:
    # The right keywords and types.
    task_id: int = typed_resize.enqueue(conn, user="ada", width=128, size=Size.LARGE, note=None)
    handle: TaskHandle = typed_resize.create(client, user="ada", width=128)
    later = typed_resize.with_options(TaskOptions(priority=5, delay_seconds=60))
    later.enqueue(conn, user="ada", width=128)
    typed_ship.enqueue(conn, order=Order(order_id=1, email="ada@example.com"))  # no context: the worker's
    # A keyword the function does not take, a value of the wrong type, a missing one, the context.
    typed_resize.enqueue(conn, user="ada", wdth=128)  # type: ignore[call-arg]
    typed_resize.enqueue(conn, user="ada", width="128")  # type: ignore[arg-type]
    typed_resize.enqueue(conn, width=128)  # type: ignore[call-arg]
    typed_resize.create(client, user="ada", width=128, square="yes")  # type: ignore[call-overload]
    later.enqueue(conn, user=1, width=128)  # type: ignore[arg-type]
    typed_ship.enqueue(conn, ctx=None, order=Order(order_id=1, email="a@b.c"))  # type: ignore[call-arg]
    # Options are one value, not keywords beside the parameters.
    typed_resize.enqueue(conn, user="ada", width=128, priority=5)  # type: ignore[call-arg]
    del task_id, handle


async def typed_async_calls_are_checked(conn: Any, client: AsyncClient) -> None:
    task_id: int = await typed_resize.enqueue_async(conn, user="ada", width=128)
    handle: AsyncTaskHandle = await typed_resize.create(client, user="ada", width=128)
    await typed_resize.enqueue_async(conn, user="ada", width=1.5)  # type: ignore[arg-type]
    await typed_ship.create(client, order="order 1")  # type: ignore[call-overload]
    # The function itself is still the function, with its context.
    typed_resize(user="ada", width=16)
    typed_resize(user="ada", width="16")  # type: ignore[arg-type]
    del task_id, handle
