"""An agent process for the tests: the built-in task types plus `gate`, which waits until the test
lets it finish (a file named `release-<pid>` appears in GATE_DIR) and leaves `cancelled-<pid>-<task>`
there if its attempt is cancelled instead.

Run as `python tests/gated_agent.py ADDRESS [TOKEN]`, with the settings in the environment.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from taskservice import logs
from taskservice.config import get_settings
from taskservice.plugins import Registry
from taskservice.worker.serve import serve_agent


async def gate(parameters: dict[str, str]) -> dict[str, str]:
    folder = Path(os.environ["GATE_DIR"])
    (folder / f"started-{os.getpid()}-{parameters['name']}").touch()
    try:
        while not (folder / f"release-{os.getpid()}").exists():  # noqa: ASYNC110 (another process)
            await asyncio.sleep(0.02)
    except asyncio.CancelledError:
        (folder / f"cancelled-{os.getpid()}-{parameters['name']}").touch()
        raise
    return {"released_in": str(os.getpid())}


def main() -> None:
    logs.configure("info")
    registry = Registry()
    registry.register("gate", gate)
    address, token = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
    asyncio.run(serve_agent(get_settings(), address, token, concurrency=4, registry=registry))


if __name__ == "__main__":
    main()
