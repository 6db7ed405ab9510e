"""An agent in a network namespace whose only route is to the API server runs tasks to completion.

The namespace has one veth pair to the host: the server listens on the host's end, and nothing else
(PostgreSQL included) is routable from inside. The agent is given no database address either.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents import AgentProcess, agent_env
from conftest import ServerProcess, eventually
from taskservice.config import Settings
from taskservice.model import NewTask, Status
from taskservice.store import Store


@dataclass(frozen=True)
class Namespace:
    name: str
    host_address: str  # the host's end of the veth pair: where the server listens for the agent


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def _why_not() -> str | None:
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating a network namespace needs root"
    return None


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    tag = secrets.token_hex(3)
    name, host_end, ns_end = f"ts-{tag}", f"tsh{tag}", f"tsn{tag}"
    subnet = f"10.{200 + int(tag[0], 16) % 50}.{int(tag[1:3], 16)}"
    host_address, ns_address = f"{subnet}.1", f"{subnet}.2"
    made = _ip("netns", "add", name)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
    try:
        steps = [
            ("link", "add", host_end, "type", "veth", "peer", "name", ns_end),
            ("link", "set", ns_end, "netns", name),
            ("addr", "add", f"{host_address}/30", "dev", host_end),
            ("link", "set", host_end, "up"),
            ("netns", "exec", name, "ip", "addr", "add", f"{ns_address}/30", "dev", ns_end),
            ("netns", "exec", name, "ip", "link", "set", ns_end, "up"),
            ("netns", "exec", name, "ip", "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _ip(*step)
            assert done.returncode == 0, f"ip {' '.join(step)}: {done.stderr}"
        yield Namespace(name, host_address)
    finally:
        _ip("link", "delete", host_end)  # deletes its peer too
        _ip("netns", "delete", name)
    assert name not in _ip("netns", "list").stdout


def test_the_namespace_routes_only_to_the_server(namespace: Namespace) -> None:
    routes = _ip("netns", "exec", namespace.name, "ip", "route").stdout.strip().splitlines()
    assert len(routes) == 1, routes
    assert routes[0].startswith(namespace.host_address.rsplit(".", 1)[0])
    assert "default" not in routes[0]


async def test_an_agent_in_a_namespace_runs_tasks_through_the_server_alone(
    namespace: Namespace, settings: Settings, store: Store, tmp_path: Path
) -> None:
    # On every address (the readiness probe uses loopback, the agent the veth); no auth in a test.
    server = ServerProcess(
        settings,
        tmp_path / "server.log",
        WORKER_COUNT="0",
        SERVER_HOST="0.0.0.0",
        AUTH_REQUIRED="false",
        ALLOW_INSECURE="true",
    )
    agent: AgentProcess | None = None
    try:
        server.wait_ready()
        created = await store.create_tasks([NewTask(f"n{i}", "sleep", {"seconds": "0"}) for i in range(20)])
        ids = [i for i, _ in created]
        address = f"http://{namespace.host_address}:{server.port}"
        args = ["ip", "netns", "exec", namespace.name, sys.executable, "-m", "taskservice.cli"]
        args += ["--log-level", "info", "--address", address, "serve", "-c", "4"]
        agent = running = AgentProcess(args, agent_env(settings), tmp_path / "agent.log")

        async def all_done() -> bool:
            assert running.process.poll() is None, running.log()
            return all([(await store.get_task(i)).status == Status.SUCCEEDED for i in ids])

        await eventually(all_done, timeout=90)
        [info] = [w for w in await store.list_workers() if w.kind == "agent"]
        assert {e.worker_id for i in ids for e in await store.executions(i)} == {info.id}
    finally:
        if agent is not None:
            assert agent.stop() == 0, agent.log()
        server.stop()
