"""`Client`: the API over kept-alive connections, blocking; `TaskHandle` for one task."""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Generator, Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from taskservice.client import calls
from taskservice.client import messages as m
from taskservice.client.wire import CallRetry, traced, warn_token_ignored
from taskservice.client.workflows import Workflow
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import FINISHED, NewTask, Status, TaskOptionFields, TaskOptions, task_options
from taskservice.protocol import wire
from taskservice.protocol.errors import ResourceExhausted, TaskServiceError, Timeout, Unavailable
from taskservice.protocol.sync_transport import SyncTransport

if TYPE_CHECKING:
    from typing_extensions import Unpack

T = TypeVar("T")
# A live stream hears from the server at least every 15 s (keep-alives): longer silence means it is gone.
STREAM_SILENCE_SECONDS = 60.0


class Client:
    """`Client("http://host:8080", token=...)`: one method per RPC, keyword arguments, dataclasses back.

    Errors are TaskServiceError subclasses carrying the Connect code. A call that failed `unavailable`
    is sent again with backoff when that is safe: reads, and creates with an idempotency key.
    `tls`: the SSL context for an https:// address (its CA, say); by default the system's.
    """

    def __init__(
        self,
        address: str = "http://127.0.0.1:8080",
        *,
        token: str = "",
        timeout: float = 30.0,
        retry: CallRetry = CallRetry(),  # noqa: B008
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.address, self.timeout, self.retry = address.rstrip("/"), timeout, retry
        self._token = token
        self._token_warned = False
        self._transport = SyncTransport(address, timeout, tls)
        self._head = self._transport.address.head(wire.headers(token, timeout))

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    # -- the wire ----------------------------------------------------------------------------

    def run(self, call: calls.Call[T]) -> T:
        """Send one call, again after `unavailable` while that is safe."""
        body = call.request.SerializeToString()
        delays = self.retry.delays()
        while True:
            try:
                return call.read(self._send(call, body))
            except Unavailable as error:
                delay = next(delays, None)
                if delay is None or not (call.idempotent or not error.sent):
                    raise
                time.sleep(delay)

    def _send(self, call: calls.Call[Any], body: bytes) -> Any:
        try:
            data = self._transport.post(wire.SERVICE_PATH + call.method, traced(self._head), body)
        finally:
            if self._transport.token_ignored and not self._token_warned:
                self._token_warned = True
                warn_token_ignored(self.address)
        return wire.decode(data, call.answer)

    # -- the RPCs ----------------------------------------------------------------------------

    def create_task(
        self,
        *,
        type: str,
        parameters: dict[str, str] | None = None,
        options: TaskOptions | None = None,
        **fields: Unpack[TaskOptionFields],
    ) -> TaskHandle:
        """Create a task; its handle waits for it. With an idempotency key a repeat returns the first.

        The options come as one `TaskOptions`, or as its fields by name (`priority=5`), not both. A
        declared type's `create` (`resize_avatar.create(client, width=128)`) checks its parameters here.
        """
        new = task_options(options, fields).new_task(type, parameters)
        created = self.run(calls.create_task(new))
        return TaskHandle(self, created.id, existing=created.existing)

    def create_tasks(self, tasks: Iterable[NewTask]) -> list[TaskHandle]:
        """Create up to 1000 tasks in one call and one transaction (all or none), in order."""
        return [TaskHandle(self, task_id) for task_id in self.run(calls.create_tasks(tasks))]

    def task(self, task_id: int) -> TaskHandle:
        """A handle on an existing task."""
        return TaskHandle(self, task_id)

    def get_task(self, id: int) -> m.Task:
        return self.run(calls.get_task(id))

    def list_tasks(
        self, *, status: m.TaskStatus | Status | None = None, type: str | None = None,
        name_contains: str = "", limit: int = 0, offset: int = 0,
    ) -> m.TaskList:  # fmt: skip
        """Tasks newest first; limit 0 means the server's 30."""
        return self.run(calls.list_tasks(
            status=status, type=type, name_contains=name_contains, limit=limit, offset=offset
        ))  # fmt: skip

    def get_task_history(self, id: int) -> list[m.HistoryEntry]:
        return self.run(calls.get_task_history(id))

    def update_task_status(self, id: int, status: m.TaskStatus | Status, message: str = "") -> None:
        self.run(calls.update_task_status(id, status, message))

    def get_status(self) -> dict[m.TaskStatus, int]:
        return self.run(calls.get_status())

    def cancel_task(self, id: int, reason: str = "") -> m.Task:
        return self.run(calls.cancel_task(id, reason))

    def retry_task(self, id: int, reason: str = "") -> m.Task:
        return self.run(calls.retry_task(id, reason))

    def cancel_tasks(
        self, ids: Iterable[int] = (), *, reason: str = "", dry_run: bool = False,
        **where: Unpack[calls.TaskFilterFields],
    ) -> int:  # fmt: skip
        """Cancel the tasks `ids`, or those `where` selects (`statuses=`, `type=`, `queue=`, `name_contains=`,
        `created_after=`, `created_before=`; or `all=True`), that are queued, retrying or running: the
        count cancelled, in one call. `dry_run`: nothing changes; the count that would be."""
        return self._in_bulk("CancelTasks", ids, reason, dry_run, where)

    def retry_tasks(
        self, ids: Iterable[int] = (), *, reason: str = "", dry_run: bool = False,
        **where: Unpack[calls.TaskFilterFields],
    ) -> int:  # fmt: skip
        """Run the finished tasks among `ids`, or among those `where` selects, again: the count."""
        return self._in_bulk("RetryTasks", ids, reason, dry_run, where)

    def delete_tasks(
        self, ids: Iterable[int] = (), *, reason: str = "", dry_run: bool = False,
        **where: Unpack[calls.TaskFilterFields],
    ) -> int:  # fmt: skip
        """Delete the finished tasks among `ids`, or among those `where` selects, with their history
        and attempts (an admin's right): the count."""
        return self._in_bulk("DeleteTasks", ids, reason, dry_run, where)

    def _in_bulk(
        self, method: str, ids: Iterable[int], reason: str, dry_run: bool, where: calls.TaskFilterFields
    ) -> int:
        """A bulk action's count: one call, or more when the server stopped one at its time limit."""
        ids, count, token = list(ids), 0, ""
        while True:
            done, token = self.run(calls.bulk(method, ids, reason, dry_run, where, token))
            count += done
            if not token:
                return count

    def list_task_executions(self, id: int, attempt: int = 0) -> list[m.Execution]:
        """Every attempt (results cut to a preview), or with `attempt` that one, its result whole."""
        return self.run(calls.list_task_executions(id, attempt))

    def list_workers(self) -> list[m.WorkerInfo]:
        return self.run(calls.list_workers())

    def pause_queue(self, queue: str = "", *, type: str = "", reason: str = "") -> bool:
        """Pause a queue (or every task of a `type`), cluster-wide, until resumed: no new attempt of its
        tasks starts; running ones finish. True when it was paused already."""
        return self.run(calls.pause_queue(queue, type=type, reason=reason))

    def resume_queue(self, queue: str = "", *, type: str = "") -> bool:
        """Resume a paused queue (or task type); False when it was not paused."""
        return self.run(calls.resume_queue(queue, type=type))

    def list_queues(self) -> list[m.QueueInfo]:
        """Every queue with its waiting and running tasks, its live workers, and whether it is paused."""
        return self.run(calls.list_queues())

    def set_limit(
        self, queue: str = "", *, type: str = "", concurrency: int | None = None,
        rate_limit: str | None = None, key: str | None = None,
    ) -> m.LimitInfo:  # fmt: skip
        """Limit a queue (or a task `type`) cluster-wide: at most `concurrency` attempts running at once
        (0: no limit) and `rate_limit` starts ("5/s", "100/min", "10/30s"; "": no limit), per value of
        the parameter `key` ("": all its tasks count together). What is not given is kept. A type's
        declaration does not replace it until `reset_limit`. The limit as it now stands."""
        return self.run(calls.set_limit(
            queue, type=type, concurrency=concurrency, rate_limit=rate_limit, key=key
        ))  # fmt: skip

    def reset_limit(self, queue: str = "", *, type: str = "") -> m.LimitInfo:
        """Drop the limit set at run time: a type's declared limit rules again; a queue's is cleared."""
        return self.run(calls.reset_limit(queue, type=type))

    def list_limits(self) -> list[m.LimitInfo]:
        """Every limit in force, with its tasks waiting under it and running."""
        return self.run(calls.list_limits())

    def create_schedule(
        self, name: str, *, type: str, parameters: Mapping[str, str] | None = None, cron: str | None = None,
        timezone: str = "UTC", every: str | float | None = None, options: TaskOptions | None = None,
        overlap: str = "allow", catchup: str = "none", paused: bool = False, ends_at: datetime | None = None,
    ) -> m.ScheduleInfo:  # fmt: skip
        """A schedule: at each tick of `cron` ("0 2 * * *", "@hourly"; in `timezone`, e.g. "Europe/Berlin")
        or every `every` ("30s", "5m", or seconds), a task of `type` with `parameters` and `options`
        (TaskOptions: its name, priority, queue...; no delay, run_at or idempotency key). `overlap` "skip":
        no new run while the last is unfinished; `catchup` "last" or "all": the ticks missed while the
        schedulers were down run late (one, or each). It first ticks after now, unless `paused`; no tick
        after `ends_at`. A name taken is refused."""
        return self.run(calls.create_schedule(
            name, type=type, parameters=parameters, cron=cron, timezone=timezone, every=every,
            options=options, overlap=overlap, catchup=catchup, paused=paused, ends_at=ends_at,
        ))  # fmt: skip

    def get_schedule(self, name_or_id: str | int) -> m.ScheduleInfo:
        """A schedule by its name, or by its id (a task's `schedule_id`)."""
        return self.run(calls.get_schedule(name_or_id))

    def list_schedules(self, limit: int = 0, offset: int = 0) -> list[m.ScheduleInfo]:
        """Schedules by name; limit 0 means the server's 1000."""
        return self.run(calls.list_schedules(limit, offset))

    def update_schedule(
        self, name: str, *, cron: str | None = None, timezone: str | None = None,
        every: str | float | None = None, type: str | None = None,
        parameters: Mapping[str, str] | None = None, options: TaskOptions | None = None,
        overlap: str | None = None, catchup: str | None = None, paused: bool | None = None,
        ends_at: datetime | Literal["never"] | None = None,
    ) -> m.ScheduleInfo:  # fmt: skip
        """Change what is given, the rest kept: `cron` or `every` (one replaces the other), `timezone`,
        the task (a `type`, with its `parameters` and `options`, replaces it whole), `overlap`, `catchup`,
        `paused`, `ends_at` ("never": no end). Re-timed or resumed, it ticks next after now. The schedule
        as it now stands."""
        return self.run(calls.update_schedule(
            name, cron=cron, timezone=timezone, every=every, type=type, parameters=parameters,
            options=options, overlap=overlap, catchup=catchup, paused=paused, ends_at=ends_at,
        ))  # fmt: skip

    def pause_schedule(self, name: str) -> m.ScheduleInfo:
        """No tick of it fires until it is resumed (those it misses meanwhile are not caught up)."""
        return self.run(calls.update_schedule(name, paused=True))

    def resume_schedule(self, name: str) -> m.ScheduleInfo:
        """A paused schedule ticks again, next after now."""
        return self.run(calls.update_schedule(name, paused=False))

    def delete_schedule(self, name: str) -> None:
        """Delete a schedule; the tasks it created stay."""
        self.run(calls.delete_schedule(name))

    def trigger_schedule(self, name: str) -> int:
        """Create the schedule's task now, by hand (its ticks go on as they were); the task's id."""
        return self.run(calls.trigger_schedule(name))

    def create_workflow(
        self, workflow_or_name: Workflow | str, steps: Mapping[str, Any] | None = None,
        *, idempotency_key: str | None = None,
    ) -> int:  # fmt: skip
        """Create a workflow, every step at once (one transaction): a `Workflow`, or a name and its steps
        as a workflow file has them (each step's name to its `type`, `parameters`, `depends_on`,
        `priority`...). Each step's task waits until every step it depends on succeeded; a step failing
        for good cancels those after it. Its id; with `idempotency_key`, a repeat gives the first one's."""
        return self.run(calls.create_workflow(workflow_or_name, steps, idempotency_key))

    def get_workflow(self, id: int) -> m.WorkflowInfo:
        """A workflow with each of its steps (those its tasks spawned at run time included)."""
        return self.run(calls.get_workflow(id))

    def list_workflows(
        self, status: m.TaskStatus | Status | None = None, limit: int = 100, offset: int = 0
    ) -> list[m.WorkflowInfo]:
        """Workflows newest first (RUNNING, SUCCEEDED, FAILED or CANCELLED ones with `status`), without
        their steps (get_workflow has them); their steps counted by status."""
        return self.run(calls.list_workflows(status, limit, offset))

    def cancel_workflow(self, id: int) -> int:
        """Cancel every unfinished step (a running one is stopped): how many."""
        return self.run(calls.cancel_workflow(id))

    def retry_workflow(self, id: int) -> int:
        """Run a finished workflow's FAILED and CANCELLED steps again, keeping what SUCCEEDED (each
        waits for its own parents again): how many."""
        return self.run(calls.retry_workflow(id))

    def list_task_types(self) -> list[m.TaskType]:
        return self.run(calls.list_task_types())

    def watch(self, task_ids: Iterable[int] = ()) -> Iterator[m.TaskEvent]:
        """Every status change from now on (of `task_ids` only, if given), until the caller stops."""
        for event in self.events(task_ids):
            if not event.keepalive:
                yield m.TaskEvent.from_proto(event)

    def events(self, task_ids: Iterable[int] = (), timeout: float | None = None) -> Generator[pb.TaskEvent]:
        """WatchEvents' raw messages, keep-alives included: the first one says the stream is live.

        With `timeout`, the server ends the stream then (Timeout), and the client does not wait longer.
        """
        silence = STREAM_SILENCE_SECONDS if timeout is None else min(timeout + 1, STREAM_SILENCE_SECONDS)
        head = self._transport.address.head(wire.headers(self._token, timeout, stream=True))
        body = calls.watch_request(task_ids).SerializeToString()
        stream = self._transport.stream(wire.SERVICE_PATH + "WatchEvents", head, body, silence)
        with contextlib.closing(stream) as messages:
            for message in messages:
                yield pb.TaskEvent.FromString(message)


class TaskHandle:
    """One task: `wait()` for its result, or ask its status, result, or cancel it."""

    def __init__(self, client: Client, id: int, *, existing: bool = False) -> None:
        self.client, self.id, self.existing = client, id, existing

    def __repr__(self) -> str:
        return f"TaskHandle(id={self.id})"

    def status(self) -> m.TaskStatus:
        return self.client.get_task(self.id).status

    def get(self) -> m.Task:
        return self.client.get_task(self.id)

    def cancel(self, reason: str = "") -> m.Task:
        return self.client.cancel_task(self.id, reason)

    def result(self) -> Any:
        """The result of the finished task; TaskFailed, TaskCancelled, or FailedPrecondition if unfinished."""
        return self._outcome(self.client.get_task(self.id))

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the task finishes; its result, or TaskFailed / TaskCancelled / Timeout.

        Woken by the task's events (WatchEvents for this task only), not by polling. The status is read
        once the stream is live, so a finish between creating and subscribing is not missed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delays = self.client.retry.delays()
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Timeout(f"task {self.id} did not finish within {timeout:g}s")
            try:
                task = self._until_finished(left)
            except (Unavailable, ResourceExhausted):  # the server went away, or dropped a slow stream
                delay = next(delays, None)
                if delay is None:
                    raise
                time.sleep(delay)
                continue
            except TaskServiceError as error:
                if error.code == "deadline_exceeded":
                    raise Timeout(f"task {self.id} did not finish within {timeout:g}s") from None
                raise
            if task is not None:
                return self._outcome(task)

    def _until_finished(self, timeout: float | None) -> m.Task | None:
        """The finished task, or None when the stream ended first (the server stopping)."""
        with contextlib.closing(self.client.events([self.id], timeout)) as events:
            return self._first_finished(events)

    def _first_finished(self, events: Iterator[pb.TaskEvent]) -> m.Task | None:
        checked = False
        for event in events:
            # The first keep-alive says the stream is live: from then on nothing is missed, so the
            # status is read once then, and again at each finishing event (it may be retried since).
            if (event.keepalive and not checked) or Status(event.exact_status) in FINISHED:
                checked = True
                task = self.client.get_task(self.id)
                if calls.finished(task):
                    return task
        return None

    def _outcome(self, task: m.Task) -> Any:
        if not calls.finished(task):
            return calls.outcome(task, None)
        last = calls.last_attempt(task)
        executions = self.client.run(last) if last is not None else []
        return calls.outcome(task, executions[-1] if executions else None)
