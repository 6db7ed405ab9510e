"""A pgqueuer consumer of no-op jobs for the peer scenario: `python -m taskservice.bench.peer_worker URL N`.

pgqueuer is a dev-only dependency: this module is only run by `task-cli bench` when it is installed.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import timedelta

import asyncpg

APPLICATION_NAME = "taskservice-bench-pgqueuer"
ENTRYPOINT = "noop"


async def consume(url: str, batch_size: int) -> None:
    from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager

    conn = await asyncpg.connect(url, server_settings={"application_name": APPLICATION_NAME})
    manager = QueueManager(Queries(AsyncpgDriver(conn)))

    @manager.entrypoint(ENTRYPOINT)
    async def noop(job: Job) -> None:
        """Does nothing, like the `sleep` task with seconds=0 that our workers run."""

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, manager.shutdown.set)
    await manager.run(batch_size=batch_size, dequeue_timeout=timedelta(seconds=1))


def main() -> None:
    url, batch_size = sys.argv[1], int(sys.argv[2])
    try:
        import uvloop

        uvloop.run(consume(url, batch_size))
    except ImportError:  # pragma: no cover - uvloop is a dependency where it exists
        asyncio.run(consume(url, batch_size))


if __name__ == "__main__":
    main()
