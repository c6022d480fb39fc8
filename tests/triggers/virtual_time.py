"""A virtual clock for the status poller: time jumps to the next timer once the loop has nothing else to do."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

START = 1_800_000_000.0  # epoch seconds, 2027-01-15


class _Handle:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """
    Implements the poller's ``Clock``; nothing sleeps for real.

    :meth:`run` drives a coroutine to its end, jumping the time to the next timer whenever the loop
    is idle; :meth:`advance` moves the time forward by a given amount, firing timers on the way.
    """

    def __init__(self, start: float = START) -> None:
        self.now = start
        self._timers: list[tuple[float, int, _Handle]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Handle:
        handle = _Handle(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), handle))
        return handle

    def pending(self) -> list[float]:
        """When the live timers fire."""
        return sorted(h.when for _, _, h in self._timers if not h.cancelled)

    async def settle(self) -> None:
        """Let every ready task run until the loop is idle (no real I/O happens in these tests)."""
        ready = getattr(asyncio.get_running_loop(), "_ready", None)  # CPython's queue of ready callbacks
        for i in range(10_000):
            await asyncio.sleep(0)
            if i >= 2 and ready is not None and not ready:
                return

    def _next_timer(self, until: float) -> _Handle | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        if self._timers and self._timers[0][0] <= until:
            return heapq.heappop(self._timers)[2]
        return None

    def _fire(self, handle: _Handle) -> None:
        self.now = max(self.now, handle.when)
        handle.callback()

    async def advance(self, seconds: float) -> None:
        """Move the time ``seconds`` forward, firing each timer due on the way at its own time."""
        target = self.now + seconds
        await self.settle()
        while (handle := self._next_timer(target)) is not None:
            self._fire(handle)
            await self.settle()
        self.now = max(self.now, target)
        await self.settle()

    async def run(self, awaitable: Awaitable[T], *, limit: float = 7 * 86400) -> T:
        """Await ``awaitable``, jumping to the next timer whenever nothing else can run."""
        task: asyncio.Future[T] = asyncio.ensure_future(awaitable)
        stop_at = self.now + limit
        idle_rounds = 0
        while not task.done():
            await self.settle()
            if task.done():
                break
            handle = self._next_timer(stop_at)
            if handle is None:
                # Something runs outside the loop (Airflow reads env connections in a thread).
                idle_rounds += 1
                if idle_rounds > 2000:
                    task.cancel()
                    raise AssertionError("nothing left to run and the awaited task is not done")
                await asyncio.sleep(0.001)
                continue
            idle_rounds = 0
            self._fire(handle)
        return task.result()


async def gather_on(clock: VirtualClock, *awaitables: Awaitable[Any]) -> list[Any]:
    """Run several awaitables together under ``clock``."""
    return await clock.run(asyncio.gather(*awaitables))
