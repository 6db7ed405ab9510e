"""`@task` with typed calls: `resize_avatar.enqueue(conn, width=128)`, `resize_avatar.create(client, ...)`.

The declared type checks a call's arguments against the function's own signature (mypy, through the
ParamSpec) and its declaration (here, before anything is sent or written), and sends them as the
strings its worker parses back. Lives in the client layer: the plugins below it cannot reach a client.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Protocol, cast, overload

from taskservice.model import NewTask, TaskOptions
from taskservice.plugins import context, register_declared
from taskservice.plugins.context import TaskContext
from taskservice.plugins.declare import Cron, DeclaredSchedule, P, ParameterError, R, TypedTask
from taskservice.protocol.errors import InvalidArgument

if TYPE_CHECKING:
    from taskservice.client.asynchronous import AsyncClient, AsyncTaskHandle
    from taskservice.client.sync import Client, TaskHandle

# The parameters a task is created with: the function's, less a leading context (the worker gives it).
S = ParamSpec("S")


class DeclaredTask(TypedTask[P, R], Generic[P, R, S]):
    """What `@task` returns: the function (still callable as itself, `P`), the task type a worker runs,
    and typed calls that create its tasks (`S`), each with the options of `with_options` (by default
    none)."""

    options: TaskOptions = TaskOptions()

    def with_options(self, options: TaskOptions) -> DeclaredTask[P, R, S]:
        """The same type whose typed calls create tasks with `options` (priority, delay or run_at,
        idempotency key, max retries, timeout, name: by default the type's)."""
        bound = copy.copy(self)
        bound.options = options
        return bound

    def sent(self, *args: S.args, **kwargs: S.kwargs) -> dict[str, str]:
        """The parameters as sent; InvalidArgument (as the server says it) when one breaks its rule."""
        try:
            return self.parameters(*args, **kwargs)
        except ParameterError as error:
            raise InvalidArgument(f"payload.parameters[{error.name!r}]: {error.rule}") from None

    def new(self, /, *args: S.args, **kwargs: S.kwargs) -> NewTask:
        """The task a typed call would create, checked here: one of many for `taskservice.enqueue_many`
        (`enqueue_many(conn, [square.new(x=i) for i in range(1000)])`) or `Client.create_tasks`."""
        return self.options.new_task(self.name, self.sent(*args, **kwargs))

    def enqueue(self, conn: Any, /, *args: S.args, **kwargs: S.kwargs) -> int:
        """Create a task of this type in `conn`'s transaction (see `taskservice.enqueue`); its id."""
        from taskservice.client.enqueue import enqueue  # the drivers' code only when it is used

        return enqueue(conn, type=self.name, parameters=self.sent(*args, **kwargs), options=self.options)

    async def enqueue_async(self, conn: Any, /, *args: S.args, **kwargs: S.kwargs) -> int:
        """`enqueue` on an async connection (asyncpg, psycopg's AsyncConnection, SQLAlchemy's)."""
        from taskservice.client.enqueue import enqueue_async

        parameters = self.sent(*args, **kwargs)
        return await enqueue_async(conn, type=self.name, parameters=parameters, options=self.options)

    def spawn(self, /, *args: S.args, **kwargs: S.kwargs) -> str:
        """From inside a running task: a child of this type, created with the attempt's outcome (see
        `TaskContext.spawn`), named by its number among the attempt's spawns; its name."""
        return context.current().spawn(self.name, self.sent(*args, **kwargs), options=self.options)

    def spawn_named(self, name: str, /, *args: S.args, **kwargs: S.kwargs) -> str:
        """`spawn` with the child's name under this task: "<this step>/<name>" in the workflow."""
        return context.current().spawn(self.name, self.sent(*args, **kwargs), name=name, options=self.options)

    @overload
    def create(self, client: Client, /, *args: S.args, **kwargs: S.kwargs) -> TaskHandle: ...

    @overload
    def create(
        self, client: AsyncClient, /, *args: S.args, **kwargs: S.kwargs
    ) -> Coroutine[Any, Any, AsyncTaskHandle]: ...

    def create(self, client: Client | AsyncClient, /, *args: S.args, **kwargs: S.kwargs) -> Any:
        """Create a task of this type through the API: its handle (with an AsyncClient, awaited)."""
        return client.create_task(type=self.name, parameters=self.sent(*args, **kwargs), options=self.options)


class Declare(Protocol):
    """`@task(...)`: a function whose first parameter is the attempt's context is created without it."""

    @overload
    def __call__(
        self, function: Callable[Concatenate[TaskContext, S], R], /
    ) -> DeclaredTask[Concatenate[TaskContext, S], R, S]: ...

    @overload
    def __call__(self, function: Callable[P, R], /) -> DeclaredTask[P, R, P]: ...


def task(
    name: str,
    *,
    description: str | None = None,
    max_retries: int | None = None,
    timeout: float | None = None,
    backoff: float | None = None,
    permanent: tuple[type[BaseException], ...] = (),
    queue: str | None = None,
    concurrency: int | None = None,
    concurrency_key: str | None = None,
    rate_limit: str | None = None,
    cron: str | None = None,
    schedules: Sequence[DeclaredSchedule] = (),
) -> Declare:
    """Declare the decorated function (sync or async) as task type `name`.

    Its parameters come from its signature (str, int, float, bool, an Enum, pydantic's EmailStr (an
    e-mail address: declared with format "email"), or Optional of one; a
    default makes one optional; described in the docstring's Args section or by
    `Annotated[int, "what it is"]`, bounds by `Annotated[float, Field(ge=0)]`) or from one pydantic
    model parameter. A parameter annotated `TaskContext`, or named `ctx`, receives the attempt's
    context. `max_retries` and `timeout` (seconds) are the defaults of the type's tasks; `backoff` the
    first retry's delay; `permanent`, errors that fail the task without a retry; `queue`, the queue its
    tasks wait in (else "default"), served by the workers started with it (`serve --queue`).
    `concurrency` caps the attempts running at once and `rate_limit` ("5/s", "100/min") the starts,
    across every worker, agent and server, per value of the parameter `concurrency_key` when given
    (e.g. "customer_id": each customer counts alone); adjustable at run time (`task-cli limit set`).
    `cron` ("0 * * * *", in UTC) creates one of its tasks at each tick, without parameters; `schedules`
    any number of `Cron(...)` and `Every(...)` with their own parameters, time zone and policies. A
    worker running the type creates them, and updates them when the code changes them.
    Every Registry (and so every worker in this process) knows the type once its module is imported.
    Its tasks are created by `resize_avatar.enqueue(conn, width=128)`, `enqueue_async`, or
    `resize_avatar.create(client, width=128)`, with `with_options(TaskOptions(...))` for the rest; a
    context parameter is left out of them when it comes first (mypy cannot drop a later one).
    """

    def declare(function: Callable[..., Any]) -> DeclaredTask[..., Any, ...]:
        declared: DeclaredTask[..., Any, ...] = DeclaredTask(
            name,
            function,
            description=description,
            max_retries=max_retries,
            timeout=timeout,
            backoff=backoff,
            permanent=tuple(permanent),
            queue=queue,
            concurrency=concurrency,
            concurrency_key=concurrency_key,
            rate_limit=rate_limit,
            schedules=(*((Cron(cron),) if cron is not None else ()), *schedules),
        )
        register_declared(name, declared)
        return declared

    return cast(Declare, declare)  # the overloads say what `declare` does
