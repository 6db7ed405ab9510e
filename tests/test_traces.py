"""Traces (docs/observability.md): real server, agent and worker processes send their spans with the real
OTLP/HTTP exporter to a receiver running in this test process, which decodes them with
opentelemetry-proto. One trace links a client's request, the API, the dispatch, the attempt on an
agent and the plugin's own span; a retried task's attempts, a task created by `enqueue(conn)` inside a
span, a spawned child and a schedule's tick continue theirs; tracing off loads no opentelemetry."""

from __future__ import annotations

import asyncio
import gzip
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import taskservice
from agents import AgentProcess, agent_env
from conftest import ServerProcess, eventually, subprocess_env
from taskservice import model, tracing
from taskservice.client.asynchronous import AsyncClient
from taskservice.config import Settings, load_settings
from taskservice.model import NewTask, ScheduleSpec, SpawnedTask, Status, StepSpec, Task
from taskservice.rules.workflows import checked_graph
from taskservice.store import Store

pytestmark = pytest.mark.e2e

TRACED_WORKER = str(Path(__file__).with_name("traced_worker.py"))
T = TypeVar("T")
STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


@dataclass(frozen=True)
class Span:
    name: str
    service: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    attributes: dict[str, Any]
    status_code: int


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


class OtlpReceiver:
    """An OTLP/HTTP (protobuf) trace receiver on a free port of loopback, in a thread."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.requests = 0
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.add(self.path, request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, path: str, request: ExportTraceServiceRequest) -> None:
        assert path == "/v1/traces", path
        got = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    got.append(
                        Span(
                            s.name, str(resource.get("service.name", "")), s.trace_id.hex(), s.span_id.hex(),
                            s.parent_span_id.hex(), {a.key: _value(a.value) for a in s.attributes},
                            s.status.code,
                        )
                    )  # fmt: skip
        with self._changed:
            self.requests += 1
            self.spans.extend(got)
            self._changed.notify_all()

    def trace(self, trace_id: str) -> list[Span]:
        with self._changed:
            return [s for s in self.spans if s.trace_id == trace_id]

    async def wait_for(self, found: Callable[[], T | None], timeout: float = 60.0) -> T:
        """What `found` returns once it is not None, checked each time spans arrive."""

        def wait() -> T | None:
            with self._changed:
                result: list[T | None] = [None]

                def ready() -> bool:
                    result[0] = found()
                    return result[0] is not None

                self._changed.wait_for(ready, timeout)
                return result[0]

        result = await asyncio.to_thread(wait)
        if result is None:
            names = sorted({(s.service, s.name) for s in self.spans})
            raise AssertionError(f"spans not received within {timeout}s; received: {names}")
        return result

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    received = OtlpReceiver()
    yield received
    received.close()


def otel_env(receiver: OtlpReceiver) -> dict[str, str]:
    """Tracing on, to the receiver, with batches sent every 50 ms."""
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "50"}


def _untraced(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith("OTEL_")}


def client_tracer(receiver: OtlpReceiver) -> tuple[TracerProvider, Any]:
    """The test's own OpenTelemetry, as an application calling taskservice would have it (not the
    global provider: the test process is shared)."""
    provider = TracerProvider(resource=Resource({"service.name": "test-client"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces")))
    return provider, provider.get_tracer("test")


def _ids(span: Any) -> tuple[str, str]:
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def _named(spans: list[Span], *names: str) -> dict[str, Span] | None:
    """The spans by name when each of `names` is there (exactly once), else None."""
    found = {s.name: s for s in spans}
    if not set(names) <= set(found):
        return None
    assert all(sum(s.name == name for s in spans) == 1 for name in names), [s.name for s in spans]
    return found


def _attempts(spans: list[Span], task_id: int, count: int) -> list[Span] | None:
    mine = [
        s for s in spans if s.name == "taskservice.attempt" and s.attributes["taskservice.task.id"] == task_id
    ]
    return sorted(mine, key=lambda s: s.attributes["taskservice.attempt"]) if len(mine) >= count else None


def _spawned(spans: list[Span], spawner_id: int) -> tuple[Span, Span] | None:
    """(the spawner's plugin span, its child's attempt span under it) once both arrived."""
    spawners = _attempts(spans, spawner_id, 1)
    if not spawners:
        return None
    plugin = next((s for s in spans if s.parent_id == spawners[0].span_id), None)
    if plugin is None:
        return None
    # A worker's child's attempt is right under it; an agent's, under its dispatch under it.
    under = {plugin.span_id} | {
        s.span_id for s in spans if s.name == "taskservice.dispatch" and s.parent_id == plugin.span_id
    }
    child = next((s for s in spans if s.name == "taskservice.attempt" and s.parent_id in under), None)
    return None if child is None else (plugin, child)


async def _finished(store: Store, task_id: int) -> Task:
    async def done() -> Task | None:
        task = await store.get_task(task_id)
        return task if task.status in (Status.SUCCEEDED, Status.FAILED) else None

    task: Task = await eventually(done, timeout=60)
    return task


async def _one_chain(receiver: OtlpReceiver, trace_id: str, request_id: str, task_id: int) -> None:
    """One chain: the client's span -> the API's RPC -> enqueue -> dispatch -> the agent's attempt ->
    its plugin call -> the plugin's own span."""
    names = (
        "client request", "cloud.v1.TaskManagementService/CreateTask", "taskservice.enqueue",
        "taskservice.dispatch", "taskservice.attempt", "taskservice.plugin", "plugin's own work",
    )  # fmt: skip
    spans = await receiver.wait_for(lambda: _named(receiver.trace(trace_id), *names))
    rpc, enqueue = spans["cloud.v1.TaskManagementService/CreateTask"], spans["taskservice.enqueue"]
    dispatch, attempt = spans["taskservice.dispatch"], spans["taskservice.attempt"]
    plugin, own = spans["taskservice.plugin"], spans["plugin's own work"]
    assert spans["client request"].span_id == request_id
    assert rpc.parent_id == request_id
    assert enqueue.parent_id == rpc.span_id
    assert dispatch.parent_id == enqueue.span_id
    assert attempt.parent_id == dispatch.span_id
    assert plugin.parent_id == attempt.span_id
    assert own.parent_id == plugin.span_id
    assert {rpc.service, enqueue.service, dispatch.service} == {"taskservice-server"}
    assert {attempt.service, plugin.service, own.service} == {"taskservice-agent"}
    assert rpc.attributes["rpc.method"] == "CreateTask"
    assert enqueue.attributes["taskservice.task.type"] == "tr_traced"
    for span in (enqueue, dispatch, attempt):
        assert span.attributes["taskservice.task.id"] == task_id
    assert attempt.attributes["taskservice.outcome"] == "succeeded"
    assert plugin.attributes["test.label"] == "x"  # set through ctx.span


async def _retries_share_the_trace(
    receiver: OtlpReceiver, trace_id: str, request_id: str, task_id: int
) -> None:
    """Both attempts of a retried task continue the trace of its request, each dispatched anew."""
    first, second = await receiver.wait_for(lambda: _attempts(receiver.trace(trace_id), task_id, 2))
    assert [first.attributes["taskservice.attempt"], second.attributes["taskservice.attempt"]] == [1, 2]
    assert first.status_code == STATUS_ERROR
    assert first.attributes["taskservice.status"] == "RETRYING"
    assert second.status_code != STATUS_ERROR
    assert second.attributes["taskservice.outcome"] == "succeeded"
    by_id = {s.span_id: s for s in receiver.trace(trace_id)}
    for each in (first, second):
        dispatch = by_id[each.parent_id]
        assert dispatch.name == "taskservice.dispatch"
        enqueue = by_id[dispatch.parent_id]
        assert enqueue.name == "taskservice.enqueue"
        assert by_id[enqueue.parent_id].parent_id == request_id


async def test_one_trace_links_client_api_agent_and_plugin_and_retries_share_theirs(
    settings: Settings, tmp_path: Path, receiver: OtlpReceiver
) -> None:
    otel = otel_env(receiver)
    server = ServerProcess(settings, tmp_path / "server.log", None, (), (), WORKER_COUNT="0", **otel)
    agent: AgentProcess | None = None
    provider, tracer = client_tracer(receiver)
    try:
        server.wait_ready()
        agent = AgentProcess(
            [sys.executable, TRACED_WORKER, server.url],
            agent_env(settings, None, **otel),
            tmp_path / "agent.log",
        )
        async with AsyncClient(server.url) as client:

            async def agent_connected() -> bool:
                return any("tr_traced" in w.task_types and w.alive for w in await client.list_workers())

            await eventually(agent_connected, timeout=60)
            with tracer.start_as_current_span("client request") as request:
                traced = await client.create_task(type="tr_traced", parameters={"label": "x"})
            with tracer.start_as_current_span("client request of a flaky task") as flaky_request:
                flaky = await client.create_task(type="tr_flaky", max_retries=2)
            with tracer.start_as_current_span("client request of a spawner") as spawner_request:
                spawner = await client.create_task(type="tr_spawner")
            assert await traced.wait(60) == {"had_span": True}
            assert await flaky.wait(60) == {"attempt": 2}
            assert await spawner.wait(60) == {"spawned": True}

        trace_id, request_id = _ids(request)
        await _one_chain(receiver, trace_id, request_id, traced.id)
        flaky_trace, flaky_request_id = _ids(flaky_request)
        await _retries_share_the_trace(receiver, flaky_trace, flaky_request_id, flaky.id)
        # An agent's child continues the trace, under the plugin call that spawned it (the agent
        # reports its traceparent with the outcome).
        spawner_trace, _ = _ids(spawner_request)
        plugin, child = await receiver.wait_for(lambda: _spawned(receiver.trace(spawner_trace), spawner.id))
        assert plugin.name == "taskservice.plugin"
        assert child.service == "taskservice-agent"
        assert child.attributes["taskservice.task.type"] == "tr_traced"

        # The task keeps the trace: stored, and shown (Task.trace_id) for the dashboard.
        async with httpx.AsyncClient(base_url=server.url) as http:
            answer = await http.post(
                "/cloud.v1.TaskManagementService/GetTask", json={"id64": str(traced.id)}, timeout=30
            )
        assert answer.json()["traceId"] == trace_id
        # The agent's log lines within the attempt carry its trace and span ids.
        line = next(line for line in agent.log().splitlines() if "traced plugin working" in line)
        assert f"trace_id={trace_id}" in line
        # Its stream is a span of its own on the server, from its start to its end, the parent of none
        # of the attempts (they continue their tasks' traces).
        assert agent.stop() == 0
        agent = None

        def stream_span() -> Span | None:
            return next(
                (s for s in receiver.spans if s.name.endswith("TaskManagementService/PullEvents")), None
            )

        pull = await receiver.wait_for(stream_span)
        assert pull.service != "taskservice-agent"
        assert pull.attributes["rpc.method"] == "PullEvents"
        assert pull.trace_id not in {trace_id, flaky_trace, spawner_trace}
    finally:
        provider.shutdown()
        if agent is not None:
            agent.stop()
        server.stop()
    assert "Traceback" not in server.log(), server.log()[-5000:]


async def test_a_direct_worker_continues_what_enqueue_stored_and_children_and_ticks_are_traced(
    settings: Settings, store: Store, tmp_path: Path, receiver: OtlpReceiver
) -> None:
    worker = AgentProcess(
        [sys.executable, TRACED_WORKER, "--worker"],
        subprocess_env(settings, **otel_env(receiver)),
        tmp_path / "worker.log",
    )
    provider, tracer = client_tracer(receiver)
    try:
        # Committed as the block ends, inside the application's span.
        with (
            tracer.start_as_current_span("app transaction") as app,
            psycopg.connect(settings.database_url) as conn,
        ):
            task_id = taskservice.enqueue(conn, type="tr_traced", parameters={"label": "enqueued"})
            spawner_id = taskservice.enqueue(conn, type="tr_spawner")
        trace_id, app_id = _ids(app)
        stored = await store.get_task(task_id)
        # The caller's own span (its global tracer provider records nothing: it set none).
        assert (stored.trace_parent or "").startswith(f"00-{trace_id}-{app_id}-")
        assert (await _finished(store, task_id)).status == Status.SUCCEEDED

        [attempt] = await receiver.wait_for(lambda: _attempts(receiver.trace(trace_id), task_id, 1))
        assert attempt.parent_id == app_id
        assert attempt.service == "taskservice-worker"
        spans = receiver.trace(trace_id)
        plugin = next(s for s in spans if s.name == "taskservice.plugin" and s.parent_id == attempt.span_id)
        assert plugin.attributes["test.label"] == "enqueued"

        # The spawned child continues its spawner's trace, under the plugin call that spawned it.
        spawner_plugin, child = await receiver.wait_for(
            lambda: _spawned(receiver.trace(trace_id), spawner_id)
        )
        assert spawner_plugin.name == "taskservice.plugin"
        assert child.attributes["taskservice.task.type"] == "tr_traced"
        assert (await store.get_task(child.attributes["taskservice.task.id"])).spawned_by == spawner_id

        # A schedule's tick starts a trace of its own, which its task's attempt continues.
        spec = ScheduleSpec("traced-tick", NewTask("traced-tick", "tr_traced"), every_seconds=3600.0)
        assert await store.create_schedule(spec, datetime.now(UTC)) is not None

        def tick_attempt() -> tuple[Span, Span] | None:
            with receiver._changed:
                ticks = [s for s in receiver.spans if s.name == "taskservice.schedule.tick"]
            for tick in ticks:
                runs = [s for s in receiver.trace(tick.trace_id) if s.name == "taskservice.attempt"]
                if runs:
                    return tick, runs[0]
            return None

        tick, run = await receiver.wait_for(tick_attempt)
        assert tick.parent_id == ""  # a trace of its own
        assert tick.attributes["taskservice.schedule"] == "traced-tick"
        assert run.parent_id == tick.span_id
    finally:
        provider.shutdown()
        worker.stop()
    assert "Traceback" not in worker.log(), worker.log()[-5000:]


async def test_tracing_off_a_worker_loads_no_opentelemetry_and_stores_no_trace(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    worker = AgentProcess(
        [sys.executable, TRACED_WORKER, "--worker"],
        _untraced(subprocess_env(settings)),
        tmp_path / "worker.log",
    )
    try:
        with psycopg.connect(settings.database_url) as conn:  # no span is current: nothing to continue
            task_id = taskservice.enqueue(conn, type="tr_modules")
        assert (await _finished(store, task_id)).status == Status.SUCCEEDED
        [execution] = await store.executions(task_id)
        assert execution.result == {"opentelemetry_modules": [], "had_span": False}
        assert (await store.get_task(task_id)).trace_parent is None
    finally:
        worker.stop()


def test_tracing_is_on_only_when_configured() -> None:
    def enabled(**otel: Any) -> bool:
        unset = {
            "otel_sdk_disabled": False, "otel_traces_exporter": "", "otel_exporter_otlp_endpoint": "",
            "otel_exporter_otlp_traces_endpoint": "",
        }  # fmt: skip
        return load_settings(**{**unset, **otel}).tracing_enabled

    assert not enabled()
    assert enabled(otel_exporter_otlp_endpoint="http://127.0.0.1:4318")
    assert enabled(otel_exporter_otlp_traces_endpoint="http://127.0.0.1:4318/v1/traces")
    assert enabled(otel_traces_exporter="console")
    assert enabled(otel_traces_exporter="otlp")
    assert not enabled(otel_traces_exporter="none", otel_exporter_otlp_endpoint="http://127.0.0.1:4318")
    assert not enabled(otel_sdk_disabled=True, otel_traces_exporter="otlp")


def test_traceparents_are_checked_and_read() -> None:
    good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert tracing.valid(good) == good
    assert tracing.valid(good.upper()) == good
    for bad in ("", "garbage", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"):  # fmt: skip
        assert tracing.valid(bad) is None
    task = Task(1, "n", "t", Status.QUEUED, {}, 0, 0, 0, "", 1.0, 0, datetime.now(UTC), datetime.now(UTC),
                datetime.now(UTC), trace_parent=good)  # fmt: skip
    assert task.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert tracing.span("off") is tracing.span("off again")  # off: one shared null context


PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ATTEMPT = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"


async def test_the_store_keeps_each_tasks_traceparent_and_claims_hand_it_on(store: Store) -> None:
    [(traced, _), (untraced, _)] = await store.create_tasks(
        [NewTask("a", "sleep", trace_parent=PARENT), NewTask("b", "sleep")]
    )
    claims = {c.task.id: c for c in await store.claim("w1", 10, lease_seconds=30)}
    assert claims[traced].task.trace_parent == PARENT  # what the attempt continues
    assert claims[untraced].task.trace_parent is None
    # Children continue the spawning attempt's trace; without one (an older agent), their spawner's.
    spawned = {}
    for task_id, sent in ((traced, ATTEMPT), (untraced, None)):
        claim = claims[task_id]
        child = (SpawnedTask("child", NewTask("child", "sleep")),)
        outcome = replace(model.succeeded(claim.task, claim.execution_id, None, child), trace_parent=sent)
        assert await store.finish([outcome]) == {claim.execution_id}
        spawned[task_id] = {c.task.trace_parent for c in await store.claim("w1", 10, lease_seconds=30)}
    assert spawned == {traced: {ATTEMPT}, untraced: {None}}
    # A workflow's steps keep the traceparent they were created in.
    graph = checked_graph(
        [StepSpec("s1", NewTask("s1", "sleep")), StepSpec("s2", NewTask("s2", "sleep"), ("s1",))]
    )
    workflow_id, _ = await store.create_workflow("traced", graph, trace_parent=PARENT)
    steps = (await store.get_workflow(workflow_id)).steps
    assert {(await store.get_task(s.task_id)).trace_parent for s in steps} == {PARENT}


def test_the_clients_send_the_callers_current_span_as_traceparent() -> None:
    from taskservice.client.wire import traced

    head = b"Host: example\r\n"
    assert traced(head) == head  # no span current
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("caller") as caller:
        trace_id, span_id = _ids(caller)
        sent = traced(head)
    assert sent.startswith(head)
    assert sent[len(head) :].decode().startswith(f"traceparent: 00-{trace_id}-{span_id}-")
    assert sent.endswith(b"\r\n")
