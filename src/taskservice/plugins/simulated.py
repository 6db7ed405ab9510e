"""SIMULATED_PLUGINS: `send_email` and `run_query` as the original's plugins behaved (they only slept).

The original's plugins ignored their parameters: `send_email` slept TASK_TIME_OUT seconds and
succeeded; `run_query` slept as long and failed with "query failed" 20% of the time. Its CLI's
`end2end` relies on that (its tasks carry `{"test": "test_<i>"}`), so with SIMULATED_PLUGINS=true
every process that checks or runs tasks (the server, `task-cli serve` workers and agents) swaps the
real plugins for these. The setting is read by each process for itself: see docs/task-types.md for
what happens when the server and a worker disagree.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from taskservice.plugins import PermanentFailure
from taskservice.plugins.declare import TaskTypeSpec

if TYPE_CHECKING:
    from taskservice.config import Settings
    from taskservice.plugins import Registry

SETTING = "SIMULATED_PLUGINS"
QUERY_FAIL_RATE = 0.2
QUERY_FAILED = "query failed"  # the original's error text
TIMEOUT_CAP = 86_400.0  # as a declaration's timeout_seconds allows
# The two task types of the original, and whether each may fail at random.
ORIGINAL_TYPES: dict[str, float] = {"send_email": 0.0, "run_query": QUERY_FAIL_RATE}
HINT = (
    f"the original's send_email and run_query ignored their parameters: set {SETTING}=true "
    "on the server and its workers to run them that way"
)

Sleep = Callable[[float], Awaitable[object]]


class SimulatedPlugin:
    """One of the original's plugins: ignores its parameters, sleeps `seconds`, then fails with
    `error` at `fail_rate` (drawn from `rng`) or succeeds. `rng` and `sleep` are for tests."""

    def __init__(
        self,
        name: str,
        seconds: float,
        *,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name, self.seconds = name, seconds
        self.fail_rate = ORIGINAL_TYPES[name]
        self.rng = rng or random.Random()
        self.sleep = sleep
        # Any parameters; the attempt may run well past the sleep (a busy worker, a slow report), so
        # its timeout is not the sleep itself, which would time out every attempt.
        self.spec = TaskTypeSpec(
            description=f"Simulated ({SETTING}=true): ignores its parameters, sleeps TASK_TIME_OUT "
            f"({seconds:g}s)" + (f", fails {self.fail_rate:.0%} of the time" if self.fail_rate else ""),
            extra_parameters=True,
            timeout_seconds=min(TIMEOUT_CAP, 2 * seconds + 10),
        )

    async def run(self, parameters: dict[str, str]) -> dict[str, object]:
        await self.sleep(self.seconds)
        # random() is in [0, 1): a rate of 0 never fails.
        if self.rng.random() < self.fail_rate:
            raise RuntimeError(QUERY_FAILED)
        return {"simulated": True, "slept": self.seconds}


def simulate_original_plugins(
    registry: Registry, settings: Settings, *, rng: random.Random | None = None, sleep: Sleep = asyncio.sleep
) -> None:
    """Replace `send_email` and `run_query` in `registry` by the simulated ones when the settings say so."""
    if not settings.simulated_plugins:
        return
    for name in ORIGINAL_TYPES:
        registry.register(name, SimulatedPlugin(name, settings.task_time_out, rng=rng, sleep=sleep))


def check_real_parameters(spec: TaskTypeSpec, name: str, parameters: Mapping[str, str]) -> None:
    """For the real plugins: a parameter they do not take fails the task at once, saying why it got
    here (a server with SIMULATED_PLUGINS=true accepted it) rather than what else is missing."""
    unknown = sorted(key for key in parameters if not spec.declares(key))
    if unknown:
        raise PermanentFailure(
            f"{unknown[0]!r} is not a parameter of {name}; this worker runs the real {name} ({SETTING} "
            f"is not true here, but was where the task was accepted): give {SETTING} the same value on "
            "the server and every worker"
        )
