"""The Python client: a CreateTask loop through taskservice.AsyncClient and Client, as a share of the
benchmark's own protocol client (bench/client.py) doing the same loop in the same run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from taskservice.bench.context import Context
from taskservice.bench.results import Figure, ScenarioResult
from taskservice.bench.scenarios.enqueue import new_task
from taskservice.bench.stats import best
from taskservice.client.asynchronous import AsyncClient
from taskservice.client.sync import Client
from taskservice.gen.cloud.v1 import task_pb2 as pb

NAME = "client"
TITLE = "j. Python client (CreateTask loop, share of the protocol client's)"

CLIENTS = (1, 8)
RATIO_TARGET = 0.7
PARAMETERS = {"seconds": "0"}


async def _rate(clients: int, seconds: float, call: Callable[[], Awaitable[object]]) -> tuple[float, int]:
    """Tasks/s of `clients` callers each calling `call` back to back for `seconds`; and how many."""
    count = 0
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            await call()
            count += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(clients)))
    return count / (time.perf_counter() - started), count


async def _protocol(ctx: Context, clients: int, seconds: float, name: str) -> tuple[float, int]:
    request = new_task(name)
    apis = [ctx.api() for _ in range(clients)]
    for api in apis:
        await api.__aenter__()
    free = list(apis)  # each caller takes a connection of its own, as the enqueue scenario's do

    async def call() -> object:
        api = free.pop()
        try:
            return await api.call("CreateTask", request, pb.CreateTaskResponse)
        finally:
            free.append(api)

    try:
        return await _rate(clients, seconds, call)
    finally:
        for api in apis:
            await api.__aexit__(None, None, None)


async def _async_client(ctx: Context, clients: int, seconds: float, name: str) -> tuple[float, int]:
    async with AsyncClient(ctx.server.address) as client:
        return await _rate(
            clients, seconds, lambda: client.create_task(name=name, type="sleep", parameters=PARAMETERS)
        )


def _sync_client(ctx: Context, seconds: float, name: str) -> tuple[float, int]:
    count = 0
    with Client(ctx.server.address) as client:
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            client.create_task(name=name, type="sleep", parameters=PARAMETERS)
            count += 1
        return count / (time.perf_counter() - started), count


async def run(ctx: Context, result: ScenarioResult) -> None:
    await ctx.reset()
    seconds, rounds = ctx.sizes.create_seconds, ctx.sizes.rounds
    Measure = Callable[[str], Awaitable[tuple[float, int]]]

    def protocol(clients: int) -> Measure:
        return lambda name: _protocol(ctx, clients, seconds, name)

    def async_client(clients: int) -> Measure:
        return lambda name: _async_client(ctx, clients, seconds, name)

    def sync_client(name: str) -> Awaitable[tuple[float, int]]:
        return asyncio.to_thread(_sync_client, ctx, seconds, name)

    runs: list[tuple[str, str, int, Measure]] = []
    for clients in CLIENTS:
        runs.append((f"client.protocol_{clients}", "protocol client", clients, protocol(clients)))
        runs.append((f"client.async_{clients}", "AsyncClient", clients, async_client(clients)))
    runs.append(("client.sync_1", "Client (sync)", 1, sync_client))
    rates: dict[str, list[float]] = {key: [] for key, *_ in runs}
    sent = 0
    for _ in range(rounds):  # interleaved, so that a slow moment of the machine hits each alike
        for key, _label, _clients, measure in runs:
            rate, count = await measure(f"bench-{key}")
            rates[key].append(rate)
            sent += count
    for key, label, clients, _ in runs:
        baseline = f"client.protocol_{clients}"
        result.figures.append(
            Figure(
                key,
                f"{label}, {clients} caller{'s' if clients > 1 else ''}",
                best(rates[key]),
                "tasks/s",
                raw_key=None if key == baseline else baseline,
                ratio_target=None if key == baseline else RATIO_TARGET,
                compared_with="protocol client",
                details={"rounds": [round(r) for r in rates[key]]},
            )
        )
    result.tasks += sent
    stored = sum([await ctx.value("tasks_named", f"bench-{key}") for key in rates])
    result.lost += sent - stored
