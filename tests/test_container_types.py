"""Container task types (issue 25): declared in code (`taskservice.container_task`) and in a file
(TASK_CONTAINER_TYPES), never claimed by a worker or a plain agent, published by an agent's PullEvents
(a bad spec refused naming the type and the field), shown by ListTaskTypes, and rendered with each
task's parameters on GetTask, ListTasks and the agent's WorkAssignment, against a real server."""

from __future__ import annotations

import asyncio
import itertools
import json
import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

import taskservice
from agents import AgentProcess, agent_env
from conftest import Served, eventually, serving
from taskservice.cli import cli
from taskservice.config import load_settings
from taskservice.db.connect import create_pool
from taskservice.model import NewTask, Status
from taskservice.plugins import PermanentFailure, Registry
from taskservice.plugins.container_types import (
    ContainerType,
    ContainerTypeError,
    ContainerTypesFileError,
    container_type,
    container_types,
    load_file,
)
from taskservice.plugins.declare import TaskTypeSpec
from taskservice.rules.tasks import BrokenRule, new_task
from taskservice.store import Store
from taskservice.testing import drain_async
from taskservice.worker.errors import UnknownTaskTypes
from taskservice.worker.runtime import types_to_run

SERVICE = "/cloud.v1.TaskManagementService"

RESIZE: dict[str, Any] = {
    "image": "ghcr.io/acme/resize:1.2",
    "entrypoint": "python",
    "args": ["-m", "resize", "--width=${width}", "--price=$$5", "${path}"],
    "env": {"WIDTH": "${width}px", "MODE": "${mode}", "HOME_VAR": "$$HOME"},
    "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    "service_account": "resizer",
    "timeout_seconds": 600,
    "max_retries": 2,
    "backoff_seconds": 5,
    "description": "Resize an image in a container.",
    "parameters": [
        {"name": "path", "required": True},
        {"name": "width", "type": "integer", "required": True, "minimum": 1},
        {"name": "mode", "type": "enum", "choices": ["crop", "pad"], "default": "crop"},
    ],
}

# The declaration JSON an agent publishes for it (what container_type makes of RESIZE).
CONTAINER_JSON = {
    "image": "ghcr.io/acme/resize:1.2",
    "entrypoint": "python",
    "args": ["-m", "resize", "--width=${width}", "--price=$$5", "${path}"],
    "env": {"WIDTH": "${width}px", "MODE": "${mode}", "HOME_VAR": "$$HOME"},
    "resource_requests": {"cpu": "500m", "memory": "256Mi"},
    "resource_limits": {"cpu": "1", "memory": "1Gi"},
    "service_account": "resizer",
}


# -- declared in code and in a file --------------------------------------------------------------


def test_declared_in_code_it_is_known_but_never_run_by_a_worker() -> None:
    declared = taskservice.container_task(
        "ct_code_resize",
        image="busybox:1.36",
        entrypoint="sh",
        args=["-c", "echo ${n}"],
        env={"N": "${n}"},
        resources={"limits": {"memory": "64Mi"}},
        parameters=[{"name": "n", "type": "integer", "required": True}],
        timeout_seconds=30,
        max_retries=1,
    )
    assert isinstance(declared, ContainerType)
    assert declared.container.to_json() == {
        "image": "busybox:1.36", "entrypoint": "sh", "args": ["-c", "echo ${n}"], "env": {"N": "${n}"},
        "resource_requests": {}, "resource_limits": {"memory": "64Mi"}, "service_account": "",
    }  # fmt: skip
    assert (declared.spec.timeout_seconds, declared.spec.max_retries) == (30, 1)
    registry = Registry()
    registry.register("plain", lambda parameters: "done")
    assert "ct_code_resize" in registry  # known (its declaration checks a new task's parameters) ...
    assert "ct_code_resize" not in registry.names()  # ... and claimed by no worker
    assert not registry.runs("ct_code_resize")
    assert registry.runs("plain")
    assert "ct_code_resize" not in types_to_run(registry, [])
    with pytest.raises(UnknownTaskTypes, match=r"container task types, which only the Kubernetes agent runs"):
        types_to_run(registry, ["ct_code_resize"])
    with pytest.raises(PermanentFailure, match="is a container task type"):
        registry.entry("ct_code_resize").call({"n": "1"}, None)  # type: ignore[arg-type]
    # The Kubernetes agent's view: the registry's container types (no file set).
    assert container_types(registry, load_settings())["ct_code_resize"] is declared


def test_declared_in_code_a_bad_field_is_named() -> None:
    with pytest.raises(ContainerTypeError) as raised:
        taskservice.container_task("ct_bad", image="busybox", env={"9LIVES": "x"})
    assert str(raised.value) == (
        "container task type 'ct_bad': container.env['9LIVES']: must be named as Kubernetes allows: a "
        "letter or _, then letters, digits, _, . or - (at most 256 characters)"
    )
    assert "ct_bad" not in Registry()


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_the_file_declares_them(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"types{suffix}"
    path.write_text(json.dumps({"resize": RESIZE}))  # JSON is YAML too
    settings = load_settings(task_container_types=str(path))
    found = container_types(Registry(load_entry_points=False), settings)
    assert list(found) == ["resize"]
    spec = found["resize"].spec
    assert found["resize"].declaration()["container"] == CONTAINER_JSON
    assert TaskTypeSpec.from_json(found["resize"].declaration()) == spec  # the published form reads back
    assert (spec.timeout_seconds, spec.max_retries, spec.backoff_seconds) == (600, 2, 5)
    assert [p.name for p in spec.parameters] == ["path", "width", "mode"]
    assert spec.description == "Resize an image in a container."


def test_the_yaml_form_with_parameters_by_name(tmp_path: Path) -> None:
    path = tmp_path / "types.yaml"
    path.write_text(
        "resize:\n"
        "  image: ghcr.io/acme/resize:1.2\n"
        "  args: [--width, '${width}']\n"
        "  resources:\n"
        "    requests: {cpu: 250m}\n"
        "    limits: {cpu: 1, memory: 512Mi}\n"
        "  parameters:\n"
        "    width: {type: integer, required: true}\n"
        "anything:\n"
        "  image: busybox\n"
        "  args: ['${whatever}']\n"
    )
    found = load_file(path)
    assert found["resize"].container.resource_limits == {"cpu": "1", "memory": "512Mi"}
    assert [(p.name, p.type, p.required) for p in found["resize"].spec.parameters] == [
        ("width", "integer", True)
    ]
    # Without parameters, any are taken: what it names is checked per task.
    anything = found["anything"].spec
    assert anything.extra_parameters
    with pytest.raises(BrokenRule, match=r"^payload.parameters: its type's container.args\[0\]: names "):
        new_task(NewTask("x", "anything", {}), {"anything": anything})
    assert new_task(NewTask("x", "anything", {"whatever": "1"}), {"anything": anything}).parameters == {
        "whatever": "1"
    }


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"image": None}, "container.image", "must be a string"),
        ({"image": "Not An Image"}, "container.image", "must be an image reference"),
        ({"entrypoint": "two\nlines"}, "container.entrypoint", "one line"),
        ({"args": "--width=1"}, "container.args", "must be a list of strings"),
        ({"args": ["${height}"]}, "container.args[0]", "names ${height}, not a parameter of the type"),
        ({"args": ["5$"]}, "container.args[0]", "the $ at character 2 names no parameter"),
        ({"env": {"BAD NAME": "x"}}, "container.env['BAD NAME']", "must be named as Kubernetes allows"),
        ({"env": {"W": "${nope}"}}, "container.env['W']", "names ${nope}, not a parameter"),
        ({"resources": {"requests": {"cpu": "lots"}}}, "container.resource_requests['cpu']", "quantity"),
        ({"resources": {"limits": {"memory": "1 GB"}}}, "container.resource_limits['memory']", "quantity"),
        ({"resources": {"cpu": "1"}}, "resources", 'must be a mapping with "requests" and "limits"'),
        (
            {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
            "container.resource_requests['cpu']",
            "must not exceed its limit 1",
        ),
        ({"service_account": "Not_DNS"}, "container.service_account", "must be a DNS-1123 name"),
        ({"timeout_seconds": 0}, "timeout_seconds", "must be greater than 0"),
        ({"max_retries": 11}, "max_retries", "must be less than or equal to 10"),
        ({"backoff_seconds": -1}, "backoff_seconds", "must be greater than or equal to 0"),
        ({"description": ["x"]}, "description", "must be a valid string"),
        ({"parameters": "width"}, "parameters", "must be a list of parameters"),
        ({"parameters": [{"name": "width", "type": "int"}]}, "parameters[0].type", "must be 'string'"),
        ({"parameters": [{"type": "integer"}]}, "parameters[0].name", "is required"),
        ({"imagee": "typo"}, "imagee", "is not a key of a container task type"),
    ],
)
def test_each_bad_field_of_the_file_is_named(
    tmp_path: Path, change: dict[str, Any], field: str, rule: str
) -> None:
    path = tmp_path / "types.yaml"
    path.write_text(json.dumps({"resize": {**RESIZE, **change}}))
    with pytest.raises(ContainerTypesFileError) as raised:
        container_types(Registry(load_entry_points=False), load_settings(task_container_types=str(path)))
    message = str(raised.value)
    assert message.startswith(f"TASK_CONTAINER_TYPES ({path}): container task type 'resize': {field}: "), (
        message
    )
    assert rule in message.partition(f"{field}: ")[2], message
    assert "Traceback" not in message


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("resize: [unclosed", "is not valid YAML"),
        ("- a list", "must be a mapping of task type name"),
        ("resize: busybox", "container task type 'resize': : must be a mapping with at least an image"),
        ("resize: {args: []}", "container task type 'resize': container.image: must be a string"),
    ],
)
def test_a_file_that_is_not_one(tmp_path: Path, text: str, rule: str) -> None:
    path = tmp_path / "types.yaml"
    path.write_text(text)
    with pytest.raises(ContainerTypesFileError, match=r"^TASK_CONTAINER_TYPES \(") as raised:
        load_file(path)
    assert rule in str(raised.value)


def test_a_missing_file_and_a_type_declared_twice(tmp_path: Path) -> None:
    with pytest.raises(ContainerTypesFileError, match=r"cannot be read: No such file or directory"):
        load_file(tmp_path / "absent.yaml")
    path = tmp_path / "types.yaml"
    path.write_text("twice:\n  image: busybox\n")
    registry = Registry(load_entry_points=False)
    registry.register("twice", container_type("twice", {"image": "busybox"}))
    assert list(registry.container_types()) == ["twice"]
    with pytest.raises(ContainerTypesFileError, match=r"declares twice, declared in code too"):
        container_types(registry, load_settings(task_container_types=str(path)))
    assert load_settings(task_container_types="").task_container_types is None


DOCS = Path(__file__).resolve().parents[1] / "docs" / "task-types.md"


def _docs_block(language: str) -> str:
    """The first `language` block of the docs' container section."""
    section = DOCS.read_text().partition("## A container task type")[2]
    return section.partition(f"```{language}\n")[2].partition("```")[0]


def test_the_docs_examples_declare_what_they_say(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(_docs_block("python"), "docs/task-types.md", "exec"), namespace)
    declared = namespace["resize_video"]
    assert isinstance(declared, ContainerType)
    rendered = declared.spec.container_for({"path": "in.mp4", "width": "640"})
    assert rendered is not None
    assert (rendered.args, rendered.env) == (
        ("-m", "resize", "--width=640", "in.mp4"), {"LOG_LEVEL": "info", "FIT": "crop"},
    )  # fmt: skip
    path = tmp_path / "types.yaml"
    path.write_text(_docs_block("yaml"))
    from_file = load_file(path)["resize_video"]
    assert from_file.container.to_json() == {**declared.container.to_json(), "env": {"LOG_LEVEL": "info"}}
    assert [p.name for p in from_file.spec.parameters] == ["path", "width"]


async def test_a_worker_never_claims_a_container_task(database_url: str) -> None:
    """A direct worker whose registry has a container type runs its other types and leaves that one."""
    registry = Registry(load_entry_points=False)
    registry.register("ct_plain", lambda parameters: "ran")
    registry.register("ct_container", container_type("ct_container", {"image": "busybox"}))
    pool = await create_pool(database_url, max_size=2)
    try:
        store = Store(pool)
        [(plain, _), (container, _)] = await store.create_tasks(
            [NewTask("p", "ct_plain", {}), NewTask("c", "ct_container", {})]
        )
        ran = await drain_async(database_url, registry=registry)
        assert [(r.task_id, r.status.name) for r in ran] == [(plain, "SUCCEEDED")]
        assert (await store.get_task(container)).status == Status.QUEUED
        assert {tuple(w.task_types) for w in await store.list_workers()} == {("ct_plain",)}
    finally:
        await pool.close()


# -- through the API: an agent's PullEvents publishes it; tasks carry their rendered container --------


def envelope(message: dict[str, Any]) -> bytes:
    data = json.dumps(message).encode()
    return struct.pack(">BI", 0, len(data)) + data


async def stream_messages(response: httpx.Response) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """The (flags, message) of an `application/connect+json` stream; flags & 2: its end."""
    buffer = b""
    async for chunk in response.aiter_bytes():
        buffer += chunk
        while len(buffer) >= 5:
            flags, length = struct.unpack(">BI", buffer[:5])
            if len(buffer) < 5 + length:
                break
            data, buffer = buffer[5 : 5 + length], buffer[5 + length :]
            yield flags, json.loads(data)


@pytest.fixture(scope="module")
def server(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A server without workers of its own that counts an agent live for a minute after it registered."""
    folder = tmp_path_factory.mktemp("containers")
    with serving(pg_server_url, template_database, folder, WORKER_COUNT="0", LEASE_SECONDS="60") as s:
        yield s


@pytest.fixture
async def http(server: Served) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Connect-Protocol-Version": "1"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=headers) as client:
        yield client


def _pull(agent: str, declarations: dict[str, Any], types: list[str]) -> dict[str, Any]:
    return {"agentId": agent, "slots": 4, "host": "k8s", "taskTypes": types,
            "declarationsJson": json.dumps(declarations)}  # fmt: skip


async def _refusal(http: httpx.AsyncClient, request: dict[str, Any]) -> str:
    """The error that ends a PullEvents stream refused at once."""
    async with http.stream(
        "POST", f"{SERVICE}/PullEvents", content=envelope(request),
        headers={"Content-Type": "application/connect+json"},
    ) as stream:  # fmt: skip
        async for flags, message in stream_messages(stream):
            assert flags & 2, f"the stream was not refused: {message}"
            assert message["error"]["code"] == "invalid_argument", message
            return str(message["error"]["message"])
    raise AssertionError("the stream ended without a word")


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ({"image": "Bad Image"}, "declarations_json['k_resize'].container.image: must be an image reference"),
        ({"entrypoint": "python"}, "declarations_json['k_resize'].container.image: is required"),
        ({"image": "busybox", "env": {"1X": "a"}},
         "declarations_json['k_resize'].container.env['1X']: must be named as Kubernetes allows"),
        ({"image": "busybox", "args": ["${height}"]},
         "declarations_json['k_resize'].container.args[0]: names ${height}, not a parameter of the type"),
        ({"image": "busybox", "resource_limits": {"cpu": "fast"}},
         "declarations_json['k_resize'].container.resource_limits['cpu']: must be a Kubernetes quantity"),
        ({"image": "busybox", "service_account": "UPPER"},
         "declarations_json['k_resize'].container.service_account: must be a DNS-1123 name"),
        ("busybox", "declarations_json['k_resize'].container: must be an object with at least an image"),
    ],
)  # fmt: skip
async def test_a_bad_container_refuses_the_agents_stream(
    http: httpx.AsyncClient, container: Any, message: str
) -> None:
    declaration = {"parameters": [{"name": "width", "type": "integer"}], "container": container}
    refusal = await _refusal(http, _pull("bad-k8s-agent", {"k_resize": declaration}, ["k_resize"]))
    assert refusal.startswith(message), refusal


async def test_a_bad_declaration_of_any_type_names_its_field(http: httpx.AsyncClient) -> None:
    declaration = {"max_retries": 99, "container": {"image": "busybox"}}
    refusal = await _refusal(http, _pull("bad-k8s-agent", {"k_resize": declaration}, ["k_resize"]))
    assert refusal == "declarations_json['k_resize'].max_retries: must be less than or equal to 10"
    refusal = await _refusal(http, _pull("bad-k8s-agent", {"plain": {"parameters": [{}]}}, ["plain"]))
    assert refusal == "declarations_json['plain'].parameters[0].name: is required"
    refusal = await _refusal(http, _pull("bad-k8s-agent", {"plain": ["x"]}, ["plain"]))
    assert refusal == "declarations_json['plain']: is not a task type declaration (a JSON object)"


async def test_a_container_type_through_the_api(http: httpx.AsyncClient, server: Served) -> None:
    declaration = container_type("k_resize", RESIZE).declaration()
    request = envelope(_pull("k8s-agent", {"k_resize": declaration}, ["k_resize"]))
    async with http.stream(
        "POST", f"{SERVICE}/PullEvents", content=request, headers={"Content-Type": "application/connect+json"}
    ) as stream:
        messages = stream_messages(stream)
        flags, hello = await anext(messages)
        assert (flags, hello.get("agentId")) == (0, "k8s-agent"), hello  # registered: its types are published

        # ListTaskTypes shows the container as declared (args and env as templates).
        listed = (await http.post(f"{SERVICE}/ListTaskTypes", json={})).json()
        [shown] = [d for d in listed["declarations"] if d["name"] == "k_resize"]
        assert shown["container"] == {
            "image": "ghcr.io/acme/resize:1.2", "entrypoint": "python",
            "args": ["-m", "resize", "--width=${width}", "--price=$$5", "${path}"],
            "env": {"WIDTH": "${width}px", "MODE": "${mode}", "HOME_VAR": "$$HOME"},
            "resourceRequests": {"cpu": "500m", "memory": "256Mi"},
            "resourceLimits": {"cpu": "1", "memory": "1Gi"}, "serviceAccount": "resizer",
        }  # fmt: skip
        assert (shown["maxRetries"], shown["timeoutSeconds"], shown["backoffSeconds"]) == (2, 600, 5)
        # The Python client, and task-cli's list of types, say its image.
        with taskservice.Client(server.url) as client:
            [typed] = [t for t in client.list_task_types() if t.name == "k_resize"]
        assert typed.image == "ghcr.io/acme/resize:1.2"
        helped = await asyncio.to_thread(
            CliRunner().invoke, cli, ["--address", server.url, "task", "create", "--help"], terminal_width=100
        )
        assert helped.exit_code == 0, helped.output
        assert "(runs in a container: ghcr.io/acme/resize:1.2)" in helped.output

        # CreateTask checks the parameters as for any declared type.
        bad = {"name": "r", "type": "k_resize", "payload": {"parameters": {"path": "a.png", "width": "wide"}}}
        refused = await http.post(f"{SERVICE}/CreateTask", json=bad)
        assert (refused.status_code, refused.json()["message"]) == (
            400, "payload.parameters['width']: must be an integer (got 'wide')",
        )  # fmt: skip

        good = {
            "name": "r",
            "type": "k_resize",
            "payload": {"parameters": {"path": "a b.png", "width": "128"}},
        }
        created = (await http.post(f"{SERVICE}/CreateTask", json=good)).json()
        task_id = created["id64"]
        rendered = {
            "baseImage": "ghcr.io/acme/resize:1.2",
            "entrypoint": "python",
            "args": ["-m", "resize", "--width=128", "--price=$5", "a b.png"],
            "env": {"WIDTH": "128px", "MODE": "crop", "HOME_VAR": "$HOME"},  # mode: its default
            "resourceRequests": {"cpu": "500m", "memory": "256Mi"},
            "resourceLimits": {"cpu": "1", "memory": "1Gi"},
            "serviceAccount": "resizer",
        }

        # The agent is sent it, rendered.
        async for flags, message in messages:
            assert not flags & 2, message
            if "work" in message:
                work = message["work"]
                break
        assert work["task"]["id64"] == task_id
        assert {key: work["task"].get(key) for key in rendered} == rendered
        assert (work["task"]["maxRetries"], work["task"]["timeoutSeconds"]) == (2, 600)

        # GetTask and ListTasks show the same.
        got = (await http.post(f"{SERVICE}/GetTask", json={"id64": task_id})).json()
        assert {key: got.get(key) for key in rendered} == rendered
        page = (await http.post(f"{SERVICE}/ListTasks", json={"type": "k_resize"})).json()
        [row] = [t for t in page["tasks"] if t["id64"] == task_id]
        assert {key: row.get(key) for key in rendered} == rendered

        # A task of another type carries none of it.
        other = {
            "name": "s",
            "type": "sleep",
            "payload": {"parameters": {"seconds": "0"}},
            "delaySeconds": 3600,
        }
        plain_id = (await http.post(f"{SERVICE}/CreateTask", json=other)).json()["id64"]
        plain = (await http.post(f"{SERVICE}/GetTask", json={"id64": plain_id})).json()
        assert not any(plain.get(key) for key in rendered), plain

        # The agent reports it done (the attempt's id is its fencing token).
        outcome = {"assignmentId": work["assignmentId"], "taskId": int(task_id), "status": "SUCCEEDED",
                   "outcome": "succeeded", "details": "the Job succeeded"}  # fmt: skip
        reply = await http.post(
            f"{SERVICE}/ReportOutcomes", json={"agentId": "k8s-agent", "outcomes": [outcome]}
        )
        assert reply.status_code == 200, reply.text

    async def succeeded() -> bool:
        task = (await http.post(f"{SERVICE}/GetTask", json={"id64": task_id})).json()
        return bool(task["exactStatus"] == "SUCCEEDED")

    await eventually(succeeded)
    await _answers_and_task_get_show_the_container(http, server, task_id, rendered)


async def _answers_and_task_get_show_the_container(
    http: httpx.AsyncClient, server: Served, task_id: str, rendered: dict[str, Any]
) -> None:
    """RetryTask and CancelTask answer with the task as GetTask shows it, its container included, and
    task-cli's `task get` shows the container the task ran in."""
    retried = (await http.post(f"{SERVICE}/RetryTask", json={"id64": task_id})).json()
    assert retried["exactStatus"] == "QUEUED", retried
    assert {key: retried.get(key) for key in rendered} == rendered
    cancelled = (await http.post(f"{SERVICE}/CancelTask", json={"id64": task_id})).json()
    assert cancelled["exactStatus"] == "CANCELLED", cancelled
    assert {key: cancelled.get(key) for key in rendered} == rendered
    shown = await asyncio.to_thread(
        CliRunner().invoke, cli, ["--address", server.url, "task", "get", "--id", str(task_id)]
    )
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("Container "))
    column = lines[first].index("image ")
    rows = [lines[first], *itertools.takewhile(lambda line: line.startswith(" "), lines[first + 1 :])]
    assert [row[column:] for row in rows] == [
        "image ghcr.io/acme/resize:1.2", "entrypoint python",
        "args -m resize --width=128 '--price=$5' 'a b.png'",
        "env HOME_VAR=$HOME", "env MODE=crop", "env WIDTH=128px",
    ], shown.output  # fmt: skip


async def test_another_servers_agent_is_read_from_the_database(
    server: Served, http: httpx.AsyncClient
) -> None:
    """Published by an agent of another server (here: straight into the database), a container type is
    rendered once this server reads the declarations again (at most a few seconds later)."""
    pool = await create_pool(server.settings.database_url, max_size=2)
    try:
        store = Store(pool)
        elsewhere = container_type("k_elsewhere", {"image": "busybox", "args": ["${x}"]})
        await store.register_task_types({"k_elsewhere": elsewhere.declaration()})
        task_id, _ = await store.create_task(NewTask("e", "k_elsewhere", {"x": "42"}, delay_seconds=3600))
    finally:
        await pool.close()

    async def rendered() -> bool:
        got = (await http.post(f"{SERVICE}/GetTask", json={"id64": str(task_id)})).json()
        return bool(got.get("baseImage") == "busybox" and got.get("args") == ["42"])

    await eventually(rendered, timeout=20)


AGENT_TASKS = """
import taskservice

taskservice.container_task("k_agent_container", image="busybox", args=["${n}"])


@taskservice.task("k_agent_plain", max_retries=0)
def plain(n: int) -> int:
    return n
"""


async def test_a_plain_agent_runs_its_plugins_and_never_claims_the_container_type(
    server: Served, tmp_path: Path
) -> None:
    """`task-cli serve --address` importing a module that declares both kinds: it publishes and claims
    its plugin's type only, so the container task waits for the Kubernetes agent."""
    (tmp_path / "k_agent_tasks.py").write_text(AGENT_TASKS)
    env = agent_env(server.settings, PYTHONPATH=str(tmp_path))
    pool = await create_pool(server.settings.database_url, max_size=2)
    agent = AgentProcess.cli(server.process, env, tmp_path / "agent.log", "--import", "k_agent_tasks")
    try:
        store = Store(pool)
        [(container, _), (plain, _)] = await store.create_tasks(
            [NewTask("c", "k_agent_container", {"n": "1"}), NewTask("p", "k_agent_plain", {"n": "2"})]
        )

        async def plain_succeeded() -> bool:
            return (await store.get_task(plain)).status == Status.SUCCEEDED

        await eventually(plain_succeeded, timeout=60)
        [registered] = [w for w in await store.list_workers() if "k_agent_plain" in w.task_types]
        assert "k_agent_container" not in registered.task_types  # its built-in types and k_agent_plain
        assert (await store.get_task(container)).status == Status.QUEUED
        assert await store.executions(container) == []
        assert "k_agent_container" not in await store.declarations()  # nor published by it
    finally:
        code = agent.stop()
        await pool.close()
    assert code == 0, agent.log()
