"""The store: one method per operation on tasks, their history, executions and workers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from taskservice import model
from taskservice.model import (
    Execution,
    HistoryEntry,
    IdSpan,
    IllegalTransition,
    NewTask,
    Outcome,
    RetryPolicy,
    Schedule,
    ScheduleSpec,
    Status,
    Task,
    TaskSelection,
    Transition,
    WorkflowGraph,
)
from taskservice.store import limits, maintenance, retention, schedules, stats, task_types, workflows
from taskservice.store.sql import query
from taskservice.store.waker import NOTIFY_CHANNEL, Waker

Record = asyncpg.Record
if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Pool: TypeAlias = asyncpg.Pool[Record]
    Connection: TypeAlias = asyncpg.Connection[Record] | PoolConnectionProxy[Record]
else:
    Pool, Connection = asyncpg.Pool, asyncpg.Connection


# Tasks a bulk action takes in one batch, one short transaction each.
BULK_BATCH = 1000


class IdAboveLimit(Exception):
    """A new task's id would be above what the caller can read: nothing was created."""

    def __init__(self, task_id: int, limit: int) -> None:
        super().__init__(f"task id {task_id} is above {limit}; nothing was created")
        self.task_id, self.limit = task_id, limit


class TaskNotFound(LookupError):
    def __init__(self, task_id: int) -> None:
        super().__init__(f"task {task_id} not found")
        self.task_id = task_id


class NotHeld(PermissionError):
    """A caller named an attempt, a task or an agent id that is not its own: nothing changed."""


class ReportNotHeld(NotHeld):
    """An agent's report named attempts not started for it (`foreign`), or the caller did not register
    the agent (`agent_registered` False): nothing changed."""

    def __init__(self, agent_registered: bool, foreign: list[int]) -> None:
        super().__init__(agent_registered, foreign)
        self.agent_registered, self.foreign = agent_registered, foreign


class WorkerIdTaken(NotHeld):
    """A worker or agent id another principal registered (migration 0030): not taken over."""

    def __init__(self, worker_id: str) -> None:
        super().__init__(f"agent id {worker_id!r} is registered by someone else; choose another id")
        self.worker_id = worker_id


def _original_report_applies(current: Status, target: Status, message: str) -> bool:
    """Whether an UpdateTaskStatus is the original's controller reporting its own attempts: RUNNING,
    its "Attempt N failed" between attempts, or a task's end while it is held between attempts. (Its
    SUCCEEDED or FAILED during an attempt is an operator's change, with the holder's check.)"""
    if target == Status.RUNNING:
        return current in (Status.RUNNING, Status.RETRYING)
    if target == Status.FAILED:
        return current == Status.RETRYING or (
            current == Status.RUNNING and model.original_attempt_failed(message)
        )
    return False


@dataclass(frozen=True)
class TaskDefaults:
    """Values a new task gets when it does not say."""

    max_retries: int = 3
    timeout_seconds: float = 60.0


@dataclass(frozen=True)
class Claim:
    """A task a worker claimed, with the execution row of this attempt."""

    task: Task
    execution_id: int
    # When its lease ends on the monotonic clock of the process holding this claim, where whoever
    # handed it over said so (the dispatcher, and an agent from its assignment); else the claimer
    # counts from when it sent the claim.
    lease_until: float | None = None
    # A workflow step's: the results of the tasks it waited for, by step name (model.
    # PARENT_RESULTS_MAX_BYTES in all), and those left out past that bound.
    parents: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    parents_left_out: tuple[str, ...] = ()


@dataclass(frozen=True)
class HistoryEvent:
    """A status change with the name and type of its task (what live clients show)."""

    entry: HistoryEntry
    task_name: str
    task_type: str


@dataclass(frozen=True)
class AttemptFigures:
    """What the metrics read of an attempt (api/metrics.py): its task's type and queue, how it ended
    (`outcome` "running" while `finished` is false), its run time and its wait for a worker (seconds,
    None when not known), and whether its task was to run again after it failed."""

    id: int
    type: str | None  # None: its task is gone (deleted before the metrics read it)
    queue: str | None
    outcome: str
    finished: bool
    run_seconds: float | None
    wait_seconds: float | None
    retried: bool


@dataclass(frozen=True)
class Pause:
    """A paused queue (`kind` "queue") or task type ("type"): the claim takes none of its tasks."""

    kind: str
    name: str
    reason: str
    paused_by: str
    paused_at: datetime


def _pause(row: Record) -> Pause:
    return Pause(row["kind"], row["name"], row["reason"], row["paused_by"], row["paused_at"])


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    concurrency: int
    task_types: list[str]
    started_at: Any
    last_heartbeat_at: Any
    stopped_at: Any
    running: int
    kind: str = "worker"
    principal: str | None = None  # who registered it (migration 0030)
    queues: tuple[str, ...] = ()  # the queues it serves, empty: every queue (migration 0040)
    version: str | None = None  # the release it runs (migration 0110); None: not said


_TASK_FIELDS = frozenset(Task.__dataclass_fields__)


def _task(row: Record) -> Task:
    """A task from a row of `tasks` joined with its open attempt's lease (see queries.sql)."""
    # One pass over the row's columns (faster per claimed task than a lookup of each field).
    values = {name: value for name, value in row.items() if name in _TASK_FIELDS}
    values["status"] = Status(values["status"])
    dependencies = values.pop("dependencies", None)  # NULL (not a step): the default, none
    if dependencies is not None:
        values["dependencies"] = tuple(dependencies)
    return model.task_from(values)


_STATUSES = {int(status): status for status in Status}


def _claims(rows: Sequence[Record], lease_until: float | None = None) -> list[Claim]:
    """`[Claim(_task(row), row["execution_id"]) for row in rows]` of the claim's rows, at half its
    cost per claimed task (2.7 µs against 5.5): the column names read once for the batch (its rows
    share them) and zipped with each row's values, no Status() call, and the Claim made without its
    frozen __init__ (see model.task_from)."""
    if not rows:
        return []
    names = tuple(rows[0].keys())
    not_task = tuple(name for name in names if name not in _TASK_FIELDS)
    claims = []
    for row in rows:
        values = dict(zip(names, row, strict=True))
        execution_id = values["execution_id"]
        for name in not_task:
            del values[name]
        values["status"] = _STATUSES[values["status"]]
        dependencies = values.pop("dependencies", None)  # as _task does: NULL is the default, none
        if dependencies is not None:
            values["dependencies"] = tuple(dependencies)
        claim = object.__new__(Claim)
        object.__setattr__(claim, "__dict__", {
            "task": model.task_from(values), "execution_id": execution_id, "lease_until": lease_until,
            "parents": {}, "parents_left_out": (),
        })  # fmt: skip
        claims.append(claim)
    return claims


def _worker(row: Record) -> WorkerInfo:
    return WorkerInfo(**{**dict(row), "queues": tuple(row["queues"])})


def _new_task_row(task: NewTask, defaults: TaskDefaults) -> tuple[Any, ...]:
    """A `new_task_v4` row (migration 0061), in the type's field order."""
    return (
        task.name,
        task.type,
        {"parameters": dict(task.parameters)},
        task.description,
        task.priority,
        defaults.max_retries if task.max_retries is None else task.max_retries,
        defaults.timeout_seconds if task.timeout_seconds is None else task.timeout_seconds,
        task.idempotency_key,
        task.delay_seconds,
        task.queue or model.DEFAULT_QUEUE,
        task.limit_key,
        task.run_at,
    )


def enqueue_json(tasks: Sequence[NewTask], defaults: TaskDefaults) -> str:
    """enqueue_tasks' $1: the tasks as one JSON array of objects, in order (queries.sql). A field left
    at its default (no description, priority 0, no key, no delay...) is left out, which the statement
    reads as that default: half the bytes to write and for PostgreSQL to parse, for most tasks."""
    rows = []
    for t in tasks:
        row: dict[str, Any] = {
            "name": t.name, "type": t.type, "payload": {"parameters": t.parameters},
            "max_retries": defaults.max_retries if t.max_retries is None else t.max_retries,
            "timeout_seconds": defaults.timeout_seconds if t.timeout_seconds is None else t.timeout_seconds,
            "queue": t.queue or model.DEFAULT_QUEUE,
        }  # fmt: skip
        if t.description:
            row["description"] = t.description
        if t.priority:
            row["priority"] = t.priority
        if t.idempotency_key:
            row["idempotency_key"] = t.idempotency_key
        if t.delay_seconds:
            row["delay_seconds"] = t.delay_seconds
        if t.run_at is not None:
            row["run_at"] = t.run_at.isoformat()
        if t.limit_key:
            row["limit_key"] = t.limit_key
        if t.trace_parent:
            row["trace_parent"] = t.trace_parent
        rows.append(row)
    return json.dumps(rows)


def ids_in_order(
    tasks: Sequence[NewTask], inserted: Iterable[Any], existing: Mapping[str, int]
) -> list[tuple[int, bool]]:
    """(id, created) per task in input order, from enqueue_tasks' rows (id, idempotency_key) and the
    ids of the keys it skipped (ids_by_idempotency_key). Ids come from a sequence in insertion order,
    so unkeyed rows map back by position."""
    by_key: dict[str, int] = {}
    unkeyed: list[int] = []
    for task_id, key in inserted:
        if key is None:
            unkeyed.append(task_id)
        else:
            by_key[key] = task_id
    positions = iter(unkeyed)
    result: list[tuple[int, bool]] = []
    for t in tasks:
        if t.idempotency_key is None:
            result.append((next(positions), True))
        elif t.idempotency_key in by_key:
            result.append((by_key.pop(t.idempotency_key), True))
        else:  # existing already, or repeated in this batch (its first is the one created)
            key = t.idempotency_key
            result.append((existing[key], False) if key in existing else (_first(result, tasks, key), False))
    return result


def _first(result: list[tuple[int, bool]], tasks: Sequence[NewTask], key: str) -> int:
    """The id given to the first of `tasks` with idempotency key `key` (earlier in `result`)."""
    return next(task_id for (task_id, _), t in zip(result, tasks, strict=False) if t.idempotency_key == key)


def skipped_keys(tasks: Sequence[NewTask], inserted: Iterable[Any]) -> list[str]:
    """The idempotency keys of `tasks` that enqueue_tasks inserted nothing for (taken already)."""
    created = {key for _, key in inserted if key is not None}
    return sorted({key for t in tasks if (key := t.idempotency_key) and key not in created})


def _counted(rows: Sequence[Record]) -> set[int]:
    """The attempts finish_attempts counted; ReportNotHeld when it refused an agent's report."""
    refused = [row["not_held"] for row in rows if row["refused"]]
    if refused:
        raise ReportNotHeld(None not in refused, sorted(i for i in refused if i is not None))
    return {row["execution_id"] for row in rows}


def _outcome_row(t: Transition) -> tuple[Any, ...]:
    """An `attempt_outcome_v2` row (migration 0031), in the type's field order."""
    return (
        t.task_id, t.execution_id, int(t.status), t.retries, t.lost_leases, t.delay_seconds,
        t.details, t.outcome, t.error, t.result, t.traceback,
    )  # fmt: skip


class Store:
    """Every read and write of the system; each state change commits with its history row."""

    def __init__(self, pool: Pool, defaults: TaskDefaults | None = None) -> None:
        self.pool = pool
        self.defaults = defaults or TaskDefaults()
        self._waker = Waker(pool)

    # -- tasks -------------------------------------------------------------------------------

    async def create_task(self, new: NewTask, *, id_limit: int | None = None) -> tuple[int, bool]:
        """Insert one task; returns (id, created). An existing idempotency key returns its task."""
        [(task_id, created)] = await self.create_tasks([new], id_limit=id_limit)
        return task_id, created

    async def create_tasks(
        self, tasks: Sequence[NewTask], *, id_limit: int | None = None
    ) -> list[tuple[int, bool]]:
        """Insert tasks in one statement; returns (id, created) per task, in input order.

        With `id_limit` (a client that reads only 32-bit ids), nothing is created when a new id
        would be above it: IdAboveLimit, and the insert is rolled back.
        """
        if not tasks:
            return []
        batch = enqueue_json(tasks, self.defaults)
        # No NOTIFY inside the statement ($3 NULL): the Waker sends it once this has committed.
        if id_limit is None:
            rows = await self.pool.fetch(query("enqueue_tasks"), batch, model.SCHEDULED, None)
        else:
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(query("enqueue_tasks"), batch, model.SCHEDULED, None)
                highest = max((row["id"] for row in rows), default=0)
                if highest > id_limit:
                    raise IdAboveLimit(highest, id_limit)  # leaving the block rolls the insert back
        if rows:
            await self._waker.wake()
        inserted = [(row["id"], row["idempotency_key"]) for row in rows]
        existing: dict[str, int] = {}
        if missing := skipped_keys(tasks, inserted):
            found = await self.pool.fetch(query("ids_by_idempotency_key"), missing)
            existing = {row["idempotency_key"]: row["id"] for row in found}
        return ids_in_order(tasks, inserted, existing)

    async def get_task(self, task_id: int) -> Task:
        row = await self.pool.fetchrow(query("get_task"), task_id)
        if row is None:
            raise TaskNotFound(task_id)
        return _task(row)

    async def list_tasks(
        self,
        *,
        status: Status | frozenset[Status] | None = None,
        task_type: str | None = None,
        name_contains: str | None = None,
        limit: int = 30,
        offset: int = 0,
        oldest_first: bool = False,
    ) -> list[Task]:
        """Tasks newest first (or oldest first); `status` None (or ALL) means every status, a set any
        of its statuses."""
        order = "_oldest_first" if oldest_first else ""
        several = self._several(status)
        if several is not None:
            _, kind, name = self._filters(None, task_type, name_contains)
            rows = await self.pool.fetch(
                query(f"list_tasks_of_statuses{order}"), several, kind, name, limit, offset
            )
            return [_task(row) for row in rows]
        status_number, kind, name = self._filters(self._one(status), task_type, name_contains)
        # Each combination of filters has a statement of its own: see queries.sql.
        if status_number is None and kind is None:
            rows = await self.pool.fetch(query(f"list_tasks{order}"), name, limit, offset)
        elif kind is None:
            rows = await self.pool.fetch(
                query(f"list_tasks_of_status{order}"), status_number, name, limit, offset
            )
        elif status_number is None:
            rows = await self.pool.fetch(query(f"list_tasks_of_type{order}"), kind, name, limit, offset)
        else:
            rows = await self.pool.fetch(
                query(f"list_tasks_of_status_and_type{order}"), status_number, kind, name, limit, offset
            )
        return [_task(row) for row in rows]

    async def list_tasks_sorted(
        self,
        order_by: str,
        *,
        status: Status | frozenset[Status] | None = None,
        task_type: str | None = None,
        name_contains: str | None = None,
        limit: int = 30,
        offset: int = 0,
    ) -> tuple[list[Task], int]:
        """A page of the tasks matching the filters in the order `order_by` names ("duration_desc":
        longest attempt first, ...: queries.sql, list_tasks_sorted), and how many match; when more
        than model.SORTED_MAX do, no page and SORTED_MAX + 1 (one pass over them, stopping there)."""
        statuses = self._several(status)
        one = self._one(status)
        if statuses is None and one is not None and one != Status.ALL:
            statuses = [int(one)]
        _, kind, name = self._filters(None, task_type, name_contains)
        async with stats.planned_for_the_dashboard(self.pool) as conn:
            rows = await conn.fetch(
                query("list_tasks_sorted"),
                statuses,
                kind,
                name,
                order_by,
                limit,
                offset,
                model.SORTED_MAX + 1,
            )
        return [_task(row) for row in rows if row["id"] is not None], int(rows[0]["matching"])

    async def count_tasks(
        self,
        *,
        status: Status | frozenset[Status] | None = None,
        task_type: str | None = None,
        name_contains: str | None = None,
    ) -> int:
        several = self._several(status)
        if several is not None:
            _, kind, name = self._filters(None, task_type, name_contains)
            if name is None:
                return int(await self.pool.fetchval(query("count_tasks_of_statuses"), several, kind))
            return int(await self.pool.fetchval(query("count_tasks_of_statuses_named"), several, kind, name))
        status_number, kind, name = self._filters(self._one(status), task_type, name_contains)
        if name is None:  # the kept counts answer without a scan
            count = await self.pool.fetchval(query("count_tasks"), status_number, kind)
        else:
            count = await self.pool.fetchval(query("count_tasks_named"), status_number, kind, name)
        return int(count)

    @staticmethod
    def _several(status: Status | frozenset[Status] | None) -> list[int] | None:
        """The status numbers of a filter of more than one status (else None: the one-status statements)."""
        if isinstance(status, frozenset) and len(status) > 1 and Status.ALL not in status:
            return sorted(int(s) for s in status)
        return None

    @staticmethod
    def _one(status: Status | frozenset[Status] | None) -> Status | None:
        if isinstance(status, frozenset):
            return None if not status or Status.ALL in status else next(iter(status))
        return status

    @staticmethod
    def _filters(
        status: Status | None, task_type: str | None, name_contains: str | None
    ) -> tuple[int | None, str | None, str | None]:
        status_number = None if status is None or status == Status.ALL else int(status)
        # A literal substring: LIKE's wildcards and escape character in it match themselves.
        pattern = re.sub(r"([\\%_])", r"\\\1", name_contains) if name_contains else None
        return status_number, task_type or None, pattern

    async def history(self, task_id: int) -> list[HistoryEntry]:
        """The status changes of a task, oldest first."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(query("task_history"), task_id)
            if not rows and await conn.fetchrow(query("get_task"), task_id) is None:
                raise TaskNotFound(task_id)
        return [
            HistoryEntry(r["id"], r["task_id"], Status(r["status"]), r["details"], r["created_at"])
            for r in rows
        ]

    async def executions(self, task_id: int) -> list[Execution]:
        """The attempts of a task, first first."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(query("task_executions"), task_id)
            if not rows and await conn.fetchrow(query("get_task"), task_id) is None:
                raise TaskNotFound(task_id)
        return [Execution(**dict(r)) for r in rows]

    async def status_counts(self) -> dict[Status, int]:
        """A count for every task status, zeros included."""
        counts = dict.fromkeys(model.TASK_STATUSES, 0)
        for row in await self.pool.fetch(query("status_counts")):
            counts[Status(row["status"])] = int(row["count"])
        return counts

    async def queue_depth(self) -> int:
        """Tasks due now and waiting for a worker."""
        return int(await self.pool.fetchval(query("queue_depth")))

    async def history_after(self, after_id: int, limit: int = 1000) -> list[HistoryEvent]:
        """Status changes with an id above `after_id`, oldest first, with their task's name and type."""
        rows = await self.pool.fetch(query("history_after"), after_id, limit)
        return [
            HistoryEvent(
                HistoryEntry(r["id"], r["task_id"], Status(r["status"]), r["details"], r["created_at"]),
                r["task_name"],
                r["task_type"],
            )
            for r in rows
        ]

    async def last_history_id(self) -> int:
        return int(await self.pool.fetchval(query("last_history_id")))

    async def last_attempt_id(self) -> int:
        """The id of the newest attempt (0: none yet)."""
        return int(await self.pool.fetchval(query("last_attempt_id")))

    async def attempts_after(
        self, after: int, limit: int, again: Collection[int] = ()
    ) -> list[AttemptFigures]:
        """The attempts with an id above `after` (oldest first, at most `limit`), and those of `again`
        (at or below it) that exist; by primary key (api/metrics.py)."""
        rows = await self.pool.fetch(query("attempts_after"), after, limit, list(again))
        return [AttemptFigures(**dict(r)) for r in rows]

    async def ping(self) -> None:
        """Raise unless the database answers."""
        await self.pool.fetchval(query("ping"))

    async def set_status(
        self,
        task_id: int,
        target: Status,
        message: str = "",
        *,
        verbatim: bool = False,
        only_from: frozenset[Status] | None = None,
        holder: str | None = None,
        hold_seconds: float | None = None,
    ) -> Task:
        """An operator's status change: only legal transitions, history in the same transaction.

        The history line wraps `message` ("Task cancelled: <message>"), or is `message` itself when
        `verbatim` and it is not empty. `only_from` narrows the statuses the task may be in (checked
        under the row lock, so it cannot change in between). With `holder` (a principal), the task
        must be running an attempt of an agent that principal registered: NotHeld otherwise.

        With `hold_seconds` (UpdateTaskStatus), the original's controller may be reporting its own
        attempts for the agent holding the task: see _original_report.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(query("lock_task"), task_id)
            if row is None:
                raise TaskNotFound(task_id)
            current = Status(row["status"])
            if (
                hold_seconds is not None
                and _original_report_applies(current, target, message)
                and await self._original_report(conn, row, target, message, holder, hold_seconds)
            ):
                updated = await conn.fetchrow(query("get_task"), task_id)
                assert updated is not None
                return _task(updated)
            if holder is not None:
                await self._check_holder(conn, task_id, current, row["execution_id"], holder)
            if target == Status.QUEUED and row["workflow_id"] is not None:
                raise workflows.StepOfWorkflow(task_id, row["step"], row["workflow_id"])
            legal = target in model.OPERATOR_TARGETS and model.can_move(current, target)
            if not legal or (only_from is not None and current not in only_from):
                raise IllegalTransition(task_id, current, target)
            if target == Status.CANCELLED:
                details, outcome = model.cancelled_details(message), Outcome.CANCELLED
            elif target == Status.QUEUED:
                details, outcome = model.requeued_details(message), Outcome.INTERRUPTED
            else:
                details = message or f"Status set to {target.name} by an operator"
                outcome = Outcome.SUCCEEDED if target == Status.SUCCEEDED else Outcome.FAILED
            if verbatim and message:
                details = message
            await conn.fetch(
                query("set_status"), task_id, int(target), int(current), details, outcome, NOTIFY_CHANNEL
            )
            updated = await conn.fetchrow(query("get_task"), task_id)
        assert updated is not None
        return _task(updated)

    async def _original_report(
        self, conn: Connection, row: Record, target: Status, message: str, holder: str | None, hold: float
    ) -> bool:
        """The original's controller reports on a task its agent holds (issue 19), mapped onto our
        attempts: RUNNING during our attempt is a history line; "Attempt N failed: ..." closes the
        attempt as failed and holds the task RETRYING for the agent (`hold` seconds, which its open
        stream extends); RUNNING then opens the agent's next attempt; FAILED then settles it (its
        SUCCEEDED or FAILED during an attempt is set_status's own change). Only for an agent's
        attempt (of an agent `holder` registered, when given): False otherwise, and set_status goes
        on as for anyone else (refusing RUNNING; NotHeld for another's agent)."""
        task = _task(row)
        current, execution_id = task.status, task.execution_id
        who = None if execution_id is None else await conn.fetchrow(query("attempt_worker"), execution_id)
        if who is None or who["kind"] != "agent" or (holder is not None and who["principal"] != holder):
            return False
        held_between = current == Status.RETRYING and who["outcome"] == Outcome.FAILED
        assert execution_id is not None
        if current == Status.RUNNING and target == Status.RUNNING:
            await conn.execute(query("note_running"), task.id, message)
        elif current == Status.RUNNING and target == Status.FAILED and model.original_attempt_failed(message):
            await self._finish(conn, [model.original_attempt_ended(task, execution_id, message, hold)])
        elif held_between and target == Status.RUNNING:
            await conn.execute(query("reopen_attempt"), task.id, who["id"], message, hold)
        elif held_between and target == Status.FAILED:  # its final FAILED after its last attempt's
            settle = (int(target), int(current), message, Outcome.FAILED, NOTIFY_CHANNEL)
            await conn.fetch(query("set_status"), task.id, *settle)
        else:  # not held between its attempts (its lease ran out, say): as for anyone else
            return False
        return True

    @staticmethod
    async def _check_holder(
        conn: Connection, task_id: int, current: Status, execution_id: int | None, holder: str
    ) -> None:
        """Under the task's row lock: its open attempt belongs to an agent `holder` registered."""
        who = None
        if current == Status.RUNNING and execution_id is not None:
            who = await conn.fetchrow(query("attempt_holder"), execution_id)
        if who is None or who["kind"] != "agent" or who["principal"] != holder:
            raise NotHeld(f"task {task_id} is not running an attempt of an agent of yours")

    # -- bulk actions (issue 21) --------------------------------------------------------------

    async def cancel_tasks(
        self, selection: TaskSelection, details: str, *, span: IdSpan | None = None,
        until: float | None = None, batch: int = BULK_BATCH,
    ) -> tuple[int, IdSpan | None]:  # fmt: skip
        """Cancel the selected tasks that may be (QUEUED, RETRYING, RUNNING, WAITING), each with the history
        line `details`; a running one's attempt is fenced. The rest: see _in_batches."""
        cancelled = (details, Outcome.CANCELLED)
        return await self._in_batches(
            selection, model.CANCELLABLE, "cancel_picked", cancelled, span, until, batch
        )

    async def retry_tasks(
        self, selection: TaskSelection, details: str, *, span: IdSpan | None = None,
        until: float | None = None, batch: int = BULK_BATCH,
    ) -> tuple[int, IdSpan | None]:  # fmt: skip
        """Queue the selected finished tasks again, each with the history line `details`."""
        count, left = await self._in_batches(
            selection, model.RETRYABLE, "retry_picked", (details,), span, until, batch
        )
        if count:
            await self._waker.wake()  # after the commit, as for new tasks (store/waker.py)
        return count, left

    async def delete_tasks(
        self, selection: TaskSelection, *, span: IdSpan | None = None, until: float | None = None,
        batch: int = BULK_BATCH,
    ) -> tuple[int, IdSpan | None]:  # fmt: skip
        """Delete the selected finished tasks with their history and attempts."""
        return await self._in_batches(selection, model.DELETABLE, "delete_picked", (), span, until, batch)

    async def count_selected(self, selection: TaskSelection, applicable: frozenset[Status]) -> int:
        """How many tasks a bulk action applying to `applicable` statuses would take now (a dry run)."""
        statuses = sorted(int(s) for s in selection.statuses_within(applicable))
        if not statuses:
            return 0
        return int(await self.pool.fetchval(query("count_selected"), statuses, *self._conditions(selection)))

    def _conditions(self, selection: TaskSelection) -> tuple[Any, ...]:
        """The selection's conditions as pick_tasks and count_selected take them (None: any)."""
        _, kind, name = self._filters(None, selection.type, selection.name_contains)
        ids = sorted(selection.ids) or None
        return ids, kind, name, selection.created_after, selection.created_before, selection.queue

    async def _in_batches(
        self,
        selection: TaskSelection,
        applicable: frozenset[Status],
        action: str,
        arguments: tuple[Any, ...],
        span: IdSpan | None,
        until: float | None,
        batch: int,
    ) -> tuple[int, IdSpan | None]:
        """Apply the statement `action` to the selected tasks of the `applicable` statuses, `batch`
        at a time in id order, each batch its own short transaction. Only the tasks that existed when
        the action began are taken (the highest id then bounds it), so it always ends.

        `span`: the ids left to look at (None: every task's, from now on). No batch starts after
        `until` (the event loop's clock) but the first. Returns the count acted on, and the span left
        when it stopped for `until` (None: done).
        """
        statuses = sorted(int(s) for s in selection.statuses_within(applicable))
        if span is None:
            span = IdSpan(0, int(await self.pool.fetchval(query("last_task_id"))))
        if selection.ids:
            span = IdSpan(max(span.after, min(selection.ids) - 1), min(span.last, max(selection.ids)))
        conditions = self._conditions(selection)
        clock = asyncio.get_running_loop().time
        done = batches = 0
        while statuses and span.after < span.last:
            if batches and until is not None and clock() >= until:
                return done, span
            batches += 1
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    query("pick_tasks"), span.after, span.last, statuses, batch, *conditions
                )
                picked = [row["id"] for row in rows]
                if picked:
                    done += int(await conn.fetchval(query(action), picked, *arguments))
            if len(picked) < batch:
                break
            span = IdSpan(picked[-1], span.last)
        return done, None

    # -- workflows (migration 0070) ------------------------------------------------------------

    async def create_workflow(
        self,
        name: str,
        graph: WorkflowGraph,
        *,
        idempotency_key: str | None = None,
        by: str = "",
        trace_parent: str | None = None,
    ) -> tuple[int, bool]:
        """Create a checked workflow (rules.workflows.checked_graph) and its steps, each keeping
        `trace_parent`; (id, created)."""
        rows = [_new_task_row(step.task, self.defaults) for step in graph.steps]
        created = await workflows.create(
            self.pool, name, graph, rows, idempotency_key=idempotency_key, by=by, trace_parent=trace_parent
        )
        if created[1]:
            await self._waker.wake()
        return created

    async def get_workflow(self, workflow_id: int) -> model.Workflow:
        return await workflows.get(self.pool, workflow_id)

    async def list_workflows(
        self, status: Status | None = None, limit: int = 100, offset: int = 0
    ) -> list[model.Workflow]:
        return await workflows.list_(self.pool, status, limit, offset)

    async def cancel_workflow(self, workflow_id: int) -> int:
        return await workflows.cancel(self.pool, workflow_id)

    async def retry_workflow(self, workflow_id: int) -> int:
        retried = await workflows.retry(self.pool, workflow_id)
        if retried:
            await self._waker.wake()
        return retried

    async def unfinished_parents(self, task_ids: Sequence[int]) -> dict[int, list[tuple[str, Status]]]:
        return await workflows.unfinished_parents(self.pool, task_ids)

    async def release_stranded_steps(self) -> int:
        """Queue the WAITING steps whose parents all succeeded but were never released (a previous
        release's worker finished their last parent); how many."""
        return await workflows.release_stranded(self.pool, NOTIFY_CHANNEL)

    # -- the queue ---------------------------------------------------------------------------

    async def claim(
        self,
        worker_id: str,
        limit: int,
        task_types: Iterable[str] = (),
        lease_seconds: float = 30.0,
        queues: Iterable[str] = (),
    ) -> list[Claim]:
        """Claim up to `limit` due tasks for `worker_id`, each starting an attempt under a lease."""
        return await self.claim_for([worker_id] * limit, task_types, lease_seconds, queues)

    async def claim_for(
        self,
        owners: Sequence[str],
        task_types: Iterable[str] = (),
        lease_seconds: float = 30.0,
        queues: Iterable[str] = (),
        lease_until: float | None = None,
    ) -> list[Claim]:
        """Claim up to one due task per slot, the first (by priority, due time, age) leased to
        `owners[0]`, the next to `owners[1]`...: the server's dispatcher claims for many agents at once.
        Only tasks of `task_types` and `queues` (empty: any), and none of a paused queue or type.
        `lease_until`: when the leases end on the caller's monotonic clock (Claim.lease_until)."""
        if not owners:
            return []
        rows = await self.pool.fetch(
            query("claim_tasks"), list(owners), len(owners), list(task_types), lease_seconds, list(queues)
        )
        claims = _claims(rows, lease_until)
        steps = [c.task.id for c in claims if c.task.workflow_id is not None]
        if not steps:
            return claims
        # Workflow steps read what they waited for: one more query, only when some were claimed.
        parents = await workflows.parents_results(self.pool, steps)
        return [
            dataclasses.replace(c, parents=parents[c.task.id][0], parents_left_out=parents[c.task.id][1])
            if c.task.id in parents
            else c
            for c in claims
        ]

    async def finish(
        self, transitions: Sequence[Transition], *, agent_id: str | None = None, principal: str | None = None
    ) -> set[int]:
        """Apply decided ends of attempts, fenced by each one's execution id (its token).

        Returns the execution ids that counted. One missing was refused: its attempt is no longer
        the task's current one (cancelled, reaped, settled by hand), and nothing changed for it.
        An agent's report names `agent_id` and the caller (`principal`, None: auth is off): unless
        every attempt was started for that agent and the caller registered it, nothing changes and
        ReportNotHeld says why.
        """
        if not transitions:
            return set()
        return await self._finish(self.pool, transitions, agent_id, principal)

    async def _finish(
        self,
        conn: Pool | Connection,
        transitions: Sequence[Transition],
        agent_id: str | None = None,
        principal: str | None = None,
    ) -> set[int]:
        # In attempt order: two statements locking the same attempts lock them in the same order.
        ordered = sorted(transitions, key=lambda t: t.execution_id)
        outcomes = [_outcome_row(t) for t in ordered]
        finish = query("finish_attempts")
        if not any(t.spawned for t in ordered):
            return _counted(await conn.fetch(finish, outcomes, NOTIFY_CHANNEL, agent_id, principal))
        # Children spawned: created first, with the outcomes, in one transaction (store/workflows.py);
        # a refused report rolls them back.
        async with contextlib.AsyncExitStack() as stack:
            if isinstance(conn, asyncpg.Pool):
                conn = await stack.enter_async_context(conn.acquire())
            await stack.enter_async_context(conn.transaction())
            await workflows.spawn(conn, ordered, self.defaults)
            return _counted(await conn.fetch(finish, outcomes, NOTIFY_CHANNEL, agent_id, principal))

    async def extend_leases(
        self, worker_id: str, execution_ids: Sequence[int], lease_seconds: float
    ) -> set[int]:
        """Heartbeat: extend the leases of the attempts `worker_id` still holds; returns those."""
        rows = await self.pool.fetch(query("extend_leases"), worker_id, sorted(execution_ids), lease_seconds)
        return {row["id"] for row in rows}

    async def extend_agent_leases(
        self, agent_id: str, execution_ids: Sequence[int], lease_seconds: float, principal: str | None,
        *, alive: bool = True,
    ) -> set[int]:  # fmt: skip
        """An agent's heartbeat through the API: extend_leases, for an agent `principal` registered
        (None: auth is off). WorkerIdTaken, and nothing changes, when another principal did. `alive`
        False: the leases only, the agent not heard (the Kubernetes controller's, for the Jobs it runs)."""
        row = await self.pool.fetchrow(
            query("extend_agent_leases"), agent_id, sorted(execution_ids), lease_seconds, principal, alive
        )
        assert row is not None
        if row["mine"] is False:
            raise WorkerIdTaken(agent_id)
        return set(row["kept"])

    async def extend_original_holds(
        self, agent_id: str, task_ids: Sequence[int], lease_seconds: float
    ) -> set[int]:
        """An original-style agent's open stream: keep the tasks it holds (their open attempt's
        lease, or their hold between its controller's attempts); returns those it still holds."""
        held = sorted(task_ids)
        rows = await self.pool.fetch(query("extend_original_holds"), agent_id, held, lease_seconds)
        return {row["id"] for row in rows}

    async def release_original_holds(self, agent_id: str, task_ids: Sequence[int]) -> int:
        """An original-style agent's stream ended: what it held between attempts is due at once."""
        if not task_ids:
            return 0
        row = await self.pool.fetchrow(
            query("release_original_holds"), agent_id, sorted(task_ids), NOTIFY_CHANNEL
        )
        return int(row["released"]) if row is not None else 0

    async def reap_expired_leases(self, policy: RetryPolicy, limit: int = 1000) -> list[Transition]:
        """Put back running tasks whose worker stopped heartbeating (no retry spent; see model)."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(query("expired_leases"), limit)
            if not rows:
                return []
            transitions = [model.lease_expired(_task(row), row["execution_id"], policy) for row in rows]
            await self._finish(conn, transitions)
        return transitions

    # -- retention ---------------------------------------------------------------------------

    async def forget_idle_limit_keys(self, before: datetime, limit: int) -> int:
        """Drop the kept starts of keys that started nothing since `before` (store/limits.py)."""
        return await limits.forget_idle_keys(self.pool, before, limit)

    async def delete_finished(self, status: Status, before: datetime, limit: int) -> int | None:
        """Delete up to `limit` finished tasks of `status` last changed before `before`, with their
        history and attempts; None when another process holds the retention lock (see retention.py)."""
        return await retention.delete_finished(self.pool, status, before, limit)

    async def delete_finished_workflows(self, status: Status, before: datetime, limit: int) -> int | None:
        """Retention of whole workflows (retention.delete_finished_workflows)."""
        return await retention.delete_finished_workflows(self.pool, status, before, limit)

    # -- maintenance -------------------------------------------------------------------------

    async def vacuum_state(self) -> maintenance.VacuumState:
        """Autovacuum's switches and our hot tables' dead tuples (store/maintenance.py)."""
        return await maintenance.vacuum_state(self.pool)

    async def vacuum(
        self, url: str, table: maintenance.TableVacuum, limits: maintenance.VacuumLimits
    ) -> maintenance.Vacuumed | None:
        """VACUUM one hot table under the retention lock, on a connection of its own to `url`; None
        when another process holds the lock (maintenance.vacuum)."""
        return await maintenance.vacuum(url, table, limits)

    # -- workers -----------------------------------------------------------------------------

    async def register_worker(
        self,
        worker_id: str,
        host: str,
        pid: int,
        concurrency: int,
        task_types: Sequence[str],
        kind: str = "worker",
        principal: str | None = None,
        queues: Sequence[str] = (),
        version: str | None = None,
    ) -> None:
        """Record a worker (`kind` "worker") or an agent ("agent") as started, serving `queues` (empty:
        every queue), registered by `principal` (None: a direct worker, or auth is off), running release
        `version`. WorkerIdTaken when another principal registered that id: it is not taken over."""
        registered = await self.pool.fetchval(
            query("register_worker"), worker_id, host, pid, concurrency, list(task_types), kind, principal,
            list(queues), version,
        )  # fmt: skip
        if registered is None:
            raise WorkerIdTaken(worker_id)

    async def stop_worker(self, worker_id: str) -> None:
        await self.pool.execute(query("stop_worker"), worker_id)

    async def live_task_types(self, within_seconds: float) -> dict[str, dict[str, Any] | None]:
        """Task types the workers heard from within `within_seconds` can run, with their declarations."""
        return await task_types.live_task_types(self.pool, within_seconds)

    async def without_live_worker(
        self, kinds: Iterable[tuple[str, str]], within_seconds: float
    ) -> set[tuple[str, str]]:
        """Of the (type, queue) pairs `kinds`, those no worker or agent heard from within
        `within_seconds` runs (the type, while serving the queue)."""
        wanted = sorted(set(kinds))
        if not wanted:
            return set()
        pairs = [{"type": t, "queue": q} for t, q in wanted]  # jsonb: the pool's codec encodes it
        rows = await self.pool.fetch(query("kinds_without_live_worker"), pairs, within_seconds)
        return {(row["type"], row["queue"]) for row in rows}

    # -- queues and pauses -------------------------------------------------------------------

    async def pause(self, kind: str, name: str, reason: str = "", by: str = "") -> tuple[Pause, bool]:
        """Pause a queue (`kind` "queue") or a task type ("type") cluster-wide; (the pause, whether it
        is new: pausing what is paused keeps the first pause)."""
        row = await self.pool.fetchrow(query("pause"), kind, name, reason, by)
        assert row is not None
        return _pause(row), bool(row["created"])

    async def resume(self, kind: str, name: str) -> bool:
        """Lift a pause; whether there was one. The workers are woken: its tasks may start now."""
        resumed = await self.pool.fetchrow(query("resume"), kind, name) is not None
        if resumed:
            await self._waker.wake()
        return resumed

    async def pauses(self) -> list[Pause]:
        return [_pause(row) for row in await self.pool.fetch(query("pauses"))]

    async def queue_counts(self) -> dict[str, tuple[int, int]]:
        """Queue -> (waiting, running), from the kept counts (no scan); every queue a task ever had."""
        return {
            row["queue"]: (int(row["waiting"]), int(row["running"]))
            for row in await self.pool.fetch(query("queue_counts"))
        }

    async def waiting_without_live_worker(self, within_seconds: float) -> dict[str, int]:
        """Tasks waiting (QUEUED or RETRYING) by type, for each type no live worker runs; from the
        kept counts (no scan)."""
        rows = await self.pool.fetch(query("waiting_without_live_worker"), within_seconds)
        return {row["type"]: int(row["count"]) for row in rows}

    # -- schedules (store/schedules.py) --------------------------------------------------------

    async def create_schedule(
        self,
        spec: ScheduleSpec,
        next_tick: datetime | None,
        *,
        declared_type: str | None = None,
        by: str = "",
    ) -> Schedule | None:
        """Store a checked schedule; None when its name is taken."""
        return await schedules.create(
            self.pool, spec, next_tick, self.defaults, declared_type=declared_type, by=by
        )

    async def update_schedule(
        self,
        schedule_id: int,
        spec: ScheduleSpec,
        next_tick: datetime | None,
        *,
        declared_type: str | None = None,
    ) -> Schedule | None:
        return await schedules.update(
            self.pool, schedule_id, spec, next_tick, self.defaults, declared_type=declared_type
        )

    async def change_schedule(self, name: str, changed: schedules.Change) -> Schedule | None:
        """Change a schedule under its lock (`changed`: as it stands -> its new spec and next tick);
        None when there is no such schedule."""
        return await schedules.change(self.pool, name, changed, self.defaults)

    async def get_schedule(self, name: str) -> Schedule | None:
        return await schedules.get(self.pool, name)

    async def get_schedule_by_id(self, schedule_id: int) -> Schedule | None:
        return await schedules.get_by_id(self.pool, schedule_id)

    async def list_schedules(self, limit: int = 1000, offset: int = 0) -> list[Schedule]:
        return await schedules.list_all(self.pool, limit, offset)

    async def schedules_declared_by(self, task_types: Sequence[str]) -> list[Schedule]:
        return await schedules.declared_by(self.pool, task_types)

    async def undeclare_schedule(self, schedule_id: int) -> bool:
        return await schedules.undeclare(self.pool, schedule_id)

    async def declarations_changed(self) -> datetime | None:
        """When a task type's published declaration last changed."""
        return await task_types.declarations_changed(self.pool)

    async def declarations(self) -> dict[str, Any]:
        return await task_types.declarations(self.pool)

    async def container_declarations(self) -> dict[str, dict[str, Any]]:
        """The published declarations of container task types, by name."""
        return await task_types.container_declarations(self.pool)

    async def delete_schedule(self, name: str) -> bool:
        return await schedules.delete(self.pool, name)

    async def fire_due_schedules(
        self, now: datetime, plan: schedules.Plan, limit: int = 100
    ) -> tuple[list[int], dict[str, str]]:
        """Create the due ticks' tasks (exactly once each) and wake the workers; their ids, and the
        schedules that could not be fired with why (store/schedules.py)."""
        created, failed = await schedules.fire_due(self.pool, now, plan, limit)
        if created:
            await self._waker.wake()
        return created, failed

    async def trigger_schedule(self, name: str) -> int | None:
        """Create a schedule's task now, by hand; its id (None: no such schedule)."""
        task_id = await schedules.trigger(self.pool, name)
        if task_id is not None:
            await self._waker.wake()
        return task_id

    # -- limits (store/limits.py) -------------------------------------------------------------

    async def list_limits(self) -> list[limits.Limit]:
        """Every limit row (those cleared included), with its tasks waiting and running."""
        return await limits.limits(self.pool)

    async def set_limit(self, kind: str, name: str, changes: Mapping[str, Any], set_by: str) -> limits.Limit:
        """Change the limit of a type or queue at run time (`changes`: any of concurrency, rate and key,
        None: no such limit; the others stay), as `set_by`: the type's declarations do not replace it.
        Its tasks waiting and running; the workers are woken (a limit raised or lifted may let tasks
        start now)."""
        await limits.set_limit(self.pool, kind, name, changes, set_by)
        return await self._limit_now(kind, name)

    async def reset_limit(self, kind: str, name: str) -> limits.Limit:
        """Drop the run-time setting: a type's declared limit rules again, a queue's is cleared."""
        await limits.reset_limit(self.pool, kind, name)
        return await self._limit_now(kind, name)

    async def _limit_now(self, kind: str, name: str) -> limits.Limit:
        await self._waker.wake()
        found = [x for x in await limits.limits(self.pool) if (x.kind, x.name) == (kind, name)]
        return found[0] if found else limits.Limit(kind, name)

    async def limit_figures(self) -> list[limits.LimitFigures]:
        """Per limit: waiting, keys waiting, most for a key, running, keys at their limit (no labels per
        key: the metrics stay bounded whatever the number of customers)."""
        return await limits.figures(self.pool)

    async def limit_waits(self, task_ids: Sequence[int]) -> dict[int, limits.LimitWait]:
        """Of waiting tasks `task_ids`, those under a limit their key has reached, with why."""
        return await limits.waits(self.pool, task_ids)

    # -- task type declarations --------------------------------------------------------------

    async def register_task_types(self, declarations: Mapping[str, Mapping[str, Any]]) -> None:
        """Publish task type declarations (name -> TaskTypeSpec JSON), and the limits they declare;
        see store/task_types.py and store/limits.py."""
        await task_types.register_task_types(self.pool, declarations)
        await limits.declare_limits(self.pool, declarations)

    async def installation_id(self) -> str:
        return await task_types.installation_id(self.pool)

    async def list_workers(self, limit: int = 100) -> list[WorkerInfo]:
        rows = await self.pool.fetch(query("list_workers"), limit)
        return [_worker(row) for row in rows]

    # -- the operator's dashboard (issue 24) ---------------------------------------------------

    async def get_worker(self, worker_id: str) -> WorkerInfo:
        row = await self.pool.fetchrow(query("get_worker"), worker_id)
        if row is None:
            raise stats.WorkerNotFound(worker_id)
        return _worker(row)

    async def worker_attempts(
        self, worker_id: str
    ) -> tuple[list[stats.WorkerAttempt], list[stats.WorkerAttempt]]:
        """A worker's latest attempts, and its latest failures (stats.py says how many)."""
        return await stats.worker_attempts(self.pool, worker_id)

    async def type_stats(
        self, range_seconds: float, buckets: int
    ) -> tuple[list[stats.TypeStats], stats.Throughput]:
        """Per task type, and in `buckets` equal buckets, the attempts finished within the last
        `range_seconds`."""
        return await stats.window(self.pool, range_seconds, buckets)

    async def window_index_missing(self) -> bool:
        """Whether type_stats reads every attempt where an index could serve it (stats.py)."""
        return await stats.window_index_missing(self.pool)
