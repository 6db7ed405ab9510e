"""Ids on the wire: 64-bit twins for our clients, and a clear error for the original's int32 clients.

The rules are written in proto/cloud/v1/task.proto (its header comment): every int32 id field has a
twin `<field>64`; responses fill both while an id fits; a client that reads the twins sends
`Task-Id-Width: 64`; to any other client, an id that does not fit is an `out_of_range` error, except
where the answer can do without it (ListTasks leaves such tasks out and says so; GetTaskHistory
numbers the rows of a task whose id fits).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from taskservice.rules.tasks import BrokenRule

ID_WIDTH_HEADER = "task-id-width"
WIDE = "64"
INT32_MAX = 2**31 - 1
TWIN_SUFFIX = "64"

REQ = TypeVar("REQ")
RES = TypeVar("RES")


class IdOutOfRange(Exception):
    """An id that an int32 field cannot hold, for a client that only reads the int32 fields."""

    def __init__(self, field: str, value: int) -> None:
        super().__init__(
            f"{field}: id {value} does not fit in 32 bits; read `{field}64` instead and send the "
            f"request header `Task-Id-Width: 64` (an upgraded client does)"
        )
        self.field, self.value = field, value


def reads_wide_ids(ctx: RequestContext[Any, Any]) -> bool:
    """Whether the client said it reads the 64-bit twins (`Task-Id-Width: 64`)."""
    return ctx.request_headers().get(ID_WIDTH_HEADER, "").strip() == WIDE


def narrow(value: int) -> int:
    """The int32 field's value of an id: the id while it fits, else 0 (the twin carries it)."""
    return value if value <= INT32_MAX else 0


def requested(narrow_value: int, wide_value: int, field: str = "id") -> int:
    """The id a request names, from its int32 field or its 64-bit twin."""
    if wide_value and narrow_value and wide_value != narrow_value:
        raise BrokenRule(
            f"{field}64", f"names task {wide_value} but `{field}` names {narrow_value}; send one of them"
        )
    return wide_value or narrow_value


def check_narrow(message: Message, path: str = "") -> None:
    """Raise IdOutOfRange when `message` holds an id its int32 twin could not (recursively)."""
    for field, value in message.ListFields():
        name = f"{path}{field.name}"
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                continue  # no ids in maps (GetStatus's counts)
            repeated = field.is_repeated
            for index, item in enumerate(value if repeated else [value]):
                check_narrow(item, f"{name}[{index}]." if repeated else f"{name}.")
            continue
        if not field.name.endswith(TWIN_SUFFIX) or field.type != FieldDescriptor.TYPE_INT64:
            continue
        base = field.name.removesuffix(TWIN_SUFFIX)
        if message.DESCRIPTOR.fields_by_name.get(base) is None:
            continue
        repeated = field.is_repeated
        for index, wide in enumerate(value if repeated else [value]):
            if wide > INT32_MAX:
                raise IdOutOfRange(f"{path}{base}[{index}]" if repeated else f"{path}{base}", wide)


def fits(message: Message) -> bool:
    """Whether every id in `message` fits its int32 field."""
    try:
        check_narrow(message)
    except IdOutOfRange:
        return False
    return True


def history_for_old_client(rows: list[Any]) -> None:
    """Number a task's history rows 1, 2, 3... (oldest first) when one row's own id does not fit:
    the rows of a task whose id fits stay readable to an old client, with ids that are stable (the
    history only grows) and never another row's. No call of the original takes a history id back."""
    if all(row.id64 <= INT32_MAX for row in rows):
        return
    for position, row in enumerate(rows, start=1):
        row.id = row.id64 = position


OMITTED_HEADER = "task-ids-omitted"


def out_of_range(error: IdOutOfRange) -> ConnectError:
    return ConnectError(Code.OUT_OF_RANGE, str(error))


class NarrowIdGuard:
    """A Connect interceptor: to a client without `Task-Id-Width: 64`, an id that does not fit its
    int32 field is an `out_of_range` error, never a response with a 0 or a wrapped number in it."""

    async def intercept_unary(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], Awaitable[RES]],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> RES:
        response = await call_next(request, ctx)
        if isinstance(response, Message) and not reads_wide_ids(ctx):
            try:
                check_narrow(response)
            except IdOutOfRange as error:
                raise out_of_range(error) from None
        return response

    async def intercept_server_stream(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], AsyncIterator[RES]],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> AsyncIterator[RES]:
        wide = reads_wide_ids(ctx)
        async for response in call_next(request, ctx):
            if isinstance(response, Message) and not wide:
                try:
                    check_narrow(response)
                except IdOutOfRange as error:
                    raise out_of_range(error) from None
            yield response


class SendsWideIds:
    """A client interceptor (sync and async Connect clients): this client reads the 64-bit twins."""

    def on_start_sync(self, ctx: RequestContext[Any, Any]) -> None:
        ctx.request_headers()[ID_WIDTH_HEADER] = WIDE

    def on_end_sync(self, token: None, ctx: RequestContext[Any, Any], error: Exception | None) -> None:
        return

    async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
        ctx.request_headers()[ID_WIDTH_HEADER] = WIDE

    async def on_end(self, token: None, ctx: RequestContext[Any, Any], error: Exception | None) -> None:
        return
