"""Virtual time for pacing tests: sleepers wake in order as the test advances the clock.

`FakeClock()` is a monotonic clock (seconds from 0), `FakeClock.utc()` the matching wall
clock (a fixed start plus the same seconds), and `FakeClock.sleep` their `asyncio.sleep`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

T = TypeVar("T")
SETTLE_ROUNDS = 20
REAL_WAIT_LIMIT = 20.0
"""How long `sleepers` and `drive` wait, in real time, for work between sleeps (I/O)."""


class FakeClock:
    """A monotonic clock and a matching `sleep`, both driven by `advance`."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = 0.0
        self.start = start or datetime.now(UTC)
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    def utc(self) -> datetime:
        """The wall-clock time: `start` plus the virtual seconds gone by."""
        return self.start + timedelta(seconds=self.now)

    @property
    def sleeping(self) -> int:
        """How many sleepers wait for the clock."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def sleepers(self, count: int = 1) -> None:
        """Wait, in real time, until `count` tasks sleep on the clock.

        Between two sleeps a task may do real I/O (a database query); this waits for that
        work to end so the next `advance` wakes the task at the time it asked for.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REAL_WAIT_LIMIT
        while self.sleeping < count:
            if loop.time() > deadline:
                raise TimeoutError(f"{self.sleeping} sleepers on the clock, not {count}")
            await asyncio.sleep(0.001)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._order), future))
        await future

    async def settle(self) -> None:
        """Let every runnable task run until it waits again."""
        for _ in range(SETTLE_ROUNDS):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its own time, in order."""
        target = self.now + seconds
        await self.settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            wake, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, wake)
            if not future.done():
                future.set_result(None)
            await self.settle()
        self.now = target
        await self.settle()

    async def drive(self, awaitable: Awaitable[T], sleepers: int = 1) -> T:
        """Await `awaitable`, moving time on to the next wake-up whenever `sleepers` tasks
        sleep, and only then: work between sleeps (real I/O) happens at the virtual time it
        started, however long it takes in real time."""
        task = asyncio.ensure_future(awaitable)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REAL_WAIT_LIMIT
        while not task.done():
            if self.sleeping >= sleepers:
                wake = min(w for w, _, future in self._sleepers if not future.done())
                await self.advance(max(0.0, wake - self.now))
                deadline = loop.time() + REAL_WAIT_LIMIT
            elif loop.time() > deadline:
                task.cancel()
                raise TimeoutError(f"{self.sleeping} sleepers on the clock, not {sleepers}")
            else:
                await asyncio.wait([task], timeout=0.001)
        return task.result()

    async def run(self, awaitable: Awaitable[T], step: float = 0.1) -> T:
        """Await `awaitable` while advancing time in steps until it is done."""
        task = asyncio.ensure_future(awaitable)
        while not task.done():
            await self.advance(step)
        return task.result()
