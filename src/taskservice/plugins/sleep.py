"""The `sleep` task type: simulated work that takes a while and fails at a chosen rate."""

from __future__ import annotations

import asyncio
import math
import random
from typing import ClassVar

from taskservice.config import Settings
from taskservice.plugins import PermanentFailure
from taskservice.plugins.declare import ParameterSpec, TaskTypeSpec


def _number(parameters: dict[str, str], name: str, default: float) -> float:
    raw: object = parameters.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise PermanentFailure(f"{name} must be a number, got {raw!r}")
    try:
        value = float(raw)
    except ValueError:
        raise PermanentFailure(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise PermanentFailure(f"{name} must be a finite number, got {raw!r}")
    return value


class Sleep:
    """Sleeps `seconds` (>= 0, default 0); then fails with probability `fail_rate` (0..1, default 0)."""

    spec: ClassVar[TaskTypeSpec] = TaskTypeSpec(
        description="Simulated work: sleep, then fail at a chosen rate. Other parameters are kept as labels.",
        parameters=(
            ParameterSpec(
                name="seconds", type="number", default="0", minimum=0, description="How long to sleep."
            ),
            ParameterSpec(
                name="fail_rate",
                type="number",
                default="0",
                minimum=0,
                maximum=1,
                description="The probability of failing after the sleep (0..1).",
            ),
        ),
        extra_parameters=True,
    )

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings  # unused: kept so that every built-in is made the same way

    async def run(self, parameters: dict[str, str]) -> dict[str, float]:
        seconds = _number(parameters, "seconds", 0.0)
        if seconds < 0:
            raise PermanentFailure(f"seconds must be >= 0, got {seconds!r}")
        fail_rate = _number(parameters, "fail_rate", 0.0)
        if not 0 <= fail_rate <= 1:
            raise PermanentFailure(f"fail_rate must be between 0 and 1, got {fail_rate!r}")
        await asyncio.sleep(seconds)
        if random.random() < fail_rate:  # random() is in [0, 1): fail_rate=1 always, 0 never
            raise RuntimeError(f"simulated failure (fail_rate={fail_rate:g})")
        return {"slept": seconds}
