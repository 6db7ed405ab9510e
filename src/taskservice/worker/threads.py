"""The threads a worker runs its sync plugins in: at most one per slot, reused, never joined at exit.

Not `concurrent.futures.ThreadPoolExecutor`: its threads are joined as the interpreter exits (an
atexit hook over every pool's threads), so one plugin hung past its timeout would keep a stopping
worker alive for ever; reaching into its private thread table to undo that would be a hook into a
private API. These threads are daemons, started on demand up to `size` and then reused, and each
call settles an asyncio future with one `call_soon_threadsafe`, as a thread per call did.

A call the worker gave up on (a timeout, a cancel, a stop) while its thread still runs is
`abandon`ed: it counts as stuck until the plugin returns, and the worker claims that many fewer tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any


class PluginCall:
    """One sync plugin call: `future` settles on the caller's loop when the function returns."""

    __slots__ = ("abandoned", "arguments", "function", "future", "loop", "variables")

    def __init__(self, function: Callable[..., Any], arguments: tuple[Any, ...]) -> None:
        self.function, self.arguments = function, arguments
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[Any] = self.loop.create_future()
        # A copy of the caller's context, so `plugins.context.current()` answers in the thread too.
        self.variables = contextvars.copy_context()
        self.abandoned = False


class PluginThreads:
    """At most `size` daemon threads, each running one call at a time; `on_free(call)` is called on
    the loop when an abandoned call's function returns at last (its slot is free again)."""

    def __init__(self, size: int, on_free: Callable[[PluginCall], None], *, name: str = "plugin") -> None:
        self.size, self.name, self._on_free = size, name, on_free
        self._calls: queue.SimpleQueue[PluginCall | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self.threads: list[threading.Thread] = []
        self.stuck = 0  # abandoned calls still running: each holds a thread (and a slot)
        self.stuck_total = 0  # abandoned calls ever, ended or not

    def run(self, function: Callable[..., Any], *arguments: Any) -> PluginCall:
        """Run `function(*arguments)` on a free thread (a new one while fewer than `size` exist)."""
        call = PluginCall(function, arguments)
        with self._lock:
            if self._idle:
                self._idle -= 1
            elif len(self.threads) < self.size:
                thread = threading.Thread(
                    target=self._serve, name=f"{self.name}-{len(self.threads)}", daemon=True
                )
                self.threads.append(thread)
                thread.start()
            # else it waits for a thread: the worker keeps at most `size` calls running
        self._calls.put(call)
        return call

    def abandon(self, call: PluginCall) -> bool:
        """The caller no longer waits for `call` (on the loop). Whether its function still runs (stuck)."""
        if call.abandoned or (call.future.done() and not call.future.cancelled()):
            return False
        call.abandoned = True
        self.stuck += 1
        self.stuck_total += 1
        return True

    def idle(self) -> int:
        """How many threads wait for a call (each has handed its last result to its loop)."""
        return self._idle

    def close(self) -> None:
        """Let every thread end once it is idle; none is waited for (a stuck one ends when it returns)."""
        for _ in self.threads:
            self._calls.put(None)

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            try:
                result, error = call.variables.run(call.function, *call.arguments), None
            except BaseException as exc:
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits for this anymore
                call.loop.call_soon_threadsafe(self._settle, call, result, error)
            del call, result, error  # an idle thread keeps no result (or traceback) alive
            with self._lock:
                self._idle += 1

    def _settle(self, call: PluginCall, result: Any, error: BaseException | None) -> None:
        if call.abandoned:
            call.abandoned = False
            self.stuck -= 1
            self._on_free(call)
        future = call.future
        if future.done():
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
