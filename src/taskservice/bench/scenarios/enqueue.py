"""Enqueue through the API: CreateTask with 1, 8 and 32 concurrent clients, and CreateTasks batches."""

from __future__ import annotations

import asyncio
import time

from google.protobuf.message import Message

from taskservice.bench.context import Context
from taskservice.bench.results import Figure, ScenarioResult, Target
from taskservice.bench.stats import best, summary_ms
from taskservice.gen.cloud.v1 import task_pb2 as pb

RESPONSES: dict[str, type[Message]] = {
    "CreateTask": pb.CreateTaskResponse,
    "CreateTasks": pb.CreateTasksResponse,
}

NAME = "enqueue"
TITLE = "a. Enqueue through the API"

CREATE_TARGET = {32: Target(">=", 2_000)}
CREATE_RATIO_TARGET = {32: 0.6}  # of the raw single-row insert (task + history) at the same concurrency
BATCH_TARGET = Target(">=", 20_000)


def new_task(name: str) -> pb.CreateTaskRequest:
    return pb.CreateTaskRequest(name=name, type="sleep", payload=pb.Payload(parameters={"seconds": "0"}))


async def _send_for(ctx: Context, clients: int, seconds: float, method: str, request: Message) -> list[float]:
    """`clients` callers each sending `request` back to back for `seconds`; the duration of every call."""
    durations: list[float] = []
    deadline = time.perf_counter() + seconds
    answer = RESPONSES[method]

    async def caller() -> None:
        async with ctx.api() as api:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await api.call(method, request, answer)
                durations.append(time.perf_counter() - started)

    await asyncio.wait_for(
        asyncio.gather(*(caller() for _ in range(clients))), seconds + ctx.sizes.step_timeout
    )
    return durations


async def _rounds(
    ctx: Context, result: ScenarioResult, clients: int, seconds: float, call: str, name: str, size: int
) -> tuple[list[float], list[float]]:
    """Send tasks named `name`, `size` per call, for `seconds`, `rounds` times; tasks/s of each round and
    the duration of every call. Every task a call created must be in the table (else it counts as lost).
    """
    one = new_task(name)
    request: Message = one if call == "CreateTask" else pb.CreateTasksRequest(tasks=[one] * size)
    rates: list[float] = []
    durations: list[float] = []
    for _ in range(ctx.sizes.rounds):
        started = time.perf_counter()
        calls = await _send_for(ctx, clients, seconds, call, request)
        rates.append(len(calls) * size / (time.perf_counter() - started))
        durations.extend(calls)
    sent = len(durations) * size
    result.tasks += sent
    result.lost += sent - await ctx.value("tasks_named", name)
    return rates, durations


async def run(ctx: Context, result: ScenarioResult) -> None:
    await ctx.reset()
    sizes = ctx.sizes
    for clients in sizes.create_clients:
        name = f"bench-CreateTask-{clients}"
        rates, durations = await _rounds(ctx, result, clients, sizes.create_seconds, "CreateTask", name, 1)
        result.figures.append(
            Figure(
                f"enqueue.create_{clients}",
                f"CreateTask, {clients} client{'s' if clients > 1 else ''}",
                best(rates),
                "tasks/s",
                target=CREATE_TARGET.get(clients),
                raw_key=f"ceiling.insert_{clients}",
                ratio_target=CREATE_RATIO_TARGET.get(clients),
                details={"rounds": [round(r) for r in rates], "call_ms": summary_ms(durations)},
            )
        )
    clients = sizes.batch_clients
    rates, durations = await _rounds(
        ctx, result, clients, sizes.batch_seconds, "CreateTasks", "bench-CreateTasks", sizes.batch_size
    )
    result.figures.append(
        Figure(
            "enqueue.batch",
            f"CreateTasks ({sizes.batch_size}/call), {clients} clients",
            best(rates),
            "tasks/s",
            target=BATCH_TARGET,
            raw_key="ceiling.batch",
            details={"rounds": [round(r) for r in rates], "call_ms": summary_ms(durations)},
        )
    )
