"""What every scenario works with: the sizes, the database, the API server, and worker processes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console

from taskservice.bench.client import Client
from taskservice.bench.cpu import WORKER_APPLICATION, CpuTimes, Part, cpu_times, named_connections
from taskservice.bench.processes import Child, ServerProcess, child_env, stop_all, wait_until
from taskservice.bench.sizes import Sizes
from taskservice.store import NOTIFY_CHANNEL, Pool, Store
from taskservice.store.sql import named_statements

Processes = contextlib.AbstractAsyncContextManager[list[Child]]

# Where an agent would find a database if it looked for one: nowhere.
NO_DATABASE = "postgresql://agents-never-connect@127.0.0.1:9/none"


@cache
def _statements() -> dict[str, str]:
    return named_statements(Path(__file__).with_name("queries.sql"))


def sql(name: str) -> str:
    """A statement of the benchmark's own `queries.sql`."""
    return _statements()[name]


@dataclass
class Context:
    sizes: Sizes
    database_url: str
    pool: Pool
    store: Store
    server: ServerProcess
    log_dir: Path
    console: Console
    admin_url: str = ""  # the server's maintenance database: where fresh databases are made
    worker_peak_rss: list[int] = field(default_factory=list)  # of every worker process started
    _started: int = 0

    async def reset(self) -> None:
        """Empty every table, so each scenario starts from nothing."""
        await self.pool.execute(sql("reset"))

    async def clear_tasks(self) -> None:
        """Empty the task tables (the running workers stay registered): between rounds."""
        await self.pool.execute(sql("clear_tasks"))

    async def queue_no_ops(self, count: int, name: str, keys: int = 0) -> None:
        """Queue `count` due no-op tasks in one transaction, with the statistics autovacuum would
        gather, so that the workers (woken when it commits) find them as in a running system.

        With `keys`, each task's parameter `customer` is one of that many values, and the task is
        under the `sleep` type's limit if one is set (queue_keyed_no_ops)."""
        async with self.pool.acquire() as conn, conn.transaction():
            if keys:
                await conn.execute(sql("queue_keyed_no_ops"), count, name, NOTIFY_CHANNEL, keys)
            else:
                await conn.execute(sql("queue_no_ops"), count, name, NOTIFY_CHANNEL)
            await conn.execute(sql("analyze_tasks"))

    async def clear_limits(self) -> None:
        await self.pool.execute(sql("clear_limits"))

    async def value(self, name: str, *args: Any) -> Any:
        return await self.pool.fetchval(sql(name), *args)

    def api(self, address: str | None = None) -> Client:
        """A connection to the run's API server, or to the one at `address` (see client.py)."""
        return Client(address or self.server.address)

    def server_peak_rss(self) -> int:
        return self.server.read_peak_rss()

    async def cpu_times(self, workers: list[Child]) -> CpuTimes:
        """The CPU seconds so far of `workers` (on the run's database) and of their backends."""
        rows = await self.pool.fetch(sql("worker_backends"), WORKER_APPLICATION)
        return cpu_times(workers, [(row["pid"], row["started"]) for row in rows])

    async def part_times(
        self, parts: list[Part], conn: asyncpg.Connection[Any] | None = None
    ) -> dict[str, CpuTimes]:
        """The CPU seconds so far of each part's processes and of their backends (by part name): on
        the run's database, or on the one `conn` is connected to (the peer scenario's fresh ones)."""
        times = {}
        for part in parts:
            backends: list[tuple[int, float]] = []
            if part.application is not None:
                rows = await (conn or self.pool).fetch(sql("worker_backends"), part.application)
                backends = [(row["pid"], row["started"]) for row in rows]
            times[part.name] = cpu_times(part.processes, backends)
        return times

    def workers(
        self, count: int, database_url: str | None = None, unset_prefix: str = "", **extra_env: str
    ) -> Processes:
        """`count` worker processes (`task-cli serve`), all registered and listening when this yields.

        They work on the run's database, or on `database_url` (the peer scenario's fresh ones); their
        environment is this process's, `extra_env` added, the variables named `unset_prefix`... removed.
        """
        return self._processes(count, database_url or self.database_url, False, extra_env, unset_prefix)

    def agents(self, count: int) -> Processes:
        """`count` agent processes of the run's API server (`serve --address`), given no database."""
        return self._processes(count, self.database_url, True, {}, "")

    @contextlib.asynccontextmanager
    async def _processes(
        self, count: int, url: str, agents: bool, extra_env: dict[str, str], unset_prefix: str
    ) -> AsyncIterator[list[Child]]:
        children: list[Child] = []
        env = child_env(named_connections(url), unset_prefix=unset_prefix, **extra_env)
        args = ["serve", "--concurrency", str(self.sizes.worker_concurrency)]
        if agents:
            env = child_env(NO_DATABASE, **extra_env)
            args = ["--address", self.server.address, *args]
        try:
            for _ in range(count):
                self._started += 1
                name = f"{'agent' if agents else 'worker'}-{self._started}"
                children.append(Child(name, args, env, self.log_dir))

            async def registered() -> bool:
                for child in children:
                    if not child.alive():
                        raise RuntimeError(f"{child.name} exited early:\n{child.tail()}")
                live = await self.pool.fetchval(sql("live_workers")) if url == self.database_url else None
                if live is None:
                    conn = await asyncpg.connect(url)
                    try:
                        live = await conn.fetchval(sql("live_workers"))
                    finally:
                        await conn.close()
                return bool(live >= count)

            await wait_until(registered, self.sizes.step_timeout, f"{count} worker(s) to start")
            yield children
        finally:
            stop_all(children)
            self.worker_peak_rss.extend(child.peak_rss for child in children)
