"""A replay of the original's agent (`task serve` in Go) and its Kubernetes controller, call for call.

What they send, in which order, and when (issue 19; the seed's Go code, `main` branch):
- the agent: `Heartbeat{timestamp}` every 5 s, no uuid; `PullEvents{}` (an empty request), and for
  every message it reads `work.task.id` with no nil check (a message without work would crash it:
  here it ends the process with "panic: nil work"); each assignment becomes a Task resource;
- the controller (controller-runtime: one reconcile at a time) runs each Task resource:
  for attempt 1..3: `UpdateTaskStatus(RUNNING, "Running attempt N of 3")`, run the plugin, on error
  `UpdateTaskStatus(FAILED, "Attempt N failed: <err>")` and wait 1 s << (N-1) before the next
  attempt; after the third failure `FAILED "All 3 attempts failed. Last error: <err>"`, on success
  `SUCCEEDED "Task completed successfully on attempt N: Task completed successfully"`. A refused
  update ends the reconcile with an error: controller-runtime runs it again from attempt 1 after its
  per-item backoff (5 ms doubling);
- both speak Connect with binary protobuf (`application/proto`; the stream `application/connect+proto`),
  as connect-go does, over plain HTTP.

Its timings are the original's times `--scale`. Every call and its answer is one JSON line on stdout,
so a test can compare the server's history with what was said. Plugins as the original's: send_email
sleeps TASK_TIME_OUT (here 1 s, scaled) and succeeds; run_query fails "query failed" 20% of the time
(seeded); `--plugin fail` fails every attempt, `--plugin hang` blocks every attempt (a task to kill
the agent in), `--plugin fail-then-hang` fails every task's first attempt and blocks in the second.

Run: python tests/original_agent.py ADDRESS [--scale 0.01] [--token SECRET] [--seed N] [--plugin ...]
[--uuid U] (heartbeats naming a uuid of its own, which nobody registered)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import struct
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from google.protobuf import empty_pb2
from google.protobuf.message import Message

from taskservice.gen.cloud.v1 import task_pb2 as pb

SERVICE = "/cloud.v1.TaskManagementService"
MAX_ATTEMPTS = 3
HEARTBEAT_SECONDS = 5.0
INITIAL_BACKOFF = 1.0
RECONNECT_SECONDS = 5.0
TASK_TIME_OUT = 1.0
M = TypeVar("M", bound=Message)


def say(event: str, **what: Any) -> None:
    print(json.dumps({"event": event, **what}), flush=True)


class ConnectFailure(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass
class Client:
    """connect-go's client, as the original's `x.CreateClient(address)` makes it: binary protobuf."""

    http: httpx.AsyncClient
    token: str = ""

    def headers(self, content_type: str) -> dict[str, str]:
        headers = {"Content-Type": content_type, "Connect-Protocol-Version": "1"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def unary(self, method: str, request: Message, answer: type[M]) -> M:
        reply = await self.http.post(
            f"{SERVICE}/{method}",
            content=request.SerializeToString(),
            headers=self.headers("application/proto"),
        )
        if reply.status_code != 200:
            error = reply.json() if reply.content else {}
            raise ConnectFailure(str(error.get("code", reply.status_code)), str(error.get("message", "")))
        return answer.FromString(reply.content)

    async def server_stream(self, method: str, request: Message, answer: type[M]) -> AsyncIterator[M]:
        body = request.SerializeToString()
        headers = self.headers("application/connect+proto")
        async with self.http.stream(
            "POST", f"{SERVICE}/{method}", content=struct.pack(">BI", 0, len(body)) + body, headers=headers
        ) as response:
            if response.status_code != 200:
                await response.aread()
                raise ConnectFailure(str(response.status_code), response.text)
            buffer = b""
            async for chunk in response.aiter_bytes():
                buffer += chunk
                while len(buffer) >= 5 and len(buffer) >= 5 + struct.unpack(">I", buffer[1:5])[0]:
                    flags, length = struct.unpack(">BI", buffer[:5])
                    data, buffer = buffer[5 : 5 + length], buffer[5 + length :]
                    if flags & 2:  # the end of the stream: an error, or none
                        error = json.loads(data).get("error")
                        if error:
                            raise ConnectFailure(error.get("code", ""), error.get("message", ""))
                        return
                    yield answer.FromString(data)


class PluginError(Exception):
    pass


@dataclass
class Plugins:
    """The original's plugins (they ignore their parameters), or a test's hanging ones."""

    mode: str
    scale: float
    rng: random.Random
    attempts: dict[int, int] = field(default_factory=dict)

    async def run(self, task_id: int, task_type: str) -> None:
        attempt = self.attempts[task_id] = self.attempts.get(task_id, 0) + 1
        say("plugin", task=task_id, type=task_type, attempt=attempt)
        if self.mode == "hang" or (self.mode == "fail-then-hang" and attempt > 1):
            await asyncio.Event().wait()
        if self.mode in ("fail", "fail-then-hang"):
            raise PluginError("query failed")
        if task_type not in ("send_email", "run_query"):
            raise PluginError(f"unknown task type: {task_type}")  # plugins.NewPlugin's error
        await asyncio.sleep(TASK_TIME_OUT * self.scale)
        if task_type == "run_query" and self.rng.random() < 0.2:
            raise PluginError("query failed")


class Controller:
    """The Task controller: reconciles one Task resource at a time, reporting to the server."""

    def __init__(self, client: Client, plugins: Plugins, scale: float) -> None:
        self.client, self.plugins, self.scale = client, plugins, scale
        self.resources: asyncio.Queue[tuple[int, str]] = asyncio.Queue()

    async def run(self) -> None:
        failures: dict[int, int] = {}
        while True:
            task_id, task_type = await self.resources.get()
            if await self.reconcile(task_id, task_type):
                failures.pop(task_id, None)
                continue
            # controller-runtime's per-item rate limiter: 5 ms, doubling, then the same item again.
            failures[task_id] = failures.get(task_id, 0) + 1
            delay = min(0.005 * 2 ** (failures[task_id] - 1), 1000.0)
            asyncio.get_running_loop().call_later(delay, self.resources.put_nowait, (task_id, task_type))

    async def reconcile(self, task_id: int, task_type: str) -> bool:
        final_status, final_message = pb.FAILED, ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if not await self.update(task_id, pb.RUNNING, f"Running attempt {attempt} of {MAX_ATTEMPTS}"):
                return False
            try:
                await self.plugins.run(task_id, task_type)
            except PluginError as error:
                if not await self.update(task_id, pb.FAILED, f"Attempt {attempt} failed: {error}"):
                    return False
                if attempt == MAX_ATTEMPTS:
                    final_status = pb.FAILED
                    final_message = f"All {MAX_ATTEMPTS} attempts failed. Last error: {error}"
                else:
                    await asyncio.sleep(INITIAL_BACKOFF * (1 << (attempt - 1)) * self.scale)
                    continue
            else:
                final_status = pb.SUCCEEDED
                final_message = (
                    f"Task completed successfully on attempt {attempt}: Task completed successfully"
                )
                break
        return await self.update(task_id, final_status, final_message)

    async def update(self, task_id: int, status: int, message: str) -> bool:
        request = pb.UpdateTaskStatusRequest(id=task_id, status=status, message=message)  # type: ignore[arg-type]
        name = pb.TaskStatusEnum.Name(status)
        try:
            await self.client.unary("UpdateTaskStatus", request, empty_pb2.Empty)
        except (ConnectFailure, httpx.HTTPError) as error:
            say("update", task=task_id, status=name, message=message, ok=False, error=str(error))
            return False
        say("update", task=task_id, status=name, message=message, ok=True)
        return True


class Agent:
    """`task serve`: heartbeats, and the PullEvents stream that makes Task resources."""

    def __init__(self, client: Client, controller: Controller, scale: float, uuid: str = "") -> None:
        self.client, self.controller, self.scale, self.uuid = client, controller, scale, uuid

    async def heartbeats(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS * self.scale)  # a ticker: first after one period
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            try:
                await self.client.unary(
                    "Heartbeat", pb.HeartbeatRequest(timestamp=stamp, uuid=self.uuid), pb.HeartbeatResponse
                )
            except (ConnectFailure, httpx.HTTPError) as error:
                say("heartbeat", ok=False, error=str(error))

    async def pull(self) -> None:
        while True:
            try:
                say("stream", opened=True)
                async for message in self.client.server_stream(
                    "PullEvents", pb.PullEventsRequest(), pb.PullEventsResponse
                ):
                    if not message.HasField("work"):
                        # Go: work.Task.Id on a nil work is a nil pointer dereference.
                        say(
                            "panic", reason="runtime error: invalid memory address or nil pointer dereference"
                        )
                        raise SystemExit(2)
                    work = message.work
                    say("work", task=work.task.id, type=work.task.type, assignment=work.assignment_id)
                    self.controller.resources.put_nowait((work.task.id, work.task.type))
                say("stream", ended=True)
            except (ConnectFailure, httpx.HTTPError) as error:
                say("stream", error=str(error))
            await asyncio.sleep(RECONNECT_SECONDS * self.scale)


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--token", default="")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--uuid", default="", help="a uuid of its own in its heartbeats (older versions)")
    modes = ("original", "fail", "hang", "fail-then-hang")
    parser.add_argument("--plugin", choices=modes, default="original")
    args = parser.parse_args(argv)
    async with httpx.AsyncClient(base_url=args.address, timeout=httpx.Timeout(30, read=None)) as http:
        client = Client(http, args.token)
        plugins = Plugins(args.plugin, args.scale, random.Random(args.seed))
        controller = Controller(client, plugins, args.scale)
        agent = Agent(client, controller, args.scale, args.uuid)
        say("started")
        await asyncio.gather(agent.heartbeats(), agent.pull(), controller.run())


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(sys.argv[1:]))
