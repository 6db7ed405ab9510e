"""Task types the typed-call tests create (tests/test_typed_calls.py): imported by the test and, as
TASK_MODULES, by the server it starts, so both sides hold the same declarations."""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import BaseModel, EmailStr, Field

from taskservice import TaskContext, task


class Size(enum.Enum):
    SMALL = "small"
    LARGE = "large"


@task("typed_resize", max_retries=2, timeout=30)
def typed_resize(
    user: str,
    width: Annotated[int, Field(ge=16, le=4096)],
    ratio: float = 0.75,
    square: bool = False,
    size: Size = Size.SMALL,
    note: str | None = None,
) -> dict[str, object]:
    """Resize a user's avatar (it only says what it was given, as the values it received)."""
    return {"user": user, "width": width, "ratio": ratio, "square": square, "size": size.value, "note": note}


class Order(BaseModel):
    order_id: int
    email: EmailStr
    express: bool = False


@task("typed_ship")
async def typed_ship(ctx: TaskContext, order: Order) -> dict[str, object]:
    """Ship an order."""
    return {"order": order.model_dump(), "attempt": ctx.attempt}
