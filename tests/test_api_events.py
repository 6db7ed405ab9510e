"""WatchEvents: status changes streamed as they happen, and streams ended when the server stops."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import struct
import time
from pathlib import Path
from typing import Any

import httpx
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from api_helpers import (
    LATER,
    SERVICE,
    STATUS_NUMBERS,
    Api,
    unique,
)
from conftest import Served, ServerProcess, eventually
from taskservice.config import Settings
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.gen.cloud.v1.task_connect import TaskManagementServiceClient


async def _json_event_stream(http: httpx.AsyncClient, into: list[dict[str, Any]]) -> dict[str, Any]:
    """Read WatchEvents as raw `application/connect+json` envelopes (flags, length, message).

    Returns the end-of-stream message (`{}` when the stream ended without an error).
    """
    body = b"{}"
    async with http.stream(
        "POST",
        f"{SERVICE}/WatchEvents",
        content=struct.pack(">BI", 0, len(body)) + body,
        headers={"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1"},
        timeout=None,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/connect+json"
        buffer = b""
        async for chunk in response.aiter_bytes():
            buffer += chunk
            while len(buffer) >= 5:
                flags, length = struct.unpack(">BI", buffer[:5])
                if len(buffer) < 5 + length:
                    break
                message, buffer = json.loads(buffer[5 : 5 + length]), buffer[5 + length :]
                if flags & 0x02:  # end of stream
                    assert isinstance(message, dict)
                    return message
                into.append(message)
    raise AssertionError("the stream ended without an end-of-stream message")


async def test_watch_events_streams_status_changes(shared_server: Served, api: Api) -> None:
    binary: list[pb.TaskEvent] = []
    as_json: list[dict[str, Any]] = []
    async with (
        TaskManagementServiceClient(shared_server.url) as client,
        httpx.AsyncClient(base_url=shared_server.url) as http,
    ):

        async def read_binary() -> None:
            try:
                async for event in client.watch_events(pb.WatchEventsRequest()):
                    binary.append(event)
            except ConnectError as error:  # the client's word for being cancelled
                if error.code != Code.CANCELED:
                    raise

        readers = [asyncio.create_task(read_binary()), asyncio.create_task(_json_event_stream(http, as_json))]
        try:
            # A stream sees events from when it subscribed; probe until both have.
            probes: set[int] = set()

            async def subscribed() -> bool:
                if any(reader.done() for reader in readers):
                    raise AssertionError(f"a stream ended: {[r.result() for r in readers if r.done()]}")
                probes.add(await api.create(unique("watch probe"), delaySeconds=LATER))
                return any(e.task_id in probes for e in binary) and any(
                    e["taskId"] in probes for e in as_json
                )

            await eventually(subscribed, interval=0.2)
            name = unique("watched")
            task_id = await api.create(name)

            def mine_binary() -> list[pb.TaskEvent]:
                return [e for e in binary if e.task_id == task_id]

            def mine_json() -> list[dict[str, Any]]:
                return [e for e in as_json if e["taskId"] == task_id]

            async def all_seen() -> bool:
                return len(mine_binary()) >= 3 and len(mine_json()) >= 3

            await eventually(all_seen)
        finally:
            for reader in readers:
                reader.cancel()
            for reader in readers:
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    history = await api.history(task_id)
    expected = [(h["id"], STATUS_NUMBERS[h["status"]], h["details"], h["createdAt"]) for h in history]
    assert [h["status"] for h in history] == ["QUEUED", "RUNNING", "SUCCEEDED"]
    assert [(e.id, e.status, e.details, e.created_at) for e in mine_binary()] == expected
    assert all((e.task_name, e.task_type, e.keepalive) == (name, "sleep", False) for e in mine_binary())
    assert [
        (int(e["id"]), STATUS_NUMBERS[e["status"]], e["details"], e["createdAt"]) for e in mine_json()
    ] == expected
    assert all(isinstance(e["id"], str) for e in mine_json())  # int64
    assert all((e["taskName"], e["taskType"]) == (name, "sleep") for e in mine_json())


async def test_a_stopping_server_ends_event_streams_at_once(settings: Settings, tmp_path: Path) -> None:
    """uvicorn waits for open responses before it stops; an event stream would hold it for the full grace."""
    server = ServerProcess(settings, tmp_path / "server.log", WORKER_COUNT="0", SHUTDOWN_GRACE="120")
    events: list[dict[str, Any]] = []
    try:
        server.wait_ready()
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            api = Api(http)
            reader = asyncio.create_task(_json_event_stream(http, events))
            probes: set[int] = set()

            async def subscribed() -> bool:
                assert not reader.done(), reader
                probes.add(await api.create(unique("probe"), delaySeconds=LATER))
                return any(e["taskId"] in probes for e in events)

            await eventually(subscribed, interval=0.2)
            started = time.monotonic()
            exit_code = await asyncio.to_thread(server.stop)
            stopped_after = time.monotonic() - started
            end = await asyncio.wait_for(reader, 10)
    finally:
        server.stop()
    assert end == {}  # the stream ended cleanly, without an error
    assert exit_code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    assert stopped_after < 60, f"{stopped_after:.1f}s (the grace period is 120s)"
    assert "Traceback" not in server.log()
