"""The shop's task types: typed functions declared with @taskservice.task.

Workers run them once they import this module (`task-cli serve --import shop.tasks`, or
`TASK_MODULES=shop.tasks` for `task-cli server`/`up`); the server checks every new task's parameters
against the declaration the workers publish.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

import taskservice


class AvatarGone(Exception):
    """The user deleted the picture: retrying cannot bring it back."""


@taskservice.task("resize_avatar", max_retries=3, timeout=60, permanent=(AvatarGone,))
def resize_avatar(
    ctx: taskservice.TaskContext,
    user: str,
    width: Annotated[int, Field(ge=16, le=4096)],
    square: bool = False,
) -> dict[str, object]:
    """Make a user's avatar `width` pixels wide.

    Args:
        user: Whose avatar.
        width: The new width in pixels.
        square: Crop it square as well.
    """
    ctx.log.info("resizing the avatar", user=user, width=width)
    if user.startswith("gone-"):
        raise AvatarGone(f"{user} has no avatar any more")
    height = width if square else width * 3 // 4
    return {"user": user, "width": width, "height": height, "attempt": ctx.attempt}
