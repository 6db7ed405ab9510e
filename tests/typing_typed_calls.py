"""What mypy says of a declared type's typed calls (checked by `make lint`, never run).

Each `type: ignore[...]` marks a call mypy must refuse: mypy is strict (warn_unused_ignores), so if
the typed calls stopped checking the function's own parameters, the ignore goes unused and lint fails.
"""

from __future__ import annotations

from typing import Any

from taskservice import AsyncClient, AsyncTaskHandle, Client, StepRef, TaskHandle, TaskOptions, Workflow
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


def workflow_steps_are_checked() -> None:
    wf = Workflow("typed")
    # A declared type's step takes its function's parameters, as its typed calls do, beside the step's
    # own name, after and options.
    a: StepRef = wf.step(typed_resize, user="ada", width=128)
    wf.step(
        typed_resize,
        name="b",
        after=[a, "typed_resize"],
        options=TaskOptions(priority=5),
        user="ada",
        width=64,
    )
    wf.step(typed_ship, after=a, order=Order(order_id=1, email="ada@example.com"))
    wf.step("send_email", after=[a], parameters={"recipient": "ada@example.com"})
    wf.step(typed_resize, user="ada", wdth=128)  # type: ignore[call-overload]
    wf.step(typed_resize, after=[a], user="ada", width="128")  # type: ignore[call-overload]
    wf.step(typed_ship, ctx=None, order=Order(order_id=1, email="a@b.c"))  # type: ignore[call-overload]
    wf.step(typed_resize, after=[a], width=128)  # type: ignore[call-overload]
    wf.step(typed_resize, user="ada", width=128, priority=5)  # type: ignore[call-overload]
    wf.step("send_email", parameters={"recipient": 1})  # type: ignore[dict-item]
    wf.step("send_email", recipient="ada@example.com")  # type: ignore[call-overload]
    wf.step(typed_resize, after=[1], user="ada", width=128)  # type: ignore[call-overload]
