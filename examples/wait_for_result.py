"""Create a task through the API and wait for its result.

    python examples/wait_for_result.py http://127.0.0.1:8080 [token]

`wait()` is woken by the server's event stream for this one task, not by polling; a task that fails
raises taskservice.TaskFailed with its last error, and one that takes too long taskservice.Timeout.
"""

from __future__ import annotations

import sys
from typing import Any

import taskservice


def main(address: str, token: str = "") -> tuple[Any, str]:
    """(the result of a task that succeeds, the error of one that fails)."""
    with taskservice.Client(address, token=token) as client:
        handle = client.create_task(name="Nap", type="sleep", parameters={"seconds": "0.1"})
        result = handle.wait(timeout=60)
        print(f"task {handle.id}: {result}")

        failing = client.create_task(
            name="Bad nap", type="sleep", parameters={"fail_rate": "1"}, max_retries=0
        )
        try:
            failing.wait(timeout=60)
        except taskservice.TaskFailed as failed:
            print(f"task {failing.id} failed: {failed.error}")
            return result, failed.error
    raise AssertionError("a task with fail_rate=1 succeeded")


if __name__ == "__main__":
    main(*sys.argv[1:3])
