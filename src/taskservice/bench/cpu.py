"""CPU time a drain costs: its worker processes' and the PostgreSQL backends serving them, per task.

The workers name their connections (`application_name`), so that their backends can be found in
`pg_stat_activity`, and the CPU time of each process is read from /proc. Where the database server
runs on another host, its backends are not processes of this one: the PostgreSQL share is then unknown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psutil

from taskservice.bench.processes import Child

WORKER_APPLICATION = "taskservice-bench-worker"
BACKEND_NAME = "postgres"  # what a PostgreSQL server process is called, here or embedded


def named_connections(url: str) -> str:
    """`url` with its connections named WORKER_APPLICATION (asyncpg and libpq read it from the query)."""
    parts = urlsplit(url)
    options = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "application_name"]
    return urlunsplit(parts._replace(query=urlencode([*options, ("application_name", WORKER_APPLICATION)])))


class NotHere(Exception):
    """A process id of the database server's that names another process here: the server is elsewhere."""


def _cpu_seconds(pid: int, name: str | None = None) -> float:
    """CPU seconds of process `pid` so far; 0 when it is gone; NotHere when it is not called `name`.

    Linux's schedstat counts nanoseconds (summed over the process's threads); psutil's times, the
    fallback, count in ticks of 10 ms, too coarse for a drain of a few seconds."""
    try:
        process = psutil.Process(pid)
        if name is not None and process.name() != name:
            raise NotHere(pid)
        try:
            threads = Path(f"/proc/{pid}/task").iterdir()
            return sum(int((t / "schedstat").read_text().split()[0]) for t in threads) / 1e9
        except (OSError, ValueError, IndexError):
            times = process.cpu_times()
            return float(times.user + times.system)
    except psutil.NoSuchProcess:
        return 0.0
    except psutil.AccessDenied:
        raise NotHere(pid) from None


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds so far of each worker process and each of their backends (None: not visible)."""

    workers: dict[int, float]
    backends: dict[int, float] | None


def cpu_times(workers: list[Child], backend_pids: list[int]) -> CpuTimes:
    """Of the worker processes and of their backends (`backend_pids`, from pg_stat_activity)."""
    backends: dict[int, float] | None
    try:
        backends = {pid: _cpu_seconds(pid, BACKEND_NAME) for pid in backend_pids}
    except NotHere:
        backends = None
    if backends is not None and backend_pids and not any(backends.values()):
        backends = None  # none of them is a process here
    return CpuTimes({w.pid: _cpu_seconds(w.pid) for w in workers}, backends)


@dataclass(frozen=True)
class CpuPerTask:
    """Microseconds of CPU per task: the workers', and PostgreSQL's (NaN: not measurable here)."""

    workers: float
    database: float

    @property
    def total(self) -> float:
        return self.workers + self.database

    @classmethod
    def between(cls, before: CpuTimes, after: CpuTimes, tasks: int) -> CpuPerTask:
        """Spent from `before` to `after`; a backend that started in between counts from zero."""
        workers = sum(s - before.workers.get(pid, 0.0) for pid, s in after.workers.items())
        database = math.nan
        if before.backends is not None and after.backends is not None:
            database = sum(s - before.backends.get(pid, 0.0) for pid, s in after.backends.items())
        return cls(workers / tasks * 1e6, database / tasks * 1e6)
