"""1,000 concurrent agent sessions, held by one load generator process, drain no-op tasks while the
server's PostgreSQL connections stay within its pool (one dispatcher claims for all of them)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from google.protobuf.message import Message

from conftest import ServerProcess, eventually
from taskservice.config import Settings
from taskservice.db.connect import create_pool
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import NewTask, Status
from taskservice.store import Store

SESSIONS = 1000
SLOTS = 2
TASKS = 3000
POOL = 5
LEASE = 30.0
SERVICE = "/cloud.v1.TaskManagementService"


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(
        settings, tmp_path / "server.log", WORKER_COUNT="0", DB_POOL_MAX_CONNS=str(POOL),
        LEASE_SECONDS=str(LEASE),
    )  # fmt: skip
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()
    assert "Traceback" not in process.log(), process.log()[-5000:]


class Connections:
    """Kept-alive HTTP/1.1 connections for the generator's unary calls, raw: at a thousand sessions'
    pace an HTTP client library would be the bottleneck of this process."""

    def __init__(self, port: int, size: int) -> None:
        self.port, self.size = port, size
        self.free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.size):
            self.free.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))

    def close(self) -> None:
        while not self.free.empty():
            self.free.get_nowait()[1].close()

    async def call(self, method: str, request: Message) -> bytes:
        """A unary Connect call in binary protobuf; the answer's body (the call must succeed)."""
        body = request.SerializeToString()
        reader, writer = await self.free.get()
        try:
            writer.write(
                f"POST {SERVICE}/{method} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/proto\r\nConnect-Protocol-Version: 1\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            status = await reader.readline()
            length, chunked = 0, False
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                chunked = chunked or (name.lower() == "transfer-encoding" and "chunked" in value)
            data = await reader.readexactly(length) if not chunked else await read_chunks(reader)
        finally:
            self.free.put_nowait((reader, writer))
        assert b" 200 " in status, (method, status, data)
        return data


async def read_chunks(reader: asyncio.StreamReader) -> bytes:
    data = b""
    while size := int((await reader.readline()).strip() or b"0", 16):
        data += (await reader.readexactly(size + 2))[:-2]
    await reader.readline()  # the empty line after the last chunk
    return data


@dataclass
class Load:
    """The generator's shared state: who is connected, what each was given."""

    port: int
    client: Connections
    connected: set[int] = field(default_factory=set)
    assigned: dict[int, int] = field(default_factory=dict)  # session -> assignments
    reported: int = 0
    refused: list[int] = field(default_factory=list)


def envelope(message: pb.PullEventsRequest) -> bytes:
    data = message.SerializeToString()
    return struct.pack(">BI", 0, len(data)) + data


@dataclass
class Held:
    """Assignments of one session whose report has not been sent yet."""

    count: int = 0


async def report(load: Load, agent: str, work: pb.WorkAssignment, held: Held) -> None:
    held.count -= 1  # from here on the server may get our report and send the next assignment
    outcome = pb.AttemptOutcome(
        assignment_id=work.assignment_id, task_id=work.task.id64, status=pb.SUCCEEDED,
        retries=work.task.retries, lost_leases=work.lost_leases, outcome="succeeded",
        details=f"Task completed successfully (Attempt {work.task.attempts})",
    )  # fmt: skip
    request = pb.ReportOutcomesRequest(agent_id=agent, outcomes=[outcome])
    reply = await load.client.call("ReportOutcomes", request)
    load.refused.extend(pb.ReportOutcomesResponse.FromString(reply).refused)
    load.reported += 1


async def heartbeats(load: Load, agent: str) -> None:
    while True:
        await asyncio.sleep(LEASE / 3)  # an agent's rhythm, not a wait for a result
        await load.client.call("Heartbeat", pb.HeartbeatRequest(uuid=agent))


async def session(load: Load, number: int) -> None:
    """One agent: a raw HTTP/1.1 PullEvents stream (chunked envelopes), reporting each assignment."""
    agent = f"load-{number:04d}"
    reader, writer = await asyncio.open_connection("127.0.0.1", load.port)
    body = envelope(pb.PullEventsRequest(agent_id=agent, slots=SLOTS, host="load", task_types=["sleep"]))
    writer.write(
        f"POST {SERVICE}/PullEvents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/connect+proto\r\nConnect-Protocol-Version: 1\r\n"
        f"Task-Id-Width: 64\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    beating = asyncio.create_task(heartbeats(load, agent))
    reports: set[asyncio.Task[None]] = set()
    held = Held()
    try:
        status = await reader.readline()
        assert b" 200 " in status, status
        while await reader.readline() not in (b"\r\n", b""):
            pass  # the headers
        buffer = b""
        while True:
            size = int((await reader.readline()).strip() or b"0", 16)
            if size == 0:
                return
            buffer += (await reader.readexactly(size + 2))[:-2]
            while len(buffer) >= 5:
                flags, length = struct.unpack(">BI", buffer[:5])
                if len(buffer) < 5 + length:
                    break
                data, buffer = buffer[5 : 5 + length], buffer[5 + length :]
                assert not flags & 2, data
                message = pb.PullEventsResponse.FromString(data)
                if message.agent_id:
                    load.connected.add(number)
                for work in (message.work, *message.more_work) if message.HasField("work") else ():
                    load.assigned[number] = load.assigned.get(number, 0) + 1
                    # Flow control: never more unreported assignments than slots.
                    held.count += 1
                    assert held.count <= SLOTS, f"{agent} holds {held.count} assignments"
                    task = asyncio.create_task(report(load, agent, work, held))
                    reports.add(task)
                    task.add_done_callback(reports.discard)
    finally:
        beating.cancel()
        writer.close()


@pytest.mark.slow
async def test_a_thousand_agent_sessions_drain_tasks_within_the_server_pool(
    server: ServerProcess, settings: Settings
) -> None:
    pool = await create_pool(settings.database_url, max_size=1)
    client = Connections(server.port, 20)
    await client.open()
    load = Load(server.port, client)
    sessions = [asyncio.create_task(session(load, i)) for i in range(SESSIONS)]
    try:
        store = Store(pool)

        def none_failed() -> None:
            for done in (s for s in sessions if s.done()):
                done.result()  # a session that failed says why

        async def all_connected() -> bool:
            none_failed()
            return len(load.connected) == SESSIONS

        await eventually(all_connected, timeout=120)
        ids = [i for i, _ in await store.create_tasks([NewTask(f"n{i}", "sleep") for i in range(TASKS)])]
        peak = 0

        async def drained() -> bool:
            nonlocal peak
            none_failed()
            # The server's connections to its database: all of them but this test's one.
            used = await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
            peak = max(peak, used)
            return bool(await store.count_tasks(status=Status.SUCCEEDED) == TASKS)

        await eventually(drained, timeout=240, interval=0.02)
    finally:
        for task in sessions:
            task.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)
        client.close()
    try:
        # Its pool, and the one LISTEN connection of the dispatcher's wake-up line (outside the pool).
        assert 1 <= peak <= POOL + 1, peak
        again = await pool.fetch(
            "SELECT task_id, attempt, worker_id, outcome, error FROM task_executions WHERE task_id IN"
            " (SELECT task_id FROM task_executions GROUP BY 1 HAVING count(*) > 1) ORDER BY 1, 2"
        )
        assert (load.refused, again) == ([], []), [dict(r) for r in again]
        assert load.reported == TASKS
        assert sum(load.assigned.values()) == TASKS
        assert len(load.assigned) >= SESSIONS * 9 // 10  # the sessions take turns: nearly all got work
        owners = await pool.fetch(
            "SELECT e.worker_id, count(*) FROM task_executions e WHERE e.task_id = ANY($1::bigint[])"
            " GROUP BY 1",
            ids,
        )
        assert all(row["worker_id"].startswith("load-") for row in owners)
    finally:
        await pool.close()
