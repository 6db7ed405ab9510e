"""An agent process for the tests (or, with `--worker`, a direct worker): the built-in task types plus
`gate`, which waits until the test lets it finish (a file named `release-<pid>` appears in GATE_DIR)
and leaves `cancelled-<pid>-<task>` there if its attempt is cancelled instead, and `gated_email`,
send_email held at the same gate, which leaves `not-current-<pid>-<task>` if it may not send then.

Run as `python tests/gated_agent.py ADDRESS [TOKEN]` or `python tests/gated_agent.py --worker`, with
the settings in the environment.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from taskservice import logs
from taskservice.config import get_settings
from taskservice.plugins import Registry
from taskservice.plugins.context import NotCurrent, TaskContext
from taskservice.plugins.email import SendEmail
from taskservice.worker.serve import serve, serve_agent


def _gates() -> Path:
    return Path(os.environ["GATE_DIR"])


def _released() -> bool:
    return (_gates() / f"release-{os.getpid()}").exists()


async def gate(parameters: dict[str, str]) -> dict[str, str]:
    folder = _gates()
    (folder / f"started-{os.getpid()}-{parameters['name']}").touch()
    try:
        while not _released():  # noqa: ASYNC110 (another process)
            await asyncio.sleep(0.02)
    except asyncio.CancelledError:
        (folder / f"cancelled-{os.getpid()}-{parameters['name']}").touch()
        raise
    return {"released_in": str(os.getpid())}


def gated_email(parameters: dict[str, str], ctx: TaskContext) -> dict[str, str]:
    """send_email (parameters but `name`), held at the gate first: in a thread, as a sync plugin is,
    so that it goes on the instant the process wakes from a pause, before the event loop does."""
    name, mail = parameters["name"], {k: v for k, v in parameters.items() if k != "name"}
    (_gates() / f"started-{os.getpid()}-{name}").touch()
    while not _released():
        time.sleep(0.02)
    try:
        return {**SendEmail().run(mail, ctx), "sent_by": str(os.getpid())}
    except NotCurrent:
        (_gates() / f"not-current-{os.getpid()}-{name}").touch()
        raise


def main() -> None:
    logs.configure("info")
    registry = Registry()
    registry.register("gate", gate)
    registry.register("gated_email", gated_email)
    settings = get_settings()
    if sys.argv[1] == "--worker":
        asyncio.run(serve(settings, concurrency=4, registry=registry))
        return
    address, token = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
    asyncio.run(serve_agent(settings, address, token, concurrency=4, registry=registry))


if __name__ == "__main__":
    main()
