"""CPU time a drain costs: its worker processes' and the PostgreSQL backends serving them, per task.

The workers name their connections (`application_name`), so that their backends can be found in
`pg_stat_activity`, and the CPU time of each process is read from /proc. Where the database server
runs on another host, its backends are not processes of this one: the PostgreSQL share is then unknown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psutil

from taskservice.bench.processes import Child
from taskservice.bench.results import Figure

WORKER_APPLICATION = "taskservice-bench-worker"
BACKEND_NAME = "postgres"  # what a PostgreSQL server process is called, here or embedded
SAME_START = 2.0  # seconds a backend's start may differ by the server's clock and in this host's /proc


def named_connections(url: str) -> str:
    """`url` with its connections named WORKER_APPLICATION (asyncpg and libpq read it from the query)."""
    parts = urlsplit(url)
    options = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "application_name"]
    return urlunsplit(parts._replace(query=urlencode([*options, ("application_name", WORKER_APPLICATION)])))


class NotHere(Exception):
    """A backend that is not a process of this host (or no longer is): the server runs elsewhere."""


def _thread_seconds(thread: Path) -> float:
    try:
        return int((thread / "schedstat").read_text().split()[0]) / 1e9
    except FileNotFoundError:  # the thread ended meanwhile
        return 0.0


def _seconds(process: psutil.Process) -> float:
    """CPU seconds of `process` so far. Linux's schedstat counts nanoseconds (summed over the threads);
    psutil's times, elsewhere, count in ticks of 10 ms: too coarse for a drain of a few seconds."""
    threads = Path(f"/proc/{process.pid}/task")
    if not threads.is_dir():
        times = process.cpu_times()
        return float(times.user + times.system)
    return sum(_thread_seconds(thread) for thread in threads.iterdir())


def _backend_seconds(pid: int, started: float) -> float:
    """CPU seconds of backend `pid`, which the server says started at `started` (seconds since the epoch)."""
    try:
        process = psutil.Process(pid)
        if process.name() != BACKEND_NAME or abs(process.create_time() - started) > SAME_START:
            raise NotHere(pid)  # another process here has the server's backend's id
        return _seconds(process)
    except (psutil.Error, OSError):  # gone since the server listed it, or not ours to read
        raise NotHere(pid) from None


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds so far of each worker process and each of their backends (None: not visible)."""

    workers: dict[int, float]
    backends: dict[int, float] | None


def cpu_times(workers: list[Child], backends: list[tuple[int, float]]) -> CpuTimes:
    """Of the worker processes, and of their `backends` (pid, start) as pg_stat_activity lists them."""
    seconds: dict[int, float] | None
    try:
        seconds = {pid: _backend_seconds(pid, started) for pid, started in backends}
    except NotHere:
        seconds = None
    return CpuTimes({w.pid: _seconds(psutil.Process(w.pid)) for w in workers}, seconds)


@dataclass(frozen=True)
class CpuPerTask:
    """Microseconds of CPU per task: the workers', and PostgreSQL's (NaN: not measurable here)."""

    workers: float
    database: float

    @classmethod
    def between(cls, before: CpuTimes, after: CpuTimes, tasks: int) -> CpuPerTask:
        """Spent from `before` to `after`; a backend that started in between counts from zero."""
        workers = sum(s - before.workers.get(pid, 0.0) for pid, s in after.workers.items())
        database = math.nan
        if before.backends is not None and after.backends is not None:
            database = sum(s - before.backends.get(pid, 0.0) for pid, s in after.backends.items())
        return cls(workers / tasks * 1e6, database / tasks * 1e6)


CPU_PARTS = {"workers": "workers", "postgresql": "PostgreSQL"}


@dataclass
class Drains:
    """The rounds of one kind of drain (`name`) of scenario `scenario`: their rates and their CPU per
    task, shown beside the drain named `baseline` of the same scenario (the figures of `baseline`
    itself beside nothing)."""

    scenario: str
    name: str
    baseline: str
    rates: list[float] = field(default_factory=list)
    cpu: list[CpuPerTask] = field(default_factory=list)

    def cpu_figures(self, label: str) -> list[Figure]:
        """The least CPU per task of the rounds (as with throughput, noise only ever adds), the
        workers' and PostgreSQL's, each beside the baseline drain's."""
        figures = []
        for part, title in CPU_PARTS.items():
            rounds = [c.workers if part == "workers" else c.database for c in self.cpu]
            known = [r for r in rounds if not math.isnan(r)]
            figures.append(
                Figure(
                    f"{self.scenario}.{self.name}_cpu_{part}",
                    f"{label}: CPU per task, {title}",
                    min(known) if known else math.nan,
                    "µs",
                    raw_key=None
                    if self.name == self.baseline
                    else f"{self.scenario}.{self.baseline}_cpu_{part}",
                    compared_with=self.baseline,
                    details={"rounds": [round(r, 1) for r in rounds]},
                )
            )
        return figures
