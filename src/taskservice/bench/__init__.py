"""The benchmark (`task-cli bench`): throughput, latency, scale and memory against the raw ceiling."""

from taskservice.bench.runner import run_bench

__all__ = ["run_bench"]
