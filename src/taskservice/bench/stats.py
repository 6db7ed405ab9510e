"""Percentiles of measured samples."""

from __future__ import annotations

import math
from collections.abc import Sequence

LATENCY_PERCENTILES = (0.5, 0.95, 0.99)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The `fraction` (0..1) percentile, linearly interpolated; NaN for no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and max of durations in seconds, in milliseconds."""
    return {
        name: round(percentile(seconds, fraction) * 1000, 3)
        for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
    }


def best(rates: Sequence[float]) -> float:
    """The best of several rounds of a throughput: on a shared machine, noise only ever slows a round."""
    return max(rates) if rates else math.nan
