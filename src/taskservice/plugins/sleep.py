"""The `sleep` task type: simulated work that takes a while and fails at a chosen rate."""

from __future__ import annotations

import asyncio
import math
import random

from taskservice.config import Settings, get_settings
from taskservice.plugins import PermanentFailure


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

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()

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
