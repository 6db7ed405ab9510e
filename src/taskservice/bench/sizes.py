"""How big and how long each scenario is: the full run and the seconds-long quick run."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Sizes:
    """Every count, rate and duration of a run; each scenario stops by itself within these."""

    create_clients: tuple[int, ...] = (1, 8, 32)  # concurrent CreateTask callers, one level each
    create_seconds: float = 2.0  # how long each level sends, each round
    batch_clients: int = 4  # concurrent CreateTasks callers
    batch_size: int = 1000  # tasks per CreateTasks call (the API's maximum)
    batch_seconds: float = 2.0
    drain_tasks: int = 20_000  # no-op tasks drained per level of the processing scenario
    worker_processes: tuple[int, ...] = (1, 2, 4)
    worker_concurrency: int = 100  # `task-cli serve --concurrency`: also the claim batch size
    latency_rate: float = 100.0  # tasks enqueued per second
    latency_seconds: float = 30.0
    scale_tasks: int = 1_000_000
    scale_queued: int = 2_000  # of those, due and waiting (what claims take)
    scale_samples: int = 200  # calls per measured RPC
    claim_batch: int = 10  # tasks per claim when timing claims on the big table
    limit_keys: int = 1_000  # values of the limited drain's key parameter (`customer`)
    limit_concurrency: int = 2  # attempts at once per key: 2,000 slots over 1,000 keys, above 4 x 100
    rate_limit: int = 200  # starts per second the rate-limited drain may make, all tasks one key
    rate_limited_tasks: int = 1_000  # tasks of the rate-limited drain: five periods' worth
    workflow_steps: int = 1_000  # steps of the workflow scenario's fan-out and fan-in (1 → n-2 → 1)
    cli_runs: int = 11  # runs of each task-cli command timed (the median is shown)
    rounds: int = 3  # every throughput figure is the best of this many rounds (noise only slows)
    step_timeout: float = 300.0  # the longest any one wait may take before the scenario fails

    def describe(self) -> str:
        return (
            f"CreateTask {'/'.join(map(str, self.create_clients))} clients x {self.create_seconds:g}s; "
            f"CreateTasks {self.batch_clients} clients x {self.batch_size} tasks x {self.batch_seconds:g}s; "
            f"{self.drain_tasks:,} tasks drained by {'/'.join(map(str, self.worker_processes))} "
            f"worker processes (concurrency {self.worker_concurrency}); "
            f"{self.latency_rate:g} tasks/s for {self.latency_seconds:g}s; "
            f"{self.scale_tasks:,} tasks for scale; limits: {self.limit_concurrency} per key over "
            f"{self.limit_keys:,} keys, {self.rate_limited_tasks:,} tasks at {self.rate_limit}/s; "
            f"a workflow of {self.workflow_steps:,} steps; "
            f"throughput: best of {self.rounds} rounds"
        )


FULL = Sizes()

QUICK = replace(
    FULL,
    create_seconds=0.5,
    batch_seconds=0.5,
    batch_size=200,
    drain_tasks=400,
    latency_rate=50.0,
    latency_seconds=1.0,
    scale_tasks=5_000,
    scale_queued=100,
    scale_samples=10,
    limit_keys=100,
    rate_limit=100,
    rate_limited_tasks=200,
    workflow_steps=100,
    cli_runs=3,
    rounds=1,
    step_timeout=60.0,
)
